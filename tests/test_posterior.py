"""Diffusion posterior samplers, driven by the exact oracle, against exact Gaussian answers.

The prior is Gaussian (θ fixed) on a small grid, so the oracle denoiser is exact and the
posterior is known in closed form. MCGdiff is tested against the exact law it converges to
(:func:`mcgdiff_limit`) with Monte Carlo tolerances; that law is tested against the exact
posterior (kriging). MMPS, DAPS and ΠGDM are tested against their exact laws in
``test_posterior_limits.py``; here they are held to what they guarantee (noiseless data
are honoured) and to seed-only dependence.
"""

import math

import numpy as np
import pytest
import torch

from geodiff import GeodiffError, Grid
from geodiff.baselines.kriging import gaussian_condition
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.fields.config import load_prior
from geodiff.metrics.scores import crps, interval_coverage, rank_histogram, truth_ranks
from geodiff.observe import Observations
from geodiff.posterior import (
    POSTERIOR_SAMPLERS,
    LinearGaussianProblem,
    gaussian_posterior,
    mcgdiff_sample,
    posterior_sample,
)
from geodiff.rng import generators_for
from geodiff.testing import mcgdiff_limit
from tests.shared import moment_z_scores

THETA = {"length_scale": 0.3, "anis_ratio": 0.6, "angle": 0.5}
SCHEDULE = NoiseSchedule()


@pytest.fixture(scope="module")
def gaussian():
    """Prior, θ, 8x8 grid, oracle and grid covariance of a fixed-θ Matérn field."""
    prior = load_prior("stationary-matern")
    theta = prior.complete_theta(THETA)
    grid = Grid.square(8, prior.domain)
    oracle = GaussianMixtureOracle.from_prior(prior, grid, SCHEDULE, theta=theta)
    pts = torch.as_tensor(grid.points())
    return prior, theta, grid, oracle, prior.covariance(pts, pts, theta)[0]


def _observations(grid, oracle, n, tau, seed=0):
    rng = np.random.default_rng(seed)
    truth = oracle.sample(1, seed=seed)[0, 0]
    loc = rng.uniform(0.02, 0.98, (n, 2))
    values = grid.interpolate(truth[None], loc)[0].numpy() + tau * rng.standard_normal(n)
    return Observations.at_points(loc, values, tau), truth


def _draws(method, oracle, problem, n, seed=0, **options):
    gens = generators_for(seed, 7, range(n))
    draws = posterior_sample(method, oracle, SCHEDULE, problem, gens, **options).draws
    return draws.reshape(n, -1)


def test_exact_posterior_is_kriging_on_the_grid(gaussian):
    prior, theta, grid, _, cov = gaussian
    obs = Observations.at_points([[0.33, 0.71], [0.8, 0.15]], [1.0, -0.5], 0.1)
    for observations in (obs, Observations.of_blocks([[0.1, 0.4, 0.2, 0.5]], [0.3], 0.05)):
        problem = LinearGaussianProblem.from_observations(observations, grid)
        mean, post = gaussian_posterior(cov, problem)
        ref = gaussian_condition(prior, theta, observations.on_grid(grid), grid, full_cov=True)
        torch.testing.assert_close(mean, ref["mean"], rtol=0, atol=1e-10)
        torch.testing.assert_close(post, ref["cov"], rtol=0, atol=1e-10)


def test_mcgdiff_limit_tends_to_the_exact_posterior(gaussian):
    """The chain's discretisation error shrinks with steps (1000 steps: under 1%)."""
    _, _, grid, oracle, cov = gaussian
    obs, _ = _observations(grid, oracle, 6, 0.1)
    problem = LinearGaussianProblem.from_observations(obs, grid)
    mean, post = gaussian_posterior(cov, problem)
    sd = post.diagonal().sqrt()
    errors = []
    for steps in (20, 100, 1000):
        m, c = mcgdiff_limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(steps))
        sd_error = float((c.diagonal().sqrt() / sd - 1).abs().max())
        errors.append(max(sd_error, float(((m - mean) / sd).abs().max())))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01, errors


def _mcgdiff_moment_z(gaussian, tau, particles):
    _, _, grid, oracle, cov = gaussian
    obs, _ = _observations(grid, oracle, 6, tau)
    problem = LinearGaussianProblem.from_observations(obs, grid)
    steps, n = 20, 200
    mean, post = mcgdiff_limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(steps))
    draws = _draws("mcgdiff", oracle, problem, n, steps=steps, particles=particles)
    if tau == 0:  # noiseless: the observations are met (to the last step's noise)
        misfit = problem.apply(draws) - problem.values
        assert float(misfit.abs().max()) < 0.05
    return moment_z_scores(draws.numpy(), mean.numpy(), post.numpy())


def test_mcgdiff_draws_follow_their_exact_limit(gaussian):
    """Moments of 200 independent particle systems of 256 particles against the limit law.

    SMC's bias falls as particles grow; at 256 particles and τ = 0.1 it is about 0.05
    posterior sd on the mean (measured: rms error 0.088 sd against the 1/sqrt(200) =
    0.071 Monte Carlo floor; 0.17 at 64 particles), so the bounds allow for it
    (measured: max |z| 3.3, rms z 1.17). The slow test below uses 1024 particles.
    """
    z = _mcgdiff_moment_z(gaussian, 0.1, 256)
    assert np.abs(z).max() < 5.0, np.abs(z).max()
    assert np.sqrt(np.mean(z**2)) < 1.6, np.sqrt(np.mean(z**2))


@pytest.mark.slow
@pytest.mark.parametrize("tau", [0.1, 0.0])
def test_mcgdiff_draws_match_their_exact_limit_with_many_particles(gaussian, tau):
    """At 1024 particles the SMC bias is below Monte Carlo error (measured rms z 1.0)."""
    z = _mcgdiff_moment_z(gaussian, tau, 1024)
    assert np.abs(z).max() < 4.5, np.abs(z).max()
    assert np.sqrt(np.mean(z**2)) < 1.3, np.sqrt(np.mean(z**2))


def test_mcgdiff_error_falls_with_particles(gaussian):
    _, _, grid, oracle, cov = gaussian
    obs, _ = _observations(grid, oracle, 10, 0.05, seed=2)
    problem = LinearGaussianProblem.from_observations(obs, grid)
    mean, post = mcgdiff_limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(20))
    sd = post.diagonal().sqrt()
    errors = []
    for particles in (2, 64):
        draws = _draws("mcgdiff", oracle, problem, 300, steps=20, particles=particles)
        errors.append(float((((draws.mean(0) - mean) / sd) ** 2).mean().sqrt()))
    assert errors[0] > 1.5 * errors[1], errors


@pytest.mark.parametrize("method", ["daps", "pigdm", "mmps"])
def test_noiseless_observations_are_interpolated(gaussian, method):
    _, _, grid, oracle, _ = gaussian
    obs, _ = _observations(grid, oracle, 5, 0.0, seed=3)
    problem = LinearGaussianProblem.from_observations(obs, grid)
    # MMPS honours them when its conjugate gradients converge (one iteration does not)
    options = {"cg_iterations": None} if method == "mmps" else {}
    draws = _draws(method, oracle, problem, 8, steps=30, **options)
    misfit = problem.apply(draws) - problem.values
    assert float(misfit.abs().max()) < 1e-3


@pytest.mark.parametrize("method", sorted(POSTERIOR_SAMPLERS))
def test_draws_depend_on_their_seed_only(gaussian, method):
    _, _, grid, oracle, _ = gaussian
    obs, _ = _observations(grid, oracle, 4, 0.1)
    problem = LinearGaussianProblem.from_observations(obs, grid)
    options = {"steps": 10, **({"particles": 8} if method == "mcgdiff" else {})}
    gens = generators_for(5, 7, range(4))
    four = posterior_sample(method, oracle, SCHEDULE, problem, gens, **options).draws
    gens = generators_for(5, 7, range(2, 4))
    two = posterior_sample(method, oracle, SCHEDULE, problem, gens, **options).draws
    torch.testing.assert_close(four[2:], two, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(four[0], four[1])


def test_bad_problems_are_refused(gaussian):
    _, _, grid, oracle, _ = gaussian
    shape = grid.shape
    with pytest.raises(GeodiffError, match="operator must have shape"):
        LinearGaussianProblem(torch.ones(2, 10), torch.zeros(2), 0.0, shape)
    with pytest.raises(GeodiffError, match="finite"):
        LinearGaussianProblem(torch.ones(1, 64), torch.tensor([math.nan]), 0.0, shape)
    with pytest.raises(GeodiffError, match=">= 0"):
        LinearGaussianProblem(torch.ones(1, 64), torch.zeros(1), -1.0, shape)
    a = torch.zeros(2, 64)
    a[0, 3] = a[1, 3] = 1.0
    contradicting = LinearGaussianProblem(a, torch.tensor([0.0, 1.0]), 0.0, shape)
    with pytest.raises(GeodiffError, match="contradict"):
        contradicting.whitened()
    mixed = LinearGaussianProblem(
        torch.eye(64)[:2], torch.zeros(2), torch.tensor([0.0, 0.1]), shape
    )
    with pytest.raises(GeodiffError, match="mix of noiseless"):
        mcgdiff_sample(oracle, SCHEDULE, mixed, generators_for(0, 0, range(1)), steps=5)
    problem = LinearGaussianProblem(torch.eye(64)[:2], torch.zeros(2), 0.1, shape)
    with pytest.raises(GeodiffError, match="unknown posterior method"):
        posterior_sample("nope", oracle, SCHEDULE, problem, generators_for(0, 0, range(1)))
    with pytest.raises(GeodiffError, match=r"daps does not take the option\(s\) zeta; its options"):
        posterior_sample("daps", oracle, SCHEDULE, problem, generators_for(0, 0, [0]), zeta=1)
    with pytest.raises(GeodiffError, match="eta must be > 0"):
        mcgdiff_sample(oracle, SCHEDULE, problem, generators_for(0, 0, [0]), eta=0.0)


def test_scores_against_closed_forms():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal(2000)
    # fair ensemble CRPS of N(0,1) draws ≈ the Gaussian CRPS (Monte Carlo within 3 se)
    draws = rng.standard_normal((100, 2000))
    gaussian = crps(truth, mean=np.zeros(2000), sd=np.ones(2000))
    ensemble = crps(truth, draws)
    assert abs(ensemble.mean() - gaussian.mean()) < 3 * ensemble.std() / math.sqrt(2000) + 0.01
    # CRPS of a point mass at 0 is |truth|; of N(0, 1) at 0 it is (sqrt(2) - 1) / sqrt(pi)
    exact = (math.sqrt(2) - 1) / math.sqrt(math.pi)
    assert crps(np.zeros(1), mean=np.zeros(1), sd=np.ones(1))[0] == pytest.approx(exact)
    covered = interval_coverage(truth, -1.6448536 * np.ones(2000), 1.6448536 * np.ones(2000))
    assert abs(covered.mean() - 0.9) < 3 * math.sqrt(0.09 / 2000)
    ranks = truth_ranks(truth, rng.standard_normal((99, 2000)))
    counts, p = rank_histogram(ranks, 99, bins=10)
    assert counts.sum() == 2000 and p > 1e-3
    with pytest.raises(GeodiffError, match="equal bins"):
        rank_histogram(ranks, 98, bins=10)


def test_samplers_declare_their_options_and_return_diagnostics(gaussian):
    """Each spec's defaults are its function's; unknown options are named; MCGdiff's ESS."""
    import inspect

    from geodiff.diffusion.denoiser import DenoiserProtocol

    _, _, grid, oracle, _ = gaussian
    assert isinstance(oracle, DenoiserProtocol)
    for name, spec in POSTERIOR_SAMPLERS.items():
        assert spec.name == name
        params = inspect.signature(spec.sample).parameters
        keyword = {p.name: p.default for p in params.values() if p.kind is p.KEYWORD_ONLY}
        assert keyword == {
            "steps": spec.steps,
            **spec.options,
            "timesteps": None,
            "device": None,
            "callback": None,
        }
    problem = LinearGaussianProblem(torch.eye(64)[:2], torch.zeros(2), 0.1, grid.shape)
    with pytest.raises(GeodiffError, match="its options: steps, timesteps, device, callback, eta"):
        posterior_sample("pigdm", oracle, SCHEDULE, problem, generators_for(0, 0, [0]), zeta=1)
    gens = generators_for(0, 0, [0, 1])
    out = posterior_sample("mcgdiff", oracle, SCHEDULE, problem, gens, steps=5, particles=4)
    assert out.draws.shape == (2, 1, *grid.shape) and out.draws.dtype == torch.float64
    assert len(out.info["ess"]) == 4  # one relative ESS per reweighting step
    # uninformative data leave the particle weights equal (relative ESS exactly 1);
    # data far from the prior's mean make them unequal
    vague = LinearGaussianProblem(torch.eye(64)[:2], torch.zeros(2), 1e6, grid.shape)
    flat = posterior_sample("mcgdiff", oracle, SCHEDULE, vague, gens, steps=5, particles=4)
    np.testing.assert_allclose(flat.info["ess"], 1.0, atol=1e-6)
    sharp = LinearGaussianProblem(torch.eye(64)[:2], torch.full((2,), 5.0), 0.01, grid.shape)
    peaked = posterior_sample("mcgdiff", oracle, SCHEDULE, sharp, gens, steps=5, particles=4)
    assert min(peaked.info["ess"]) < 0.9
    assert len(out.info["final_ess"]) == 2
    default = posterior_sample("daps", oracle, SCHEDULE, problem, gens[:1], steps=None)
    assert default.info == {} and default.draws.shape == (1, 1, *grid.shape)
