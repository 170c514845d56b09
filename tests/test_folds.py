"""Cross-validation folds: random (as the old crossval.assign_folds) and spatially blocked."""

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from geodiff import GeodiffError
from geodiff.evaluate import crossval
from geodiff.evaluate.folds import (
    FOLD_SCHEMES,
    assign_folds,
    blocked_folds,
    default_block_size,
    random_folds,
    spatial_blocks,
)


def _uniform(n=200, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 2))


def _clustered(n=240, seed=1):
    """Points in 12 tight clusters plus a sparse background: uneven blocks."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 10, (12, 2))
    pts = centres[rng.integers(0, 12, n - 40)] + 0.3 * rng.normal(size=(n - 40, 2))
    return np.vstack([pts, rng.uniform(0, 10, (40, 2))])


def _held_out_gap(pts, fold):
    """Mean distance from a held-out point to its nearest training point, over folds."""
    gaps = []
    for k in np.unique(fold):
        dist, _ = cKDTree(pts[fold != k]).query(pts[fold == k])
        gaps.append(dist)
    return float(np.concatenate(gaps).mean())


def _old_assign_folds(n, folds, seed):
    """crossval.assign_folds as it was before folds.py (frozen copy of its algorithm)."""
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold


@pytest.mark.parametrize("n, folds, seed", [(23, 5, 3), (7, 7, 0), (100, 2, 11), (57, 10, 123)])
def test_random_folds_equal_the_old_assign_folds_bit_for_bit(n, folds, seed):
    new, old = random_folds(n, folds, seed), _old_assign_folds(n, folds, seed)
    assert new.dtype == old.dtype and new.shape == old.shape == (n,)
    np.testing.assert_array_equal(new, old)
    if hasattr(crossval, "assign_folds"):  # until its owner imports ours
        np.testing.assert_array_equal(crossval.assign_folds(n, folds, seed), old)
    np.testing.assert_array_equal(assign_folds(n, folds, seed), old)
    np.testing.assert_array_equal(assign_folds(_uniform(n), folds, seed, scheme="random"), old)


@pytest.mark.parametrize(
    "pts, folds, block_size",
    [(_uniform(), 5, None), (_uniform(), 3, 0.1), (_clustered(), 5, None), (_clustered(), 4, 1.5)],
)
def test_blocked_folds_partition_whole_blocks_with_balanced_sizes(pts, folds, block_size):
    fold = blocked_folds(pts, folds, seed=7, block_size=block_size)
    assert fold.shape == (len(pts),) and set(np.unique(fold)) == set(range(folds))
    size = default_block_size(pts, folds) if block_size is None else block_size
    blocks = spatial_blocks(pts, size)
    for b in np.unique(blocks):  # every block lies in one fold
        assert len(np.unique(fold[blocks == b])) == 1
    sizes = np.bincount(fold, minlength=folds)
    assert sizes.min() > 0
    assert sizes.max() - sizes.min() <= np.bincount(blocks).max()
    np.testing.assert_array_equal(fold, blocked_folds(pts, folds, seed=7, block_size=block_size))
    np.testing.assert_array_equal(
        fold, assign_folds(pts, folds, 7, scheme="blocked", block_size=block_size)
    )
    other = blocked_folds(pts, folds, seed=8, block_size=block_size)
    # a relabelling of the same partition would not count as a different assignment
    same_partition = all(len(np.unique(other[fold == k])) == 1 for k in range(folds))
    assert not same_partition


def test_spatial_blocks_are_the_squares_of_the_bounding_box():
    pts = _clustered()
    size = 1.3
    blocks = spatial_blocks(pts, size)
    lo, hi = pts.min(0), pts.max(0)
    cells = np.ceil((hi - lo) / size).astype(int)
    index = np.minimum(((pts - lo) // size).astype(int), cells - 1)
    key = index[:, 0] * 1000 + index[:, 1]
    for b in np.unique(blocks):  # same block exactly when the same square
        assert len(np.unique(key[blocks == b])) == 1
    assert len(np.unique(blocks)) == len(np.unique(key)) == blocks.max() + 1
    corner = spatial_blocks(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]), 0.5)
    assert corner[1] == corner[2] != corner[0]  # the upper edge joins the last square


def test_default_block_size_is_the_largest_with_four_blocks_per_fold():
    pts = _uniform()
    for folds in (2, 5, 10):
        size = default_block_size(pts, folds)
        m = round(1.0 / size * np.ptp(pts, 0).max())
        assert spatial_blocks(pts, size).max() + 1 >= 4 * folds
        if m > 1:
            coarser = np.ptp(pts, 0).max() / (m - 1)
            assert spatial_blocks(pts, coarser).max() + 1 < 4 * folds
    assert default_block_size(pts, 5) == pytest.approx(np.ptp(pts, 0).max() / 5)


def test_blocked_folds_hold_out_points_far_from_the_training_points():
    pts = _uniform(300, seed=4)
    spacing = float(np.median(cKDTree(pts).query(pts, k=2)[0][:, 1]))
    threshold = 2.0 * spacing  # random folds sit near 1.1 spacings (1/5 of points removed)
    blocked = [_held_out_gap(pts, blocked_folds(pts, 5, seed=s)) for s in range(5)]
    random = [_held_out_gap(pts, random_folds(len(pts), 5, seed=s)) for s in range(5)]
    assert min(blocked) > threshold, (blocked, spacing)
    assert max(random) < threshold, (random, spacing)  # power: random folds fail the test
    larger = _held_out_gap(pts, blocked_folds(pts, 5, block_size=0.35))
    assert larger > np.mean(blocked)  # bigger blocks, farther from the training data


def test_fold_errors():
    pts = _uniform(30)
    for folds in (1, 0, 2.0, True, "3"):
        with pytest.raises(GeodiffError, match="folds >= 2"):
            blocked_folds(pts, folds)
        with pytest.raises(GeodiffError, match="folds >= 2"):
            random_folds(30, folds)
    with pytest.raises(GeodiffError, match="at most one fold per point"):
        blocked_folds(pts[:3], 4)
    with pytest.raises(GeodiffError, match="at most one fold per point"):
        random_folds(3, 4)
    bad = pts.copy()
    bad[5, 1] = math.nan
    with pytest.raises(GeodiffError, match="NaN or infinite, first at row 5"):
        blocked_folds(bad, 3)
    with pytest.raises(GeodiffError, match="NaN or infinite"):
        assign_folds(bad, 3)
    with pytest.raises(GeodiffError, match=r"only 1 non-empty block\(s\) for 3 folds.*smaller"):
        blocked_folds(pts, 3, block_size=5.0)
    for size in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(GeodiffError, match="block_size must be"):
            blocked_folds(pts, 3, block_size=size)
    with pytest.raises(GeodiffError, match="coincide"):
        blocked_folds(np.ones((10, 2)), 2)
    with pytest.raises(GeodiffError, match=r"\(n, 2\)"):
        blocked_folds(np.ones((10, 3)), 2)
    with pytest.raises(GeodiffError, match="need the"):
        assign_folds(30, 3, scheme="blocked")
    with pytest.raises(GeodiffError, match="only to scheme='blocked'"):
        assign_folds(pts, 3, block_size=0.2)
    with pytest.raises(GeodiffError, match="unknown fold scheme"):
        assign_folds(pts, 3, scheme="checkerboard")
    assert FOLD_SCHEMES == ("random", "blocked")
