"""The diffusion prior's pieces against exact references: schedule, oracle, samplers."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from shared import moment_z_scores

from geodiff import Grid, load_prior
from geodiff.diffusion.exact import gaussian_sampler_variance
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.samplers import (
    ddim_sample,
    ddpm_sample,
    dpm_solver_sample,
    initial_noise,
)
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.diffusion.validation import _NOISE_STREAM, denoising_mse
from geodiff.errors import GeodiffError
from geodiff.rng import derive_seed, generators_for


def _random_covariances(n_components, d, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_components):
        a = rng.normal(size=(d, d))
        out.append(a @ a.T / d + 0.05 * np.eye(d))
    return np.stack(out)


def test_cosine_schedule_matches_its_formula():
    s = NoiseSchedule("cosine", 1000)
    t = np.arange(1000)
    f = lambda u: np.cos((u / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    expected = f(t + 1) / f(0)  # no beta reaches the clip except possibly the last
    np.testing.assert_allclose(s.alpha_bar[:-1].numpy(), expected[:-1], rtol=1e-10)
    assert (s.alpha_bar[1:] < s.alpha_bar[:-1]).all()


def test_linear_schedule_is_the_product_of_its_betas():
    s = NoiseSchedule("linear", 50, beta_start=1e-3, beta_end=0.05)
    betas = np.linspace(1e-3, 0.05, 50)
    np.testing.assert_allclose(s.alpha_bar.numpy(), np.cumprod(1 - betas), rtol=1e-12)


def test_schedule_round_trip_timesteps_and_bad_input():
    s = NoiseSchedule("linear", 200)
    assert NoiseSchedule.from_dict(s.to_dict()) == s
    ts = s.timesteps(10)
    assert ts[0] == 199 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    assert int(s.nearest_step(s.sigma(37))) == 37
    with pytest.raises(GeodiffError, match="kind"):
        NoiseSchedule("quadratic")
    with pytest.raises(GeodiffError, match="sampling steps"):
        s.timesteps(201)
    with pytest.raises(GeodiffError, match="unknown schedule"):
        NoiseSchedule.from_dict({"kind": "cosine", "T": 3})


@pytest.mark.parametrize("spacing", ["timesteps", "log_snr_timesteps"])
def test_steps_may_start_below_the_top(spacing):
    """``first`` starts the steps there, evenly spaced (in t or log-SNR) down to 0."""
    s = NoiseSchedule("cosine", 1000)
    ts = getattr(s, spacing)(12, first=400)
    assert ts[0] == 400 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    assert torch.equal(getattr(s, spacing)(12, first=999), getattr(s, spacing)(12))
    if spacing == "log_snr_timesteps":
        log_snr = (s.alpha_bar.log() - (1 - s.alpha_bar).log())[ts]
        gaps = (log_snr[1:] - log_snr[:-1]).numpy()
        np.testing.assert_allclose(gaps, gaps.mean(), rtol=0.35)  # rounding to whole steps
    for bad in (0, 1000, 12.5, True):
        with pytest.raises(GeodiffError, match="first step"):
            getattr(s, spacing)(12, first=bad)


def test_gaussian_oracle_equals_the_closed_form():
    d, shape = 6, (2, 3)
    cov = _random_covariances(1, d, 0)[0]
    schedule = NoiseSchedule("cosine", 100)
    oracle = GaussianMixtureOracle(cov, schedule, shape)
    x_t = torch.randn(5, 1, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([0, 10, 50, 90, 99])
    got = oracle(x_t, t).reshape(5, d).numpy()
    for k in range(5):
        ab = float(schedule.alpha_bar[t[k]])
        expected = (
            math.sqrt(ab)
            * cov
            @ np.linalg.solve(ab * cov + (1 - ab) * np.eye(d), x_t[k].reshape(d).numpy())
        )
        np.testing.assert_allclose(got[k], expected, rtol=1e-10, atol=1e-12)


def test_mixture_oracle_equals_the_closed_form():
    d, shape, n = 6, (3, 2), 4
    covs = _random_covariances(n, d, 2)
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    schedule = NoiseSchedule("cosine", 100)
    oracle = GaussianMixtureOracle(covs, schedule, shape, weights=torch.tensor(weights))
    x_t = torch.randn(3, 1, *shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for t in (5, 40, 80):
        ab = float(schedule.alpha_bar[t])
        got = oracle(x_t, t).reshape(3, d).numpy()
        for k in range(3):
            x = x_t[k].reshape(d).numpy()
            marg = [ab * c + (1 - ab) * np.eye(d) for c in covs]
            logp = np.log(weights) + [multivariate_normal(np.zeros(d), m).logpdf(x) for m in marg]
            post = np.exp(logp - logp.max())
            post /= post.sum()
            means = [
                math.sqrt(ab) * c @ np.linalg.solve(m, x) for c, m in zip(covs, marg, strict=True)
            ]
            np.testing.assert_allclose(got[k], post @ np.array(means), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(oracle.posterior_weights(x_t[k : k + 1], t)[0], post)


def test_oracle_mse_is_the_bayes_risk_within_monte_carlo_error():
    d, shape = 6, (2, 3)
    cov = _random_covariances(1, d, 4)[0]
    schedule = NoiseSchedule("cosine", 100)
    oracle = GaussianMixtureOracle(cov, schedule, shape)
    for t in (10, 60):
        ab = float(schedule.alpha_bar[t])
        gain = math.sqrt(ab) * cov @ np.linalg.inv(ab * cov + (1 - ab) * np.eye(d))
        exact = np.trace(cov - math.sqrt(ab) * gain @ cov) / d  # posterior covariance
        np.testing.assert_allclose(float(oracle.gaussian_mse(t)[0]), exact, rtol=1e-10)
    n = 20000
    fields = oracle.sample(n, seed=5)
    steps = torch.tensor([10, 60])
    mse = denoising_mse(oracle, fields, schedule, steps, seed=6, batch_size=5000)
    for k, t in enumerate(steps.tolist()):
        exact = float(oracle.gaussian_mse(t)[0])
        # per-field squared errors average d chi-square-like terms: sd <= sqrt(2/(n d)) rel.
        assert abs(float(mse[k]) / exact - 1) < 5 * math.sqrt(2 / n)
    # per field: each field's own squared error, by hand with the same noise draws
    few = fields[:7].float()
    per_field = denoising_mse(oracle, few, schedule, steps, seed=6, batch_size=3, per_field=True)
    for k, t in enumerate(steps.tolist()):
        gen = torch.Generator().manual_seed(derive_seed(6, _NOISE_STREAM, t))
        noise = torch.cat([torch.randn(few[lo : lo + 3].shape, generator=gen) for lo in (0, 3, 6)])
        x_t = schedule.add_noise(few, noise, torch.full((7,), t))
        error = (oracle(x_t, t).float() - few).double().square().flatten(1).mean(1)
        torch.testing.assert_close(per_field[:, k], error)
    mean = denoising_mse(oracle, few, schedule, steps, seed=6, batch_size=3)
    torch.testing.assert_close(per_field.mean(0), mean, rtol=1e-12, atol=0)


def _gaussian_oracle(grid_size=8, seed=0):
    prior = load_prior("stationary-matern")
    grid = Grid.square(grid_size)
    theta = prior.sample_theta(1, generator=torch.Generator().manual_seed(seed))
    schedule = NoiseSchedule("cosine", 1000)
    oracle = GaussianMixtureOracle.from_prior(prior, grid, schedule, theta=theta)
    pts = torch.as_tensor(grid.points(), dtype=torch.float64)
    cov = prior.covariance(pts, pts, theta)[0].numpy()
    return oracle, schedule, cov


def _oracle_draws(oracle, schedule, sampler, steps, eta, n=4000):
    gens = generators_for(0, 1, range(n))
    x_T = initial_noise((1, 8, 8), gens, dtype=torch.float64)
    batch_gen = torch.Generator().manual_seed(2)  # one generator: per-sample ones cost more
    if sampler == "ddim":
        x0 = ddim_sample(oracle, schedule, x_T, steps=steps, eta=eta, generators=batch_gen)
    elif sampler == "ddpm":
        x0 = ddpm_sample(oracle, schedule, x_T, generators=batch_gen)
    else:
        x0 = dpm_solver_sample(oracle, schedule, x_T, steps=steps)
    return x0.reshape(n, -1).numpy()


@pytest.mark.parametrize(
    ("sampler", "steps", "eta"), [("ddim", 50, 0.0), ("ddim", 50, 1.0), ("dpm2m", 6, 0.0)]
)
def test_samplers_with_the_oracle_match_their_exact_gaussian_output(sampler, steps, eta):
    """An exact reference for the implementation, with few steps so discretisation shows."""
    oracle, schedule, cov = _gaussian_oracle()
    ts = schedule.timesteps(steps) if sampler == "ddim" else schedule.log_snr_timesteps(steps)
    lam, u = oracle.eigval[0].numpy(), oracle.eigvec[0].numpy()
    exact = (u * gaussian_sampler_variance(schedule, ts.numpy(), lam, sampler, eta)) @ u.T
    draws = _oracle_draws(oracle, schedule, sampler, steps, eta)
    assert np.abs(moment_z_scores(draws, np.zeros(64), exact)).max() < 4.5
    # the discretisation error is resolved: the prior's own covariance is rejected
    assert np.abs(moment_z_scores(draws, np.zeros(64), cov)).max() > 4.5


@pytest.mark.parametrize(
    ("sampler", "steps", "eta"), [("ddim", 1000, 0.0), ("ddpm", None, 1.0), ("dpm2m", 100, 0.0)]
)
def test_samplers_with_the_oracle_reproduce_the_prior_covariance(sampler, steps, eta):
    oracle, schedule, cov = _gaussian_oracle()
    draws = _oracle_draws(oracle, schedule, sampler, steps, eta)
    z = moment_z_scores(draws, np.zeros(64), cov)
    # ~200 roughly standard normal statistics: |z| < 4.5 fails by chance with p < 1e-3
    assert np.abs(z).max() < 4.5, np.abs(z).max()
    # power: the same draws are far from a covariance 10% too large
    assert np.abs(moment_z_scores(draws, np.zeros(64), 1.1 * cov)).max() > 4.5


def test_ddim_sample_i_does_not_depend_on_the_batch():
    oracle, schedule, _ = _gaussian_oracle()
    gens = lambda idx: generators_for(7, 1, idx)  # noqa: E731
    x_all = initial_noise((1, 8, 8), gens(range(6)), dtype=torch.float64)
    full = ddim_sample(oracle, schedule, x_all, steps=20, eta=1.0, generators=gens(range(6)))
    x_part = initial_noise((1, 8, 8), gens(range(3, 6)), dtype=torch.float64)
    part = ddim_sample(oracle, schedule, x_part, steps=20, eta=1.0, generators=gens(range(3, 6)))
    torch.testing.assert_close(full[3:], part, rtol=1e-12, atol=1e-12)


def test_sampler_bad_input():
    oracle, schedule, _ = _gaussian_oracle()
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(GeodiffError, match="eta"):
        ddim_sample(oracle, schedule, x, eta=-1)
    with pytest.raises(GeodiffError, match="decreasing"):
        ddim_sample(oracle, schedule, x, timesteps=torch.tensor([1, 5]))
    with pytest.raises(GeodiffError, match="one generator per sample"):
        ddim_sample(oracle, schedule, x, eta=1.0, generators=generators_for(0, 1, range(3)))
    with pytest.raises(GeodiffError, match="covariances must have shape"):
        GaussianMixtureOracle(np.eye(5), schedule, (2, 3))


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_prediction_parameterisations_invert_their_targets(prediction):
    """x̂_0 from a perfect estimate of the training target is x_0; ε̂ from x̂_0 is ε."""
    from geodiff.diffusion.denoiser import eps_from_x0, training_target, x0_from_output

    gen = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(2, 4, 1, 8, 8, generator=gen, dtype=torch.float64)
    ab = torch.tensor([0.9, 0.2, 0.5, 0.01], dtype=torch.float64).view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    got = x0_from_output(prediction, training_target(prediction, x0, noise, ab), x_t, ab)
    torch.testing.assert_close(got, x0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(eps_from_x0(x_t, got, ab), noise, rtol=1e-8, atol=1e-8)


def test_ddim_step_is_the_ddim_update():
    from geodiff.diffusion.samplers import ddim_coefficients, ddim_step

    gen = torch.Generator().manual_seed(4)
    x, x0, z = torch.randn(3, 2, 1, 4, 4, generator=gen, dtype=torch.float64)
    ab, ab_next, eta = 0.3, 0.6, 0.7
    keep, sigma = ddim_coefficients(ab, ab_next, eta)
    eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = ab_next**0.5 * x0 + keep * eps + z + sigma * noise
    step = ddim_step(
        x, x0, ab, ab_next, eta=eta, generators=torch.Generator().manual_seed(5), guidance=z
    )
    torch.testing.assert_close(step, expected, rtol=1e-12, atol=1e-12)
    assert 0 < sigma and keep**2 + sigma**2 == pytest.approx(1 - ab_next)


def test_ddim_coefficients_have_known_values():
    """Independent of the code under test: hand-computed numbers, and DDPM's own
    posterior (Ho et al. 2020, eq. 7) written from the betas.

    At ``eta = 1`` between consecutive steps, DDIM is DDPM's ancestral step: its variance
    is ``beta~_t = beta_t (1 - ab_{t-1}) / (1 - ab_t)`` and its coefficient of ``x_t`` is
    ``sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t)``. A 10% error in ``sigma`` fails both.
    """
    from geodiff.diffusion.samplers import ddim_coefficients

    # by hand: ab = 0.5, ab_next = 0.8, eta = 1: sigma^2 = (0.2 / 0.5)(1 - 0.5 / 0.8) = 0.15
    keep, sigma = ddim_coefficients(0.5, 0.8, 1.0)
    assert sigma == pytest.approx(math.sqrt(0.15), rel=1e-12)
    assert keep == pytest.approx(math.sqrt(0.05), rel=1e-12)
    keep, sigma = ddim_coefficients(0.5, 0.8, 0.0)  # deterministic DDIM
    assert sigma == 0.0 and keep == pytest.approx(math.sqrt(0.2), rel=1e-12)

    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # the linear schedule
    alpha_bar = torch.cumprod(1 - betas, 0)
    for t in (1, 10, 500, 999):
        ab, ab_prev, beta = float(alpha_bar[t]), float(alpha_bar[t - 1]), float(betas[t])
        keep, sigma = ddim_coefficients(ab, ab_prev, 1.0)
        assert sigma**2 == pytest.approx(beta * (1 - ab_prev) / (1 - ab), rel=1e-9)
        x_coefficient = keep / math.sqrt(1 - ab)  # eps_hat = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
        assert x_coefficient == pytest.approx(
            math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab), rel=1e-9
        )
