"""Input validation shared by the metrics: field stacks, seeds and sizes."""

from __future__ import annotations

import operator

import numpy as np
import torch

from geodiff.errors import GeodiffError

__all__ = ["as_fields", "as_seed", "check_same_grid"]


def as_fields(fields, name: str = "fields", *, min_fields: int = 2) -> np.ndarray:
    """A stack of fields as a float64 array, validated.

    Parameters
    ----------
    fields : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
    name : str
        What to call the argument in error messages.
    min_fields : int
        The fewest fields accepted.

    Returns
    -------
    np.ndarray, float64, shape (n, H, W)
    """
    if isinstance(fields, torch.Tensor):
        array = fields.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            array = np.asarray(fields, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise GeodiffError(f"{name} must be a numeric array or tensor: {err}") from err
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise GeodiffError(
            f"{name} must have shape (n, H, W) or (n, 1, H, W), got {tuple(array.shape)}"
        )
    n, h, w = array.shape
    if h < 2 or w < 2:
        raise GeodiffError(f"{name} must be at least 2 x 2 nodes, got {h} x {w}")
    if n < min_fields:
        raise GeodiffError(f"{name} needs at least {min_fields} fields, got {n}")
    if not np.all(np.isfinite(array)):
        raise GeodiffError(f"{name} contain NaN or infinite values")
    return array


def check_same_grid(a: np.ndarray, b: np.ndarray, names=("generated", "reference")) -> None:
    """Raise unless two field stacks share their grid shape ``(H, W)``."""
    if a.shape[1:] != b.shape[1:]:
        raise GeodiffError(
            f"{names[0]} and {names[1]} have different grid shapes "
            f"{tuple(a.shape[1:])} and {tuple(b.shape[1:])}"
        )


def as_seed(seed) -> int:
    """A seed as a non-negative ``int``."""
    try:
        value = operator.index(seed)
    except TypeError as err:
        raise GeodiffError(f"seed must be an integer, got {seed!r}") from err
    if isinstance(seed, bool) or value < 0:
        raise GeodiffError(f"seed must be a non-negative integer, got {seed!r}")
    return int(value)
