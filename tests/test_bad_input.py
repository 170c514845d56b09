"""Bad input on the command line: one line on stderr, exit status 2, no output written.

Each row of :data:`CASES` is a command line (``{NAME}`` stands for a file made by
:func:`_prepare`, ``{tmp}`` for the test's folder) and a fragment of the one-line message.
"""

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from geodiff.cli import main
from geodiff.diffusion.checkpoint import meta_checksum

MODEL = Path(__file__).resolve().parents[1] / "geodiff" / "models" / "stationary-matern-32"
RNG = np.random.default_rng(0)
POINTS = RNG.uniform(0.05, 0.95, (12, 2))
VALUES = RNG.normal(size=12)


def _obs_text(values=VALUES, points=POINTS, noise=None, header="x,y,value") -> str:
    rows = [
        ",".join(repr(float(c)) for c in ((*p, v) if noise is None else (*p, v, s)))
        for p, v, s in zip(points, values, noise if noise is not None else values, strict=True)
    ]
    return header + "\n" + "\n".join(rows) + "\n"


def _near_duplicate() -> str:
    points = np.vstack([POINTS, POINTS[0] + np.array([1e-9, 0.0])])
    return _obs_text(np.append(VALUES, VALUES[0] + 1.0), points)


def _many_rows(path: Path, n=100_000) -> Path:
    path = path.with_suffix(".csv")
    rng = np.random.default_rng(1)
    xy, v = rng.uniform(0, 1, (n, 2)), rng.normal(size=n)
    rows = (f"{a:.9f},{b:.9f},{c:.6f}\n" for (a, b), c in zip(xy, v, strict=True))
    path.write_text("x,y,value\n" + "".join(rows))
    return path


def _noise_column(bad) -> str:
    noise = np.full(12, 0.1)
    noise[1] = bad
    return _obs_text(noise=noise, header="x,y,value,noise_sd")


def _edited(change, checksum: str = "keep"):
    """A copy of the shipped model with ``change(meta)`` applied to its model.json.

    ``checksum``: ``"keep"`` the old one (an edit), ``"renew"`` it (as if written so by
    geodiff), or ``"drop"`` it (an older geodiff's checkpoint).
    """

    def make(folder: Path) -> Path:
        shutil.copytree(MODEL, folder, ignore=shutil.ignore_patterns("*.png", "*.jsonl"))
        path = folder / "model.json"
        meta = json.loads(path.read_text())
        change(meta)
        if checksum == "renew":
            meta["meta_sha256"] = meta_checksum(meta)
        elif checksum == "drop":
            meta.pop("meta_sha256")
        path.write_text(json.dumps(meta))
        return folder

    return make


def _pickled_weights(folder: Path) -> Path:
    """A copy of the shipped model whose weights file is a pickle (never to be executed)."""
    import pickle

    _edited(lambda meta: None)(folder)
    (folder / "model.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return folder


def _set(**entries):
    return lambda meta: meta.update(entries)


def _network(**entries):
    return lambda meta: meta["network"].update(entries)


def _partial_store(path: Path) -> Path:
    """An interrupted ``simulate --out f.zarr`` run of 8 fields on a 16x16 grid."""
    from geodiff.fields import store
    from geodiff.fields.config import load_prior
    from geodiff.grid import Grid

    prior = load_prior("stationary-matern")
    grid = Grid.parse("16", prior.domain)
    partial = path.parent / "f.zarr.partial"
    store._open_partial(partial, store._spec(prior, grid, 8, 0, 8, 1), prior, grid)
    return partial


#: the files a command line may name: text (a CSV, a JSON) or a function of a folder
def _negative_length_scale(path: Path) -> Path:
    """The shipped stationary prior with a fixed, negative length scale."""
    config = Path(__file__).resolve().parents[1] / "geodiff" / "configs" / "stationary-matern.toml"
    lines = [
        "length_scale = -0.1" if line.startswith("length_scale") else line
        for line in config.read_text().splitlines()
    ]
    path = path.with_suffix(".toml")
    path.write_text("\n".join(lines) + "\n")
    return path


FILES = {
    "bad_prior": _negative_length_scale,
    "obs": _obs_text(),
    "huge": _obs_text(VALUES * 1e300),
    "large": _obs_text(VALUES * 1e140),
    "near": _near_duplicate(),
    "negative_noise": _noise_column(-0.1),
    "nan_noise": _noise_column(math.nan),
    "twice": "x,y,value,value\n0.1,0.2,1.0,2.0\n",
    "commented": "# made by hand\n\nx,y,value\n0.1,0.2,1.0\n0.3,0.4,abc\n",
    "many": _many_rows,
    "theta": json.dumps({"length_scale": "NaN", "anis_ratio": 1.0, "angle": 0.0}),
    "theta_ok": json.dumps({"length_scale": 0.2, "anis_ratio": 1.0, "angle": 0.0}),
    "nan_scale": _edited(_set(data_scale=math.nan)),
    "flipped": _edited(_set(data_scale=-1.0)),
    "eps": _edited(_set(prediction="eps")),
    "nan_scale_renewed": _edited(_set(data_scale=math.nan), "renew"),
    "old_negative_scale": _edited(_set(data_scale=-1.0), "drop"),
    "unknown_prediction": _edited(_set(prediction="score"), "renew"),
    "escape": _edited(_set(weights="../../../etc/passwd"), "renew"),
    "absolute": _edited(_set(weights="/etc/passwd"), "renew"),
    "huge_network": _edited(_network(block_out_channels=[10**6, 10**6, 10**6]), "renew"),
    "partial": _partial_store,
    "pickled": _pickled_weights,
    "no_value": "x,y\n0.1,0.2\n",
    "empty": "",
    "header_only": "x,y,value\n",
    "short_row": "x,y,value\n0.1,0.2\n",
    "outside": "x,y,value\n1.5,0.2,1.0\n0.3,0.4,2.0\n",
}

_MODEL = ("sample", "--n", "2", "--steps", "5", "--out", "{tmp}/s.nc", "--model")
_KRIGE = ("krige", "--prior", "stationary-matern", "--grid", "8", "--out", "{tmp}/k.csv")
_PREDICT = ("predict", "--model", str(MODEL), "--noise-sd", "0.1", "--draws", "4", "--steps")
_PREDICT = (*_PREDICT, "5", "--out", "{tmp}/p.csv")
_MCMC = ("mcmc", "--prior", "stationary-matern", "--grid", "8", "--mcmc-chains", "1")
_MCMC = (*_MCMC, "--mcmc-warmup", "20", "--mcmc-samples", "20", "--draws", "10")
_MCMC = (*_MCMC, "--out", "{tmp}/m.csv")
_TOO_LARGE = "at line 2 (and 11 more) is too large (|value| > 1e+150)"
_CHECKSUM = "model.json was edited or is corrupt (checksum mismatch)"
_SIMULATE = ("simulate", "--prior", "stationary-matern", "--n", "8", "--out", "{tmp}/f.zarr")

CASES = {
    # 1. model.json: covered by a checksum, validated, weights kept in the model folder
    "edited data_scale NaN": ([*_MODEL, "{nan_scale}"], _CHECKSUM),
    "edited data_scale -1": ([*_MODEL, "{flipped}"], _CHECKSUM),
    "edited prediction eps": ([*_MODEL, "{eps}"], _CHECKSUM),
    "data_scale NaN": ([*_MODEL, "{nan_scale_renewed}"], "data_scale must be a finite number > 0"),
    "old, data_scale -1": ([*_MODEL, "{old_negative_scale}"], "data_scale must be a finite"),
    "unknown prediction": ([*_MODEL, "{unknown_prediction}"], "prediction must be one of"),
    "weights outside": ([*_MODEL, "{escape}"], "must be a file name in the model's folder"),
    "weights absolute": ([*_MODEL, "{absolute}"], "must be a file name in the model's folder"),
    "huge network": ([*_MODEL, "{huge_network}"], "this machine has"),
    # 2. values too large, non-finite predictions
    "krige 1e300": ([*_KRIGE, "--obs", "{huge}", "--noise-sd", "0.1"], _TOO_LARGE),
    "mcmc 1e300": ([*_MCMC, "--obs", "{huge}", "--noise-sd", "0.1"], _TOO_LARGE),
    "predict 1e300": ([*_PREDICT, "--obs", "{huge}"], "value column: 9.0347e+299 at line 2"),
    "predict 1e140": (
        [*_PREDICT, "--obs", "{large}"],
        "non-finite predictions (NaN or inf): 4096 of 4096 posterior draws; the observed values "
        "may be too large (max |value| = 1.01e+140); rescale them or use --standardise",
    ),
    # 3. near-duplicates
    "predict near-duplicate": (
        [*_PREDICT, "--obs", "{near}"],
        "observed more than once, first lines [2, 14] 1e-09 apart",
    ),
    "krige near-duplicate": (
        [*_KRIGE, "--obs", "{near}", "--noise-sd", "1e-12"],
        "pass duplicates='merge' (--merge-duplicates)",
    ),
    # 4. bad values and messages
    "negative noise column": (
        [*_KRIGE, "--obs", "{negative_noise}", "--noise-sd", "0.1"],
        "noise_sd column: -0.1 at line 3 is negative",
    ),
    "NaN noise column": (
        [*_KRIGE, "--obs", "{nan_noise}", "--noise-sd", "0.1"],
        "noise_sd column: nan at line 3 is NaN or infinite",
    ),
    "repeated column": (
        [*_KRIGE, "--obs", "{twice}", "--noise-sd", "0.1"],
        "line 1: column name(s) value appear more than once",
    ),
    "line numbers": (
        [*_KRIGE, "--obs", "{commented}", "--noise-sd", "0.1"],
        "line 5: value = 'abc' is not a number",
    ),
    "threshold nan": (
        [
            *_KRIGE,
            "--obs",
            "{obs}",
            "--noise-sd",
            "0.1",
            "--kriging",
            "simple",
            "--theta",
            "{theta_ok}",
            "--threshold",
            "nan",
        ],
        "argument --threshold: expected a finite number, got 'nan'",
    ),
    "predict threshold nan": (
        [*_PREDICT, "--obs", "{obs}", "--threshold", "nan"],
        "argument --threshold: expected a finite number, got 'nan'",
    ),
    "existing output": (
        [*_KRIGE, "--obs", "{obs}", "--noise-sd", "0.1", "--out", "{obs}"],
        "exists; pass --overwrite",
    ),
    "draws file is the output": (
        [*_PREDICT, "--obs", "{obs}", "--draws-out", "{tmp}/p.csv"],
        "must be different files",
    ),
    "particles with daps": (
        [*_PREDICT, "--obs", "{obs}", "--method", "daps", "--particles", "3"],
        "particles",
    ),
    "nan learning rate": (
        ["train", "--prior", "stationary-matern", "--grid", "8", "--lr", "nan", "--out", "{tmp}/r"],
        "argument --lr: expected a number > 0, got 'nan'",
    ),
    "grid with a store": (
        ["train", "--data", "{tmp}/nowhere.zarr", "--grid", "16", "--out", "{tmp}/r"],
        "--grid goes with --prior",
    ),
    "negative length scale in a prior": (
        [
            "krige",
            "--prior",
            "{bad_prior}",
            "--obs",
            "{obs}",
            "--noise-sd",
            "0.1",
            "--out",
            "{tmp}/k.csv",
        ],
        "parameters.length_scale: must be > 0.0; got -0.1",
    ),
    "demo into a file": (
        ["demo", "--out", "{obs}", "--n-obs", "5"],
        "is a file; the demo writes a folder",
    ),
    # files, names and values a careless user gives
    "missing observations file": (
        [*_KRIGE, "--obs", "{tmp}/none.csv", "--noise-sd", "0.1"],
        "none.csv",
    ),
    "missing value column": ([*_KRIGE, "--obs", "{no_value}", "--noise-sd", "0.1"], "value"),
    "empty observations file": ([*_KRIGE, "--obs", "{empty}", "--noise-sd", "0.1"], "empty"),
    "no observations": ([*_KRIGE, "--obs", "{header_only}", "--noise-sd", "0.1"], "observation"),
    "short row": ([*_KRIGE, "--obs", "{short_row}", "--noise-sd", "0.1"], "line 2"),
    "outside the domain": ([*_KRIGE, "--obs", "{outside}", "--noise-sd", "0.1"], "outside"),
    "unknown prior": (
        ["simulate", "--prior", "no-such-prior", "--n", "2", "--out", "{tmp}/f.zarr"],
        "no-such-prior",
    ),
    "unknown model": ([*_MODEL, "no-such-model"], "no model at 'no-such-model'"),
    "pickle as safetensors": ([*_MODEL, "{pickled}"], "model.safetensors"),
    "bad grid": ([*_SIMULATE, "--grid", "1x5"], "grid"),
    "unknown device": ([*_SIMULATE, "--device", "tpu"], "--device must be cpu or cuda"),
    "output folder is a file": (
        [*_KRIGE, "--obs", "{obs}", "--noise-sd", "0.1", "--out", "{obs}/k.csv"],
        "cannot write",
    ),
    "theta string NaN": (
        [
            *_KRIGE,
            "--obs",
            "{obs}",
            "--noise-sd",
            "0.1",
            "--kriging",
            "simple",
            "--theta",
            "{theta}",
        ],
        "parameter length_scale must be a number, got 'NaN'",
    ),
    # 5. memory
    "simulate huge grid": ([*_SIMULATE, "--grid", "100000"], "this machine has"),
    "krige huge grid": (
        [*_KRIGE[:4], "100000", *_KRIGE[5:], "--obs", "{obs}", "--noise-sd", "0.1"],
        "x 12 cross-covariance (kriging) needs",
    ),
    "krige many rows": (
        [*_KRIGE, "--obs", "{many}", "--noise-sd", "0.1"],
        "a 100000 x 100000 covariance (kriging) needs",
    ),
    "predict many rows": ([*_PREDICT, "--obs", "{many}"], "with 100000 observations needs"),
    "sample too many": (
        ["sample", "--model", str(MODEL), "--n", "100000000", "--out", "{tmp}/s.nc"],
        "sampling 100000000 fields of 32x32 needs",
    ),
    "simulate other partial": (
        [*_SIMULATE, "--grid", "32"],
        "holds an interrupted run with other settings",
    ),
}
#: files a row needs that its command line does not name
_NEEDS = {"simulate other partial": ["partial"]}


def _prepare(tmp: Path, argv: list, extra=()) -> list:
    """The command line with its ``{NAME}`` files made under ``tmp``."""
    names = {n for arg in argv for n in FILES if "{" + n + "}" in arg} | set(extra)
    paths = {}
    for name in names:
        made = FILES[name]
        if callable(made):
            paths[name] = made(tmp / name)
        else:
            path = tmp / f"{name}.{'json' if name.startswith('theta') else 'csv'}"
            path.write_text(made)
            paths[name] = path
    return [arg.format(tmp=tmp, **paths) for arg in argv] + ["--quiet"]


def _snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def _status(argv) -> int:
    """What ``geodiff ARGV`` exits with (argparse's own errors exit from parsing)."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    argv, fragment = CASES[case]
    argv = _prepare(tmp_path, argv, _NEEDS.get(case, ()))
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert _status(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"geodiff {argv[0]}: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err and "np.float64" not in err
    assert _snapshot(tmp_path) == before


def _warnings_of(argv, capsys) -> list[str]:
    capsys.readouterr()
    assert main(argv) == 0
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_unfinished_and_older_checkpoints_warn_in_one_line(tmp_path, capsys):
    unfinished = _edited(
        lambda meta: meta["info"].update(step=10, training_config={"steps": 100}), "renew"
    )(tmp_path / "run")
    (unfinished / "state-000000010.json").write_text("{}")
    argv = [*(a.format(tmp=tmp_path) for a in _MODEL[:-1]), "--quiet", "--model"]
    lines = _warnings_of([*argv, str(unfinished)], capsys)
    assert len(lines) == 1 and "unfinished training run (step 10 of 100)" in lines[0], lines
    assert lines[0].startswith("geodiff sample: warning: ")
    (tmp_path / "s.nc").unlink()
    older = _edited(lambda meta: None, "drop")(tmp_path / "older")
    lines = _warnings_of([*argv, str(older)], capsys)
    assert len(lines) == 1 and "has no metadata checksum" in lines[0], lines


def test_shipped_models_carry_the_metadata_checksum():
    from geodiff.diffusion.model import load_model
    from geodiff.models import shipped_models

    for folder in shipped_models().values():
        meta = json.loads((folder / "model.json").read_text())
        assert meta["meta_sha256"] == meta_checksum(meta)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_model(folder)


def test_bom_header_is_read(tmp_path):
    from geodiff.observe import Observations

    path = tmp_path / "bom.csv"
    path.write_text("\ufeff" + _obs_text(), encoding="utf-8")
    obs = Observations.from_csv(path, noise_sd=0.1)
    np.testing.assert_allclose(obs.values, VALUES)


def test_library_messages_show_numbers_not_reprs():
    from geodiff.errors import GeodiffError
    from geodiff.observe import Observations

    with pytest.raises(GeodiffError, match=r"got -0\.1 at index 1$"):
        Observations.at_points(POINTS[:2], VALUES[:2], [0.1, -0.1])


def test_mcmc_ess_of_constant_chains_is_not_negative():
    from geodiff.baselines.mcmc import _diagnose

    assert _diagnose(torch.ones(2, 20))["ess"] == 0.0
    assert _diagnose(torch.randn(2, 20, generator=torch.Generator().manual_seed(0)))["ess"] > 0


def test_ill_conditioned_kriging_warns():
    from geodiff.baselines.kriging import simple_kriging
    from geodiff.fields.config import load_prior
    from geodiff.linalg import IllConditionedWarning
    from geodiff.observe import Observations

    prior = load_prior("stationary-matern")
    # 1e-5 apart is more than the near-duplicate tolerance, and without noise too close
    points = np.vstack([POINTS, POINTS[0] + np.array([3e-6, 0.0])])
    obs = Observations.at_points(points, np.append(VALUES, VALUES[0] + 1.0), 0.0)
    theta = {"length_scale": 0.3, "anis_ratio": 1.0, "angle": 0.0}
    with pytest.warns(IllConditionedWarning, match="ill-conditioned"):
        simple_kriging(prior, theta, obs, POINTS, engine="torch")
    with pytest.warns(IllConditionedWarning, match="ill-conditioned"):
        simple_kriging(prior, theta, obs, POINTS, engine="gstools")


def test_near_duplicates_merge_like_exact_ones():
    from geodiff.observe import Observations

    points = np.vstack([POINTS, POINTS[0] + np.array([1e-9, 0.0])])
    obs = Observations.at_points(
        points, np.append(VALUES, VALUES[0] + 1.0), 0.1, duplicates="merge"
    )
    assert len(obs) == 12 and obs.values[0] == pytest.approx(VALUES[0] + 0.5)


def test_predictions_refuse_non_finite_values():
    from geodiff.errors import GeodiffError
    from geodiff.prediction import Prediction, check_finite

    with pytest.raises(GeodiffError, match=r"non-finite predictions \(NaN or inf\): 1 of 2 means"):
        Prediction(POINTS[:2], np.array([0.0, np.nan]), np.ones(2))
    with pytest.raises(GeodiffError, match=r"max \|value\| = 1e\+140\); rescale them$"):
        check_finite([np.inf], "means", [1e140, -1.0], advice="rescale them")


def test_a_failed_sidecar_says_what_was_written(tmp_path, capsys, monkeypatch):
    """A full disk after the predictions: one line naming what was written; no 0-byte JSON."""
    import geodiff.io

    real = geodiff.io.atomic_write
    out = tmp_path / "k.csv"
    (tmp_path / "k.csv.json").write_text('{"older": true}')

    def full_disk_for_json(path, **kw):
        if str(path).endswith(".json"):
            raise geodiff.io.GeodiffError(f"cannot write {path}: No space left on device")
        return real(path, **kw)

    monkeypatch.setattr(geodiff.io, "atomic_write", full_disk_for_json)
    argv = _prepare(tmp_path, [*_KRIGE, "--obs", "{obs}", "--noise-sd", "0.1", "--overwrite"])
    assert _status(argv) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if ": error: " in x]
    assert len(lines) == 1 and f"wrote {out}, but not its details" in lines[0], lines
    assert "No space left on device" in lines[0] and "Traceback" not in lines[0]
    assert len(out.read_text().splitlines()) == 1 + 64  # the whole 8x8 grid and a header
    assert (tmp_path / "k.csv.json").read_text() == '{"older": true}'
