"""Real data through every command: physical coordinates, no noise given, skewed values."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from geodiff import Grid, load_prior, simulate
from geodiff.cli import main

MODEL = str(Path(__file__).resolve().parents[1] / "data" / "stationary-matern-32")
THETA = {"length_scale": 0.15, "anis_ratio": 0.7, "angle": 0.4}
ORIGIN, METRES = np.array([181000.0, 330000.0]), 3000.0
pytestmark = [
    pytest.mark.filterwarnings("ignore::geodiff.fields.fit.FitWarning"),
    pytest.mark.filterwarnings("ignore::geodiff.baselines.mcmc.MCMCWarning"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Positive, skewed 'ppm' values at 60 stations in metres, and 20 held-out targets."""
    root = tmp_path_factory.mktemp("realdata")
    prior, grid = load_prior("stationary-matern"), Grid.square(32)
    field = simulate(prior, grid, 1, seed=1, theta=prior.complete_theta(THETA)).fields.double()
    rng = np.random.default_rng(1)
    unit = rng.uniform(0.05, 0.95, (80, 2))
    latent = grid.interpolate(field, unit)[0].numpy() + 0.2 * rng.normal(size=80)
    ppm = np.exp(5.0 + 0.6 * latent)
    points = ORIGIN + METRES * unit
    for name, rows in (("obs.csv", slice(0, 60)), ("targets.csv", slice(60, 80))):
        with (root / name).open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["x", "y", "value"])
            writer.writerows(np.column_stack([points[rows], ppm[rows]]).tolist())
    return root


def _table(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def _common(root, out):
    return ["--obs", str(root / "obs.csv"), "--at", str(root / "targets.csv"),
            "--domain", "auto", "--standardise", "--transform", "log", "--out", str(out),
            "--quiet"]  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ["krige", "--prior", "stationary-matern"],
        ["mcmc", "--prior", "stationary-matern", "--mcmc-warmup", "20", "--mcmc-samples", "20",
         "--mcmc-chains", "1", "--draws", "19", "--no-jit"],
        ["predict", "--model", MODEL, "--steps", "4", "--draws", "19"],
    ],
    ids=["krige", "mcmc", "predict"],
)  # fmt: skip
def test_every_command_takes_physical_data_without_noise(files, tmp_path, capsys, command):
    """Same file, same flags: predictions in metres and ppm, with the inferred noise stated."""
    out = tmp_path / "pred.csv"
    code = main([*command, *_common(files, out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "noise sd (inferred" in printed.out
    table, targets = _table(out), _table(files / "targets.csv")
    np.testing.assert_allclose(table["x"], targets["x"])
    assert (table["q05"] > 0).all() and (table["q05"] < table["q50"]).all()
    assert (table["q50"] < table["q95"]).all()
    # ppm, not log(ppm) or standardised units: the medians sit among the observed values
    observed = _table(files / "obs.csv")["value"]
    assert observed.min() / 3 < np.median(table["q50"]) < 3 * observed.max()
    details = json.loads(out.with_name(out.name + ".json").read_text())
    assert details["quantity"] == "measurement" and details["transform"]["name"] == "log"


def test_prior_from_data_then_krige_without_a_domain_map(files, tmp_path, capsys):
    toml = tmp_path / "my-prior.toml"
    assert main(["prior", "--from-data", str(files / "obs.csv"), "--out", str(toml)]) == 0
    assert "wrote" in capsys.readouterr().out
    prior = load_prior(toml)
    (x0, x1), _ = prior.domain
    assert x0 < ORIGIN[0] and x1 > ORIGIN[0] + 0.9 * METRES  # the data's box, in metres
    out = tmp_path / "k.csv"
    code = main(["krige", "--prior", str(toml), "--obs", str(files / "obs.csv"), "--at",
                 str(files / "targets.csv"), "--transform", "log", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert main(["prior", "--from-data", str(files / "obs.csv"), "--out", str(toml)]) == 2
    assert "exists" in capsys.readouterr().err


def test_crossval_command_writes_the_table_and_the_points(files, tmp_path, capsys):
    out = tmp_path / "cv.md"
    code = main(["crossval", "--model", MODEL, "--obs", str(files / "obs.csv"),
                 "--predictors", "kriging-ok,diffusion", "--folds", "3", "--fold-scheme", "blocked",
                 "--steps", "3", "--draws", "19", "--transform", "log", "--out", str(out),
                 "--quiet"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "| method | CRPS |" in printed.out
    report = out.read_text()
    assert "Paired differences" in report and "Inferred noise sd" in report
    points = _table(out.with_suffix(".csv"))
    assert len(points["x"]) == 60 and set(points["fold"]) == {0.0, 1.0, 2.0}
    assert np.isfinite(points["diffusion_crps"]).all() and (points["kriging-ok_crps"] > 0).all()


def test_physical_data_without_a_domain_map_get_one_line_that_says_what_to_do(files, capsys):
    code = main(["krige", "--prior", "stationary-matern", "--obs", str(files / "obs.csv"),
                 "--out", "/tmp/never.csv"])  # fmt: skip
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and "--domain auto" in errors[0]
    assert "warning" not in err  # the error comes first: nothing else to read
