"""A learned prior for any grid size: the model on larger windows, and the matrix-free MMPS.

The matrix-free path (sparse ``A``, the FFT Gaussian as preconditioner, a CG tolerance)
is compared with the dense path on the same problem, driven by the exact oracle of a
Gaussian prior: converged conjugate gradients do not depend on the preconditioner, so
both must give the same draws. The dense path is itself tested against the exact law
(``tests/test_posterior_limits.py``).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from geodiff import GeodiffError
from geodiff.diffusion.model import DiffusionModel, load_model
from geodiff.diffusion.network import Denoiser, network_config
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.fields.config import load_prior
from geodiff.grid import Grid
from geodiff.observe import Observations, point_operator
from geodiff.posterior import posterior_sample
from geodiff.posterior.gaussian import DenseGaussian, StationaryGaussian, model_gaussian
from geodiff.posterior.problem import LinearGaussianProblem
from geodiff.rng import generators_for

SCHEDULE = NoiseSchedule("cosine", 1000)


def _conv_model(prior_name: str = "spde-anisotropy", network: str = "conv") -> DiffusionModel:
    """An untrained model of ``network`` on the prior's 32² window (weights from seed 0)."""
    torch.manual_seed(0)
    prior = load_prior(prior_name)
    denoiser = Denoiser(network_config(network, 32), SCHEDULE).eval()
    return DiffusionModel(denoiser, prior.window((32, 32)), prior.to_config(), 1.0)


def test_on_grid_is_a_larger_window_at_the_same_resolution():
    model = _conv_model()
    big = model.on_grid((48, 64))
    assert big.grid.shape == (48, 64) and big.resolution == model.resolution == 1.0
    assert big.grid.extent == ((0.0, 63.0), (0.0, 47.0))
    assert big.denoiser is model.denoiser and big.any_size
    fields = big.sample(2, steps=3, seed=1)
    assert fields.shape == (2, 48, 64) and torch.isfinite(fields).all()


@pytest.mark.parametrize(
    ("shape", "message"), [((36, 64), "nearest is 40x64"), ((16, 64), "at least 32x32")]
)
def test_on_grid_refuses_shapes_the_network_cannot_take(shape, message):
    with pytest.raises(GeodiffError, match=message):
        _conv_model().on_grid(shape)


def test_a_model_with_attention_stays_on_its_grid():
    model = _conv_model(network="small")
    assert not model.any_size
    with pytest.raises(GeodiffError, match="only its own 32x32 grid"):
        model.on_grid((64, 64))


def test_the_wide_conv_network_takes_any_size_too():
    model = _conv_model(network="conv-wide")
    assert model.any_size and model.denoiser.n_parameters > _conv_model().denoiser.n_parameters
    fields = model.on_grid((40, 56)).sample(1, steps=2, seed=0)
    assert fields.shape == (1, 40, 56) and torch.isfinite(fields).all()


def test_saved_conv_model_loads_and_takes_any_size(tmp_path):
    model = _conv_model()
    model.save(tmp_path)
    loaded = load_model(tmp_path / "model.json")
    assert loaded.on_grid((40, 40)).grid.shape == (40, 40)


def test_the_gaussian_of_an_any_size_model_is_stationary_and_matches_the_prior():
    """At lag 0 the covariance by lag is the mean over 64 θ draws of the variance map at
    one point: log-normal, median 1, log sd 0.3 (its mean e^{0.045}, its sd that times
    √(e^{0.09} - 1)), so the Monte Carlo standard error is that sd / √64; 4 of them bound
    the estimate. Power: a prior whose variance median is 1.3 is rejected by the same
    bound."""
    from geodiff.fields.config import prior_from_config

    model = _conv_model()
    assert isinstance(model_gaussian(model), StationaryGaussian)
    lags = model.lag_covariance()
    k = (len(lags) - 1) // 2
    mean = np.exp(0.3**2 / 2)
    bound = 4 * mean * np.sqrt(np.expm1(0.3**2)) / np.sqrt(64)
    assert abs(lags[k, k] - mean) < bound
    assert lags[k, k] > lags[k, k + 3] > lags[k, k + 10] > -0.05
    config = copy.deepcopy(model.prior_config)
    config["parameters"]["variance"]["median"] = 1.3
    wider = prior_from_config(config).lag_covariance(1.0, 1, n_theta=64)
    assert abs(wider[1, 1] - mean) > bound


# ----------------------------------------------------------- matrix-free MMPS
LAGS_RADIUS, LENGTH = 6, 1.5


def _lags() -> np.ndarray:
    d = np.arange(-LAGS_RADIUS, LAGS_RADIUS + 1)
    return np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * LENGTH**2))


def _dense_cov(shape) -> torch.Tensor:
    h, w = shape
    rows, cols = np.divmod(np.arange(h * w), w)
    dr, dc = rows[:, None] - rows[None], cols[:, None] - cols[None]
    inside = (abs(dr) <= LAGS_RADIUS) & (abs(dc) <= LAGS_RADIUS)
    r = LAGS_RADIUS
    values = _lags()[np.clip(dr + r, 0, 2 * r), np.clip(dc + r, 0, 2 * r)]
    return torch.as_tensor(np.where(inside, values, 0.0))


@pytest.mark.parametrize("noise", [0.1, 0.0])
def test_matrix_free_mmps_equals_the_dense_path(noise):
    """Same draws from sparse ``A`` + FFT Gaussian + CG tolerance as from dense ``A`` + dense
    Gaussian with CG to convergence, on a 10x12 grid with the exact oracle (the draws
    differ by the CG residuals, at most 1e-9 of the start, times the steps' gains)."""
    shape = (10, 12)
    grid = Grid(shape, ((0.0, 11.0), (0.0, 9.0)))
    cov = _dense_cov(shape)
    oracle = GaussianMixtureOracle(cov, SCHEDULE, shape)
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [11, 9], (9, 2))
    obs = Observations(point_operator(points), rng.normal(size=9), np.full(9, noise))
    gens = lambda: generators_for(0, 7, range(3))  # noqa: E731
    # the Jacobian at every level: above σ = 10 MMPS would use the two Gaussians' own V̄,
    # which differ by boundary terms of order Σ̄²/σ² (the torus's is a filter)
    common = {"steps": 8, "cg_iterations": None, "jacobian_sigma_max": np.inf}
    dense = LinearGaussianProblem.from_observations(obs, grid)
    sparse = LinearGaussianProblem.from_observations(obs, grid, sparse=True)
    want = posterior_sample("mmps", oracle, SCHEDULE, dense, gens(),
                            preconditioner=DenseGaussian(cov), **common).draws  # fmt: skip
    stationary = StationaryGaussian(_lags(), shape)
    got = posterior_sample("mmps", oracle, SCHEDULE, sparse, gens(), cg_tolerance=1e-9,
                           preconditioner=stationary, **common).draws  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    # power: a wrong preconditioner with too few iterations does move the draws
    wrong = StationaryGaussian(0.5 * _lags(), shape)
    off = posterior_sample("mmps", oracle, SCHEDULE, sparse, gens(), steps=8, cg_iterations=1,
                           preconditioner=wrong).draws  # fmt: skip
    assert np.abs(off.numpy() - want.numpy()).max() > 1e-2


def test_cg_tolerance_is_checked():
    shape = (10, 12)
    oracle = GaussianMixtureOracle(_dense_cov(shape), SCHEDULE, shape)
    grid = Grid(shape, ((0.0, 11.0), (0.0, 9.0)))
    obs = Observations(point_operator(np.array([[1.0, 1.0]])), np.array([0.3]), np.array([0.1]))
    problem = LinearGaussianProblem.from_observations(obs, grid, sparse=True)
    with pytest.raises(GeodiffError, match="cg_tolerance"):
        posterior_sample("mmps", oracle, SCHEDULE, problem, generators_for(0, 7, [0]),
                         cg_tolerance=2.0)  # fmt: skip


def test_spde_oracle_is_differentiable_for_one_component():
    """Its vector-Jacobian product equals the finite difference along a direction (the map
    is linear, so the difference is exact up to rounding)."""
    from geodiff.diffusion.spde_oracle import SPDEMixtureOracle

    prior = load_prior("spde-anisotropy")
    grid = prior.window((16, 16))
    oracle = SPDEMixtureOracle.from_prior(prior, grid, SCHEDULE, n_components=1)
    rng = np.random.default_rng(0)
    x, u, v = (torch.as_tensor(rng.normal(size=(1, 1, 16, 16))) for _ in range(3))
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(oracle(leaf, 300), leaf, grad_outputs=u)
    step = 1e-3
    diff = (oracle(x + step * v, 300) - oracle(x, 300)) / step
    assert float((grad * v).sum()) == pytest.approx(float((diff * u).sum()), rel=1e-6)
    with pytest.raises(GeodiffError, match="one component"):
        two = SPDEMixtureOracle.from_prior(prior, grid, SCHEDULE, n_components=2)
        two(leaf, 300)


def test_cli_sample_and_predict_take_a_grid(tmp_path, capsys):
    """``geodiff sample --grid`` and ``geodiff predict --grid --domain auto`` on a conv model:
    fields of that shape, predictions at physical targets, the cell size stated; a model
    tied to its grid refuses ``--grid`` in one line."""
    import xarray as xr

    from geodiff.cli import main

    _conv_model().save(tmp_path / "conv")
    out = tmp_path / "s.nc"
    assert main(["sample", "--model", str(tmp_path / "conv"), "--grid", "40x48", "--n", "2",
                 "--steps", "3", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert xr.open_dataset(out)["fields"].shape == (2, 40, 48)
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [10_000, 8_000], (25, 2))
    obs = Observations.at_points(points, 20 + rng.standard_normal(25), 0.3)
    obs.to_csv(tmp_path / "obs.csv")
    np.savetxt(tmp_path / "targets.csv", points[:5] + 10, delimiter=",", header="x,y",
               comments="")  # fmt: skip
    targets, pred = str(tmp_path / "targets.csv"), str(tmp_path / "p.csv")
    args = ["--domain", "auto", "--grid", "40x48", "--at", targets, "--draws", "2", "--steps", "3",
            "--out", pred, "--quiet"]  # fmt: skip
    code = main(["predict", "--model", str(tmp_path / "conv"), "--obs", str(tmp_path / "obs.csv"),
                 *args])  # fmt: skip
    assert code == 0
    assert "grid 40x48 at the model's resolution: cells of" in capsys.readouterr().out
    assert len(np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)) == 5
    # --cell-size: the box (25 points in 10 x 8 km, widened by 10 % of its longer side on
    # each side) covered by 250 m cells, sides rounded up to multiples of 8
    span = points.max(0) - points.min(0) + 0.2 * (points.max(0) - points.min(0)).max()
    want = [-(-(int(np.ceil(v / 250)) + 1) // 8) * 8 for v in span[::-1]]
    args[args.index("--grid") : args.index("--grid") + 2] = ["--cell-size", "250"]
    code = main(["predict", "--model", str(tmp_path / "conv"), "--obs", str(tmp_path / "obs.csv"),
                 *args, "--overwrite"])  # fmt: skip
    assert code == 0
    assert f"grid {want[0]}x{want[1]} at the model's resolution: cells of 250 " in (
        capsys.readouterr().out
    )
    _conv_model(network="small").save(tmp_path / "small")
    code = main(["sample", "--model", str(tmp_path / "small"), "--grid", "64", "--n", "1",
                 "--out", str(tmp_path / "t.nc"), "--quiet"])  # fmt: skip
    assert code == 2
    assert "only its own 32x32 grid" in capsys.readouterr().err


def test_lag_covariance_of_a_fixed_stationary_prior_is_gstools_matern():
    """With every parameter fixed the covariance by lag is one anisotropic Matérn, which
    GSTools evaluates independently; a 10 % longer length scale is told apart."""
    import gstools

    from geodiff.fields.config import prior_from_config

    config = {
        "type": "stationary", "family": "matern", "domain": [[0.0, 1.0], [0.0, 1.0]],
        "parameters": {"nu": 1.5, "variance": 2.0, "nugget": 0.0, "length_scale": 0.2,
                       "anis_ratio": 0.5, "angle": 0.4},
    }  # fmt: skip
    lags = prior_from_config(config).lag_covariance(0.05, 6, n_theta=8)
    steps = 0.05 * np.arange(-6, 7)
    dx, dy = np.meshgrid(steps, steps)
    for scale, close in ((1.0, True), (1.1, False)):
        model = gstools.Matern(dim=2, var=2.0, len_scale=[0.2 * scale, 0.1 * scale], nu=1.5,
                               angles=0.4)  # fmt: skip
        want = model.cov_spatial(np.stack([dx.ravel(), dy.ravel()]))
        assert np.allclose(lags.ravel(), want, atol=1e-10) is close


def test_demo_on_a_larger_window_leaves_out_mcmc(tmp_path):
    from geodiff.evaluate.demo import run_demo

    report = run_demo(_conv_model().on_grid((72, 72)), tmp_path, n_obs=20, draws=2,
                      methods={"diffusion": {"steps": 3}}, progress=False)  # fmt: skip
    text = report.read_text()
    assert "72x72 grid" in text and "left out on this grid" in text
    assert "| MCMC |" not in text and (tmp_path / "maps.png").exists()
