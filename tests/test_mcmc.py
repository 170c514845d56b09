"""The Pyro NUTS reference against an exact posterior computed by quadrature."""

import math

import numpy as np
import pytest
import torch

from geodiff import GeodiffError, LogUniform, StationaryPrior, load_prior
from geodiff.baselines.kriging import simple_kriging
from geodiff.baselines.mcmc import (
    RHAT_MAX,
    MCMCWarning,
    _diagnose,
    mcmc_posterior,
    n_hyperparameters,
)
from geodiff.observe import Observations

PRIOR = StationaryPrior("matern", nu=1.5, length_scale=LogUniform(0.05, 0.5))
TARGET = np.array([[0.42, 0.58]])
Z_MAX = 4.0  # per statistic; three statistics -> family-wise false alarm ~2e-4


def _data(n=12, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (n, 2))
    theta = PRIOR.complete_theta({"length_scale": 0.2})
    cov = PRIOR.covariance(pts, pts, theta)[0].numpy() + noise**2 * np.eye(n)
    values = np.linalg.cholesky(cov) @ rng.normal(size=n)
    return Observations.at_points(pts, values, noise)


def _exact_posterior(obs):
    """Posterior of the length scale on a fine grid: prior density times likelihood."""
    ells = np.exp(np.linspace(math.log(0.05), math.log(0.5), 801))
    log_post = []
    for ell in ells:
        theta = PRIOR.complete_theta({"length_scale": ell})
        cov = PRIOR.covariance(obs.locations, obs.locations, theta)[0].numpy()
        cov = cov + np.diag(obs.noise_sd**2)
        _, logdet = np.linalg.slogdet(cov)
        quad = obs.values @ np.linalg.solve(cov, obs.values)
        log_prior = float(PRIOR.log_prob({**theta})[0])
        log_post.append(log_prior - 0.5 * (logdet + quad))
    log_post = np.array(log_post)
    # trapezoid weights on the length-scale axis
    weights = np.exp(log_post - log_post.max()) * np.gradient(ells)
    return ells, weights / weights.sum()


@pytest.fixture(scope="module")
def nuts_run():
    obs = _data(n=30)  # 12 observations leave l too loosely known for noise x 3 to show
    result = mcmc_posterior(PRIOR, obs, num_samples=400, warmup_steps=300, seed=1, progress=False)
    return obs, result


def _moment_z(result, exact_obs) -> tuple[float, float]:
    """z of the NUTS draws' mean and sd of l against the exact posterior given exact_obs."""
    ells, weights = _exact_posterior(exact_obs)
    mean = weights @ ells
    sd = math.sqrt(weights @ (ells - mean) ** 2)
    draws = result.samples["length_scale"].reshape(-1).numpy()
    ess = result.diagnostics["length_scale"]["ess"]
    # mean: Monte Carlo error sd/sqrt(ESS); sd: about sd/sqrt(2 ESS) for near-Gaussian draws
    return (
        (draws.mean() - mean) / (sd / math.sqrt(ess)),
        (draws.std() - sd) / (sd / math.sqrt(2 * ess)),
    )


def test_nuts_power_the_posterior_under_a_wrong_noise_is_rejected(nuts_run):
    """The same statistics reject the exact posterior computed with the noise sd x 3."""
    obs, result = nuts_run
    wrong = Observations.at_points(obs.locations, obs.values, 3 * obs.noise_sd)
    assert max(abs(z) for z in _moment_z(result, wrong)) > Z_MAX


def test_nuts_matches_the_exact_posterior_by_quadrature(nuts_run):
    obs, result = nuts_run
    ells, weights = _exact_posterior(obs)
    assert result.max_rhat < 1.05 and sum(result.divergences) == 0
    z_mean, z_sd = _moment_z(result, obs)
    assert abs(z_mean) < Z_MAX and abs(z_sd) < Z_MAX
    ess = result.diagnostics["length_scale"]["ess"]
    # the predictive mean at a target marginalises kriging over the posterior
    keep = weights > 1e-6 * weights.max()
    krige = [
        simple_kriging(PRIOR, {"length_scale": e}, obs, TARGET, engine="torch")
        for e in ells[keep][::4]
    ]
    w = weights[keep][::4] / weights[keep][::4].sum()
    exact_mean = sum(wi * k.mean[0] for wi, k in zip(w, krige, strict=True))
    exact_var = sum(wi * (k.sd[0] ** 2 + k.mean[0] ** 2) for wi, k in zip(w, krige, strict=True))
    exact_sd = math.sqrt(exact_var - exact_mean**2)
    pred = result.predict(TARGET, seed=2)
    n_eff = min(ess, len(pred.draws))
    assert abs(pred.mean[0] - exact_mean) / (exact_sd / math.sqrt(n_eff)) < Z_MAX


def test_chains_are_reproducible_and_leave_the_global_generator_alone():
    obs = _data(n=8)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = mcmc_posterior(PRIOR, obs, num_samples=20, warmup_steps=20, seed=5, progress=False)
    after = torch.rand(3)
    b = mcmc_posterior(PRIOR, obs, num_samples=20, warmup_steps=20, seed=5, progress=False)
    torch.testing.assert_close(a.samples["length_scale"], b.samples["length_scale"], rtol=0, atol=0)
    torch.testing.assert_close(before, after)


def test_rhat_separates_agreeing_from_disagreeing_chains():
    """Split R-hat of 2 chains x 500 iid draws (4 halves of n = 250): under the null,
    R-hat² ≈ 1 + (X - 1) / n with X ~ χ²₃ / 3, so R-hat > 1.02 needs χ²₃ > 33 (p ≈ 3e-7);
    chains one sd apart give R-hat ≈ sqrt(1 + 1/3) ≈ 1.15, above the warning level."""
    gen = torch.Generator().manual_seed(0)
    same = torch.randn(2, 500, 3, generator=gen, dtype=torch.float64)
    assert 0.99 < _diagnose(same)["rhat"] < 1.02
    apart = same.clone()
    apart[1, :, 2] += 1.0  # one component's chains disagree: the worst component counts
    assert _diagnose(apart)["rhat"] > RHAT_MAX  # (the smallest of 300 such draws: 1.085)


def test_poor_chains_are_reported():
    with pytest.warns(MCMCWarning, match="one chain"):
        mcmc_posterior(
            PRIOR, _data(n=8), num_samples=10, warmup_steps=5, num_chains=1, progress=False
        )


def test_nonstationary_model_runs_with_periodic_angle_sites():
    prior = load_prior("nonstationary-anisotropy")
    obs = _data(n=10)
    with pytest.warns(MCMCWarning):  # far too short to converge
        result = mcmc_posterior(prior, obs, num_samples=4, warmup_steps=4, progress=False)
    theta = result.theta()
    assert theta["angle.mean"].shape == (8,)
    assert ((theta["angle.mean"] >= 0) & (theta["angle.mean"] <= math.pi)).all()
    assert theta["length_scale.latent"].shape == (8, 25)
    assert "angle.mean" in result.summary()


def test_mcmc_bad_input():
    prior = load_prior("stationary-matern")  # length scale, ratio, angle random
    assert n_hyperparameters(prior) == 3
    two = Observations.at_points([[0.1, 0.1], [0.5, 0.5]], [0.0, 1.0], 0.1)
    with pytest.raises(GeodiffError, match="2 observation"):
        mcmc_posterior(prior, two, progress=False)
    outside = Observations.at_points([[0.1, 0.1], [0.5, 1.5], [0.2, 0.3]], [0.0, 1.0, 2.0], 0.1)
    with pytest.raises(GeodiffError, match="outside the prior's domain"):
        mcmc_posterior(prior, outside, progress=False)
    fixed = StationaryPrior("matern", nu=1.5)
    with pytest.raises(GeodiffError, match="no random parameter"):
        mcmc_posterior(fixed, two, progress=False)
