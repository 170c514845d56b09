"""Kriging against explicit Gaussian conditioning; conditional simulation against kriging."""

import math

import numpy as np
import pytest
import torch
from shared import moment_z_scores

from geodiff import GeodiffError, Grid, LogUniform, StationaryPrior, load_prior
from geodiff.baselines.kriging import conditional_simulation, gaussian_condition, simple_kriging
from geodiff.observe import Observations

RNG = np.random.default_rng(7)
OBS_POINTS = RNG.uniform(0.05, 0.95, (25, 2))
TARGETS = RNG.uniform(0.0, 1.0, (30, 2))
GRID = Grid.square(12)


def _observations(n=25, noise=0.1, seed=0, blocks=False):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    if blocks:
        lo = rng.uniform(0.0, 0.8, (n, 2))
        rect = np.column_stack([lo[:, 0], lo[:, 0] + 0.15, lo[:, 1], lo[:, 1] + 0.1])
        return Observations.of_blocks(rect, values, noise, order=3)
    return Observations.at_points(OBS_POINTS[:n], values, noise)


def _numpy_conditioning(prior, theta, obs, grid):
    """Posterior mean and covariance on a grid, by dense numpy algebra on the full grid."""
    nodes = grid.points()
    sigma = prior.covariance(nodes, nodes, theta)[0].numpy()
    a = obs.operator.grid_matrix(grid).to_dense().numpy()
    k = a @ sigma @ a.T + np.diag(obs.noise_sd**2)
    gain = np.linalg.solve(k, a @ sigma).T  # Sigma A^T K^-1
    return gain @ obs.values, sigma - gain @ a @ sigma


@pytest.mark.parametrize("prior_name", ["stationary-matern", "nonstationary-anisotropy"])
@pytest.mark.parametrize(("blocks", "noise"), [(False, 0.0), (False, 0.2), (True, 0.05)])
def test_kriging_equals_explicit_numpy_conditioning(prior_name, blocks, noise):
    prior = load_prior(prior_name)
    theta = prior.sample_theta(1, 11)
    obs = _observations(noise=noise, blocks=blocks).on_grid(GRID)
    mean, cov = _numpy_conditioning(prior, theta, obs, GRID)
    got = gaussian_condition(prior, theta, obs, GRID, full_cov=True)
    scale = float(theta.get("variance", torch.ones(1))[0]) if prior.is_stationary else 1.0
    np.testing.assert_allclose(got["mean"].numpy(), mean, atol=1e-8 * math.sqrt(scale), rtol=0)
    np.testing.assert_allclose(got["cov"].numpy(), cov, atol=1e-8 * scale, rtol=0)
    pred = simple_kriging(prior, theta, obs, GRID)
    np.testing.assert_allclose(pred.mean, mean, atol=1e-8, rtol=0)
    np.testing.assert_allclose(pred.sd**2, np.clip(np.diag(cov), 0, None), atol=1e-8, rtol=0)


def test_continuous_kriging_equals_explicit_numpy_conditioning():
    prior = load_prior("nonstationary-anisotropy")
    theta = prior.sample_theta(1, 2)
    obs = _observations(noise=0.1)
    pts = np.concatenate([OBS_POINTS, TARGETS])
    c = prior.covariance(pts, pts, theta)[0].numpy()
    n = len(OBS_POINTS)
    k = c[:n, :n] + 0.01 * np.eye(n)
    mean = c[n:, :n] @ np.linalg.solve(k, obs.values)
    var = np.diag(c[n:, n:] - c[n:, :n] @ np.linalg.solve(k, c[:n, n:]))
    pred = simple_kriging(prior, theta, obs, TARGETS)
    np.testing.assert_allclose(pred.mean, mean, atol=1e-8, rtol=0)
    np.testing.assert_allclose(pred.sd**2, var, atol=1e-8, rtol=0)


@pytest.mark.parametrize(
    ("family", "shape"),
    [
        ("matern", {"nu": 1.5}),
        ("matern", {"nu": 0.8}),
        ("gaussian", {}),
        ("stable", {"alpha": 1.3}),
    ],
)
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_gstools_simple_kriging_agrees_with_conditioning(family, shape, noise):
    prior = StationaryPrior(
        family,
        variance=1.7,
        length_scale=LogUniform(0.1, 0.3),
        anis_ratio=0.5,
        angle=0.4,
        **shape,
    )
    theta = prior.sample_theta(1, 3)
    obs = _observations(noise=noise)
    a = simple_kriging(prior, theta, obs, TARGETS, engine="gstools")
    b = simple_kriging(prior, theta, obs, TARGETS, engine="torch")
    assert a.info["engine"] == "gstools" and b.info["engine"] == "torch"
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-8, rtol=0)
    np.testing.assert_allclose(a.sd**2, b.sd**2, atol=1e-8, rtol=0)


# Bonferroni over the ~300 statistics of one case: |z| < 4.5 has a family-wise false alarm
# rate of about 2e-3 under the normal approximation (2000 draws make it accurate)
Z_MAX = 4.5
N_DRAWS = 2000


@pytest.mark.parametrize(
    ("prior_name", "on_grid", "blocks", "noise"),
    [
        ("stationary-matern", True, False, 0.0),  # circulant fast path, noiseless
        ("stationary-matern", False, False, 0.1),  # continuous points, joint Cholesky
        ("nonstationary-anisotropy", True, True, 0.1),  # block means on the grid
        ("nonstationary-anisotropy", False, False, 0.0),
    ],
)
def test_conditional_simulation_matches_kriging(prior_name, on_grid, blocks, noise):
    prior = load_prior(prior_name)
    theta = prior.sample_theta(1, 5)
    obs = _observations(n=15, noise=noise, blocks=blocks)
    if on_grid:
        obs = obs.on_grid(GRID)
    draws = conditional_simulation(prior, theta, obs, GRID, N_DRAWS, seed=1)
    assert draws.shape == (N_DRAWS, *GRID.shape)
    exact = gaussian_condition(prior, theta, obs, GRID, full_cov=True)
    z = moment_z_scores(
        draws.reshape(N_DRAWS, -1).numpy(), exact["mean"].numpy(), exact["cov"].numpy()
    )
    assert np.abs(z).max() < Z_MAX, np.abs(z).max()


def test_moment_z_scores_detect_a_wrong_posterior():
    """Power check: draws with 10% too much spread fail the same test."""
    prior = load_prior("stationary-matern")
    theta = prior.sample_theta(1, 5)
    obs = _observations(n=15, noise=0.1)
    draws = conditional_simulation(prior, theta, obs, GRID, N_DRAWS, seed=1).reshape(N_DRAWS, -1)
    exact = gaussian_condition(prior, theta, obs, GRID, full_cov=True)
    mean = exact["mean"].numpy()
    wrong = mean + 1.1 * (draws.numpy() - mean)
    z = moment_z_scores(wrong, mean, exact["cov"].numpy())
    assert np.abs(z).max() > Z_MAX


def test_conditional_simulation_is_reproducible_and_honours_noiseless_data():
    prior = load_prior("stationary-matern")
    theta = prior.sample_theta(1, 5)
    obs = _observations(n=10, noise=0.0)
    a = conditional_simulation(prior, theta, obs, OBS_POINTS[:10], 3, seed=4)
    b = conditional_simulation(prior, theta, obs, OBS_POINTS[:10], 3, seed=4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # exact up to the 1e-12 relative jitter times the condition number (~1e7) of the
    # noiseless covariance
    np.testing.assert_allclose(a.numpy(), np.broadcast_to(obs.values, (3, 10)), atol=1e-4)


def test_kriging_bad_input():
    prior = load_prior("stationary-matern")
    theta = prior.sample_theta(1, 5)
    outside = Observations.at_points([[0.5, 0.5], [1.2, 0.3]], [0.0, 1.0], 0.1)
    with pytest.raises(GeodiffError, match="outside the prior's domain"):
        simple_kriging(prior, theta, outside, TARGETS)
    with pytest.raises(GeodiffError, match=r"length_scale .* not given"):
        simple_kriging(prior, {"anis_ratio": 0.5, "angle": 0.1}, _observations(), TARGETS)
    with pytest.raises(GeodiffError, match="outside"):
        simple_kriging(prior, theta, _observations(), [[0.5, 1.5]])
    with pytest.raises(GeodiffError, match="engine"):
        simple_kriging(prior, theta, _observations(), TARGETS, engine="R")
    nonstat = load_prior("nonstationary-anisotropy")
    with pytest.raises(GeodiffError, match="GSTools"):
        simple_kriging(
            nonstat, nonstat.sample_theta(1, 0), _observations(), TARGETS, engine="gstools"
        )
