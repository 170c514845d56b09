import pytest
import torch
from numpy.testing import assert_allclose
from shared import MINIMAL_TOML

from geodiff import ConfigError, Grid
from geodiff.fields.config import builtin_priors, load_prior, prior_from_config

SHIPPED = ["stationary-matern", "nonstationary-anisotropy"]


def _write(tmp_path, text):
    path = tmp_path / "prior.toml"
    path.write_text(text)
    return path


def test_shipped_priors_are_listed_and_load():
    assert set(SHIPPED) <= set(builtin_priors())
    assert load_prior("stationary-matern").is_stationary
    assert not load_prior("nonstationary-anisotropy").is_stationary


@pytest.mark.parametrize("name", SHIPPED)
def test_config_round_trip_gives_the_same_prior(name):
    prior = load_prior(name)
    again = prior_from_config(prior.to_config())
    theta = prior.sample_theta(2, 0)
    pts = Grid.square(5).points()
    assert_allclose(prior.covariance(pts, pts, theta), again.covariance(pts, pts, theta))
    assert all(torch.equal(theta[k], again.sample_theta(2, 0)[k]) for k in theta)


def test_a_hand_written_file_loads(tmp_path):
    prior = load_prior(_write(tmp_path, MINIMAL_TOML))
    assert prior.family.name == "matern" and prior.parameters["length_scale"].value == 0.2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("length_scale = 0.2", "length_scale = -0.1"), "length_scale: must be > 0"),
        (('family = "matern"', 'family = "bessel"'), "unknown covariance family 'bessel'"),
        (('type = "stationary"\n', ""), "missing key 'type'"),
        (("nu = 1.5\n", ""), r"missing parameter\(s\) \['nu'\]"),
        (("nu = 1.5", "nu = 25.0"), "nu: must be > 0.0 and <= 20.0"),
        (("nu = 1.5", "nu = 1.5\nsill = 2"), r"unknown parameter\(s\) \['sill'\]"),
        (
            (
                "length_scale = 0.2",
                'length_scale = { distribution = "normal", loc = 0.2, scale = 0.1 }',
            ),
            "support",
        ),
        (
            (
                "length_scale = 0.2",
                'length_scale = { distribution = "uniform", low = 0.3, high = 0.1 }',
            ),
            "low < high",
        ),
        (
            ("length_scale = 0.2", 'length_scale = { distribution = "gamma" }'),
            "'distribution' must be",
        ),
        (("length_scale = 0.2", 'length_scale = "long"'), "expected a finite number"),
        (
            (
                "length_scale = 0.2",
                "length_scale = { map = { len_scale = 0.3 }, median = 0.1, log_sd = 0.2 }",
            ),
            "only the local parameters of a nonstationary or spde prior",
        ),
        (('family = "matern"', 'family = "matern"\ndomain = [[0, 1], [2, 1]]'), "min < max"),
    ],
)
def test_bad_configs_give_clear_errors(tmp_path, edit, message):
    old, new = edit
    assert old in MINIMAL_TOML
    with pytest.raises(ConfigError, match=message):
        load_prior(_write(tmp_path, MINIMAL_TOML.replace(old, new)))


def test_map_errors(tmp_path):
    text = MINIMAL_TOML.replace('"stationary"', '"nonstationary"').replace(
        "length_scale = 0.2",
        "length_scale = { map = { knots = 1, len_scale = 0.3 }, median = 0.1, log_sd = 0.2 }",
    )
    with pytest.raises(ConfigError, match="knots"):
        load_prior(_write(tmp_path, text))
    with pytest.raises(ConfigError, match="missing"):
        load_prior(_write(tmp_path, text.replace(", log_sd = 0.2", "")))


def test_spherical_is_refused_for_nonstationary_priors(tmp_path):
    text = MINIMAL_TOML.replace('"stationary"', '"nonstationary"').replace(
        '"matern"', '"spherical"'
    )
    with pytest.raises(ConfigError, match="positive definite in every dimension"):
        load_prior(_write(tmp_path, text.replace("nu = 1.5\n", "")))


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="no prior config"):
        load_prior(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_prior(_write(tmp_path, "type = "))


def test_the_readme_example_prior_is_valid(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    prior = load_prior(_write(tmp_path, block))
    assert prior.domain == ((0.0, 1000.0), (0.0, 800.0)) and "length_scale" in prior.map_parameters
    from geodiff import simulate

    sim = simulate(prior, Grid((6, 5), prior.domain), 2, seed=0)
    assert torch.isfinite(sim.fields).all()


def test_open_supports_may_touch_a_strict_bound():
    from geodiff.fields.parameters import HalfNormal, LogNormal
    from geodiff.fields.prior import StationaryPrior

    prior = StationaryPrior(
        "matern", nu=1.5, variance=LogNormal(1.0, 0.5), length_scale=HalfNormal(0.2)
    )
    theta = prior.sample_theta(50, 0)
    assert (theta["variance"] > 0).all() and (theta["length_scale"] > 0).all()
