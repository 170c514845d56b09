"""Priors derived from data, and the coverage check of a trained model's prior.

Exact references (the domain rule, equivariance, the unit conversion, the range of known
distributions) and power checks in the same file: a range that contains the truth must
also move away from it when the data's scale moves.
"""

import functools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from geodiff import GeodiffError, StationaryPrior
from geodiff.fields.config import load_prior, prior_from_config, tomllib
from geodiff.fields.from_data import (
    MIN_POINTS,
    PriorRangeWarning,
    check_prior_coverage,
    length_scale_range,
    prior_coverage,
    prior_from_data,
    prior_toml,
    write_prior_from_data,
)
from geodiff.fields.parameters import LogNormal
from geodiff.observe import Observations
from geodiff.transform import DomainMap

TRUE_ELL, TRUE_VAR = 0.12, 2.0
UNIT = ((0.0, 1.0), (0.0, 1.0))


@functools.lru_cache
def _field(ell: float, n: int = 150, seed: int = 0):
    """Exact draw of a Matérn(1.5) field at ``n`` uniform points of the unit square.

    Returns
    -------
    (numpy.ndarray of shape (n, 2), numpy.ndarray of shape (n,))
    """
    prior = StationaryPrior("matern", nu=1.5, variance=TRUE_VAR, length_scale=ell)
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.0, 1.0, (n, 2))
    cov = prior.covariance(pts, pts, prior.complete_theta({}))[0].numpy()
    values = np.linalg.cholesky(cov + 1e-10 * np.eye(n)) @ rng.normal(size=n)
    return pts, values + 5.0 + 0.05 * rng.normal(size=n)


def _obs(ell=TRUE_ELL, scale=1.0, shift=0.0, value_scale=1.0):
    pts, values = _field(ell)
    return Observations.at_points(pts * scale + shift, values * value_scale, 0.05 * value_scale)


@functools.lru_cache
def _config(ell=TRUE_ELL, scale=1.0, shift=0.0, value_scale=1.0, margin=0.1):
    return prior_from_data(_obs(ell, scale, shift, value_scale), margin=margin)


def _range(config, key):
    spec = config["parameters"][key]
    return spec["low"], spec["high"]


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize("margin", [0.1, 0.25])
def test_written_prior_reads_back_with_the_documented_domain(tmp_path, margin):
    obs = _obs()
    path = write_prior_from_data(obs, tmp_path / "prior.toml", margin=margin)
    prior = load_prior(path)
    config = _config(margin=margin)
    assert prior.to_config()["parameters"] == config["parameters"]
    assert prior.name == config["name"] and prior.family.name == "matern"
    pts = obs.locations
    lo, hi = pts.min(0), pts.max(0)
    pad = margin * max(hi - lo)
    expected = ((lo[0] - pad, hi[0] + pad), (lo[1] - pad, hi[1] + pad))
    assert prior.domain == expected  # exactly the documented margin
    obs.check_inside(prior.domain)  # every observation inside
    text = path.read_text()
    assert "partial sill" in text and "measurement noise is inferred separately" in text
    assert prior.parameters["nugget"].value == 0.0
    assert prior.parameters["nu"].value == 1.5


def test_existing_file_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "prior.toml"
    path.write_text("keep me")
    with pytest.raises(GeodiffError, match="exists"):
        write_prior_from_data(_obs(), path)
    assert path.read_text() == "keep me"
    write_prior_from_data(_obs(), path, overwrite=True)
    assert load_prior(path).to_config()["parameters"] == _config()["parameters"]


def test_toml_writer_round_trips_shipped_priors():
    for name in ("stationary-matern", "nonstationary-anisotropy"):
        config = load_prior(name).to_config()
        rebuilt = prior_from_config(tomllib.loads(prior_toml(config)))
        assert rebuilt.to_config() == config


# ------------------------------------------------------- truth and power checks
def test_ranges_contain_the_truth_and_move_with_the_data():
    config = _config()
    low, high = _range(config, "length_scale")
    assert low < TRUE_ELL < high
    v_low, v_high = _range(config, "variance")
    assert v_low < TRUE_VAR < v_high
    assert _range(config, "anis_ratio") == (0.4, 1.0)
    assert _range(config, "angle") == (0.0, math.pi)
    # power: ten times the length scale on the same stations leaves the true one out
    long_low, _ = _range(_config(ell=10 * TRUE_ELL), "length_scale")
    assert long_low > TRUE_ELL
    # power: ten times the values leaves the true variance out
    big_low, _ = _range(_config(value_scale=10.0), "variance")
    assert big_low > TRUE_VAR


def test_scaling_coordinates_scales_domain_and_length_range_exactly():
    c, shift = 37.5, 1234.0
    base, scaled = _config(), _config(scale=c, shift=shift)
    np.testing.assert_allclose(
        np.array(scaled["domain"]), c * np.array(base["domain"]) + shift, rtol=1e-6
    )
    np.testing.assert_allclose(
        _range(scaled, "length_scale"), c * np.array(_range(base, "length_scale")), rtol=1e-6
    )
    np.testing.assert_allclose(_range(scaled, "variance"), _range(base, "variance"), rtol=1e-6)
    # values scaled by k: the variance range by k**2, the length range unchanged
    k = 10.0
    values_scaled = _config(value_scale=k)
    np.testing.assert_allclose(
        _range(values_scaled, "variance"), k**2 * np.array(_range(base, "variance")), rtol=1e-6
    )
    np.testing.assert_allclose(
        _range(values_scaled, "length_scale"), _range(base, "length_scale"), rtol=1e-6
    )


# --------------------------------------------------------------------- coverage
def test_length_scale_range_of_known_priors():
    assert length_scale_range(load_prior("stationary-matern")) == (0.05, 0.3)
    ns = length_scale_range(load_prior("nonstationary-anisotropy"))
    np.testing.assert_allclose(ns, (0.08 * math.exp(-0.8), 0.25 * math.exp(0.8)), rtol=1e-12)
    assert length_scale_range(StationaryPrior("matern", nu=1.5, length_scale=0.2)) == (0.2, 0.2)
    lognormal = StationaryPrior("matern", nu=1.5, length_scale=LogNormal(0.1, 0.5))
    q = stats.lognorm(s=0.5, scale=0.1).ppf([0.01, 0.99])
    np.testing.assert_allclose(length_scale_range(lognormal), q, rtol=1e-9)


def test_coverage_converts_units_and_warns_only_outside():
    prior = load_prior("stationary-matern")  # length scales 0.05 - 0.3 of a unit square
    metres = 1000.0
    inside_obs, outside_obs = _obs(scale=metres), _obs(ell=10 * TRUE_ELL, scale=metres)
    dmap = DomainMap.fit(inside_obs, UNIT)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorRangeWarning)
        inside = check_prior_coverage(prior, dmap, inside_obs, unit="m")
    scale = dmap.coordinate_scale
    assert inside.model_range == (0.05, 0.3)
    assert inside.physical_range == (0.05 / scale, 0.3 / scale)  # exactly
    assert inside.inside is True
    assert 0.05 / scale < inside.data_length_scale < 0.3 / scale
    assert "m;" in inside.message() and "(inside)" in inside.message()
    dmap = DomainMap.fit(outside_obs, UNIT)
    with pytest.warns(PriorRangeWarning, match="outside: predictions lean on the prior's shorter"):
        outside = check_prior_coverage(prior, dmap, outside_obs, unit="m")
    assert outside.inside is False and outside.data_length_scale > outside.physical_range[1]
    bare = prior_coverage(prior, dmap)
    assert bare.inside is None and "could not be fitted" in bare.message()


# ----------------------------------------------------------------------- errors
def test_bad_observations_give_one_clear_error():
    rng = np.random.default_rng(3)
    few = Observations.at_points(rng.uniform(0, 1, (3, 2)), rng.normal(size=3))
    with pytest.raises(GeodiffError, match=f"3 observations are too few.*at least {MIN_POINTS}"):
        prior_from_data(few)
    t = rng.uniform(0, 1, 20)
    line = Observations.at_points(np.column_stack([t, 2 * t + 1]), rng.normal(size=20))
    with pytest.raises(GeodiffError, match="collinear"):
        prior_from_data(line)
    flat = Observations.at_points(np.column_stack([t, np.full(20, 0.5)]), rng.normal(size=20))
    with pytest.raises(GeodiffError, match=r"collinear.*zero area"):
        prior_from_data(flat)
    constant = Observations.at_points(rng.uniform(0, 1, (20, 2)), np.full(20, 4.0))
    with pytest.raises(GeodiffError, match="constant values"):
        prior_from_data(constant)
    lo = rng.uniform(0, 1, (20, 2))
    blocks = np.column_stack([lo[:, 0], lo[:, 0] + 0.01, lo[:, 1], lo[:, 1] + 0.01])
    with pytest.raises(GeodiffError, match="point observations"):
        prior_from_data(Observations.of_blocks(blocks, rng.normal(size=20)))
    with pytest.raises(GeodiffError, match="NaN"):  # refused where observations are built
        Observations.at_points(rng.uniform(0, 1, (20, 2)), np.r_[np.nan, np.zeros(19)])
    with pytest.raises(GeodiffError, match="margin"):
        prior_from_data(_obs(), margin=-1.0)
