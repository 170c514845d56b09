"""Prediction with the shipped diffusion prior: physical units, targets, files, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from geodiff import GeodiffError, Grid
from geodiff.cli import main
from geodiff.diffusion.model import load_model
from geodiff.observe import Observations
from geodiff.posterior import diffusion_posterior, predict
from geodiff.transform import DomainMap

MODEL = Path(__file__).resolve().parents[1] / "data" / "stationary-matern-32"
FAST = {"draws": 3, "steps": 4}


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def _obs(shift=(0.0, 0.0), scale=1.0, value_shift=0.0, value_scale=1.0, tau=0.1):
    rng = np.random.default_rng(0)
    loc = rng.uniform(0.05, 0.95, (12, 2))
    values = np.sin(4 * loc[:, 0]) + np.cos(3 * loc[:, 1])
    return Observations.at_points(
        np.asarray(shift) + scale * loc, value_shift + value_scale * values, value_scale * tau
    )


def test_domain_map_rule():
    obs = _obs(shift=(1000.0, 500.0), scale=200.0)
    dmap = DomainMap.fit(obs, ((0.0, 1.0), (0.0, 1.0)), margin=0.1)
    (x0, x1), (y0, y1) = dmap.physical_extent
    assert x1 - x0 == pytest.approx(y1 - y0)  # the model's aspect ratio
    lo, hi = obs.locations.min(0), obs.locations.max(0)
    pad = 0.1 * max(hi - lo)
    assert x0 <= lo[0] - pad + 1e-9 and x1 >= hi[0] + pad - 1e-9
    assert max(x0 - (lo[0] - pad), y0 - (lo[1] - pad)) == pytest.approx(0.0, abs=1e-9)
    pts = obs.locations
    np.testing.assert_allclose(dmap.to_physical_points(dmap.to_model_points(pts)), pts)
    inside = dmap.to_model_points(pts)
    assert (inside > 0).all() and (inside < 1).all()
    # values: standardised by the observations' mean and sd, relative to the data scale
    std = DomainMap.fit(obs, ((0.0, 1.0), (0.0, 1.0)), standardise=True, data_scale=2.0)
    model_obs = std.to_model_observations(obs)
    assert model_obs.values.mean() == pytest.approx(0.0, abs=1e-12)
    assert model_obs.values.std(ddof=1) == pytest.approx(2.0)
    np.testing.assert_allclose(std.to_physical_values(model_obs.values), obs.values)
    np.testing.assert_allclose(model_obs.noise_sd * std.value_scale, obs.noise_sd)
    with pytest.raises(GeodiffError, match="single location"):
        DomainMap.fit(Observations.at_points([[1.0, 2.0]], [1.0]), ((0, 1), (0, 1)))


def test_predictions_come_back_in_physical_units(model):
    """The same data in other units and coordinates give the same (mapped) predictions."""
    unit = _obs()
    physical = _obs(shift=(3000.0, -200.0), scale=500.0, value_shift=10.0, value_scale=4.0)
    base = diffusion_posterior(model, unit, **FAST)
    dmap = DomainMap(((3000.0, 3500.0), (-200.0, 300.0)), model.grid.extent, 10.0, 4.0)
    mapped = diffusion_posterior(model, physical, domain_map=dmap, **FAST)
    np.testing.assert_allclose(mapped.fields, 10.0 + 4.0 * base.fields, rtol=1e-4, atol=1e-4)
    assert mapped.grid.extent == ((3000.0, 3500.0), (-200.0, 300.0))
    targets = np.array([[3100.0, -100.0], [3250.0, 250.0]])
    pred = mapped.at(targets)
    expected = base.at(dmap.to_model_points(targets))
    np.testing.assert_allclose(pred.mean, 10.0 + 4.0 * expected.mean, rtol=1e-4)
    np.testing.assert_allclose(pred.sd, 4.0 * expected.sd, rtol=1e-4)
    with pytest.raises(GeodiffError, match="outside the model's domain"):
        mapped.at(np.array([[0.0, 0.0]]))


def test_draws_are_reproducible_and_batch_independent(model):
    obs = _obs()
    one = diffusion_posterior(model, obs, method="mcgdiff", particles=4, batch_size=4, **FAST)
    two = diffusion_posterior(model, obs, method="mcgdiff", particles=4, batch_size=64, **FAST)
    np.testing.assert_allclose(one.fields, two.fields, rtol=1e-4, atol=1e-4)
    assert "min_relative_ess" in one.info
    pred = predict(model, obs, at="grid", **FAST)
    assert pred.grid == model.grid and pred.draws.shape == (3, 32 * 32)
    assert pred.info["options"] == {"steps": 4} and "min_relative_ess" not in pred.info
    assert pred.info["per_draw"]["denoiser_evaluations"] <= 4  # MMPS's cost hook


def test_warm_start_draws_are_batch_independent_and_cost_fewer_steps(model):
    """MMPS's start from the prior's Gaussian at σ = 10: rows do not depend on the batch."""
    obs, warm = _obs(), {"start_sigma": 10.0, "cg_iterations": 0, "draws": 5, "steps": 4}
    one = diffusion_posterior(model, obs, batch_size=2, **warm)
    two = diffusion_posterior(model, obs, batch_size=5, **warm)
    np.testing.assert_allclose(one.fields, two.fields, rtol=1e-6, atol=1e-6)
    # 25 steps over the whole range make 20 calls, 12 of them at σ <= 10; a warm start at
    # σ = 10 with 13 steps keeps that density below σ = 10 and makes 13 calls
    cold = predict(model, obs, at="grid", draws=2, steps=25, cg_iterations=0)
    hot = predict(model, obs, at="grid", draws=2, steps=13, cg_iterations=0, start_sigma=10.0)
    assert cold.info["per_draw"]["denoiser_evaluations"] == 20
    assert hot.info["per_draw"]["denoiser_evaluations"] == 13
    cold_steps = model.schedule.log_snr_timesteps(25)
    assert int((model.schedule.sigma(cold_steps) <= 10.0).sum()) == 12
    assert not np.allclose(cold.draws, hot.draws)
    with pytest.raises(GeodiffError, match="start_sigma must be a positive number"):
        diffusion_posterior(model, obs, start_sigma=-1.0, **FAST)


def test_predict_command_takes_the_fast_settings(tmp_path):
    """bfloat16, no Jacobian and a warm start from the command line; the sidecar says so."""
    _obs().to_csv(tmp_path / "obs.csv")
    out = tmp_path / "pred.csv"
    args = ["predict", "--model", str(MODEL), "--obs", str(tmp_path / "obs.csv"),
            "--draws", "3", "--steps", "4", "--cg-iterations", "0", "--start-sigma", "10",
            "--precision", "bfloat16", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((tmp_path / "pred.csv.json").read_text())
    assert meta["options"] == {"steps": 4, "cg_iterations": 0, "start_sigma": 10.0}
    assert meta["precision"] == "bfloat16"


def test_bad_input_is_refused(model):
    outside = Observations.at_points([[0.5, 0.5], [1.5, 0.2]], [0.0, 1.0], 0.1)
    with pytest.raises(GeodiffError, match=r"outside the model's domain.*map physical"):
        diffusion_posterior(model, outside, **FAST)
    other_grid = _obs().on_grid(Grid.square(16))
    with pytest.raises(GeodiffError, match=r"checkpoint's grid is \(32, 32\)"):
        diffusion_posterior(model, other_grid, **FAST)
    on_model_grid = _obs().on_grid(model.grid)
    scaled = DomainMap(model.grid.extent, model.grid.extent, 1.0, 2.0)
    with pytest.raises(GeodiffError, match="map physical observations before"):
        diffusion_posterior(model, on_model_grid, domain_map=scaled, **FAST)
    with pytest.raises(GeodiffError, match="unknown posterior method"):
        diffusion_posterior(model, _obs(), method="magic", **FAST)
    with pytest.raises(GeodiffError, match=r"mmps does not take the option\(s\) particles; its"):
        diffusion_posterior(model, _obs(), particles=4, **FAST)
    with pytest.raises(GeodiffError, match="positive integer"):
        diffusion_posterior(model, _obs(), draws=0)


def test_predict_command(tmp_path, capsys):
    obs = _obs(shift=(100.0, 100.0), scale=50.0, value_shift=5.0, value_scale=2.0)
    obs.to_csv(tmp_path / "obs.csv")
    (tmp_path / "targets.csv").write_text("x,y\n110,120\n140,130\n")
    out = tmp_path / "pred.csv"
    args = [
        "predict", "--model", str(MODEL), "--obs", str(tmp_path / "obs.csv"),
        "--at", str(tmp_path / "targets.csv"), "--domain", "auto", "--standardise",
        "--draws", "3", "--steps", "4", "--out", str(out), "--threshold", "5",
        "--quiet", "--plot",
    ]  # fmt: skip
    assert main(args) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header == ["x", "y", "mean", "sd", "q05", "q50", "q95", "p_gt_5"]
    assert (tmp_path / "pred.draws.nc").is_file() and (tmp_path / "pred.png").is_file()
    meta = json.loads((tmp_path / "pred.csv.json").read_text())
    assert meta["method"] == "mmps" and meta["draws"] == 3
    # physical observations without a domain map leave the model's domain: a clear error
    bad = ["predict", "--model", str(MODEL), "--obs", str(tmp_path / "obs.csv"),
           "--draws", "2", "--out", str(tmp_path / "x.csv"), "--quiet"]  # fmt: skip
    assert main(bad) == 2
    assert "outside the model's domain" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    (tmp_path / "nan.csv").write_text("x,y,value\n0.2,0.3,1.0\n0.5,0.5,nan\n")
    bad[bad.index("--obs") + 1] = str(tmp_path / "nan.csv")
    assert main([*bad, "--noise-sd", "0.1"]) == 2
    assert "NaN" in capsys.readouterr().err
    (tmp_path / "far.csv").write_text("x,y\n0.5,0.5\n2.0,0.5\n")
    bad[bad.index("--obs") + 1] = str(tmp_path / "obs.csv")
    far = [*bad, "--domain", "90,160,90,160", "--at", str(tmp_path / "far.csv")]
    assert main(far) == 2  # targets outside the domain the user gave
    assert "target(s) lie outside the model's domain" in capsys.readouterr().err


def test_demo_command_writes_its_report(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--n-obs", "12", "--draws", "3", "--steps", "3",
            "--mcmc-warmup", "10", "--mcmc-samples", "10", "--quiet"]  # fmt: skip
    assert main(args) == 0
    report = (out / "report.md").read_text()
    for method in ("diffusion (mmps)", "oracle kriging", "ordinary kriging", "MCMC"):
        assert f"| {method} |" in report
    assert (out / "maps.png").is_file()
    assert "demo done" in capsys.readouterr().out


def test_the_number_of_draws_is_draws_and_its_former_name_warns(model):
    with pytest.warns(DeprecationWarning, match="diffusion_posterior: samples= is now draws="):
        old = diffusion_posterior(model, _obs(), samples=2, seed=3, steps=4)
    new = diffusion_posterior(model, _obs(), draws=2, seed=3, steps=4)
    np.testing.assert_array_equal(old.fields, new.fields)
    assert new.info["draws"] == 2 and new.seconds > 0
