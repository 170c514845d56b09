"""Predictions of a new measurement (field + noise), central intervals and CRPS.

Exact references where they exist (Gaussian), Monte Carlo ones with their χ² error
otherwise, each with a power check (three times the noise sd is rejected).
"""

import numpy as np
import pytest
from scipy import stats

from geodiff import GeodiffError, Prediction
from geodiff.anamorphosis import LogTransform, back_transform
from geodiff.metrics.scores import crps, prediction_crps

TARGETS = np.zeros((4, 2))
MEAN = np.array([0.0, 1.0, -2.0, 0.5])
SD = np.array([1.0, 0.5, 2.0, 0.0])


def field_draws(s=4000, seed=0):
    """A draw-based field prediction, S draws of 4 targets."""
    draws = np.random.default_rng(seed).normal(MEAN, SD + 0.1, size=(s, 4))
    return Prediction.from_draws(TARGETS, draws, method="mcmc", info={"samples": s})


def chi2_bounds(s, prob=1e-4):
    """Bounds on the sample variance / true variance of ``s`` normal values, two-sided."""
    return stats.chi2.ppf([prob / 2, 1 - prob / 2], s - 1) / (s - 1)


def test_gaussian_measurement_is_exact():
    pred = Prediction(TARGETS, MEAN, SD, method="kriging")
    assert pred.quantity == "field"
    meas = pred.measurement(0.3)
    np.testing.assert_array_equal(meas.mean, MEAN)
    np.testing.assert_array_equal(meas.sd, np.sqrt(SD**2 + 0.3**2))
    assert meas.quantity == "measurement" and meas.info["measurement_noise_sd"] == 0.3
    assert pred.quantity == "field" and "quantity" not in pred.info  # the input is untouched
    tau = np.array([0.1, 0.2, 0.3, 0.4])
    per_target = pred.measurement(tau)
    np.testing.assert_array_equal(per_target.sd, np.sqrt(SD**2 + tau**2))
    assert per_target.info["measurement_noise_sd"]["per"] == "target"
    np.testing.assert_array_equal(pred.measurement(tau[None]).sd, per_target.sd)  # (1, m)
    with pytest.raises(GeodiffError, match="one per draw needs a prediction represented by draws"):
        pred.measurement(np.full(7, 0.1))
    with pytest.raises(GeodiffError, match="one per draw needs"):
        pred.measurement(np.full((7, 1), 0.1))
    with pytest.raises(GeodiffError, match="finite and >= 0"):
        pred.measurement(-0.1)


def test_measurement_draws_add_the_noise():
    field = field_draws()
    s = len(field.draws)
    lo, hi = chi2_bounds(s)
    tau = 0.4
    meas = field.measurement(tau, seed=3)
    noise = meas.draws - field.draws  # (S, m), should be N(0, τ²)
    ratio = noise.var(0, ddof=1) / tau**2
    assert ((ratio > lo) & (ratio < hi)).all(), ratio
    assert (noise.var(0, ddof=1) / (3 * tau) ** 2 < lo).all()  # power: 3τ is rejected
    np.testing.assert_allclose(meas.mean, meas.draws.mean(0))
    assert meas.info["measurement_noise_sd"] == tau and meas.info["samples"] == s
    assert meas.quantity == "measurement" and meas.method == "mcmc"
    np.testing.assert_array_equal(field.measurement(tau, seed=3).draws, meas.draws)
    assert not np.array_equal(field.measurement(tau, seed=4).draws, meas.draws)
    # the noise of draw i does not depend on how many draws there are
    fewer = Prediction.from_draws(TARGETS, field.draws[:100]).measurement(tau, seed=3)
    np.testing.assert_array_equal(fewer.draws, meas.draws[:100])


def test_one_noise_sd_per_draw():
    field = field_draws()
    s = len(field.draws)
    lo, hi = chi2_bounds(s * 4)
    tau = np.random.default_rng(9).gamma(4.0, 0.1, size=s)  # a posterior of τ, (S,)
    meas = field.measurement(tau, seed=1)
    standardised = (meas.draws - field.draws) / tau[:, None]  # N(0, 1) if τ_s is used
    ratio = standardised.var(ddof=1)
    assert lo < ratio < hi
    assert (standardised / 3).var(ddof=1) < lo  # power: 3τ would be rejected
    np.testing.assert_array_equal(field.measurement(tau[:, None], seed=1).draws, meas.draws)
    summary = meas.info["measurement_noise_sd"]
    assert summary["per"] == "draw" and summary["mean"] == pytest.approx(tau.mean())
    square = Prediction.from_draws(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(GeodiffError, match="ambiguous"):
        square.measurement(np.ones(3))
    with pytest.raises(GeodiffError, match="noise sd of shape"):
        field.measurement(np.ones(5))


def test_measurement_twice_and_after_back_transform_are_refused():
    latent = Prediction(TARGETS, MEAN, SD + 0.1)
    meas = latent.measurement(0.2)
    with pytest.raises(GeodiffError, match="already of a new measurement"):
        meas.measurement(0.2)
    with pytest.raises(GeodiffError, match="already of a new measurement"):
        field_draws().measurement(0.1).measurement(0.1)
    back = back_transform(latent, LogTransform())
    with pytest.raises(GeodiffError, match=r"back_transform\(pred\.measurement\(tau\)"):
        back.measurement(0.2)
    both = back_transform(meas, LogTransform())  # the natural order
    assert both.quantity == "measurement" and both.transform == LogTransform()
    np.testing.assert_allclose(both.latent_sd, np.sqrt((SD + 0.1) ** 2 + 0.04))
    np.testing.assert_allclose(both.mean, np.exp(MEAN + both.latent_sd**2 / 2), rtol=1e-8)


def test_intervals_and_crps_of_each_representation():
    gaussian = Prediction(TARGETS, MEAN, SD)
    lo, hi = gaussian.interval(0.9)
    z = stats.norm.ppf(0.95)
    np.testing.assert_array_equal(lo, MEAN - z * SD)
    np.testing.assert_array_equal(hi, MEAN + z * SD)
    truth = np.array([0.3, -1.0, 2.0, 0.5])
    np.testing.assert_array_equal(prediction_crps(gaussian, truth), crps(truth, mean=MEAN, sd=SD))
    # closed form of the standard normal at 0: 2 φ(0) - 1/√π
    assert prediction_crps(gaussian, np.zeros(4))[0] == pytest.approx(
        2 * stats.norm.pdf(0) - 1 / np.sqrt(np.pi)
    )
    draws = field_draws(300)
    lo, hi = draws.interval(0.5)
    np.testing.assert_array_equal(lo, np.quantile(draws.draws, 0.25, axis=0))
    np.testing.assert_array_equal(prediction_crps(draws, truth), crps(truth, draws.draws))
    for bad in (0.0, 1.0, "wide"):
        with pytest.raises(GeodiffError, match="interval level"):
            gaussian.interval(bad)
    with pytest.raises(GeodiffError, match="3 observed values for 4 targets"):
        prediction_crps(gaussian, truth[:3])
    assert gaussian.representation == "gaussian" and draws.representation == "draws"


def test_behaviour_without_a_transform_is_unchanged():
    pred = Prediction(TARGETS, MEAN, SD)
    probs = [0.05, 0.5, 0.95]
    expected = MEAN[None] + SD[None] * stats.norm.ppf(probs)[:, None]
    np.testing.assert_array_equal(pred.quantiles(probs), expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(SD > 0, stats.norm.sf((0.25 - MEAN) / SD), (MEAN > 0.25).astype(float))
    np.testing.assert_array_equal(pred.exceedance(0.25), p)
    with pytest.raises(GeodiffError, match="need the transform"):
        Prediction(TARGETS, MEAN, SD, latent_mean=MEAN, latent_sd=SD)


def test_the_noise_and_wall_time_a_method_reports_travel_with_its_prediction(tmp_path):
    import json

    tau_draws = np.linspace(0.1, 0.2, 50)
    pred = Prediction.from_draws(TARGETS, np.exp(field_draws(50).draws), method="mcmc",
                                 noise_sd_draws=tau_draws, seconds=2.5)  # fmt: skip
    meas = pred.measurement(tau_draws.reshape(-1, 1), seed=1)
    back = back_transform(Prediction(TARGETS, MEAN, SD, noise_sd=0.3, seconds=1.0),
                          LogTransform())  # fmt: skip
    assert meas.seconds == 2.5 and meas.noise_sd_draws is tau_draws
    assert back.noise_sd == 0.3 and back.seconds == 1.0
    _, sidecar = pred.write_with_details(tmp_path / "p.csv")
    record = json.loads(sidecar.read_text())
    assert record["seconds"] == 2.5 and record["noise_sd_draws"] == tau_draws.tolist()
    assert "noise_sd" not in record  # nothing inferred as a plug-in
