"""Prior-validation metrics: exact identities, Monte Carlo agreement with the prior, power.

Statistical checks compare means over i.i.d. fields (each with its own parameter draw)
against the prior's expectation through z-scores whose standard errors combine both
sides' Monte Carlo errors. With M comparisons per check, P(max |z| > 4.5) <= M * 6.8e-6
under the null (Bonferroni): about 4e-4 for the M = 64 lags and directions of a 32 x 32
grid. Each check is paired with a perturbation it must reject, so that it can fail.
The classifier's held-out AUC has the exact Mann–Whitney null mean 1/2 and standard
error, so sets from one distribution must land within 4 of them (P ~ 6e-5 otherwise).
"""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from geodiff import GeodiffError, Grid, StationaryPrior, simulate
from geodiff.fields.config import load_prior
from geodiff.metrics import (
    DIRECTIONS,
    Variograms,
    classifier_two_sample_test,
    compare_spectra,
    compare_variograms,
    directional_variograms,
    expected_variogram,
    radial_power_spectrum,
    roc_auc,
)
from geodiff.metrics.classifier import _augment

Z_MAX = 4.5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run these tests on one thread.

    They are many small tensor operations, which two threads barely speed up and which
    slow down many-fold when another process holds one of two cores (every operation
    waits for the descheduled thread).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: (dx, dy) step of each direction in node units, written out independently of the code
STEP_XY = {"x": (1, 0), "y": (0, 1), "diag": (1, 1), "antidiag": (1, -1)}


# ---------------------------------------------------------------- exact variograms
def test_linear_field_variograms_are_exact():
    h, w = 9, 12
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")  # i: row (y), j: x
    coefs = [(0.7, -1.3), (2.0, 0.5)]
    fields = np.stack([a * j + b * i for a, b in coefs])  # f = a x_index + b y_index
    v = directional_variograms(fields, max_lag=5)
    assert v.directions == DIRECTIONS
    assert_array_equal(v.lags, np.arange(1, 6))
    for n, (a, b) in enumerate(coefs):
        lag = v.lags.astype(float)
        expected = {
            "x": 0.5 * (a * lag) ** 2,
            "y": 0.5 * (b * lag) ** 2,
            "diag": 0.5 * ((a + b) * lag) ** 2,  # step (+1, +1)
            "antidiag": 0.5 * ((a - b) * lag) ** 2,  # step (+1, -1)
        }
        for d, name in enumerate(v.directions):
            assert_allclose(v.gamma[n, d], expected[name], rtol=0, atol=1e-10)
    # a torch tensor with a channel axis gives the same
    v2 = directional_variograms(torch.tensor(fields)[:, None], max_lag=5)
    assert_allclose(v2.gamma, v.gamma, rtol=0, atol=1e-12)


def _brute_force_variogram(field, step, lag):
    h, w = field.shape
    total, count = 0.0, 0
    for i in range(h):
        for j in range(w):
            i2, j2 = i + lag * step[1], j + lag * step[0]
            if 0 <= i2 < h and 0 <= j2 < w:
                total += 0.5 * (field[i2, j2] - field[i, j]) ** 2
                count += 1
    return total / count


def test_variograms_match_brute_force():
    fields = np.random.default_rng(3).normal(size=(2, 5, 6))
    v = directional_variograms(fields, max_lag=4)
    for n in range(2):
        for d, name in enumerate(v.directions):
            for k, lag in enumerate(v.lags):
                expected = _brute_force_variogram(fields[n], STEP_XY[name], int(lag))
                assert abs(v.gamma[n, d, k] - expected) < 1e-12
    # default lags: 1 .. min(H, W) // 2; a single direction
    v = directional_variograms(fields, directions="y")
    assert_array_equal(v.lags, [1, 2])
    assert v.gamma.shape == (2, 1, 2)


def test_variogram_distances_and_statistics():
    grid = Grid((5, 6), extent=((0.0, 2.0), (0.0, 1.0)))  # dx = 0.4, dy = 0.25
    fields = np.random.default_rng(0).normal(size=(4, 5, 6))
    v = directional_variograms(fields, max_lag=3)
    lag = np.arange(1, 4)
    expected = [0.4 * lag, 0.25 * lag, math.hypot(0.4, 0.25) * lag, math.hypot(0.4, 0.25) * lag]
    assert_allclose(v.distances(grid), np.array(expected), rtol=1e-14)
    with pytest.raises(GeodiffError, match="grid shape"):
        v.distances(Grid.square(5))
    assert v.mean().shape == (4, 3)
    assert_allclose(v.mean(), v.gamma.mean(0))
    se = np.array([[np.std(v.gamma[:, d, k], ddof=1) / 2 for k in range(3)] for d in range(4)])
    assert_allclose(v.standard_error(), se, rtol=1e-12)  # sd / sqrt(4)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((5, 6)), "shape"),
        (np.zeros((3, 2, 5, 6)), "shape"),
        (np.full((2, 5, 6), np.nan), "NaN"),
        (np.zeros((0, 5, 6)), "at least 1"),
    ],
)
def test_variogram_bad_input(bad, match):
    with pytest.raises(GeodiffError, match=match):
        directional_variograms(bad)


def test_variogram_bad_lags_and_comparisons():
    fields = np.random.default_rng(1).normal(size=(3, 5, 8))
    with pytest.raises(GeodiffError, match="leaves"):
        directional_variograms(fields, max_lag=5)  # y (and diagonals) reach 4 at most
    directional_variograms(fields, max_lag=7, directions=("x",))
    with pytest.raises(GeodiffError, match="directions"):
        directional_variograms(fields, directions=("north",))
    with pytest.raises(GeodiffError, match="increasing positive"):
        directional_variograms(fields, max_lag=0)
    a = directional_variograms(fields, max_lag=2)
    with pytest.raises(GeodiffError, match="different lags"):
        compare_variograms(a, directional_variograms(fields, max_lag=3))
    with pytest.raises(GeodiffError, match="at least 2"):
        compare_variograms(a, directional_variograms(fields[:1], max_lag=2))


# ------------------------------------------------------- variograms against the prior
@pytest.fixture(scope="module")
def matern_fields():
    return simulate(load_prior("stationary-matern"), Grid.square(32), 200, seed=1).fields


def test_empirical_variogram_matches_prior(matern_fields):
    prior = load_prior("stationary-matern")
    grid = Grid.square(32)
    expected = expected_variogram(prior, grid, n_theta=4000, seed=0)
    assert expected.gamma.shape == (4000, 4, 16)
    comparison = compare_variograms(directional_variograms(matern_fields), expected)
    assert comparison.max_abs_z < Z_MAX, comparison.markdown()
    assert len(comparison.table()) == 64
    # power: a 30% error in the fields' scale (69% in the variogram) is caught
    scaled = compare_variograms(directional_variograms(1.3 * matern_fields), expected)
    assert scaled.max_abs_z > Z_MAX
    assert scaled.max_relative_difference > 0.5
    # same seed, same reference; another seed, another Monte Carlo sample
    again = expected_variogram(prior, grid, n_theta=4000, seed=0)
    assert_array_equal(again.gamma, expected.gamma)
    other = expected_variogram(prior, grid, n_theta=4000, seed=1)
    assert not np.array_equal(other.gamma, expected.gamma)


def test_variogram_orientation_against_anisotropic_prior():
    """A fixed prior whose main axis points 30 degrees from x separates all directions."""
    prior = StationaryPrior("matern", nu=1.5, length_scale=0.3, anis_ratio=0.3, angle=math.pi / 6)
    grid = Grid.square(24)
    expected = expected_variogram(prior, grid, lags=8, n_theta=2)
    # every parameter is fixed: the Monte Carlo error is zero ...
    assert_allclose(expected.standard_error(), 0.0, atol=1e-12)
    # ... and the sampled node pairs give the same grid average as one lag vector
    sampled = expected_variogram(prior, grid, lags=8, n_theta=3, method="sampled", seed=5)
    assert_allclose(sampled.mean(), expected.mean(), rtol=1e-10)
    # the main axis (30 degrees) is nearer x than y, and nearer diag than antidiag
    x, y, diag, antidiag = expected.mean()
    assert np.all(x < y) and np.all(diag < antidiag)

    fields = simulate(prior, grid, 300, seed=2).fields
    empirical = directional_variograms(fields, max_lag=8)
    assert compare_variograms(empirical, expected).max_abs_z < Z_MAX
    # exchanging x with y, or diag with antidiag, is caught
    for swap in ([1, 0, 2, 3], [0, 1, 3, 2]):
        swapped = Variograms(
            empirical.lags, empirical.directions, empirical.gamma[:, swap], empirical.grid_shape
        )
        assert compare_variograms(swapped, expected).max_abs_z > Z_MAX


def test_sampled_expected_variogram_for_nonstationary_prior():
    prior = load_prior("nonstationary-anisotropy")
    grid = Grid.square(16)
    expected = expected_variogram(prior, grid, n_theta=400, seed=0)  # "sampled"
    fields = simulate(prior, grid, 300, seed=3).fields
    comparison = compare_variograms(directional_variograms(fields), expected)
    assert comparison.max_abs_z < Z_MAX, comparison.markdown()
    assert compare_variograms(directional_variograms(1.3 * fields), expected).max_abs_z > Z_MAX
    with pytest.raises(GeodiffError, match="stationary"):
        expected_variogram(prior, grid, n_theta=4, method="exact")


# ------------------------------------------------------------------------ spectra
def test_spectrum_parseval_identity():
    fields = np.random.default_rng(4).normal(loc=3.0, size=(3, 12, 17))
    s = radial_power_spectrum(fields)
    assert s.power.shape == (3, len(s.wavenumbers))
    assert s.wavenumbers[0] == 1 and s.counts.sum() == 12 * 17 - 1  # all but the mean
    centred = fields - fields.mean(axis=(1, 2), keepdims=True)
    assert_allclose(s.power @ s.counts, (centred**2).sum(axis=(1, 2)), rtol=1e-12)


@pytest.mark.parametrize(
    ("shape", "ky", "kx", "k"),
    [((32, 32), 0, 7, 7), ((32, 32), 3, 4, 5), ((16, 24), 0, 5, 5), ((16, 24), 6, 0, 6)],
)
def test_sinusoid_power_lands_in_its_bin(shape, ky, kx, k):
    h, w = shape
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    field = np.cos(2 * np.pi * (ky * i / h + kx * j / w) + 0.3)
    s = radial_power_spectrum(field[None])
    total = (field**2).sum()
    assert_allclose(s.power[0, k - 1] * s.counts[k - 1], total, rtol=1e-10)
    others = np.delete(s.power[0], k - 1)
    assert np.all(others < 1e-20 * total)


def test_spectrum_comparison(matern_fields):
    reference = simulate(load_prior("stationary-matern"), Grid.square(32), 200, seed=2).fields
    ref = radial_power_spectrum(reference)
    same = compare_spectra(radial_power_spectrum(matern_fields), ref)
    assert same.max_abs_z < Z_MAX  # 23 wavenumbers
    scaled = compare_spectra(radial_power_spectrum(1.3 * reference.double()), ref)
    assert_allclose(scaled.log_ratio, math.log(1.69), rtol=1e-12)  # power scales exactly
    assert scaled.max_abs_z > Z_MAX
    assert len(same.table()) == len(ref.wavenumbers)
    s = radial_power_spectrum(matern_fields, n_bins=10)
    assert_array_equal(s.wavenumbers, np.arange(1, 11))
    with pytest.raises(GeodiffError, match="n_bins"):
        radial_power_spectrum(matern_fields, n_bins=99)
    with pytest.raises(GeodiffError, match="different wavenumbers"):
        compare_spectra(s, ref)


# --------------------------------------------------------------------------- AUC
def _brute_force_auc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_roc_auc_exact():
    rng = np.random.default_rng(5)
    for m, n in [(1, 1), (7, 3), (40, 55)]:
        pos, neg = rng.integers(0, 4, m), rng.integers(0, 4, n)  # many ties
        assert roc_auc(pos, neg) == pytest.approx(_brute_force_auc(pos, neg), abs=1e-15)
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert roc_auc([1.0, 1.0], [1.0]) == 0.5
    assert roc_auc(torch.tensor([3.0, 1.0]), np.array([2.0, 0.0])) == 0.75
    with pytest.raises(GeodiffError, match="non-empty 1-d"):
        roc_auc([], [1.0])
    with pytest.raises(GeodiffError, match="NaN"):
        roc_auc([np.nan], [1.0])


# -------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def smooth_fields():
    return simulate(load_prior("stationary-matern"), Grid.square(16), 600, seed=4).fields


def test_classifier_null_same_distribution(smooth_fields):
    result = classifier_two_sample_test(smooth_fields[:300], smooth_fields[300:], epochs=3)
    assert result.n_test == 90 and result.n_train == 210
    assert result.auc_se == pytest.approx(math.sqrt(181 / (12 * 90 * 90)))
    # held-out scores are exchangeable under the null: the z-score is ~ N(0, 1)
    assert abs(result.auc - 0.5) < 4 * result.auc_se
    assert result.p_value == pytest.approx(0.5 * math.erfc(result.z / math.sqrt(2)))
    again = classifier_two_sample_test(smooth_fields[:300], smooth_fields[300:], epochs=3)
    assert again.to_dict() == result.to_dict()


def test_classifier_detects_different_sets(smooth_fields):
    noise = torch.randn(300, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    result = classifier_two_sample_test(noise, smooth_fields[:300], epochs=3, seed=1)
    assert result.auc > 0.9 and result.p_value < 1e-6
    assert set(result.to_dict()) >= {"auc", "auc_se", "p_value", "train_accuracy", "n_test"}
    # a 30% error in scale alone (BatchNorm keeps each field's amplitude visible)
    scaled = classifier_two_sample_test(1.3 * smooth_fields[:300], smooth_fields[300:], epochs=3)
    assert scaled.z > 4
    # different length scales, same variance
    grid = Grid.square(16)
    short = simulate(StationaryPrior("matern", nu=1.5, length_scale=0.05), grid, 300, seed=5)
    long = simulate(StationaryPrior("matern", nu=1.5, length_scale=0.3), grid, 300, seed=6)
    result = classifier_two_sample_test(short.fields, long.fields, epochs=3, seed=1)
    assert result.auc > 0.9


def test_classifier_bad_input(smooth_fields):
    with pytest.raises(GeodiffError, match="grid shapes"):
        classifier_two_sample_test(smooth_fields[:20], torch.zeros(20, 8, 8))
    with pytest.raises(GeodiffError, match="held out"):
        classifier_two_sample_test(smooth_fields[:10], smooth_fields[10:20], test_fraction=0.1)
    with pytest.raises(GeodiffError, match="at least 4"):
        classifier_two_sample_test(smooth_fields[:3], smooth_fields[3:10])
    bad = smooth_fields[:20].clone()
    bad[3, 2, 1] = float("nan")
    with pytest.raises(GeodiffError, match="NaN"):
        classifier_two_sample_test(bad, smooth_fields[20:40])
    with pytest.raises(GeodiffError, match="test_fraction"):
        classifier_two_sample_test(smooth_fields[:20], smooth_fields[20:40], test_fraction=1.0)


@pytest.mark.parametrize("shape", [(6, 6), (4, 6)])
def test_augmentation_applies_symmetries_of_the_grid(shape):
    x = torch.randn(64, 1, *shape, generator=torch.Generator().manual_seed(1))
    out = _augment(x, torch.Generator().manual_seed(2))
    turns = (0, 1, 2, 3) if shape[0] == shape[1] else (0, 2)
    seen = set()
    for a, b in zip(x, out, strict=True):
        matches = [
            (flip, k)
            for flip in (False, True)
            for k in turns
            if torch.equal(torch.rot90(a.flip(-1) if flip else a, k, dims=(-2, -1)), b)
        ]
        assert matches, "an augmented field is no symmetry of its input"
        seen.add(matches[0])
    assert len(seen) == 2 * len(turns)  # every symmetry occurs in 64 draws
    again = _augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(again, out)


def test_classifier_with_augmentation_is_deterministic(smooth_fields):
    kwargs = {"epochs": 1, "augment": True, "seed": 3}
    a = classifier_two_sample_test(smooth_fields[:40], smooth_fields[40:80, None], **kwargs)
    b = classifier_two_sample_test(smooth_fields[:40], smooth_fields[40:80, None], **kwargs)
    assert a.to_dict() == b.to_dict() and a.n_test == 12
