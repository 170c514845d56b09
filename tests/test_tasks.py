"""One task builder for every method: exact equivariance of the domain map, noise modes,
transforms and the bad input every command refuses the same way."""

from pathlib import Path

import numpy as np
import pytest

from geodiff import GeodiffError, Observations
from geodiff.anamorphosis import SkewWarning
from geodiff.diffusion.model import load_model
from geodiff.evaluate.predictors import run_predictor
from geodiff.evaluate.tasks import build_task, read_observations
from geodiff.noise import NoiseModel

MODEL = Path(__file__).resolve().parents[1] / "data" / "stationary-matern-32"
THETA = {"length_scale": 0.2, "anis_ratio": 0.8, "angle": 0.3}
# (method, options, noise modes): every method of the registry, each noise mode it offers
CASES = [
    ("kriging-ok", {}, ("given", "reml")),
    ("kriging-oracle", {}, ("given", "reml")),
    ("mcmc", {"warmup": 10, "samples": 20, "chains": 1, "jit": False}, ("reml", "bayes")),
    ("diffusion", {"steps": 3, "noise_sweeps": 2}, ("given", "bayes")),
]


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def _obs(origin=(0.0, 0.0), metres=1.0, shift=0.0, scale=1.0, tau=0.1, n=30):
    rng = np.random.default_rng(4)
    unit = rng.uniform(0.1, 0.9, (n, 2))
    values = np.sin(4 * unit[:, 0]) + np.cos(3 * unit[:, 1]) + 0.1 * rng.standard_normal(n)
    points = np.asarray(origin) + metres * unit
    return Observations.at_points(points, shift + scale * values, scale * tau), points


def _predict(model, name, options, noise, origin, metres, shift, scale):
    obs, _ = _obs(origin, metres, shift, scale)
    targets = np.asarray(origin) + metres * np.array([[0.3, 0.4], [0.7, 0.2], [0.5, 0.8]])
    theta = THETA if name == "kriging-oracle" else None
    task = build_task(obs, targets, model=model, noise=noise, domain="auto", standardise=True,
                      theta=theta)  # fmt: skip
    opts = {k: v for k, v in options.items() if not (k == "noise_sweeps" and noise != "bayes")}
    return run_predictor(name, task, draws=19, seed=3, quantity="measurement", **opts)


@pytest.mark.filterwarnings("ignore::geodiff.baselines.mcmc.MCMCWarning")  # short chains
@pytest.mark.filterwarnings("ignore::geodiff.fields.fit.FitWarning")
@pytest.mark.parametrize(("name", "options", "modes"), CASES, ids=[c[0] for c in CASES])
def test_every_method_is_equivariant_under_the_domain_map(model, name, options, modes):
    """Coordinates translated and scaled, values shifted and scaled: predictions follow.

    Power check: a map that forgot the value scale (or shift) fails the same assertion.
    """
    origin, metres, shift, scale = (1.8e5, 3.3e5), 4000.0, 50.0, 12.0
    for noise in modes:
        base = _predict(model, name, options, noise, (0.0, 0.0), 1.0, 0.0, 1.0)
        moved = _predict(model, name, options, noise, origin, metres, shift, scale)
        tol = {"rtol": 1e-5, "atol": 1e-5 * scale}
        np.testing.assert_allclose(moved.mean, shift + scale * base.mean, **tol)
        np.testing.assert_allclose(moved.sd, scale * base.sd, **tol)
        np.testing.assert_allclose(moved.quantiles([0.05, 0.95]),
                                   shift + scale * base.quantiles([0.05, 0.95]), **tol)  # fmt: skip
        assert not np.allclose(moved.mean, shift + 1.1 * scale * base.mean, **tol)
        assert not np.allclose(moved.sd, 1.1 * scale * base.sd, **tol)
        assert moved.quantity == "measurement"


@pytest.mark.filterwarnings("ignore::geodiff.fields.fit.FitWarning")
def test_a_measurement_is_wider_than_the_field_by_the_inferred_noise(model):
    obs, _ = _obs(tau=0.0)
    targets = np.array([[0.3, 0.4], [0.7, 0.2]])
    task = build_task(obs, targets, model=model, noise="reml", domain="auto", standardise=True)
    field = run_predictor("kriging-ok", task, quantity="field")
    new = run_predictor("kriging-ok", task, quantity="measurement")
    tau = field.noise_sd
    np.testing.assert_allclose(new.sd, np.sqrt(field.sd**2 + tau**2), rtol=1e-12)
    assert tau > 0 and not np.allclose(new.sd, field.sd)


def test_a_log_transform_back_transforms_the_prediction(model):
    obs, _ = _obs()
    positive = Observations.at_points(obs.locations, np.exp(obs.values), 0.0)
    targets = np.array([[0.3, 0.4], [0.7, 0.2]])
    task = build_task(positive, targets, model=model, noise="reml", transform="log",
                      domain="auto", standardise=True)  # fmt: skip
    pred = run_predictor("kriging-ok", task, quantity="measurement")
    latent = build_task(Observations.at_points(obs.locations, obs.values, 0.0), targets,
                        model=model, noise="reml", domain="auto", standardise=True)  # fmt: skip
    ref = run_predictor("kriging-ok", latent, quantity="measurement")
    np.testing.assert_allclose(pred.quantiles([0.05, 0.5, 0.95]),
                               np.exp(ref.quantiles([0.05, 0.5, 0.95])), rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(pred.mean, np.exp(ref.mean + ref.sd**2 / 2), rtol=1e-6)
    assert not np.allclose(pred.mean, np.exp(ref.mean), rtol=1e-3)  # the naive back-transform


def test_skewed_values_without_a_transform_get_a_warning(model):
    rng = np.random.default_rng(0)
    obs = Observations.at_points(rng.uniform(0.1, 0.9, (40, 2)), rng.lognormal(0, 1.2, 40), 0.0)
    with pytest.warns(SkewWarning, match="skew"):
        build_task(obs, "grid", model=model, noise="reml")


def test_noise_modes_from_files(tmp_path):
    without = tmp_path / "a.csv"
    without.write_text("x,y,value\n0.1,0.2,1\n0.4,0.5,2\n")
    with_column = tmp_path / "b.csv"
    with_column.write_text("x,y,value,noise_sd\n0.1,0.2,1,0.3\n0.4,0.5,2,0.3\n")
    assert read_observations(without)[1] == "bayes"
    assert read_observations(without, "reml")[1] == "reml"
    obs, mode = read_observations(without, 0.2)
    assert mode == "given" and (obs.noise_sd == 0.2).all()
    obs, mode = read_observations(with_column)
    assert mode == "given" and (obs.noise_sd == 0.3).all()
    assert read_observations(with_column, "bayes")[1] == "bayes"  # a nugget on top
    obs, mode = read_observations(without, 0.2, noise="reml")  # known part + a nugget
    assert mode is NoiseModel.REML and (obs.noise_sd == 0.2).all()
    assert read_observations(with_column, noise="given")[1] is NoiseModel.GIVEN
    with pytest.raises(GeodiffError, match="neither --noise-sd nor a noise_sd column"):
        read_observations(without, noise="given")
    with pytest.raises(GeodiffError, match="unknown noise mode 'exact'; choose from given"):
        read_observations(without, noise="exact")


def test_the_noise_model_is_one_type_that_still_reads_as_its_name():
    assert NoiseModel.parse("reml") is NoiseModel.REML and NoiseModel.REML == "reml"
    assert [m.inferred for m in NoiseModel] == [False, True, True]
    assert [m.sampled for m in NoiseModel] == [False, False, True]
    with pytest.raises(GeodiffError, match="unknown noise mode"):
        NoiseModel.parse("ml")


@pytest.mark.parametrize(
    ("points", "values", "message"),
    [
        ([[0.1, 0.2]], [1.0], "at least 2"),
        ([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.5, 0.5]], [1.0, 2.0, 1.0, 3.0], "one line"),
        ([[0.1, 0.2], [0.5, 0.1], [0.3, 0.7]], [2.0, 2.0, 2.0], "equal"),
    ],
)
def test_data_no_method_can_use_get_one_clear_error(model, points, values, message):
    obs = Observations.at_points(points, values, 0.0)
    with pytest.raises(GeodiffError, match=message):
        build_task(obs, "grid", model=model, noise="bayes", domain="auto", standardise=True)


def test_values_far_from_the_prior_scale_are_standardised_with_a_warning(model):
    """A new user's rain gauges (mean 8, sd 8 mm) on a unit-variance prior: the safe path
    is the default. The same values near the prior's scale are left alone (the check's
    power runs both ways), and ``standardise=False`` keeps far values as they are."""
    from geodiff.evaluate.tasks import ValueScaleWarning

    obs, _ = _obs(origin=(5.0, 45.0), metres=0.8, shift=8.0, scale=8.0)
    with pytest.warns(ValueScaleWarning, match="far from the prior's scale"):
        task = build_task(obs, "grid", model=model, noise="given", domain="auto")
    assert task.domain_map.value_shift == pytest.approx(np.mean(obs.values))
    near, _ = _obs(origin=(5.0, 45.0), metres=0.8)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ValueScaleWarning)
        kept = build_task(near, "grid", model=model, noise="given", domain="auto")
        raw = build_task(obs, "grid", model=model, noise="given", domain="auto",
                         standardise=False)  # fmt: skip
    assert kept.domain_map.value_shift == 0.0 and kept.domain_map.value_scale == 1.0
    assert raw.domain_map.value_shift == 0.0


def test_coordinates_that_look_like_degrees_get_a_warning(model):
    """Rain gauges in longitude/latitude at 47 N: one scale for both axes would stretch
    east-west distances by 1.47 without a word. Projected coordinates (metres) of the same
    stations pass silently (the check does not fire on every small box)."""
    import warnings

    from geodiff.evaluate.tasks import DegreesWarning

    obs, _ = _obs(origin=(7.0, 46.5), metres=1.5)
    with pytest.warns(DegreesWarning, match=r"1/cos\(47°\) = 1.47"):
        build_task(obs, "grid", model=model, noise="given", domain="auto", standardise=False)
    metres, _ = _obs(origin=(4.2e5, 5.15e6), metres=1.1e5)
    equator, _ = _obs(origin=(30.0, -1.0), metres=1.5)  # near the equator: no distortion
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegreesWarning)
        build_task(metres, "grid", model=model, noise="given", domain="auto", standardise=False)
        build_task(equator, "grid", model=model, noise="given", domain="auto", standardise=False)
