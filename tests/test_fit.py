"""The plug-in baseline: fitted covariances and ordinary kriging."""

import math
import warnings

import numpy as np
import pytest

from geodiff import GeodiffError, Grid, StationaryPrior, simulate
from geodiff.baselines.kriging import ordinary_kriging
from geodiff.fields.fit import FitWarning, fit_covariance
from geodiff.observe import Observations

TRUTH = {"variance": 2.0, "length_scale": 0.15, "anis_ratio": 0.5, "angle": 0.7}
GRID = Grid.square(48)


def _observed_field(n=120, seed=0, noise=0.05, offset=3.0):
    prior = StationaryPrior("matern", nu=1.5, **TRUTH)
    field = simulate(prior, GRID, 1, seed=seed).fields.double()
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (n, 2))
    values = GRID.interpolate(field, pts)[0].numpy() + offset
    values = values + noise * rng.normal(size=n)
    return Observations.at_points(pts, values, noise)


def _model_covariance(fit, a, b):
    model = fit.gstools_model(nugget=False)
    return np.array([[model.cov_spatial(p - q) for q in b] for p in a]).reshape(len(a), len(b))


def _numpy_reml(fit, obs, params):
    """Restricted log-likelihood of a constant-mean model, written out in numpy."""
    fit = type(fit)(fit.family, dict(params), fit.method, fit.score)
    pts, y = obs.locations, obs.values
    k = _model_covariance(fit, pts, pts) + np.diag(obs.noise_sd**2 + params["nugget"])
    ones = np.ones(len(y))
    kinv_1, kinv_y = np.linalg.solve(k, ones), np.linalg.solve(k, y)
    gls = ones @ kinv_1
    beta = ones @ kinv_y / gls
    r = y - beta
    return -0.5 * (np.linalg.slogdet(k)[1] + math.log(gls) + r @ np.linalg.solve(k, r))


def test_reml_fit_is_a_maximum_of_the_explicit_likelihood():
    obs = _observed_field()
    fit = fit_covariance(obs, method="reml")
    best = _numpy_reml(fit, obs, fit.params)
    assert fit.score == pytest.approx(best, abs=1e-6)
    truth = {**fit.params, **TRUTH, "nugget": 0.0}
    assert best >= _numpy_reml(fit, obs, truth)
    rng = np.random.default_rng(1)
    for _ in range(10):  # small moves in every direction lower the likelihood
        moved = dict(fit.params)
        for key in ("variance", "length_scale", "anis_ratio"):
            moved[key] *= math.exp(0.05 * rng.normal())
        moved["anis_ratio"] = min(moved["anis_ratio"], 1.0)
        moved["angle"] += 0.05 * rng.normal()
        assert best >= _numpy_reml(fit, obs, moved) - 1e-9


def test_ordinary_kriging_equals_explicit_universal_kriging_formula():
    obs = _observed_field(n=60)
    fit = fit_covariance(obs, method="reml")
    targets = np.random.default_rng(2).uniform(0, 1, (15, 2))
    pred = ordinary_kriging(obs, targets, fit=fit)
    pts, y = obs.locations, obs.values
    k = _model_covariance(fit, pts, pts) + np.diag(obs.noise_sd**2 + fit.params["nugget"])
    c = _model_covariance(fit, pts, targets)  # (n, m)
    ones = np.ones(len(y))
    kinv_1, kinv_c = np.linalg.solve(k, ones), np.linalg.solve(k, c)
    gls = ones @ kinv_1
    beta = kinv_1 @ y / gls
    mean = beta + kinv_c.T @ (y - beta)
    lagrange = (1.0 - ones @ kinv_c) ** 2 / gls
    var = fit.params["variance"] - np.sum(c * kinv_c, 0) + lagrange
    np.testing.assert_allclose(pred.mean, mean, atol=1e-8, rtol=0)
    np.testing.assert_allclose(pred.sd**2, var, atol=1e-8, rtol=0)
    assert pred.info["fit"]["length_scale"] == fit.params["length_scale"]


def test_variogram_fit_reports_its_quality():
    obs = _observed_field(n=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        fit = fit_covariance(obs, method="variogram")
    assert fit.method == "variogram" and fit.score > 0.5
    assert 0.5 < fit.params["variance"] < 5.0
    pred = ordinary_kriging(obs, Grid.square(8), fit=fit)
    assert pred.grid is not None and np.isfinite(pred.mean).all()


def test_unidentifiable_data_warn_instead_of_collapsing_silently():
    rng = np.random.default_rng(3)
    obs = Observations.at_points(rng.uniform(0, 1, (40, 2)), rng.normal(size=40), 0.0)
    with pytest.warns(FitWarning):
        fit_covariance(obs, method="reml")


def test_fit_bad_input():
    obs = Observations.at_points([[0, 0], [1, 1], [0, 1], [1, 0]], [1.0, 2.0, 3.0, 4.0], 0.1)
    with pytest.raises(GeodiffError, match="cannot fit 6 parameters"):
        fit_covariance(obs)
    same = Observations.at_points(np.random.default_rng(0).uniform(size=(10, 2)), np.ones(10), 0.1)
    with pytest.raises(GeodiffError, match="all observed values are equal"):
        fit_covariance(same)
    blocks = Observations.of_blocks([[0, 0.1, 0, 0.1]] * 1, [1.0], 0.1)
    with pytest.raises(GeodiffError, match="point observations"):
        fit_covariance(blocks)
    with pytest.raises(GeodiffError, match="fitting method"):
        fit_covariance(_observed_field(n=20), method="eyeball")


def test_the_former_name_ml_still_fits_reml_and_says_so(capsys):
    from geodiff.cli import build_parser as _parser

    obs = _observed_field()
    with pytest.warns(DeprecationWarning, match="now called 'reml'"):
        old = fit_covariance(obs, method="ml", anisotropic=False)
    new = fit_covariance(obs, method="reml", anisotropic=False)
    assert old.method == "reml" and old.params == new.params
    args = _parser().parse_args(["krige", "--obs", "o.csv", "--out", "k.csv", "--fit", "ml"])
    assert args.fit == "reml"
    assert capsys.readouterr().err.strip() == "geodiff: warning: --fit ml is now --fit reml"
