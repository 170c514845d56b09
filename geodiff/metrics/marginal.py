"""Marginal distribution of field values: pooled quantiles of two sets, compared."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.metrics._checks import as_fields, as_seed, check_same_grid

__all__ = ["QUANTILE_LEVELS", "MarginalComparison", "compare_marginals", "pooled_quantiles"]

#: probability levels compared by default, tails included
QUANTILE_LEVELS = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)


@dataclass(frozen=True)
class MarginalComparison:
    """Pooled quantiles of every node's value in two sets of fields.

    Attributes
    ----------
    levels : np.ndarray, shape (Q,)
    generated, reference : np.ndarray, shape (Q,)
        Quantiles of all values of each set (pooled over fields and nodes).
    standard_error : np.ndarray, shape (Q,)
        Bootstrap standard error of the difference, resampling whole fields (values of
        one field are correlated, fields are independent).
    z : np.ndarray, shape (Q,)
        Difference over its standard error.
    max_abs_z : float
    """

    levels: np.ndarray
    generated: np.ndarray
    reference: np.ndarray
    standard_error: np.ndarray
    z: np.ndarray
    max_abs_z: float


def pooled_quantiles(fields, levels=QUANTILE_LEVELS, *, n_boot: int = 200, seed: int = 0):
    """Quantiles of all values of a set of fields, with bootstrap standard errors.

    Parameters
    ----------
    fields : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
    levels : sequence of float in (0, 1), shape (Q,)
    n_boot : int
        Bootstrap resamples of whole fields.
    seed : int

    Returns
    -------
    quantiles, standard_errors : np.ndarray, shape (Q,) each
    """
    array = as_fields(fields)
    array = array.reshape(len(array), -1)
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
        raise GeodiffError(f"quantile levels must lie in (0, 1), got {levels}")
    if n_boot < 2:
        raise GeodiffError(f"n_boot must be at least 2, got {n_boot}")
    rng = np.random.default_rng(as_seed(seed))
    quantiles = np.quantile(array, levels)
    boot = np.empty((n_boot, len(levels)))
    for b in range(n_boot):
        rows = rng.integers(0, len(array), len(array))
        boot[b] = np.quantile(array[rows], levels)
    return quantiles, boot.std(axis=0, ddof=1)


def compare_marginals(
    generated, reference, levels=QUANTILE_LEVELS, *, n_boot: int = 200, seed: int = 0
) -> MarginalComparison:
    """Compare the pooled value quantiles of generated and reference fields.

    Parameters
    ----------
    generated, reference : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
    levels : sequence of float, shape (Q,)
    n_boot : int
        Bootstrap resamples per set for the standard errors.
    seed : int

    Returns
    -------
    MarginalComparison
    """
    gen, ref = as_fields(generated, "generated"), as_fields(reference, "reference")
    check_same_grid(gen, ref)
    q_gen, se_gen = pooled_quantiles(gen, levels, n_boot=n_boot, seed=seed)
    q_ref, se_ref = pooled_quantiles(ref, levels, n_boot=n_boot, seed=seed + 1)
    se = np.hypot(se_gen, se_ref)
    diff = q_gen - q_ref
    z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
    return MarginalComparison(
        np.asarray(levels, dtype=float), q_gen, q_ref, se, z, float(np.max(np.abs(z)))
    )
