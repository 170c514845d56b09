"""The SPDE prior against exact, independent references, each with a power check.

* draws against the dense inverse of the assembled sparse precision (Nagao's statistic
  ``T = n/2 ||S - I||_F^2`` of the whitened draws, asymptotically chi-square with
  ``d (d + 1) / 2`` degrees of freedom); the same statistic rejects ``kappa x 1.1`` and
  an angle map rotated by 20 degrees;
* the stationary case against GSTools' Matérn covariance (discretisation error stated,
  shrinking with the cell size); a 10% wider GSTools model is outside the bound;
* sparse kriging against the explicit conditioning formula on a dense covariance;
* the sparse oracle denoiser against the dense Gaussian-mixture oracle;
* the spectral maps' correlation against GSTools' Gaussian model, at two places.
"""

import math

import gstools
import numpy as np
import pytest
import torch
from scipy import stats

from geodiff import GeodiffError, Grid, simulate
from geodiff.baselines.spde_kriging import spde_condition
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.diffusion.spde_oracle import SPDEMixtureOracle
from geodiff.errors import ConfigError
from geodiff.fields.config import load_prior, prior_from_config
from geodiff.fields.maps import SpectralMapPrior
from geodiff.fields.parameters import Fixed
from geodiff.fields.spde import SPDEPrior
from geodiff.observe import Observations

P_MIN = 1e-3  # a correct sampler fails a test with this probability


def _stationary(length_scale=3.0, ratio=0.5, angle=0.6, variance=1.3, nu=1.0, margin=1.0):
    return SPDEPrior(
        "matern", nu=nu, length_scale=length_scale, anis_ratio=ratio, angle=angle,
        variance=variance, cell_size=1.0, margin=margin, domain=((0.0, 40.0), (0.0, 40.0)),
    )  # fmt: skip


def _theta(prior, seed=0):
    return prior.sample_theta(1, generator=seed)


def _dense_grid_covariance(grid_op) -> np.ndarray:
    """``E Q^-1 E^T`` from the explicitly multiplied sparse precision, by dense inversion."""
    q = grid_op.operator.precision().toarray()
    return np.linalg.inv(q)[np.ix_(grid_op.crop, grid_op.crop)]


def _nagao_pvalue(fields: np.ndarray, cov: np.ndarray) -> float:
    """p-value of ``Cov[x] = cov`` for zero-mean draws ``fields`` (n, d)."""
    n, d = fields.shape
    white = np.linalg.solve(np.linalg.cholesky(cov), fields.T)  # (d, n)
    s = white @ white.T / n
    t = 0.5 * n * np.sum((s - np.eye(d)) ** 2)
    return float(stats.chi2.sf(t, d * (d + 1) // 2))


# ------------------------------------------------------------------ simulation
GRID8 = Grid((8, 8), ((10.0, 17.0), (12.0, 19.0)))


@pytest.fixture(scope="module")
def spde_draws():
    prior = load_prior("spde-anisotropy")
    theta = _theta(prior, 3)
    fields = simulate(prior, GRID8, 3000, seed=11, theta=theta, device="cpu").fields
    return prior, theta, fields.double().reshape(3000, -1).numpy()


def test_draws_have_the_precision_covariance(spde_draws):
    prior, theta, fields = spde_draws
    cov = _dense_grid_covariance(prior.grid_operator(GRID8, theta))
    assert _nagao_pvalue(fields, cov) > P_MIN


@pytest.mark.parametrize("change", ["kappa x 1.1", "angle + 20 degrees"])
def test_draws_reject_a_wrong_precision(spde_draws, change):
    prior, theta, fields = spde_draws
    wrong = {k: v.clone() for k, v in theta.items()}
    if change == "kappa x 1.1":  # kappa = sqrt(nu) / l
        wrong["length_scale.median"] = wrong["length_scale.median"] / 1.1
    else:
        wrong["angle.mean"] = wrong["angle.mean"] + math.radians(20.0)
    cov = _dense_grid_covariance(prior.grid_operator(GRID8, wrong))
    assert _nagao_pvalue(fields, cov) < 1e-6


def test_same_fields_for_any_batch_or_start():
    prior = load_prior("spde-anisotropy")
    grid = Grid.square(12, ((0.0, 11.0), (0.0, 11.0)))
    whole = simulate(prior, grid, 6, seed=4, fields_per_theta=2, device="cpu")
    tail = simulate(prior, grid, 3, seed=4, fields_per_theta=2, start=3, batch_size=1)
    torch.testing.assert_close(whole.fields[3:], tail.fields, rtol=0, atol=0)
    assert set(whole.maps) == {"variance", "length_scale", "angle"}


# ---------------------------------------------------------- stationary: Matérn
def _matern_errors(cells_per_length: float, nu: float = 1.0):
    """Max |C_spde - C_gstools| over lags up to 2 l along both axes, and the 10%-wider
    GSTools model's distance to the exact one, at ``cells_per_length`` cells per l."""
    ell, ratio, angle = cells_per_length, 0.5, 0.6
    prior = _stationary(length_scale=ell, ratio=ratio, angle=angle, variance=1.0, nu=nu)
    n = int(6 * ell) | 1
    grid = Grid.square(n, ((0.0, n - 1.0), (0.0, n - 1.0)))
    grid_op = prior.grid_operator(grid, _theta(prior))
    centre = (n // 2) * n + n // 2
    unit = np.zeros(grid_op.operator.size)
    unit[grid_op.crop[centre]] = 1.0
    column = grid_op.operator.covariance_apply(unit)[grid_op.crop].reshape(n, n)
    steps = np.arange(0, int(2 * ell) + 1)
    main = np.array([math.cos(angle), math.sin(angle)])
    minor = np.array([-math.sin(angle), math.cos(angle)])
    lags = np.concatenate([steps[:, None] * main, steps[:, None] * minor * ratio])
    pts = np.array([n // 2, n // 2]) + lags  # (x, y) in cells
    spde = grid.interpolate(torch.as_tensor(column), pts).numpy()
    model = gstools.Matern(dim=2, var=1.0, len_scale=[ell, ratio * ell], angles=angle, nu=nu)
    wider = gstools.Matern(dim=2, var=1.0, len_scale=[1.1 * ell, 1.1 * ratio * ell],
                           angles=angle, nu=nu)  # fmt: skip
    exact = model.cov_spatial(lags.T)
    return np.abs(spde - exact).max(), np.abs(wider.cov_spatial(lags.T) - exact).max()


# the discretisation error, deterministic and stated in docs/spde.md: at nu = 1, 0.071 of
# the sill at 3 cells per length scale and 0.011 at 12 (about h^1.3); at nu = 3, 0.029 at
# 4 cells and 0.004 at 12 (about h^2)
@pytest.mark.parametrize(
    ("nu", "coarse_cells", "coarse_bound", "fine_bound"),
    [(1.0, 3.0, 0.08, 0.015), (3.0, 4.0, 0.035, 0.006)],
)
def test_stationary_spde_is_gstools_matern_within_the_discretisation_error(
    nu, coarse_cells, coarse_bound, fine_bound
):
    coarse, _ = _matern_errors(coarse_cells, nu)
    fine, wider = _matern_errors(12.0, nu)
    assert coarse < coarse_bound
    assert fine < fine_bound
    assert fine < 0.25 * coarse  # it shrinks with the cell size
    assert wider > fine_bound  # power: a 10% wider GSTools model is outside the fine bound


def test_rectangular_cells_match_gstools_matern():
    """Cells of 1 x 0.5 (x by y): the stencil's spacings enter separately."""
    ell, ratio, angle = 8.0, 0.5, 0.6
    prior = _stationary(length_scale=ell, ratio=ratio, angle=angle, variance=1.0)
    grid = Grid((121, 61), ((0.0, 60.0), (0.0, 60.0)))
    grid_op = prior.grid_operator(grid, _theta(prior))
    unit = np.zeros(grid_op.operator.size)
    unit[grid_op.crop[60 * 61 + 30]] = 1.0
    column = grid_op.operator.covariance_apply(unit)[grid_op.crop].reshape(121, 61)
    lags = np.array([[0, 0], [2, 0], [0, 2], [3, 3], [-3, 3], [5, 1], [0, 6]], dtype=float)
    got = grid.interpolate(torch.as_tensor(column), np.array([30.0, 30.0]) + lags).numpy()
    model = gstools.Matern(dim=2, var=1.0, len_scale=[ell, ratio * ell], angles=angle, nu=1.0)
    wider = gstools.Matern(dim=2, var=1.0, len_scale=[1.1 * ell, 1.1 * ratio * ell],
                           angles=angle, nu=1.0)  # fmt: skip
    exact = model.cov_spatial(lags.T)
    assert np.abs(got - exact).max() < 0.015  # the 8-cells-per-l bound of the table above
    assert np.abs(wider.cov_spatial(lags.T) - exact).max() > 0.015  # power


def test_point_covariance_is_the_discretised_prior_on_the_cell_size_lattice():
    """Between arbitrary points the prior is the bilinear interpolant of the lattice of
    ``cell_size`` over its domain: at nodes, the grid's own (dense-inverse) covariance;
    between nodes, the bilinear weights of it."""
    prior = load_prior("spde-anisotropy")
    theta = _theta(prior, 2)
    grid = prior.window((32, 32))  # the domain [0, 31]^2 at cell_size 1
    dense = _dense_grid_covariance(prior.grid_operator(grid, theta))
    nodes = np.array([0, 33, 500, 1023])
    got = prior.covariance(grid.points()[nodes], grid.points()[nodes], theta)[0].numpy()
    np.testing.assert_allclose(got, dense[np.ix_(nodes, nodes)], rtol=0, atol=1e-10)
    between = np.array([[3.25, 7.5], [20.0, 11.75]])
    weights = grid.interpolation_matrix(between).to_dense().numpy()
    got = prior.covariance(between, between, theta)[0].numpy()
    np.testing.assert_allclose(got, weights @ dense @ weights.T, rtol=0, atol=1e-10)


# ----------------------------------------------------------- exact conditioning
def _explicit_conditioning(cov, a, y, noise_var):
    gram = a @ cov @ a.T + np.diag(noise_var)
    gain = np.linalg.solve(gram, a @ cov).T  # Sigma A^T G^-1
    return gain @ y, np.diag(cov - gain @ a @ cov)


@pytest.mark.parametrize("tau", [0.3, 0.0])
def test_spde_kriging_equals_dense_conditioning(tau):
    prior = load_prior("spde-anisotropy")
    theta = _theta(prior, 7)
    grid = Grid.square(16, ((0.0, 15.0), (0.0, 15.0)))
    rng = np.random.default_rng(1)
    pts = rng.uniform(0.0, 15.0, (25, 2))
    obs = Observations.at_points(pts, rng.normal(size=25), tau)
    got = spde_condition(prior, theta, obs, grid)
    cov = _dense_grid_covariance(prior.grid_operator(grid, theta))
    a = grid.interpolation_matrix(pts).to_dense().numpy()
    mean, var = _explicit_conditioning(cov, a, obs.values, np.full(25, tau**2))
    np.testing.assert_allclose(got["mean"], mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(got["sd"], np.sqrt(np.clip(var, 0, None)), rtol=0, atol=1e-6)
    assert got["sd_method"] == "exact"
    # power: another theta's kriging is far from this one (the check can see an error)
    other = spde_condition(prior, _theta(prior, 8), obs, grid)
    assert np.abs(other["mean"] - mean).max() > 1e3 * 1e-8


def test_spde_conditional_draws_follow_the_exact_posterior():
    prior = _stationary(length_scale=2.5)
    theta = _theta(prior)
    grid = Grid.square(6, ((0.0, 5.0), (0.0, 5.0)))
    rng = np.random.default_rng(2)
    pts = rng.uniform(0.0, 5.0, (8, 2))
    obs = Observations.at_points(pts, rng.normal(size=8), 0.4)
    got = spde_condition(prior, theta, obs, grid, draws=3000, seed=3)
    cov = _dense_grid_covariance(prior.grid_operator(grid, theta))
    a = grid.interpolation_matrix(pts).to_dense().numpy()
    gram = a @ cov @ a.T + 0.16 * np.eye(8)
    gain = np.linalg.solve(gram, a @ cov).T
    post_mean, post_cov = gain @ obs.values, cov - gain @ a @ cov
    centred = got["draws"] - post_mean
    assert _nagao_pvalue(centred, post_cov) > P_MIN
    # power: the posterior under noise x 3 is rejected by the same statistic
    gram3 = a @ cov @ a.T + 9 * 0.16 * np.eye(8)
    gain3 = np.linalg.solve(gram3, a @ cov).T
    assert _nagao_pvalue(got["draws"] - gain3 @ obs.values, cov - gain3 @ a @ cov) < 1e-6


def test_monte_carlo_sds_state_their_error():
    prior = _stationary()
    grid = Grid.square(10, ((0.0, 9.0), (0.0, 9.0)))
    obs = Observations.at_points([[2.0, 3.0], [7.5, 6.0]], [0.5, -1.0], 0.2)
    exact = spde_condition(prior, _theta(prior), obs, grid)
    mc = spde_condition(prior, _theta(prior), obs, grid, exact_sd_limit=10, sd_draws=400)
    assert mc["sd_method"] == "monte carlo"
    rel = mc["sd_relative_error"]
    assert rel == pytest.approx(1 / math.sqrt(2 * 399))
    z = (mc["sd"] / exact["sd"] - 1) / rel
    assert np.abs(z).max() < 4.5  # 100 sds, Bonferroni: P(any > 4.5) < 1e-3


# ---------------------------------------------------------------------- oracle
def test_sparse_oracle_equals_dense_oracle():
    prior = load_prior("spde-anisotropy")
    grid = Grid.square(16, ((0.0, 15.0), (0.0, 15.0)))
    schedule = NoiseSchedule()
    theta = prior.sample_theta(3, generator=5)
    sparse = SPDEMixtureOracle.from_prior(prior, grid, schedule, theta=theta, scale=1.3)
    covs = [
        _dense_grid_covariance(
            prior.grid_operator(grid, {k: v[j : j + 1] for k, v in theta.items()})
        )
        for j in range(3)
    ]
    dense = GaussianMixtureOracle(torch.as_tensor(np.stack(covs)) / 1.3**2, schedule, grid.shape)
    x0 = dense.sample(4, seed=1)
    gen = torch.Generator().manual_seed(0)
    for t in (5, 300, 900):
        ab = schedule.alpha_bar[t]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(
            x0.shape, generator=gen, dtype=x0.dtype
        )
        torch.testing.assert_close(sparse(x_t, t), dense(x_t, t), rtol=0, atol=1e-9)
        torch.testing.assert_close(
            sparse.posterior_weights(x_t, t), dense.posterior_weights(x_t, t), rtol=0, atol=1e-9
        )


# ---------------------------------------------------------------- spectral maps
def test_spectral_map_is_stationary_with_the_gaussian_correlation():
    spectral = SpectralMapPrior(Fixed(0.0), Fixed(1.0), log_scale=False, modes=8, len_scale=5.0)
    n, lag = 20000, 4.0
    latent = torch.randn(n, spectral.n_latent, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)  # fmt: skip
    zero, one = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    pts = torch.tensor([[0.0, 0.0], [lag, 0.0], [300.0, -70.0], [300.0, -70.0 + lag]],
                       dtype=torch.float64)  # fmt: skip
    z = spectral.values(pts, zero, one, latent).numpy()
    exact = gstools.Gaussian(dim=2, var=1.0, len_scale=5.0).correlation(lag)
    wider = gstools.Gaussian(dim=2, var=1.0, len_scale=5.5).correlation(lag)
    for a, b in ((0, 1), (2, 3)):  # the same law at two places
        products = z[:, a] * z[:, b]
        se = products.std() / math.sqrt(n)
        assert abs(products.mean() - exact) < 4 * se
        assert abs(products.mean() - wider) > 4 * se  # power: 10% longer correlation
    assert abs((z**2).mean() - 1.0) < 4 * (z**2).std() / math.sqrt(n)


# ------------------------------------------------------------------- bad input
def test_bad_spde_input_has_one_clear_line():
    prior = load_prior("spde-anisotropy")
    coarse = Grid.square(16, ((0.0, 150.0), (0.0, 150.0)))  # 10-unit cells
    with pytest.raises(GeodiffError, match="below the cell size"):
        simulate(prior, coarse, 1)
    with pytest.raises(GeodiffError, match="singular"):
        simulate(_stationary(ratio=1e-9), Grid.square(8), 1)
    with pytest.raises(GeodiffError, match=r"SPDE lattice of a 60000x60000 grid needs .* GB"):
        prior.grid_operator(Grid.square(60_000, ((0.0, 59_999.0),) * 2), _theta(prior))
    config = prior.to_config()
    config["parameters"]["nu"] = 1.5
    with pytest.raises(ConfigError, match="fixed nu in"):
        prior_from_config(config)
    config = prior.to_config()
    config["parameters"]["angle"]["map"] = {"knots": 5, "len_scale": 10.0}
    with pytest.raises(ConfigError, match="must be spectral"):
        prior_from_config(config)


def test_config_round_trip():
    prior = load_prior("spde-anisotropy")
    again = prior_from_config(prior.to_config())
    assert again.to_config() == prior.to_config()
    assert again.cell_size == 1.0 and again.alpha == 2


# ------------------------------------------------------------- the rest of geodiff
def test_training_takes_the_spde_prior_unchanged(tmp_path):
    from geodiff.diffusion.data import FreshFields
    from geodiff.diffusion.model import load_model
    from geodiff.diffusion.network import network_config
    from geodiff.diffusion.spde_oracle import SPDEMixtureOracle
    from geodiff.diffusion.training import TrainingConfig, train

    prior = load_prior("spde-anisotropy")
    grid = prior.window((16, 16))
    config = TrainingConfig(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=2,
                            validate_every=2, log_every=1, oracle_components=2,
                            n_validation=4, n_preview=0)  # fmt: skip
    train(tmp_path / "run", prior=prior, grid=grid, data=FreshFields(prior, grid, 4, 0),
          network=network_config("tiny", 16), config=config, progress=False)  # fmt: skip
    model = load_model(tmp_path / "run")
    assert model.prior.to_config() == prior.to_config()
    assert model.grid == grid
    assert isinstance(model.oracle(2), SPDEMixtureOracle)


def test_a_paciorek_schervish_prior_takes_spectral_maps_too():
    """Spectral maps are defined everywhere, so the dense non-stationary prior accepts them
    (no domain to match); its covariance stays positive definite."""
    config = load_prior("nonstationary-anisotropy").to_config()
    config["parameters"]["angle"]["map"] = {"modes": 16, "model": "gaussian", "len_scale": 0.4}
    prior = prior_from_config(config)
    assert isinstance(prior.parameters["angle"], SpectralMapPrior)
    points = Grid.square(6).points()
    cov = prior.covariance(points, points, prior.sample_theta(2, generator=0)).numpy()
    assert np.linalg.eigvalsh(cov).min() > 0
