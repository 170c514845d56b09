"""Cross-validation folds: seeded random, or spatially blocked.

Random folds put neighbours of a held-out point in the training set, so for a
spatially correlated field they measure interpolation at the sampling spacing and
flatter every method that exploits short-range correlation. Spatially blocked folds
(blockCV; Roberts et al. 2017, *Ecography* 40, 913–929) hold out whole square blocks
instead, so that held-out points are far from the training points — an honest test of
prediction away from data, provided the blocks are larger than the correlation length.

:func:`assign_folds` dispatches between :func:`random_folds` and :func:`blocked_folds`.
"""

from __future__ import annotations

import logging

import numpy as np

from geodiff.errors import GeodiffError

__all__ = [
    "FOLD_SCHEMES",
    "assign_folds",
    "blocked_folds",
    "default_block_size",
    "random_folds",
    "spatial_blocks",
]

FOLD_SCHEMES = ("random", "blocked")
_BLOCKS_PER_FOLD = 4  # target number of non-empty blocks per fold of the default size
_MAX_DIVISIONS = 4096  # finest division of the longer side tried by the default rule

logger = logging.getLogger(__name__)


def _check_folds(n: int, folds) -> None:
    """``folds`` is an integer in [2, n], else :class:`GeodiffError`."""
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds < 2:
        raise GeodiffError(f"cross-validation needs an integer number of folds >= 2, got {folds!r}")
    if folds > n:
        raise GeodiffError(f"{folds} folds for {n} points: at most one fold per point")


def random_folds(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """Fold of each of ``n`` points: a seeded random partition into near-equal folds.

    ``numpy.random.default_rng(seed).permutation(n)``; the k-th point of the permutation
    goes to fold ``k mod folds``, so fold sizes differ by at most one.

    Parameters
    ----------
    n : int
        Number of points.
    folds : int
        Number of folds, 2 to ``n``.
    seed : int

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    _check_folds(n, folds)
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold


def _locations(locations) -> np.ndarray:
    """Validated (n, 2) float array of finite locations."""
    try:
        pts = np.asarray(locations, dtype=float)
    except (TypeError, ValueError) as err:
        raise GeodiffError(f"locations must be an (n, 2) array of numbers: {err}") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise GeodiffError(f"locations must be an (n, 2) array with n >= 1, got shape {pts.shape}")
    bad = ~np.isfinite(pts).all(1)
    if bad.any():
        raise GeodiffError(
            f"{int(bad.sum())} location(s) are NaN or infinite, first at row {int(np.argmax(bad))}"
        )
    return pts


def spatial_blocks(locations, block_size: float) -> np.ndarray:
    """Block of each point: squares of side ``block_size`` covering the bounding box.

    The blocks tile the bounding box from its lower-left corner, ``ceil(width /
    block_size)`` by ``ceil(height / block_size)`` of them (at least one per axis); points
    on the upper edge belong to the last row or column.

    Parameters
    ----------
    locations : array_like, shape (n, 2)
    block_size : float
        Side of the square blocks, > 0, in the units of the locations.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Labels ``0 .. b-1`` of the ``b`` non-empty blocks, numbered by (column, row) of
        the block grid.
    """
    pts = _locations(locations)
    if isinstance(block_size, bool) or not (np.isfinite(block_size) and block_size > 0):
        raise GeodiffError(f"block_size must be a finite number > 0, got {block_size!r}")
    lo, extent = pts.min(0), np.ptp(pts, 0)
    cells = np.maximum(1, np.ceil(extent / block_size - 1e-9)).astype(np.int64)
    index = np.minimum(np.floor((pts - lo) / block_size).astype(np.int64), cells - 1)
    _, labels = np.unique(index[:, 0] * cells[1] + index[:, 1], return_inverse=True)
    return labels.reshape(-1)


def default_block_size(locations, folds: int) -> float:
    """The default block side: the largest ``L / m`` giving ``4 * folds`` non-empty blocks.

    ``L`` is the longer side of the bounding box and ``m = 1, 2, ...`` divisions of it;
    the target is capped at the number of distinct locations. Four blocks per fold lets
    the greedy assignment balance the fold sizes (their spread is at most one block)
    while keeping the blocks as large as possible: for evenly spread points the side is
    about ``L / sqrt(4 folds)``, 22% of the extent for 5 folds. This is a rule on the
    geometry only — blocks should be larger than the correlation length (Roberts et al.
    2017), so when a range is known (a variogram, a fitted covariance's practical range)
    pass ``block_size`` explicitly.

    Parameters
    ----------
    locations : array_like, shape (n, 2)
    folds : int

    Returns
    -------
    float
    """
    pts = _locations(locations)
    _check_folds(len(pts), folds)
    longest = float(np.ptp(pts, 0).max())
    if longest == 0:
        raise GeodiffError("all locations coincide: they cannot be split into spatial blocks")
    target = min(_BLOCKS_PER_FOLD * folds, len(np.unique(pts, axis=0)))
    for m in range(1, _MAX_DIVISIONS + 1):
        if spatial_blocks(pts, longest / m).max() + 1 >= target:
            return longest / m
    return longest / _MAX_DIVISIONS


def blocked_folds(locations, folds: int, seed: int = 0, *, block_size: float | None = None):
    """Fold of each point: whole square spatial blocks, balanced in points, seeded.

    The bounding box is covered with square blocks (:func:`spatial_blocks`); the
    non-empty blocks are shuffled with ``numpy.random.default_rng(seed)`` and each in
    turn goes to the fold with the fewest points so far (the lowest-numbered on ties).
    Every point of a block shares one fold, every fold is non-empty, and the fold sizes
    differ by at most the largest block's point count.

    Parameters
    ----------
    locations : array_like, shape (n, 2)
    folds : int
        Number of folds, 2 to ``n``.
    seed : int
    block_size : float, optional
        Side of the blocks in the units of the locations; it should exceed the
        correlation length of the field. Default: :func:`default_block_size`.

    Returns
    -------
    numpy.ndarray of int, shape (n,)

    Raises
    ------
    GeodiffError
        Invalid locations, folds or block size, or fewer non-empty blocks than folds.
    """
    pts = _locations(locations)
    _check_folds(len(pts), folds)
    if block_size is None:
        block_size = default_block_size(pts, folds)
        logger.info("blocked folds: block size %.4g (default rule)", block_size)
    blocks = spatial_blocks(pts, block_size)
    counts = np.bincount(blocks)
    if len(counts) < folds:
        raise GeodiffError(
            f"blocks of side {block_size:.4g} leave only {len(counts)} non-empty block(s) for "
            f"{folds} folds (bounding box {np.ptp(pts, 0)[0]:.4g} x {np.ptp(pts, 0)[1]:.4g}); "
            "choose a smaller block_size or fewer folds"
        )
    load = np.zeros(folds, dtype=np.int64)
    block_fold = np.empty(len(counts), dtype=int)
    for b in np.random.default_rng(seed).permutation(len(counts)):
        k = int(np.argmin(load))
        block_fold[b] = k
        load[k] += counts[b]
    return block_fold[blocks]


def assign_folds(
    locations_or_n,
    folds: int,
    seed: int = 0,
    *,
    scheme: str = "random",
    block_size: float | None = None,
) -> np.ndarray:
    """Cross-validation fold of each point, by one of :data:`FOLD_SCHEMES`.

    Parameters
    ----------
    locations_or_n : int or array_like, shape (n, 2)
        The number of points (``"random"`` only) or their locations.
    folds : int
        Number of folds, 2 to ``n``.
    seed : int
    scheme : {"random", "blocked"}
        :func:`random_folds` or :func:`blocked_folds`.
    block_size : float, optional
        ``"blocked"`` only: see :func:`blocked_folds`.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    if scheme not in FOLD_SCHEMES:
        raise GeodiffError(f"unknown fold scheme {scheme!r}; choose from {FOLD_SCHEMES}")
    is_count = isinstance(locations_or_n, (int, np.integer)) and not isinstance(
        locations_or_n, bool
    )
    if scheme == "random":
        if block_size is not None:
            raise GeodiffError("block_size applies only to scheme='blocked'")
        n = int(locations_or_n) if is_count else len(_locations(locations_or_n))
        return random_folds(n, folds, seed)
    if is_count:
        raise GeodiffError("blocked folds need the (n, 2) locations, not a number of points")
    return blocked_folds(locations_or_n, folds, seed, block_size=block_size)
