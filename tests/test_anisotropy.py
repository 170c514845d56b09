"""Local anisotropy statistic against exact simulations of the non-stationary prior.

Null: two independent sets of exact simulations. Power: sets simulated exactly from a
prior that is wrong in what makes it non-stationary — anisotropy ratio 0.7 instead of
0.35 (weaker anisotropy), or an angle map that does not turn across the domain (sd 0.01
instead of 0.8 radians). The statistic's 8 z-scores (5 coherence quantiles, 3
separations) are about standard normal under the null; 3.8 is their Bonferroni bound at
family-wise level 1e-3.

A 90° rotation of the angle map is *not* a wrong input for this prior: its mean angle is
uniform on [0, π), so a rotated map is another draw of the same prior (the statistic
rightly accepts it).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from geodiff import GeodiffError, Grid
from geodiff.fields.config import load_prior, prior_from_config
from geodiff.metrics.anisotropy import compare_local_anisotropy, local_anisotropy

N = 300
Z_BOUND = float(stats.norm.isf(1e-3 / 2 / 8))


def _simulate(prior, n, seed, rotate=0.0):
    """Exact draws on a 16² grid: one Cholesky factor of the prior's covariance per θ."""
    grid = Grid.square(16, prior.domain)
    pts = torch.as_tensor(grid.points())
    theta = prior.sample_theta(n, generator=torch.Generator().manual_seed(seed))
    if rotate:
        theta["angle.mean"] = theta["angle.mean"] + rotate
    cov = prior.covariance(pts, pts, theta)
    chol = torch.linalg.cholesky(cov + 1e-9 * torch.eye(len(pts), dtype=cov.dtype))
    z = torch.randn(
        n, len(pts), 1, generator=torch.Generator().manual_seed(seed + 1), dtype=cov.dtype
    )
    return (chol @ z)[..., 0].reshape(n, 16, 16).numpy()


def _edited(**parameters):
    config = load_prior("nonstationary-anisotropy").to_config()
    for key, value in parameters.items():
        if isinstance(value, dict):
            config["parameters"][key] = {**config["parameters"][key], **value}
        else:
            config["parameters"][key] = value
    return prior_from_config(config)


@pytest.fixture(scope="module")
def reference():
    return _simulate(load_prior("nonstationary-anisotropy"), N, seed=0)


def test_coherence_and_orientation_of_a_known_field():
    """A plane wave cos(k·s) has coherence 1 and orientation along k (modulo π)."""
    y, x = np.mgrid[0:32, 0:32].astype(float)
    for angle in (0.3, -1.1):
        wave = np.cos(0.4 * (np.cos(angle) * x + np.sin(angle) * y))
        coherence, orientation = local_anisotropy(np.stack([wave, wave]), window=8)
        np.testing.assert_allclose(coherence, 1.0, atol=0.02)
        np.testing.assert_allclose(np.cos(2 * (orientation - angle)), 1.0, atol=1e-3)


def test_independent_exact_sets_agree(reference):
    other = _simulate(load_prior("nonstationary-anisotropy"), N, seed=10)
    assert compare_local_anisotropy(other, reference).max_abs_z < Z_BOUND
    # rotating the angle map by 90° gives the same prior (see the module docstring)
    turned = _simulate(load_prior("nonstationary-anisotropy"), N, seed=20, rotate=math.pi / 2)
    assert compare_local_anisotropy(turned, reference).max_abs_z < Z_BOUND


@pytest.mark.parametrize(
    "wrong", [{"anis_ratio": 0.7}, {"angle": {"sd": 0.01}}], ids=["weaker", "no-turning"]
)
def test_wrong_anisotropy_is_rejected(reference, wrong):
    fields = _simulate(_edited(**wrong), N, seed=30)
    assert compare_local_anisotropy(fields, reference).max_abs_z > Z_BOUND


def test_bad_windows_are_refused():
    with pytest.raises(GeodiffError, match="window"):
        local_anisotropy(np.zeros((2, 8, 8)), window=9)
    with pytest.raises(GeodiffError, match="two windows"):
        compare_local_anisotropy(np.ones((3, 8, 8)), np.ones((3, 8, 8)), window=8)
