"""The heavy-tailed prior: Tukey's g-and-h transform of a Gaussian field.

Every reference here is computed independently of the code it checks:

* the transform's moments (:mod:`geodiff.fields.tukey`, closed forms) against numerical
  integration with scipy of the transform written out here;
* simulated fields given θ against the exact law: the second moment ``E X(a) X(b)`` of
  node pairs from GSTools' latent covariance and scipy's double integral; marginal
  quantiles from ``tau(Phi^-1(p))`` written here. Each is a z statistic over i.i.d. fields
  (tolerance 4 Monte Carlo standard errors, ``P(max |z| > 4) <= M 6.3e-5`` for M tests),
  with a power check: a wrong tail weight (h + 0.05) or a 20 % longer length scale is
  rejected by the same statistic.
"""

import json
import math

import gstools as gs
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from geodiff import Grid, Observations
from geodiff.errors import ConfigError
from geodiff.fields.config import load_prior, prior_from_config
from geodiff.fields.tukey import gh_covariance, gh_inverse, gh_mean, gh_quantile, gh_variance

Z_MAX = 4.0


def _tau(z, g, h):
    """Tukey's g-and-h, written out independently of geodiff.fields.tukey."""
    base = z if g == 0 else (np.exp(g * z) - 1.0) / g
    return base * np.exp(h * z * z / 2.0)


def _pair_moment_by_quadrature(rho, g, h):
    """E tau(Z1) tau(Z2) for standard normals of correlation rho (scipy dblquad)."""
    if abs(rho) > 1 - 1e-12:
        return integrate.quad(lambda z: _tau(z, g, h) ** 2 * stats.norm.pdf(z), -40, 40)[0]
    det = 1 - rho * rho

    def density(z2, z1):
        q = (z1 * z1 - 2 * rho * z1 * z2 + z2 * z2) / det
        return _tau(z1, g, h) * _tau(z2, g, h) * np.exp(-q / 2) / (2 * np.pi * math.sqrt(det))

    return integrate.dblquad(density, -30, 30, -30, 30, epsabs=1e-11)[0]


def _mean_by_quadrature(g, h):
    return integrate.quad(lambda z: _tau(z, g, h) * stats.norm.pdf(z), -40, 40)[0]


@pytest.mark.parametrize("g, h", [(0.0, 0.0), (0.3, 0.1), (0.0, 0.2), (0.5, 0.3), (-0.4, 0.25)])
@pytest.mark.parametrize("rho", [-0.7, 0.0, 0.35, 0.9, 1.0])
def test_covariance_matches_numerical_integration(g, h, rho):
    mean = _mean_by_quadrature(g, h)
    expected = _pair_moment_by_quadrature(rho, g, h) - mean * mean
    assert float(gh_covariance(rho, g, h)) == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert float(gh_mean(g, h)) == pytest.approx(mean, rel=1e-9, abs=1e-12)
    if rho == 1.0:
        assert float(gh_variance(g, h)) == pytest.approx(expected, rel=1e-7)


def test_covariance_power_a_wrong_tail_weight_is_far_outside_the_tolerance():
    exact = _pair_moment_by_quadrature(0.5, 0.3, 0.2) - _mean_by_quadrature(0.3, 0.2) ** 2
    wrong = float(gh_covariance(0.5, 0.3, 0.22))
    assert abs(wrong - exact) > 1e4 * 1e-7 * abs(exact)


def test_symmetric_limit_is_continuous_in_the_skew():
    for rho in (0.2, 0.8):
        limit = float(gh_covariance(rho, 0.0, 0.15))
        assert float(gh_covariance(rho, 1e-5, 0.15)) == pytest.approx(limit, rel=1e-8)
    z = torch.linspace(-5, 5, 11, dtype=torch.float64)
    assert torch.allclose(gh_quantile(stats.norm.cdf(z.numpy()), 1e-7, 0.2),
                          gh_quantile(stats.norm.cdf(z.numpy()), 0.0, 0.2), rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize("g, h", [(0.0, 0.0), (0.4, 0.3), (-0.5, 0.1)])
def test_inverse_undoes_the_transform(g, h):
    z = torch.linspace(-8, 8, 161, dtype=torch.float64)
    x = torch.as_tensor(_tau(z.numpy(), g, h))
    assert torch.allclose(gh_inverse(x, g, h), z, atol=1e-10)


def test_quantiles_are_the_transformed_normal_quantiles():
    p = np.array([0.001, 0.1, 0.5, 0.9, 0.999])
    expected = _tau(stats.norm.ppf(p), 0.3, 0.2)
    assert np.allclose(gh_quantile(torch.tensor(p), 0.3, 0.2).numpy(), expected, rtol=1e-12)


# ----------------------------------------------------------------- simulation
PRIOR = load_prior("heavy-tail-anisotropy")
GRID = Grid.square(16)
THETA = {"length_scale": 0.2, "anis_ratio": 0.6, "angle": 0.5, "skew": 0.3, "tail": 0.1}
N_FIELDS = 16000


def _fields(theta, n=N_FIELDS, seed=0):
    full = PRIOR.complete_theta(theta)
    return PRIOR.simulate(GRID, n, seed=seed, theta=full).fields.double().numpy()


def _latent_correlation(a, b, length_scale):
    """GSTools' anisotropic Matérn correlation between grid nodes a and b (flat indices)."""
    model = gs.Matern(dim=2, var=1.0, nu=1.5, len_scale=[length_scale, THETA["anis_ratio"]
                      * length_scale], angles=THETA["angle"])  # fmt: skip
    pts = np.asarray(GRID.points())
    return float(model.cor_spatial((pts[a] - pts[b])[:, None])[0])


#: a corner's and a centre node's variance, then lags of 2 to 4 cells in 8 directions (the
#: lags that a 20 % change of the length scale moves most)
PAIRS = [(0, 0), (136, 136), (136, 138), (136, 140), (136, 168), (136, 184), (136, 170),
         (136, 187), (136, 166), (136, 181)]  # fmt: skip


def _pair_z(fields, g, h, length_scale):
    flat = fields.reshape(len(fields), -1)
    out = []
    for a, b in PAIRS:
        rho = _latent_correlation(a, b, length_scale)
        moment = _pair_moment_by_quadrature(rho, g, h)
        t = flat[:, a] * flat[:, b] - moment
        out.append(t.mean() / (t.std(ddof=1) / math.sqrt(len(t))))
    return np.array(out)


@pytest.fixture(scope="module")
def fields():
    return _fields(THETA)


def test_simulated_pair_moments_match_the_exact_law(fields):
    z = _pair_z(fields, THETA["skew"], THETA["tail"], THETA["length_scale"])
    assert np.abs(z).max() <= Z_MAX, z


def test_pair_moment_power_a_longer_length_scale_is_rejected(fields):
    z = _pair_z(fields, THETA["skew"], THETA["tail"], 1.2 * THETA["length_scale"])
    assert np.abs(z).max() > Z_MAX, z


def _quantile_z(fields, g, h):
    """z of the share of values below the exact p-quantile, at one node per field."""
    values = fields[:, 5, 7]
    p = np.array([0.01, 0.1, 0.5, 0.9, 0.99, 0.999])
    q = _tau(stats.norm.ppf(p), g, h)
    share = (values[:, None] <= q[None]).mean(0)
    return (share - p) / np.sqrt(p * (1 - p) / len(values))


def test_simulated_marginal_quantiles_match_the_exact_law(fields):
    assert np.abs(_quantile_z(fields, THETA["skew"], THETA["tail"])).max() <= Z_MAX


def test_quantile_power_a_heavier_tail_is_rejected():
    heavy = _fields({**THETA, "tail": 0.25}, n=4000, seed=1)
    assert np.abs(_quantile_z(heavy, THETA["skew"], THETA["tail"])).max() > Z_MAX


def test_exact_covariance_method_agrees_with_the_formula_written_here():
    theta = PRIOR.complete_theta(THETA)
    pts = np.asarray(GRID.points())[[0, 136, 137, 170]]
    cov = PRIOR.covariance(pts, pts, theta)[0].numpy()
    mean = _mean_by_quadrature(THETA["skew"], THETA["tail"])
    idx = [0, 136, 137, 170]
    for i, a in enumerate(idx):
        for j, b in enumerate(idx):
            rho = _latent_correlation(a, b, THETA["length_scale"])
            exact = _pair_moment_by_quadrature(rho, THETA["skew"], THETA["tail"]) - mean**2
            assert cov[i, j] == pytest.approx(exact, rel=1e-6, abs=1e-9)


def test_simulation_is_reproducible_whatever_the_batch():
    a = PRIOR.simulate(GRID, 12, seed=3, fields_per_theta=4).fields
    b = PRIOR.simulate(GRID, 12, seed=3, fields_per_theta=4, batch_size=1).fields
    c = PRIOR.simulate(GRID, 8, seed=3, fields_per_theta=4, start=4).fields
    assert torch.equal(a, b) and torch.equal(a[4:], c)


# --------------------------------------------------------------------- config
def _config(**marginal):
    config = PRIOR.to_config()
    config["marginal"] = {"transform": "tukey-gh", **marginal}
    return config


def test_config_round_trips():
    rebuilt = prior_from_config(PRIOR.to_config())
    assert rebuilt.to_config() == PRIOR.to_config()
    assert set(rebuilt.leaves()) == set(PRIOR.leaves()) >= {"skew", "tail"}


@pytest.mark.parametrize(
    "marginal, message",
    [
        ({"tail": 0.6}, "marginal.tail: must be >= 0.0 and <= 0.45"),
        ({"tail": {"distribution": "uniform", "low": 0.0, "high": 0.5}}, "support is [0, 0.5]"),
        ({"tails": 0.1}, "unknown key(s) ['tails']"),
        ({"transform": "box-cox"}, "transform: must be one of ['tukey-gh']"),
    ],
)
def test_config_errors_name_the_problem(marginal, message):
    config = _config(**marginal)
    with pytest.raises(ConfigError) as err:
        prior_from_config(config, source="my.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("my.toml")


def test_complete_theta_refuses_a_tail_without_a_finite_variance():
    with pytest.raises(ConfigError, match=r"tail must be in \[0, 0.45\]"):
        PRIOR.complete_theta({**THETA, "tail": 0.7})


# ------------------------------------------------------------------ references
# Given θ and the latent values at the support, the field at a target is the transform of
# a Gaussian whose mean and sd are written here with numpy from GSTools' covariance; the
# transform is increasing, so the draws' quantiles at the target are the transformed
# Gaussian quantiles. The share of draws below each is binomial: 4 se, and a heavier tail
# (h + 0.1) in the reference is rejected by the same statistic.
SUPPORT = np.array([[0.2, 0.3], [0.5, 0.5], [0.7, 0.4], [0.35, 0.8]])
TARGET = np.array([[0.45, 0.55]])


def _gstools_cov(a, b):
    scales = [THETA["length_scale"], THETA["anis_ratio"] * THETA["length_scale"]]
    model = gs.Matern(dim=2, var=1.0, nu=1.5, len_scale=scales, angles=THETA["angle"])
    return np.array([[model.cov_spatial((p - q)[:, None])[0] for q in b] for p in a])


def _latent_gaussian_at_target(z_support, noise_var=None):
    k = _gstools_cov(SUPPORT, SUPPORT)
    if noise_var is not None:
        k = k + np.diag(noise_var)
    c = _gstools_cov(TARGET, SUPPORT)[0]
    mean = c @ np.linalg.solve(k, z_support)
    sd = math.sqrt(1.0 - c @ np.linalg.solve(k, c))
    return mean, sd


def _share_z(draws, mean, sd, tail):
    p = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    q = _tau(mean + sd * stats.norm.ppf(p), THETA["skew"], tail)
    share = (draws[:, None] <= q[None]).mean(0)
    return (share - p) / np.sqrt(p * (1 - p) / len(draws))


def test_mcmc_predictive_given_latent_values_is_the_transformed_conditional_law():
    from geodiff.baselines.transformed import latent_predictive, latent_values

    theta = PRIOR.complete_theta(THETA)
    white = torch.tensor([0.3, -1.2, 0.8, 1.5], dtype=torch.float64)
    obs = Observations.at_points(SUPPORT, np.zeros(4), 0.1)
    draws = np.array([float(latent_predictive(PRIOR, theta, white, obs, TARGET, seed)[0])
                      for seed in range(1500)])  # fmt: skip
    z = latent_values(PRIOR, theta, white, torch.as_tensor(SUPPORT)).numpy()
    chol = np.linalg.cholesky(_gstools_cov(SUPPORT, SUPPORT))
    assert np.allclose(z, chol @ white.numpy(), atol=1e-6)  # Z(P) = L w, L from GSTools
    mean, sd = _latent_gaussian_at_target(z)
    assert np.abs(_share_z(draws, mean, sd, THETA["tail"])).max() <= Z_MAX
    assert np.abs(_share_z(draws, mean, sd, THETA["tail"] + 0.1)).max() > Z_MAX


def test_oracle_trans_gaussian_kriging_of_noiseless_data_is_the_exact_conditional_law():
    from scipy.optimize import brentq

    from geodiff.baselines.transformed import trans_gaussian_kriging

    theta = PRIOR.complete_theta(THETA)
    values = np.array([0.4, -1.0, 2.5, 6.0])
    obs = Observations.at_points(SUPPORT, values, 0.0)
    pred = trans_gaussian_kriging(PRIOR, theta, obs, TARGET, 3000, seed=0)
    z = np.array([brentq(lambda t, v=v: _tau(t, THETA["skew"], THETA["tail"]) - v, -20, 20)
                  for v in values])  # fmt: skip
    mean, sd = _latent_gaussian_at_target(z)
    draws = pred.draws[:, 0]
    assert np.abs(_share_z(draws, mean, sd, THETA["tail"])).max() <= Z_MAX
    assert np.abs(_share_z(draws, mean, sd, THETA["tail"] + 0.1)).max() > Z_MAX


def test_nuts_model_log_density_is_the_one_written_here():
    """The Pyro model's joint log-density at given sites against scipy's."""
    import pyro
    from pyro import poutine

    from geodiff.baselines.mcmc import pyro_model
    from geodiff.baselines.transformed import LATENT_SITE

    values = np.array([0.4, -1.0, 2.5, 6.0])
    obs = Observations.at_points(SUPPORT, values, 0.3)
    sites = {"length_scale": 0.2, "anis_ratio": 0.6, "skew": 0.3, "tail": 0.1,
             "angle.xy": [math.cos(2 * 0.5 - math.pi), math.sin(2 * 0.5 - math.pi)],
             LATENT_SITE: [0.3, -1.2, 0.8, 1.5]}  # fmt: skip
    conditioned = poutine.condition(pyro_model(PRIOR, obs),
                                    {k: torch.tensor(v, dtype=torch.float64)
                                     for k, v in sites.items()})  # fmt: skip
    with pyro.poutine.block():
        trace = poutine.trace(conditioned).get_trace()
    chol = np.linalg.cholesky(_gstools_cov(SUPPORT, SUPPORT))
    x = _tau(chol @ np.array(sites[LATENT_SITE]), 0.3, 0.1)
    expected = (
        stats.norm.logpdf(values, x, 0.3).sum()
        + stats.norm.logpdf(sites[LATENT_SITE]).sum()
        + stats.norm.logpdf(sites["angle.xy"]).sum()
        + stats.loguniform.logpdf(0.2, 0.05, 0.3)
        + stats.uniform.logpdf(0.6, 0.4, 0.6)
        + stats.uniform.logpdf(0.3, 0.0, 0.5)
        + stats.uniform.logpdf(0.1, 0.0, 0.3)
    )
    assert float(trace.log_prob_sum()) == pytest.approx(expected, rel=1e-6)


def test_oracle_kriging_predictor_of_a_heavy_tailed_task_is_trans_gaussian():
    from geodiff.baselines.transformed import trans_gaussian_kriging
    from geodiff.evaluate.predictors import STREAMS, PredictionTask, run_predictor
    from geodiff.rng import derive_seed

    theta = PRIOR.complete_theta(THETA)
    obs = Observations.at_points(SUPPORT, np.array([0.4, -1.0, 2.5, 6.0]), 0.1)
    task = PredictionTask(PRIOR, obs, TARGET, theta=theta, grid_field=False)
    pred = run_predictor("kriging-oracle", task, draws=30, seed=4, key=(2,))
    direct = trans_gaussian_kriging(PRIOR, theta, obs, TARGET, 30,
                                    derive_seed(4, STREAMS["kriging-oracle"], 2))  # fmt: skip
    assert pred.draws.shape == (30, 1)
    assert np.allclose(pred.draws, direct.draws)


def test_training_on_a_heavy_tailed_prior_validates_without_an_oracle(tmp_path):
    from geodiff.diffusion.data import FreshFields
    from geodiff.diffusion.network import network_config
    from geodiff.diffusion.oracle import mixture_oracle
    from geodiff.diffusion.schedule import NoiseSchedule
    from geodiff.diffusion.training import TrainingConfig, train
    from geodiff.errors import GeodiffError

    grid = Grid.square(16)
    config = TrainingConfig(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=2,
                            validate_every=2, log_every=1, oracle_components=4,
                            n_validation=8)  # fmt: skip
    model = train(tmp_path / "run", prior=PRIOR, grid=grid, data=FreshFields(PRIOR, grid, 4, 0),
                  network=network_config("tiny", 16), config=config, progress=False)  # fmt: skip
    assert model.prior.to_config() == PRIOR.to_config()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
               .splitlines()]  # fmt: skip
    validation = [r for r in records if "mse" in r]
    assert validation and all("ratio" not in r for r in validation)
    with pytest.raises(GeodiffError, match="no exact mixture oracle"):
        mixture_oracle(PRIOR, grid, NoiseSchedule("cosine", 1000), n_components=2)


def test_a_latent_nugget_is_refused_with_the_reason():
    config = PRIOR.to_config()
    config["parameters"]["nugget"] = 0.01
    with pytest.raises(ConfigError, match=r"^my\.toml: a transformed prior's latent field takes"):
        prior_from_config(config, source="my.toml")
