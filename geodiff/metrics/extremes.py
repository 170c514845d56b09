"""Tails of two sets of fields, compared: exceedances over thresholds and extremal dependence.

Legend of symbols:

* ``u`` — a probability level; ``q_u`` its quantile of the *reference* set's pooled values,
  so both sets are measured against the same threshold;
* ``p(q)`` — the share of all values above ``q``; ``p_max(q)`` the share of fields whose
  maximum is above ``q`` (how often a map exceeds ``q`` somewhere);
* ``chi(u, h)`` — extremal dependence at lag ``h``:
  ``P(X(s + h) > q_u | X(s) > q_u)``, pooled over the grid's pairs at that lag along
  each axis. It tends to 0 as ``u -> 1`` for a Gaussian field (asymptotic independence)
  and stays positive for fields whose extremes come in clusters.

Standard errors come from a bootstrap over whole fields: values of one field are
correlated, fields are independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.metrics._checks import as_fields, as_seed, check_same_grid

__all__ = [
    "CHI_LAGS",
    "CHI_LEVEL",
    "EXCEEDANCE_LEVELS",
    "TailComparison",
    "compare_exceedances",
    "compare_extremal_dependence",
    "extremal_dependence",
]

#: reference quantile levels whose exceedance is compared
EXCEEDANCE_LEVELS = (0.9, 0.99, 0.999)
#: the level of the extremal-dependence threshold
CHI_LEVEL = 0.95
#: lags (cells) at which the extremal dependence is compared by default
CHI_LAGS = (1, 2, 4, 8)


@dataclass(frozen=True)
class TailComparison:
    """A tail statistic of two sets, with bootstrap standard errors.

    Attributes
    ----------
    labels : tuple of str, length S
        What each entry measures (e.g. ``"p(q_0.99)"``, ``"chi x 2"``).
    generated, reference : np.ndarray, shape (S,)
    standard_error : np.ndarray, shape (S,)
        Of the difference (the two sets' bootstrap errors combined).
    z : np.ndarray, shape (S,)
    max_abs_z : float
    """

    labels: tuple
    generated: np.ndarray
    reference: np.ndarray
    standard_error: np.ndarray
    z: np.ndarray
    max_abs_z: float


def _bootstrap(per_field: np.ndarray, ratio_of, n_boot: int, rng) -> tuple:
    """A statistic of per-field sums and its bootstrap sd over fields.

    ``per_field`` is (n, K); ``ratio_of(sums)`` maps the (K,) column sums to (S,).
    """
    value = ratio_of(per_field.sum(0))
    boot = np.empty((n_boot, len(value)))
    for b in range(n_boot):
        rows = rng.integers(0, len(per_field), len(per_field))
        boot[b] = ratio_of(per_field[rows].sum(0))
    return value, boot.std(axis=0, ddof=1)


def _compare(labels, gen_counts, ref_counts, ratio_of, n_boot: int, seed: int) -> TailComparison:
    rng = np.random.default_rng(as_seed(seed))
    gen, se_gen = _bootstrap(gen_counts, ratio_of, n_boot, rng)
    ref, se_ref = _bootstrap(ref_counts, ratio_of, n_boot, rng)
    se = np.hypot(se_gen, se_ref)
    diff = gen - ref
    z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf))
    return TailComparison(tuple(labels), gen, ref, se, z, float(np.max(np.abs(z))))


def _exceedance_counts(fields: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per field (rows): values above each threshold, whether its maximum is, nodes, 1."""
    flat = fields.reshape(len(fields), -1)
    above = (flat[:, :, None] > thresholds[None, None]).sum(1)
    peak = flat.max(1)[:, None] > thresholds[None]
    ones = np.ones((len(flat), 1))
    return np.concatenate([above, peak, flat.shape[1] * ones, ones], axis=1).astype(float)


def compare_exceedances(
    generated, reference, levels=EXCEEDANCE_LEVELS, *, n_boot: int = 200, seed: int = 0
) -> TailComparison:
    """Exceedance probabilities of thresholds at the reference's pooled quantiles.

    For each level ``u``: ``p(q_u)``, the share of all values above ``q_u`` (``1 - u`` in
    the reference by construction), and ``p_max(q_u)``, the share of fields with a value
    above it.

    Parameters
    ----------
    generated, reference : np.ndarray or torch.Tensor, shape (n, H, W) or (n, 1, H, W)
    levels : sequence of float in (0, 1), shape (L,)
    n_boot : int
    seed : int

    Returns
    -------
    TailComparison
        ``2 L`` entries: ``p`` for each level, then ``p_max`` for each level.
    """
    gen, ref = as_fields(generated, "generated"), as_fields(reference, "reference")
    check_same_grid(gen, ref)
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
        raise GeodiffError(f"exceedance levels must lie in (0, 1), got {levels}")
    thresholds = np.quantile(ref.reshape(-1), levels)
    n_levels = len(levels)

    def ratio_of(sums):
        nodes, fields = sums[2 * n_levels], sums[2 * n_levels + 1]
        return np.concatenate([sums[:n_levels] / nodes, sums[n_levels : 2 * n_levels] / fields])

    labels = [f"p(q_{u:g})" for u in levels] + [f"p_max(q_{u:g})" for u in levels]
    return _compare(labels, _exceedance_counts(gen, thresholds),
                    _exceedance_counts(ref, thresholds), ratio_of, n_boot, seed)  # fmt: skip


def _chi_counts(fields: np.ndarray, threshold: float, lags) -> np.ndarray:
    """Per field: for each (axis, lag), pairs with both values above, then with the first."""
    above = fields > threshold
    joint, first = [], []
    for axis in (2, 1):  # x (along a row), then y
        for lag in lags:
            a = np.take(above, range(0, above.shape[axis] - lag), axis=axis)
            b = np.take(above, range(lag, above.shape[axis]), axis=axis)
            joint.append((a & b).reshape(len(fields), -1).sum(1))
            first.append(a.reshape(len(fields), -1).sum(1) + b.reshape(len(fields), -1).sum(1))
    # both orders of each pair: P(B > q | A > q) and P(A > q | B > q) pooled
    return np.column_stack([2 * np.array(joint).T, np.array(first).T]).astype(float)


def extremal_dependence(fields, threshold: float, lags=CHI_LAGS) -> np.ndarray:
    """``chi`` at ``threshold`` by lag along x then y.

    Parameters
    ----------
    fields : np.ndarray or torch.Tensor, shape (n, H, W) or (n, 1, H, W)
    threshold : float
    lags : sequence of int, each below the grid's sides, length K

    Returns
    -------
    np.ndarray, shape (2 K,)
        ``chi`` at each lag along x, then along y (NaN where no value exceeds).
    """
    array = as_fields(fields, "fields")
    counts = _chi_counts(array, threshold, _checked_lags(lags, array.shape)).sum(0)
    half = len(counts) // 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts[:half] / counts[half:]


def _checked_lags(lags, shape) -> tuple:
    lags = tuple(int(k) for k in lags)
    if not lags or min(lags) < 1 or max(lags) >= min(shape[1:]):
        raise GeodiffError(f"lags must lie in [1, {min(shape[1:]) - 1}], got {lags}")
    return lags


def compare_extremal_dependence(
    generated, reference, level: float = CHI_LEVEL, lags=CHI_LAGS, *, n_boot: int = 200,
    seed: int = 0,
) -> TailComparison:  # fmt: skip
    """``chi(u, h)`` of two sets at the reference's pooled ``u``-quantile, by lag and axis.

    Parameters
    ----------
    generated, reference : np.ndarray or torch.Tensor, shape (n, H, W) or (n, 1, H, W)
    level : float in (0, 1)
    lags : sequence of int, length K
    n_boot : int
    seed : int

    Returns
    -------
    TailComparison
        ``2 K`` entries: each lag along x, then along y.
    """
    gen, ref = as_fields(generated, "generated"), as_fields(reference, "reference")
    check_same_grid(gen, ref)
    if not 0 < level < 1:
        raise GeodiffError(f"the extremal-dependence level must lie in (0, 1), got {level}")
    lags = _checked_lags(lags, gen.shape)
    threshold = float(np.quantile(ref.reshape(-1), level))
    half = 2 * len(lags)

    def ratio_of(sums):
        return sums[:half] / np.maximum(sums[half:], 1.0)

    labels = [f"chi {axis} {lag}" for axis in ("x", "y") for lag in lags]
    return _compare(labels, _chi_counts(gen, threshold, lags), _chi_counts(ref, threshold, lags),
                    ratio_of, n_boot, seed)  # fmt: skip
