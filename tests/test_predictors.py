"""The registry of prediction methods: one name, one call, one seed scheme, one unit rule."""

import numpy as np
import pytest
import torch

from geodiff.baselines.kriging import gaussian_condition
from geodiff.errors import GeodiffError
from geodiff.evaluate.datasets import synthetic_dataset
from geodiff.evaluate.predictors import (
    PREDICTORS,
    PredictionTask,
    display_name,
    resolve_predictor,
    run_predictor,
)
from geodiff.fields.config import load_prior
from geodiff.grid import Grid
from geodiff.observe import Observations
from geodiff.transform import DomainMap

# short chains on purpose: these tests compare runs, not the chains' quality
pytestmark = pytest.mark.filterwarnings("ignore::geodiff.baselines.mcmc.MCMCWarning")


@pytest.fixture(scope="module")
def dataset():
    prior = load_prior("stationary-matern")
    grid = Grid.square(12, prior.domain)
    theta, truth, obs = synthetic_dataset(prior, grid, 15, 0.1, 3)
    return prior, grid, theta, truth, obs


def test_oracle_kriging_is_explicit_gaussian_conditioning(dataset):
    """Oracle kriging on the model's grid conditions on the grid reads, exactly."""
    prior, grid, theta, _, obs = dataset
    pred = run_predictor("kriging-oracle", PredictionTask(prior, obs, grid, theta=theta))
    exact = gaussian_condition(prior, theta, obs.on_grid(grid), grid)
    np.testing.assert_allclose(pred.mean, exact["mean"].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pred.sd, exact["var"].sqrt().numpy(), rtol=1e-10, atol=1e-12)
    assert pred.grid == grid and pred.info["predictor"] == "kriging-oracle"
    assert pred.seconds > 0 and pred.method == "oracle kriging"
    # the same statistic rejects a wrong input: another θ moves the mean
    other = {k: v * 1.1 for k, v in theta.items()}
    wrong = run_predictor("kriging-oracle", PredictionTask(prior, obs, grid, theta=other))
    assert np.abs(wrong.mean - pred.mean).max() > 1e-3


def test_physical_units_map_exactly(dataset):
    """Translating and scaling coordinates and values translates and scales predictions."""
    prior, grid, theta, _, obs = dataset
    points = grid.points()[::7]
    model_task = PredictionTask(prior, obs, points, theta=theta)
    shift, scale, offset, stretch = 5.0, 3.0, np.array([100.0, -20.0]), 250.0
    physical_obs = Observations.at_points(
        offset + stretch * obs.locations, shift + scale * obs.values, scale * obs.noise_sd
    )
    (x0, x1), (y0, y1) = prior.domain
    domain = ((offset[0] + stretch * x0, offset[0] + stretch * x1),
              (offset[1] + stretch * y0, offset[1] + stretch * y1))  # fmt: skip
    dmap = DomainMap(domain, prior.domain, shift, scale)
    physical_task = PredictionTask(
        prior, physical_obs, offset + stretch * points, theta=theta, domain_map=dmap
    )
    for name in ("kriging-oracle", "mcmc"):
        options = {"warmup": 20, "samples": 20} if name == "mcmc" else {}
        a = run_predictor(name, model_task, draws=10, seed=4, **options)
        b = run_predictor(name, physical_task, draws=10, seed=4, **options)
        np.testing.assert_allclose(b.mean, shift + scale * a.mean, rtol=1e-9)
        np.testing.assert_allclose(b.sd, scale * a.sd, rtol=1e-9)
        np.testing.assert_allclose(b.targets, offset + stretch * a.targets, rtol=1e-12)
        if a.draws is not None:
            np.testing.assert_allclose(b.draws, shift + scale * a.draws, rtol=1e-9)
    # power: a map that forgets the value scale would be caught by the same comparison
    assert not np.allclose(b.sd, a.sd, rtol=1e-3)


def test_seeds_depend_on_the_key_not_on_the_order(dataset):
    prior, grid, theta, _, obs = dataset
    task = PredictionTask(prior, obs, grid.points()[::9], theta=theta)
    run = {"warmup": 15, "samples": 15}
    first = run_predictor("mcmc", task, draws=5, seed=1, key=(2,), **run)
    run_predictor("mcmc", task, draws=5, seed=1, key=(3,), **run)  # another dataset between
    again = run_predictor("mcmc", task, draws=5, seed=1, key=(2,), **run)
    other = run_predictor("mcmc", task, draws=5, seed=1, key=(3,), **run)
    np.testing.assert_array_equal(first.draws, again.draws)
    assert not np.allclose(first.draws, other.draws)


def test_names_options_and_needs_are_checked(dataset):
    prior, grid, theta, _, obs = dataset
    task = PredictionTask(prior, obs, grid, theta=theta)
    with pytest.raises(GeodiffError, match=r"unknown method 'kriging'.*kriging-ok"):
        run_predictor("kriging", task)
    with pytest.raises(GeodiffError, match=r"takes no option.*particles"):
        run_predictor("kriging-ok", task, particles=3)
    with pytest.raises(GeodiffError, match="needs the task's theta"):
        run_predictor("kriging-oracle", PredictionTask(prior, obs, grid))
    with pytest.raises(GeodiffError, match="needs the task's model"):
        run_predictor("mmps", task)
    assert resolve_predictor("daps") == (PREDICTORS["diffusion"], {"method": "daps"})
    assert display_name("daps") == "diffusion (daps)"
    assert display_name("kriging-ok") == "ordinary kriging"


def test_a_diffusion_sampler_runs_under_its_own_name():
    from geodiff.diffusion.model import load_model

    model = load_model("data/stationary-matern-32", "cpu")
    theta, _, obs = synthetic_dataset(model.prior, model.grid, 10, 0.1, 0)
    task = PredictionTask(model.prior, obs, model.grid, model=model, theta=theta)
    torch.manual_seed(0)
    a = run_predictor("daps", task, draws=2, seed=5, steps=3)
    b = run_predictor("diffusion", task, draws=2, seed=5, steps=3, method="daps")
    np.testing.assert_array_equal(a.draws, b.draws)
    assert a.method == "diffusion (daps)" and a.grid == model.grid and a.draws.shape == (2, 1024)


def test_a_harness_takes_each_method_with_its_options():
    from geodiff.evaluate.predictors import method_options

    defaults = {"diffusion": {"method": "mmps"}, "mcmc": {"warmup": 200, "samples": 200}}
    got = method_options({"mcmc": {"samples": 50}, "diffusion": {"steps": None}}, defaults)
    assert got == {"mcmc": {"warmup": 200, "samples": 50}, "diffusion": {"method": "mmps"}}
    assert list(got) == ["mcmc", "diffusion"]  # in the order given
    assert method_options(("kriging-ok", "mcmc"), defaults)["kriging-ok"] == {}
    assert set(method_options({"mcmc": {"chains": 4}}, defaults, fixed=True)) == set(defaults)
    with pytest.raises(GeodiffError, match="runs diffusion, mcmc; got options for dps"):
        method_options({"dps": {}}, defaults, fixed=True)
    with pytest.raises(GeodiffError, match="repeated"):
        method_options(["mcmc", "mcmc"], defaults)
