"""Posterior samplers driven by the exact oracle, against the exact law each converges to.

With the oracle of a fixed-θ Gaussian prior every step of MMPS (conjugate gradients run
to convergence), DAPS and ΠGDM is affine in the state plus independent Gaussian noise,
so their draws are exactly Gaussian with the law of :func:`mmps_limit`,
:func:`daps_limit` and :func:`pigdm_limit`. Draws are tested against that law with
:func:`tests.shared.gaussian_law_pvalue` (whitened mean, total scale and per-direction
variances, Bonferroni-combined), whose p-value is uniform when the draws are right; the
tests accept at ``p >= ALPHA``. Each sampler's power check runs the same statistic on
draws from deliberately wrong inputs (noise sd tripled, values scaled by 0.8, a 10%
wider prior covariance) and requires ``p < ALPHA``.
"""

import numpy as np
import pytest
import torch

from geodiff import GeodiffError, Grid
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.fields.config import load_prior
from geodiff.observe import Observations
from geodiff.posterior import (
    LinearGaussianProblem,
    conditional_denoiser,
    gaussian_posterior,
    posterior_sample,
)
from geodiff.rng import generators_for
from geodiff.testing import daps_limit, mcgdiff_limit, mmps_limit, pigdm_limit
from tests.shared import gaussian_law_pvalue

SCHEDULE = NoiseSchedule()
THETA = {"length_scale": 0.3, "anis_ratio": 0.6, "angle": 0.5}
ALPHA = 1e-3  # false-rejection rate of each acceptance test
DRAWS = 400
#: MMPS with noisy data: enough draws that a Tweedie covariance 10% off inside MMPS is
#: rejected. To reproduce the mutation experiment, write ``scale = 1.1 * (1 - ab) / ab**0.5``
#: in geodiff/posterior/mmps.py and run this test: p < 1e-7 at 6,000 draws, 0.09 at 400.
#: With exact data the covariance's scale cancels, so those cases keep 400 draws.
MMPS_DRAWS = 6000
STEPS = 20
#: MMPS's warm start: from the exact Gaussian law of x_t at this noise level
START_SIGMA = 5.0
#: in a sampler's options: the preconditioner is the prior's covariance itself
PRIOR = "prior covariance"

#: (sampler options, limit law) of each sampler whose law is closed-form
SAMPLERS = {
    "mmps-dpm2m": (
        "mmps",
        {"steps": STEPS, "cg_iterations": None},
        lambda cov, problem: mmps_limit(cov, problem, SCHEDULE, SCHEDULE.log_snr_timesteps(STEPS)),
    ),
    "mmps-ddim": (
        "mmps",
        {"steps": STEPS, "cg_iterations": None, "integrator": "ddim", "eta": 1.0},
        lambda cov, problem: mmps_limit(
            cov, problem, SCHEDULE, SCHEDULE.timesteps(STEPS), "ddim", 1.0
        ),
    ),
    "mmps-warm-start": (
        "mmps",
        {"steps": STEPS, "cg_iterations": None, "start_sigma": START_SIGMA}
        | {"preconditioner": PRIOR},
        lambda cov, problem: mmps_limit(
            cov,
            problem,
            SCHEDULE,
            SCHEDULE.log_snr_timesteps(STEPS, first=int(SCHEDULE.nearest_step(START_SIGMA))),
            warm_start=True,
        ),
    ),
    "mmps-ddim-warm-start": (
        "mmps",
        {"steps": STEPS, "cg_iterations": None, "start_sigma": START_SIGMA}
        | {"integrator": "ddim", "eta": 1.0, "preconditioner": PRIOR},
        lambda cov, problem: mmps_limit(
            cov,
            problem,
            SCHEDULE,
            SCHEDULE.timesteps(STEPS, first=int(SCHEDULE.nearest_step(START_SIGMA))),
            "ddim",
            1.0,
            warm_start=True,
        ),
    ),
    "daps": (
        "daps",
        {"steps": STEPS},
        lambda cov, problem: daps_limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(STEPS)),
    ),
    "pigdm": (
        "pigdm",
        {"steps": STEPS},
        lambda cov, problem: pigdm_limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(STEPS)),
    ),
}


@pytest.fixture(scope="module")
def gaussian():
    """Prior, θ, 8x8 grid, oracle and grid covariance of a fixed-θ Matérn field."""
    prior = load_prior("stationary-matern")
    theta = prior.complete_theta(THETA)
    grid = Grid.square(8, prior.domain)
    pts = torch.as_tensor(grid.points())
    cov = prior.covariance(pts, pts, theta)[0]
    return grid, GaussianMixtureOracle(cov, SCHEDULE, grid.shape), cov


def _problem(grid, oracle, tau, n=10, seed=1, value_factor=1.0, noise_factor=1.0):
    rng = np.random.default_rng(seed)
    truth = oracle.sample(1, seed=seed)[0, 0]
    loc = rng.uniform(0.02, 0.98, (n, 2))
    values = grid.interpolate(truth[None], loc)[0].numpy() + tau * rng.standard_normal(n)
    obs = Observations.at_points(loc, value_factor * values, noise_factor * tau)
    return LinearGaussianProblem.from_observations(obs, grid)


def _draws(method, oracle, problem, options, n=DRAWS, seed=0, cov=None):
    if options.get("preconditioner") is PRIOR:
        options = dict(options, preconditioner=cov)
    gens = generators_for(seed, 11, range(n))
    draws = posterior_sample(method, oracle, SCHEDULE, problem, gens, **options).draws
    return draws.reshape(n, -1)


@pytest.mark.parametrize("tau", [0.1, 0.0])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_draws_follow_their_exact_limit(gaussian, name, tau):
    grid, oracle, cov = gaussian
    method, options, limit = SAMPLERS[name]
    problem = _problem(grid, oracle, tau)
    mean, law = limit(cov, problem)
    n = MMPS_DRAWS if method == "mmps" and tau > 0 else DRAWS
    draws = _draws(method, oracle, problem, options, n=n, cov=cov).numpy()
    p = gaussian_law_pvalue(draws, mean, law)
    assert p >= ALPHA, p


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_the_same_statistic_rejects_wrong_inputs(gaussian, name):
    """Noise ×3, values ×0.8 and a 10% wider prior are each rejected (power check).

    A deterministic warm-started chain run from pure noise at the same steps is rejected too.
    """
    grid, oracle, cov = gaussian
    method, options, limit = SAMPLERS[name]
    mean, law = limit(cov, _problem(grid, oracle, 0.1))
    wrong = {
        "noise x3": (oracle, _problem(grid, oracle, 0.1, noise_factor=3.0)),
        "values x0.8": (oracle, _problem(grid, oracle, 0.1, value_factor=0.8)),
        "covariance x1.1": (
            GaussianMixtureOracle(1.1 * cov, SCHEDULE, grid.shape),
            _problem(grid, oracle, 0.1),
        ),
    }
    runs = [(label, denoiser, problem, options) for label, (denoiser, problem) in wrong.items()]
    if "start_sigma" in options and options.get("integrator", "dpm2m") == "dpm2m":
        # the deterministic chain's same steps started from pure noise: a wrong start (an
        # ancestral DDIM chain forgets much of its start, so there it is not a power check)
        first = int(SCHEDULE.nearest_step(options["start_sigma"]))
        cold = {k: v for k, v in options.items() if k not in ("start_sigma", "steps")}
        cold["timesteps"] = SCHEDULE.log_snr_timesteps(options["steps"], first=first)
        runs.append(("started from N(0, I)", oracle, _problem(grid, oracle, 0.1), cold))
    for label, denoiser, problem, opts in runs:
        draws = _draws(method, denoiser, problem, opts, cov=cov).numpy()
        p = gaussian_law_pvalue(draws, mean, law)
        assert p < ALPHA, (label, p)


@pytest.mark.parametrize("sampler", ["dpm2m", "ddim"])
def test_deterministic_chains_carry_their_start_only(sampler):
    """Without injected noise the output is ``transfer · x_T``: variance = transfer²."""
    from geodiff.diffusion.exact import gaussian_sampler_law

    lam = np.geomspace(1e-3, 30.0, 40)
    transfer, var = gaussian_sampler_law(SCHEDULE, SCHEDULE.log_snr_timesteps(15), lam, sampler)
    np.testing.assert_allclose(transfer**2, var, rtol=1e-12)
    start, noisy = gaussian_sampler_law(SCHEDULE, SCHEDULE.timesteps(15), lam, "ddim", 1.0)
    assert (noisy > 1.01 * start**2).all()


def test_mmps_limit_tends_to_the_exact_posterior(gaussian):
    """The integrator's error shrinks with steps; 200 DPM-Solver++ steps: under 0.5%."""
    grid, oracle, cov = gaussian
    problem = _problem(grid, oracle, 0.1)
    mean, post = gaussian_posterior(cov, problem)
    sd = post.diagonal().sqrt()
    errors = []
    for steps in (10, 30, 200):
        m, c = mmps_limit(cov, problem, SCHEDULE, SCHEDULE.log_snr_timesteps(steps))
        sd_error = float((c.diagonal().sqrt() / sd - 1).abs().max())
        errors.append(max(sd_error, float(((m - mean) / sd).abs().max())))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.005, errors


def test_daps_and_pigdm_limits_are_not_the_posterior(gaussian):
    """What the exact limits say of the approximations: biased even with many steps."""
    grid, oracle, cov = gaussian
    problem = _problem(grid, oracle, 0.1)
    mean, post = gaussian_posterior(cov, problem)
    sd = post.diagonal().sqrt()
    for limit in (daps_limit, pigdm_limit):
        m, c = limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(500))
        error = max(
            float(((m - mean) / sd).abs().max()), float((c.diagonal().sqrt() / sd - 1).abs().max())
        )
        assert error > 0.1, (limit.__name__, error)


@pytest.mark.parametrize("tau", [0.1, 0.0])
def test_conditional_denoiser_is_exact_for_a_gaussian_prior(gaussian, tau):
    """With the oracle, E[x_0 | x_t, y] equals the oracle of the exact posterior N(μ, P)."""
    grid, oracle, cov = gaussian
    problem = _problem(grid, oracle, tau)
    mean, post = gaussian_posterior(cov, problem)
    x_t = torch.randn(5, 1, *grid.shape, generator=torch.Generator().manual_seed(3)).double()
    for t in (900, 400, 50):
        ab = float(SCHEDULE.alpha_bar[t])
        shift = x_t.reshape(5, -1) - ab**0.5 * mean
        gain = ab**0.5 * post @ torch.linalg.inv(ab * post + (1 - ab) * torch.eye(len(mean)))
        exact = mean + shift @ gain.T
        steps = torch.full((5,), t)
        atol = 1e-7
        for precond in (None, cov, 1.3 * cov):
            got = conditional_denoiser(oracle, SCHEDULE, problem, preconditioner=precond)(
                x_t, steps
            )
            torch.testing.assert_close(got.reshape(5, -1), exact, rtol=0, atol=atol)
        # preconditioned by the prior itself, one iteration is exact; unpreconditioned it is not
        one = conditional_denoiser(oracle, SCHEDULE, problem, cg_iterations=1, preconditioner=cov)
        torch.testing.assert_close(one(x_t, steps).reshape(5, -1), exact, rtol=0, atol=atol)
        # no iteration: the preconditioner's covariance is used, exact only when it is Σ
        for precond, exact_expected in ((cov, True), (1.3 * cov, False)):
            guess = conditional_denoiser(
                oracle, SCHEDULE, problem, cg_iterations=0, preconditioner=precond
            )
            error = float((guess(x_t, steps).reshape(5, -1) - exact).abs().max())
            assert (error < atol) == exact_expected, (precond is cov, error)
        plain = conditional_denoiser(oracle, SCHEDULE, problem, cg_iterations=1)
        assert float((plain(x_t, steps).reshape(5, -1) - exact).abs().max()) > 1e-3


def test_mcgdiff_statistic_rejects_a_law_too_wide(gaussian):
    """MCGdiff (256 particles) passes against its limit and fails against 1.2 × that law."""
    grid, oracle, cov = gaussian
    problem = _problem(grid, oracle, 0.1, n=6, seed=0)
    mean, law = mcgdiff_limit(cov, problem, SCHEDULE, SCHEDULE.timesteps(STEPS))
    draws = _draws("mcgdiff", oracle, problem, {"steps": STEPS, "particles": 256}, n=200)
    # SMC's finite-particle bias (about 0.05 posterior sd on the mean at 256 particles,
    # measured in test_posterior.py) is below this statistic's resolution at 200 draws
    assert gaussian_law_pvalue(draws.numpy(), mean, law) >= ALPHA
    assert gaussian_law_pvalue(draws.numpy(), mean, 1.2 * law) < ALPHA


def test_dps_responds_to_the_values(gaussian):
    """DPS has no closed-form limit: scaling the values by 0.8 must move its draws' mean.

    (DPS ignores τ except through its step size, so a change of τ cannot move it.) The
    statistic is the largest per-node Welch z of two independent sets of 100 draws; under
    "no effect" its 64 values are about N(0, 1), and 4.2 is a Bonferroni bound at 1.7e-3.
    The null run (same data, other seeds) stays below it.
    """
    grid, oracle, _ = gaussian
    options = {"steps": 100}

    def largest_z(problem):
        base = _draws("dps", oracle, _problem(grid, oracle, 0.1), options, n=100).numpy()
        other = _draws("dps", oracle, problem, options, n=100, seed=1).numpy()
        se = np.sqrt((base.var(0, ddof=1) + other.var(0, ddof=1)) / 100)
        return float(np.abs((base.mean(0) - other.mean(0)) / se).max())

    assert largest_z(_problem(grid, oracle, 0.1)) < 4.2
    assert largest_z(_problem(grid, oracle, 0.1, value_factor=0.8)) > 4.2


def test_mmps_options_are_checked(gaussian):
    grid, oracle, _ = gaussian
    problem = _problem(grid, oracle, 0.1)
    gens = generators_for(0, 0, [0])
    for options, message in [
        ({"cg_iterations": -1}, "cg_iterations must be a non-negative integer"),
        ({"cg_iterations": 0}, "give one"),
        ({"integrator": "rk4"}, "integrator must be one of"),
        ({"eta": 1.0}, "deterministic"),
        ({"preconditioner": torch.eye(3)}, "preconditioner must have shape"),
        ({"steps": 1}, "steps must be an integer >= 2"),
    ]:
        with pytest.raises(GeodiffError, match=message):
            posterior_sample("mmps", oracle, SCHEDULE, problem, gens, **options)


def test_mmps_cost_counts_the_calls(gaussian):
    """The reported evaluations and vector-Jacobian products per draw are the ones made."""
    from geodiff.posterior.mmps import mmps_cost

    grid, oracle, cov = gaussian
    problem = _problem(grid, oracle, 0.1)
    calls = {"forward": 0, "backward": 0}

    class Counted(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            calls["backward"] += 1
            return grad

    def denoiser(x, t):
        calls["forward"] += 1
        return oracle(Counted.apply(x), t)

    options = {"steps": 25, "cg_iterations": 1, "preconditioner": cov}
    posterior_sample("mmps", denoiser, SCHEDULE, problem, generators_for(0, 0, [0, 1]), **options)
    cost = mmps_cost(SCHEDULE, len(problem), **options)
    assert cost == {"denoiser_evaluations": calls["forward"], "vjps": calls["backward"]}
    assert 0 < cost["vjps"] < cost["denoiser_evaluations"]  # no Jacobian at high noise
