"""Cross-validation: folds, scores by hand, kriging wiring, physical units, bad input, Meuse."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from geodiff import GeodiffError, Observations, ordinary_kriging
from geodiff.diffusion.model import load_model
from geodiff.evaluate.crossval import CrossValidation, assign_folds, cross_validate, point_summaries

MODEL = Path(__file__).resolve().parents[1] / "data" / "stationary-matern-32"
FAST = {"draws": 19, "progress": False}
#: short runs of each sampled method
QUICK = {"diffusion": {"steps": 4}, "mcmc": {"warmup": 15, "samples": 15},
         "mcmc-grid": {"warmup": 15, "samples": 15}}  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def _data(n=24, origin=(180000.0, 330000.0), metres=1000.0, shift=0.0, scale=1.0, tau=0.1):
    """A smooth surface sampled at n points of a ``metres``-wide square, in chosen units."""
    rng = np.random.default_rng(5)
    unit = rng.uniform(0.0, 1.0, (n, 2))
    values = np.sin(3 * unit[:, 0]) + np.cos(2 * unit[:, 1]) + 0.1 * rng.standard_normal(n)
    return Observations.at_points(
        np.asarray(origin) + metres * unit, shift + scale * values, scale * tau
    )


# ------------------------------------------------------------------------- folds
def test_folds_partition_the_points_and_follow_the_seed():
    fold = assign_folds(23, 5, seed=3)
    assert fold.shape == (23,) and set(fold.tolist()) == set(range(5))
    sizes = np.bincount(fold)
    assert sizes.sum() == 23 and sizes.max() - sizes.min() <= 1  # each point in one fold
    np.testing.assert_array_equal(fold, assign_folds(23, 5, seed=3))
    assert not np.array_equal(fold, assign_folds(23, 5, seed=4))
    # the documented rule: the k-th point of default_rng(seed).permutation goes to fold k % K
    perm = np.random.default_rng(3).permutation(23)
    np.testing.assert_array_equal(fold[perm], np.arange(23) % 5)
    np.testing.assert_array_equal(np.sort(assign_folds(7, 7)), np.arange(7))  # leave-one-out


# ------------------------------------------------------------------------ scores
def test_point_summaries_agree_with_hand_computation():
    rng = np.random.default_rng(0)
    truth = np.array([0.3, -1.0, 2.5])
    for s, k in ((19, 1), (39, 2)):
        draws = rng.normal(size=(s, 3))
        out = point_summaries(truth, draws)
        ordered = np.sort(draws, axis=0)
        np.testing.assert_allclose(out["lower"], ordered[k - 1])
        np.testing.assert_allclose(out["upper"], ordered[s - k])
        fair = np.abs(draws - truth).mean(0) - np.abs(draws[:, None] - draws[None]).sum((0, 1)) / (
            2 * s * (s - 1)
        )
        np.testing.assert_allclose(out["crps"], fair, rtol=1e-10)
        np.testing.assert_allclose(out["mean"], draws.mean(0))
        np.testing.assert_allclose(out["sd"], draws.std(0, ddof=1))
        inside = (truth >= ordered[k - 1]) & (truth <= ordered[s - k])
        np.testing.assert_array_equal(out["covered"], inside.astype(float))
    mean, sd = np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.5, 2.0])  # z = 0.3, -3, 0.75
    out = point_summaries(truth, mean=mean, sd=sd)
    z = (truth - mean) / sd
    closed = sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
    np.testing.assert_allclose(out["crps"], closed, rtol=1e-10)
    np.testing.assert_allclose(out["upper"] - mean, 1.6448536 * sd, rtol=1e-6)
    np.testing.assert_array_equal(out["covered"], [1.0, 0.0, 1.0])


def test_scores_and_comparisons_by_hand():
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    cv = CrossValidation(np.zeros((4, 2)), truth, np.zeros(4), np.array([0, 1, 0, 1]), ("a", "b"))
    cv.mean = {"a": truth + np.array([0.5, -0.5, 1.0, 0.0]), "b": truth}
    cv.sd = {"a": np.ones(4), "b": np.full(4, 2.0)}
    cv.lower = {"a": truth - np.array([1, 1, 0.5, 1]), "b": truth + 0.1}
    cv.upper = {"a": truth + 1, "b": truth + 1}
    cv.crps = {"a": np.array([0.1, 0.2, 0.3, 0.4]), "b": np.array([0.2, 0.2, 0.2, 0.2])}
    cv.seconds = {"a": np.array([1.0, 2.0]), "b": np.array([0.5, 0.5])}
    s = cv.scores()
    assert s["a"]["crps"] == pytest.approx(0.25)
    assert s["a"]["crps_se"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4], ddof=1) / 2)
    sq = np.array([0.25, 0.25, 1.0, 0.0])
    assert s["a"]["rmse"] == pytest.approx(math.sqrt(0.375))
    assert s["a"]["rmse_se"] == pytest.approx(sq.std(ddof=1) / 2 / (2 * math.sqrt(0.375)))
    assert s["a"]["cover90"] == 1.0 and s["b"]["cover90"] == 0.0
    assert s["a"]["cover90_se"] == 0.0 and s["a"]["seconds"] == 3.0
    assert s["b"]["rmse"] == 0.0 and s["b"]["mean_sd"] == 2.0
    d, e = cv.compare("b")["a"]
    assert d == pytest.approx(0.05)
    assert e == pytest.approx(np.std([-0.1, 0.0, 0.1, 0.2], ddof=1) / 2)
    d, _ = cv.compare("b", "squared_error")["a"]
    assert d == pytest.approx(0.375)
    assert "| a | 0.2500 ± " in cv.table()
    with pytest.raises(GeodiffError, match="no method"):
        cv.compare("c")


# ------------------------------------------------------------------- exact wiring
def test_kriging_cross_validation_is_kriging_of_the_other_folds(model):
    """Each held-out prediction equals ordinary kriging from exactly the other folds."""
    obs = _data(n=27)
    cv = cross_validate(model, obs, folds=3, methods=("kriging-ok",), seed=2, progress=False)
    np.testing.assert_array_equal(cv.fold, assign_folds(27, 3, seed=2))
    for f in range(3):
        test = cv.fold == f
        pred = ordinary_kriging(obs.subset(~test), obs.locations[test], shape={"nu": 1.5})
        sd = np.sqrt(pred.sd**2 + obs.noise_sd[test] ** 2 + pred.info["fit"]["nugget"])
        np.testing.assert_allclose(cv.mean["kriging-ok"][test], pred.mean, rtol=1e-10)
        np.testing.assert_allclose(cv.sd["kriging-ok"][test], sd, rtol=1e-10)
    field_only = cross_validate(
        model, obs, folds=3, methods="kriging-ok", seed=2, quantity="field", progress=False
    )
    assert (field_only.sd["kriging-ok"] < cv.sd["kriging-ok"]).all()


@pytest.mark.filterwarnings("ignore::geodiff.baselines.mcmc.MCMCWarning")  # short chains
def test_predictions_follow_the_units_of_the_data(model):
    """Data in other coordinates and units give the same predictions, mapped."""
    methods = QUICK
    base = cross_validate(model, _data(), folds=2, methods=methods, **FAST)
    shift, scale = 5.0e4, 1000.0
    other = _data(origin=(-3.0, 7.0), metres=2.0, shift=shift, scale=scale)
    moved = cross_validate(model, other, folds=2, methods=methods, **FAST)
    data_sd = other.values.std()
    for m in methods:
        mean, sd = moved.mean[m], moved.sd[m]
        assert np.isfinite(mean).all() and np.isfinite(sd).all()
        # physical units: around the data, with a spread of the data's order
        assert (np.abs(mean - other.values.mean()) < 3 * data_sd).all()
        assert 0.05 * data_sd < np.median(sd) < 3 * data_sd
        np.testing.assert_allclose(mean, shift + scale * base.mean[m], rtol=0, atol=1e-3 * scale)
        np.testing.assert_allclose(sd, scale * base.sd[m], rtol=1e-3)
        np.testing.assert_allclose(moved.crps[m], scale * base.crps[m], rtol=1e-3, atol=1e-3)
        assert moved.draws[m].shape == (19, 24)
    # NUTS runs in the model's units: the same chains, so the same R-hat, in any units
    rhat = [i["max_rhat"] for i in moved.info["mcmc"]]
    assert len(rhat) == 2 and np.isfinite(rhat).all()
    assert rhat == pytest.approx([i["max_rhat"] for i in base.info["mcmc"]], rel=1e-3)


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_refused_clearly(model):
    obs = _data(n=12)
    with pytest.raises(GeodiffError, match="folds >= 2"):
        cross_validate(model, obs, folds=1)
    with pytest.raises(GeodiffError, match="folds >= 2"):
        cross_validate(model, obs, folds=2.5)
    with pytest.raises(GeodiffError, match="13 folds for 12 points"):
        cross_validate(model, obs, folds=13, methods=("diffusion",))
    with pytest.raises(GeodiffError, match="unknown method"):
        cross_validate(model, obs, methods=("diffusion", "gpr"))
    with pytest.raises(GeodiffError, match="multiple of 20"):
        cross_validate(model, obs, draws=20)
    with pytest.raises(GeodiffError, match="too few points per fold"):
        cross_validate(model, _data(n=8), folds=4, methods=("kriging-ok",))
    with pytest.raises(GeodiffError, match="raise its samples"):
        cross_validate(model, obs, methods={"mcmc": {"samples": 5}})
    with pytest.raises(GeodiffError, match="repeated"):
        cross_validate(model, obs, methods=("kriging-ok", "kriging-ok"))
    blocks = Observations.of_blocks([[0.1, 0.2, 0.1, 0.2], [0.5, 0.6, 0.5, 0.7]], [1.0, 2.0], 0.1)
    with pytest.raises(GeodiffError, match="point observations"):
        cross_validate(model, blocks, folds=2)
    with pytest.raises(GeodiffError, match="not finite"):
        point_summaries([0.0, 1.0], np.full((19, 2), np.nan))
    with pytest.raises(GeodiffError, match="multiple of 20"):
        point_summaries([0.0, 1.0], np.zeros((10, 2)))
    a = CrossValidation(np.zeros((3, 2)), np.zeros(3), np.zeros(3), np.array([0, 1, 0]), ())
    b = CrossValidation(np.zeros((3, 2)), np.zeros(3), np.zeros(3), np.array([1, 0, 1]), ())
    with pytest.raises(GeodiffError, match="other data or folds"):
        CrossValidation.combine([a, b])


# --------------------------------------------------------------------------- Meuse
def test_meuse_loads_155_points_in_metres():
    pytest.importorskip("skgstat")
    from geodiff.realdata import meuse, meuse_table

    obs = meuse()
    assert len(obs) == 155 and np.isfinite(obs.values).all()
    x, y = obs.locations.T
    assert 178_000 < x.min() < x.max() < 182_000 and 329_000 < y.min() < y.max() < 334_000
    table = meuse_table()
    np.testing.assert_allclose(obs.values, np.log(table["zinc"]))
    assert table["zinc"].min() == 113 and table["zinc"].max() == 1839  # ppm
    tau = obs.noise_sd
    assert np.ptp(tau) == 0 and 0.05 < tau[0] < 0.5  # the REML nugget, in log units
    raw = meuse("copper", log=False, noise_sd=2.0)
    np.testing.assert_allclose(raw.values, table["copper"])
    np.testing.assert_array_equal(raw.noise_sd, 2.0)
    with pytest.raises(GeodiffError, match="unknown Meuse variable"):
        meuse("gold")


def test_meuse_without_scikit_gstat_says_how_to_install(monkeypatch):
    from geodiff import realdata

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "skgstat" else real(name, *a)
    )
    with pytest.raises(GeodiffError, match=r'pip install -e "\.\[meuse\]"'):
        realdata.meuse()


def test_meuse_example_runs_in_smoke_mode(tmp_path):
    pytest.importorskip("skgstat")  # the optional "meuse" extra (installed by ".[test]")
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "meuse"
    done = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "meuse.py"),
            "--smoke",
            "--quiet",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = (out / "report.md").read_text()  # the user's workflow: ppm, blocked, inferred noise
    assert "| diffusion posterior (MMPS, τ sampled) |" in report
    assert "| ordinary kriging (REML, nugget plug-in) |" in report
    assert "90% coverage of new measurements" in report and "spatially blocked" in report
