"""Value transforms and back-transformed predictions, against exact and Monte Carlo references.

Each statistical check comes with its power check: the same statistic, applied to a wrong
answer (the naive back-transformed mean, a wrong σ, λ = 0 for non-log data), rejects it.
"""

import json

import numpy as np
import pytest
import scoringrules
from scipy import stats

from geodiff import GeodiffError, Grid, Prediction
from geodiff.anamorphosis import (
    SKEWNESS_THRESHOLD,
    BoxCoxTransform,
    IdentityTransform,
    LogTransform,
    NormalScoreTransform,
    SkewWarning,
    back_transform,
    fit_transform,
    latent_noise_sd,
    skewness_advice,
    transform_from_dict,
)
from geodiff.metrics.scores import crps, prediction_crps

N_MC = 200_000


def lognormal_sample(n=300, seed=0):
    """Positive, skewed values (ppm-like), shape (n,)."""
    return np.random.default_rng(seed).lognormal(mean=3.0, sigma=0.9, size=n)


def all_transforms(y):
    """One transform of each kind fitted to ``y`` (Box-Cox λ by maximum likelihood)."""
    return [fit_transform(kind, y) for kind in ("none", "log", "boxcox", "normal-score")] + [
        LogTransform(offset=2.5),
        BoxCoxTransform(lam=-0.2),
        BoxCoxTransform(lam=0.6, offset=1.0),
    ]


def test_round_trips_and_monotone():
    y = lognormal_sample()
    beyond = np.concatenate([y, [0.5 * y.min(), 3.0 * y.max(), y.max() + 1e3]])
    grid = np.linspace(0.3 * y.min(), 2 * y.max(), 5001)
    for transform in all_transforms(y):
        np.testing.assert_allclose(transform.inverse(transform.forward(beyond)), beyond, rtol=1e-10)
        assert (np.diff(transform.forward(grid)) > 0).all(), transform.name
    ns = NormalScoreTransform.fit(y)  # latent -> original -> latent, deep in the tails
    z = np.linspace(-8, 8, 801)
    np.testing.assert_allclose(ns.forward(ns.inverse(z)), z, rtol=1e-10, atol=1e-12)


def test_normal_scores_with_ties():
    y = np.array([1.0, 2.0, 2.0, 2.0, 5.0, 7.5, 7.5, 10.0])  # n = 8, ties at 2 and 7.5
    ns = fit_transform("normal-score", y)
    assert ns.knots == (1.0, 2.0, 5.0, 7.5, 10.0)
    mid_ranks = np.array([1.0, 3.0, 5.0, 6.5, 8.0])  # ranks 2,3,4 -> 3; 6,7 -> 6.5
    np.testing.assert_allclose(ns.scores, stats.norm.ppf((mid_ranks - 0.5) / 8), rtol=1e-14)
    np.testing.assert_allclose(ns.forward(y)[[1, 2, 3]], stats.norm.ppf(2.5 / 8))
    # tails continue the outer segments' lines, and stay inverse to each other
    slope = (ns.scores[-1] - ns.scores[-2]) / 2.5
    np.testing.assert_allclose(ns.forward(20.0), ns.scores[-1] + 10 * slope, rtol=1e-14)
    far = np.array([-50.0, 0.0, 0.99, 10.01, 1e4])
    np.testing.assert_allclose(ns.inverse(ns.forward(far)), far, rtol=1e-10)
    np.testing.assert_allclose(ns.derivative([1.5, 20.0]), [ns._slopes[1], slope])


def test_derivative_matches_finite_differences():
    y = lognormal_sample(50)
    h = 1e-6 * y
    for transform in [*all_transforms(y)[:3], BoxCoxTransform(lam=0.6, offset=1.0)]:
        numeric = (transform.forward(y + h) - transform.forward(y - h)) / (2 * h)
        np.testing.assert_allclose(transform.derivative(y), numeric, rtol=1e-6)
    np.testing.assert_allclose(
        latent_noise_sd(LogTransform(), [10.0, 100.0], 2.0), [0.2, 0.02], rtol=1e-14
    )


def test_dicts_round_trip_through_json():
    y = lognormal_sample(40)
    for transform in all_transforms(y):
        back = transform_from_dict(json.loads(json.dumps(transform.to_dict())))
        assert back == transform and type(back) is type(transform)
        np.testing.assert_array_equal(back.forward(y), transform.forward(y))
    with pytest.raises(GeodiffError, match="unknown value transform"):
        transform_from_dict({"name": "sqrt"})
    with pytest.raises(GeodiffError, match="bad parameters"):
        transform_from_dict({"name": "log", "lam": 1.0})


def _boxcox_se(x, lam):
    """The standard error of λ̂ from the curvature of the profile log-likelihood."""
    h = 1e-3
    llf = [stats.boxcox_llf(lam + d, x) for d in (-h, 0.0, h)]
    return 1.0 / np.sqrt(-(llf[0] - 2 * llf[1] + llf[2]) / h**2)


def test_boxcox_lambda_is_the_maximum_likelihood_one():
    z = np.random.default_rng(3).normal(size=600)
    y = np.exp(1.0 + 0.5 * z)  # log-normal: the true λ is 0
    fitted = fit_transform("boxcox", y)
    assert fitted.lam == stats.boxcox(y)[1]  # scipy's own λ, exactly
    se = _boxcox_se(y, fitted.lam)
    assert 0.01 < se < 1.0
    assert abs(fitted.lam) < 4 * se
    # power: for y = (1 + 0.5 z)^2 the square root is normal (λ ≈ 0.5); λ = 0 is rejected
    y2 = (1 + 0.5 * z) ** 2
    lam2 = fit_transform("boxcox", y2).lam
    assert abs(lam2) > 4 * _boxcox_se(y2, lam2)
    lr = 2 * (stats.boxcox_llf(lam2, y2) - stats.boxcox_llf(0.0, y2))
    assert lr > stats.chi2.ppf(0.999, 1)


def test_fit_errors_are_one_clear_line():
    y = lognormal_sample(20)
    bad = np.concatenate([y, [0.0, -1.5, -0.25]])
    for kind in ("log", "boxcox"):
        with pytest.raises(GeodiffError, match=r"3 of 23 .*smallest -1\.5.*normal-score") as err:
            fit_transform(kind, bad)
        assert "\n" not in str(err.value) and "offset" in str(err.value)
    assert fit_transform("log", bad, offset=2.0).offset == 2.0
    with pytest.raises(GeodiffError, match="1 of 21 values are NaN"):
        fit_transform("normal-score", np.append(y, np.nan))
    for kind in ("boxcox", "normal-score"):
        with pytest.raises(GeodiffError, match="constant"):
            fit_transform(kind, np.full(10, 4.2))
    with pytest.raises(GeodiffError, match="at least 3"):
        fit_transform("log", [1.0, 2.0])
    with pytest.raises(GeodiffError, match="unknown transform"):
        fit_transform("sqrt", y)
    with pytest.raises(GeodiffError, match=r"needs values > 0"):
        LogTransform().forward([1.0, -2.0])
    assert isinstance(fit_transform("none", [np.nan]), IdentityTransform)


def test_skewness_advice():
    assert issubclass(SkewWarning, UserWarning) and SKEWNESS_THRESHOLD == 1.0
    advice = skewness_advice(lognormal_sample())
    assert "log" in advice and "skewness" in advice and "\n" not in advice
    assert skewness_advice(np.random.default_rng(0).normal(size=300)) is None
    shifted = lognormal_sample() - 30.0  # skewed, with negatives
    assert "normal-score" in skewness_advice(shifted)
    assert skewness_advice(-lognormal_sample()) is not None  # left skew counts too
    assert skewness_advice([1.0, 1.0, 1.0]) is None
    assert skewness_advice(lognormal_sample() * 1e300) == skewness_advice(lognormal_sample())


# --- back-transformed Gaussian predictions --------------------------------------------


MU = np.array([3.0, 2.2, 3.8])
SIGMA = np.array([0.6, 0.3, 0.9])


def latent_prediction(mu=MU, sigma=SIGMA):
    return Prediction(np.zeros((3, 2)), np.array(mu, float), np.array(sigma, float), method="ok")


def mc_reference(transform, mu=MU, sigma=SIGMA, seed=5):
    """N_MC back-transformed latent normal draws, shape (N_MC, 3)."""
    eps = np.random.default_rng(seed).standard_normal((N_MC, 3))
    return transform.inverse(mu + sigma * eps)


def binomial_z(sample, prob):
    """z-statistic of the observed frequency ``sample.mean(0)`` against ``prob``, (m,)."""
    return (sample.mean(0) - prob) / np.sqrt(prob * (1 - prob) / len(sample))


def mc_cases():
    """(transform, latent mean) pairs: log, Box-Cox and normal scores of tied data."""
    data = np.round(np.exp(3 + stats.norm.ppf(np.linspace(0.01, 0.99, 60))), 0)  # ties
    return [
        (LogTransform(), MU),
        (BoxCoxTransform(lam=0.25), MU),
        (NormalScoreTransform.fit(data), np.array([0.0, -0.8, 1.0])),
    ]


def test_back_transformed_gaussian_matches_monte_carlo():
    probs = np.array([0.05, 0.25, 0.5, 0.9, 0.975])
    for transform, mu in mc_cases():
        pred = back_transform(latent_prediction(mu), transform)
        ref = mc_reference(transform, mu)
        for p, qp in zip(probs, pred.quantiles(probs), strict=True):
            assert np.abs(binomial_z(ref <= qp, p)).max() < 4, (transform.name, p)
        for t in (5.0, 20.0, 60.0):
            prob = pred.exceedance(t)
            live = (prob > 1e-4) & (prob < 1 - 1e-4)
            assert np.abs(binomial_z(ref > t, prob)[live]).max() < 4, (transform.name, t)
        se_mean = ref.std(0) / np.sqrt(N_MC)
        assert np.abs((ref.mean(0) - pred.mean) / se_mean).max() < 4, transform.name
        var, m4 = ref.var(0), ((ref - ref.mean(0)) ** 4).mean(0)
        se_var = np.sqrt((m4 - var**2) / N_MC)
        assert np.abs((var - pred.sd**2) / se_var).max() < 4, transform.name
        # power: the naive mean T⁻¹(μ), and quantiles of σ × 1.1, are rejected
        assert np.abs((ref.mean(0) - transform.inverse(mu)) / se_mean).max() > 4
        wrong = back_transform(latent_prediction(mu, 1.1 * SIGMA), transform)
        assert np.abs(binomial_z(ref <= wrong.quantiles([0.05])[0], 0.05)).max() > 4


def test_lognormal_moments_are_exact():
    pred = back_transform(latent_prediction(), LogTransform())
    np.testing.assert_allclose(pred.mean, np.exp(MU + SIGMA**2 / 2), rtol=1e-8)
    sd = np.exp(MU + SIGMA**2 / 2) * np.sqrt(np.expm1(SIGMA**2))
    np.testing.assert_allclose(pred.sd, sd, rtol=1e-8)
    np.testing.assert_allclose(pred.latent_mean, MU)
    assert pred.representation == "transformed-gaussian"
    np.testing.assert_allclose(pred.quantiles([0.5])[0], np.exp(MU), rtol=1e-14)
    np.testing.assert_allclose(pred.exceedance(np.exp(3.0)), stats.norm.cdf((MU - 3.0) / SIGMA))
    np.testing.assert_array_equal(pred.exceedance(0.0), 1.0)  # below log's domain
    np.testing.assert_array_equal(pred.exceedance(-4.0), 1.0)
    lo, hi = pred.interval(0.9)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose([lo, hi], [np.exp(MU - z * SIGMA), np.exp(MU + z * SIGMA)])
    offset = back_transform(latent_prediction(), LogTransform(offset=3.0))
    np.testing.assert_allclose(offset.mean, np.exp(MU + SIGMA**2 / 2) - 3.0, rtol=1e-8)


def test_normal_score_moments_are_exact_sums():
    ns, mu = mc_cases()[2]
    pred = back_transform(latent_prediction(mu), ns)
    k = 400_000  # midpoint rule in p on the exact quantile function
    q = ns.inverse(mu + SIGMA * stats.norm.ppf((np.arange(k) + 0.5) / k)[:, None])
    np.testing.assert_allclose(pred.mean, q.mean(0), rtol=1e-5)
    np.testing.assert_allclose(pred.sd, q.std(0), rtol=1e-4)
    point = back_transform(Prediction(np.zeros((1, 2)), np.array([3.1]), np.zeros(1)), ns)
    np.testing.assert_allclose([point.mean[0], point.sd[0]], [ns.inverse(3.1), 0.0])


def fair_crps_sorted(truth, sample):
    """The fair ensemble CRPS in O(M log M), shape (m,) (equals scores.crps)."""
    x = np.sort(sample, axis=0)
    m = len(x)
    weights = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    spread = 2 * (weights * x).sum(0) / (m * (m - 1))
    return np.abs(x - truth).mean(0) - 0.5 * spread


def test_crps_of_a_transformed_gaussian_matches_monte_carlo():
    truth = np.array([12.0, 9.0, 100.0])
    small = np.random.default_rng(1).lognormal(size=(300, 3))
    np.testing.assert_allclose(fair_crps_sorted(truth, small), crps(truth, small), rtol=1e-10)
    for transform, mu in mc_cases():
        pred = back_transform(latent_prediction(mu), transform)
        batches = mc_reference(transform, mu).reshape(20, N_MC // 20, 3)
        per_batch = np.array([fair_crps_sorted(truth, b) for b in batches])  # (20, 3)
        se = per_batch.std(0, ddof=1) / np.sqrt(20)
        assert np.abs((prediction_crps(pred, truth) - per_batch.mean(0)) / se).max() < 4, (
            transform.name
        )
        wrong = back_transform(latent_prediction(mu, 1.1 * SIGMA), transform)
        assert np.abs((prediction_crps(wrong, truth) - per_batch.mean(0)) / se).max() > 4
    exact = scoringrules.crps_lognormal(truth, MU, SIGMA)  # closed form of the log-normal
    np.testing.assert_allclose(
        prediction_crps(back_transform(latent_prediction(), LogTransform()), truth),
        exact,
        rtol=1e-4,
    )


def test_back_transformed_draws_are_exact():
    draws = np.random.default_rng(2).normal(MU, SIGMA, size=(500, 3))
    latent = Prediction.from_draws(np.zeros((3, 2)), draws, method="mcmc")
    pred = back_transform(latent, LogTransform())
    np.testing.assert_allclose(pred.draws, np.exp(draws), rtol=1e-15)
    np.testing.assert_allclose(pred.mean, np.exp(draws).mean(0))
    np.testing.assert_allclose(pred.sd, np.exp(draws).std(0, ddof=1))
    np.testing.assert_array_equal(pred.exceedance(20.0), (draws > np.log(20.0)).mean(0))
    assert pred.representation == "draws" and pred.transform == LogTransform()
    np.testing.assert_allclose(prediction_crps(pred, np.ones(3)), crps(np.ones(3), np.exp(draws)))
    lo, hi = pred.interval(0.5)
    np.testing.assert_allclose(lo, np.quantile(np.exp(draws), 0.25, axis=0))
    np.testing.assert_allclose(hi, np.quantile(np.exp(draws), 0.75, axis=0))
    with pytest.raises(GeodiffError, match="already back-transformed"):
        back_transform(pred, LogTransform())


def test_overflow_is_a_clear_error():
    huge = Prediction(np.zeros((2, 2)), np.array([1.0, 800.0]), np.ones(2))
    with pytest.raises(
        GeodiffError, match=r"log back-transform overflowed.*latent means up to 800"
    ):
        back_transform(huge, LogTransform())
    draws = Prediction.from_draws(np.zeros((1, 2)), [[1.0], [900.0]])
    with pytest.raises(GeodiffError, match="overflowed"):
        back_transform(draws, LogTransform())
    # Box-Cox with λ < 0 is infinite above -1/λ = 2: refused when that has real mass
    with pytest.raises(GeodiffError, match="infinite above z = 2"):
        back_transform(
            Prediction(np.zeros((1, 2)), np.array([1.5]), np.ones(1)), BoxCoxTransform(-0.5)
        )
    fine = back_transform(
        Prediction(np.zeros((1, 2)), np.array([0.0]), np.array([0.2])), BoxCoxTransform(-0.5)
    )
    assert np.isfinite(fine.mean).all() and fine.quantiles([0.99])[0, 0] < np.inf
    edge = Prediction(  # latent quantiles above z = 2 have no finite back-transform
        np.zeros((1, 2)), np.ones(1), np.ones(1), latent_mean=np.array([1.8]),
        latent_sd=np.array([0.2]), transform=BoxCoxTransform(-0.5),
    )  # fmt: skip
    with pytest.raises(GeodiffError, match="left its range"):
        edge.quantiles([0.99])


def test_files_say_which_transform(tmp_path):
    import xarray as xr

    grid = Grid((2, 3))
    latent = Prediction(grid.points(), np.full(6, 2.0), np.full(6, 0.5), grid=grid, method="ok")
    pred = back_transform(latent, LogTransform(offset=1.0))
    csv, sidecar = pred.write_with_details(tmp_path / "p.csv", thresholds=[5.0])
    details = json.loads(sidecar.read_text())
    assert details["transform"] == {"name": "log", "offset": 1.0}
    header, first = csv.read_text().splitlines()[:2]
    assert header == "x,y,mean,sd,q05,q50,q95,p_gt_5"
    assert float(first.split(",")[5]) == pytest.approx(np.exp(2.0) - 1.0, rel=1e-9)
    nc = pred.write(tmp_path / "p.nc")
    with xr.open_dataset(nc, engine="scipy") as ds:
        assert json.loads(ds.attrs["transform"]) == {"name": "log", "offset": 1.0}
        np.testing.assert_allclose(ds["mean"].values, pred.mean.reshape(2, 3))
