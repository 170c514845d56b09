"""`geodiff krige` and `geodiff mcmc`: files in, predictions out, clear errors."""

import csv
import json

import numpy as np
import pytest
import xarray as xr

from geodiff import Grid, load_prior, simulate
from geodiff.baselines.kriging import simple_kriging
from geodiff.cli import main
from geodiff.observe import Observations

THETA = {"length_scale": 0.15, "anis_ratio": 0.6, "angle": 0.5}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    prior = load_prior("stationary-matern")
    grid = Grid.square(32)
    field = simulate(prior, grid, 1, seed=0, theta=prior.complete_theta(THETA)).fields.double()
    rng = np.random.default_rng(0)
    pts = rng.uniform(0.02, 0.98, (40, 2))
    values = grid.interpolate(field, pts)[0].numpy() + 0.05 * rng.normal(size=40)
    obs = Observations.at_points(pts, values, 0.05)
    obs.to_csv(root / "obs.csv")
    with (root / "targets.csv").open("w") as f:
        f.write("x,y\n0.5,0.5\n0.1,0.9\n0.77,0.3\n")
    (root / "theta.json").write_text(json.dumps(THETA))
    return root, obs


def _read_csv(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_simple_kriging_command_matches_the_api(files, capsys):
    root, obs = files
    out = root / "simple.csv"
    code = main(
        [
            "krige", "--obs", str(root / "obs.csv"), "--prior", "stationary-matern",
            "--kriging", "simple", "--theta", str(root / "theta.json"),
            "--at", str(root / "targets.csv"), "--out", str(out), "--threshold", "0.5",
            "--predict", "field",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = _read_csv(out)
    prior = load_prior("stationary-matern")
    targets = np.array([[0.5, 0.5], [0.1, 0.9], [0.77, 0.3]])
    pred = simple_kriging(prior, THETA, obs, targets)
    np.testing.assert_allclose(table["mean"], pred.mean, rtol=1e-8)
    np.testing.assert_allclose(table["sd"], pred.sd, rtol=1e-8)
    assert set(table) == {"x", "y", "mean", "sd", "q05", "q50", "q95", "p_gt_0.5"}
    np.testing.assert_allclose(table["q50"], pred.mean, rtol=1e-8)
    assert json.loads((root / "simple.csv.json").read_text())["method"] == "simple kriging"


def test_ordinary_kriging_command_writes_netcdf_and_plot(files, capsys):
    root, _ = files
    out = root / "ok.nc"
    code = main(
        [
            "krige", "--obs", str(root / "obs.csv"), "--prior", "stationary-matern",
            "--grid", "24", "--out", str(out), "--plot",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "ordinary kriging, reml fit" in capsys.readouterr().out
    with xr.open_dataset(out, engine="scipy") as ds:
        assert ds["mean"].shape == (24, 24) and float(ds["sd"].min()) >= 0
    assert (root / "ok.png").stat().st_size > 10_000
    fit = json.loads((root / "ok.nc.json").read_text())["fit"]
    assert 0.05 < fit["length_scale"] < 0.5


def test_mcmc_command(files, capsys):
    root, _ = files
    out = root / "mcmc.nc"
    code = main(
        [
            "mcmc", "--obs", str(root / "obs.csv"), "--prior", "stationary-matern",
            "--grid", "16", "--mcmc-warmup", "30", "--mcmc-samples", "20", "--draws", "10",
            "--out", str(out), "--quiet", "--no-jit",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "length_scale" in printed and "R-hat" in printed and "divergences" in printed
    with xr.open_dataset(out, engine="scipy") as ds:
        assert ds["draws"].shape == (10, 16, 16)
    details = json.loads((root / "mcmc.nc.json").read_text())
    assert set(details["parameters"]) == {"length_scale", "anis_ratio", "angle"}


@pytest.mark.parametrize(
    ("csv_text", "extra", "message"),
    [
        ("x,y,value\n0.1,0.2,nan\n0.3,0.3,1\n", ["--noise-sd", "0.1"], "NaN"),
        ("x,y,value,noise_sd\n0.1,0.2,1,0.1\n1.3,0.3,1,0.1\n", [], "outside the prior's domain"),
        ("x,y,value,noise_sd\n0.1,0.2,1,0.1\n0.1,0.2,2,0.1\n", [], "merge-duplicates"),
        ("x,y,value\n0.1,0.2,1\n", [], "at least 2"),
        ("x,y,value\n0.1,0.2,1\n0.2,0.3,2\n0.3,0.4,1\n", [], "on one line"),
        ("x,y,value\n0.1,0.2,1\n0.2,0.5,1\n0.3,0.1,1\n", [], "all 3 observed values are equal"),
        ("x,y,value\n0.1,0.2,1\n0.2,0.5,-1\n0.3,0.1,2\n", ["--transform", "log"], "positive"),
        (
            "x,y,value,noise_sd\n0.1,0.2,1,0.1\n0.5,0.2,2,0.1\n",
            ["--kriging", "simple"],
            "not given",
        ),
    ],
)
def test_krige_bad_input_is_one_line(tmp_path, capsys, csv_text, extra, message):
    path = tmp_path / "obs.csv"
    path.write_text(csv_text)
    out = tmp_path / "p.csv"
    args = ["krige", "--obs", str(path), "--prior", "stationary-matern", "--out", str(out)]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "p.csv.json").exists()


def test_mcmc_refuses_fewer_observations_than_parameters(tmp_path, capsys):
    path = tmp_path / "obs.csv"
    path.write_text("x,y,value,noise_sd\n0.1,0.2,1,0.1\n0.5,0.2,2,0.1\n")
    out = tmp_path / "p.csv"
    args = ["mcmc", "--obs", str(path), "--prior", "stationary-matern", "--out", str(out)]
    assert main(args) == 2
    assert "2 observation(s) for 3 random parameters" in capsys.readouterr().err
    assert not out.exists()


def test_negative_noise_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["krige", "--obs", "o.csv", "--prior", "p", "--out", "x.csv", "--noise-sd", "-1"])
    assert exit_info.value.code == 2
    assert "expected a number >= 0" in capsys.readouterr().err


def test_threshold_adds_an_exceedance_map_to_the_plot(files, capsys):
    import matplotlib.image

    root, _ = files
    widths = {}
    for extra in ([], ["--threshold", "0.5", "--threshold", "1.0"]):
        out = root / f"ok{len(extra)}.nc"
        args = ["krige", "--obs", str(root / "obs.csv"), "--prior", "stationary-matern",
                "--grid", "16", "--out", str(out), "--plot", *extra]  # fmt: skip
        assert main(args) == 0, capsys.readouterr().err
        widths[len(extra)] = matplotlib.image.imread(root / f"ok{len(extra)}.png").shape[1]
        with xr.open_dataset(out, engine="scipy") as ds:
            assert ("p_gt_0.5" in ds) == bool(extra)
    # mean and sd, then one panel per threshold: 4 panels against 2
    assert widths[4] / widths[0] == pytest.approx(2, rel=0.05)
