"""The REML nugget as a noise estimate, and its observed-information standard error.

Data are simulated exactly (Cholesky of the covariance of the prior object) from a
stationary Matérn (variance 1, length scale 0.2, nu = 1.5) at n = 150 uniform points
plus independent N(0, tau^2) noise, tau = 0.3. Tolerances are Monte Carlo bounds for R
replicates, each stated where it is used.
"""

import math
import warnings

import gstools
import numpy as np
import pytest
import torch
from scipy import optimize, stats
from scipy.spatial.distance import cdist

from geodiff.fields.fit import FitWarning, NoiseEstimate, fit_covariance, reml_noise
from geodiff.fields.prior import StationaryPrior
from geodiff.observe import Observations

TAU = 0.3
TRUTH = {"variance": 1.0, "length_scale": 0.2, "anis_ratio": 1.0, "angle": 0.0, "nu": 1.5}
R = 40  # replicates: 6 s isotropic on one core
SEED0 = 10_000


def _simulate(seed, n=150, tau=TAU, truth=TRUTH):
    """Exact draw: n uniform points, Matérn field by Cholesky, plus N(0, tau^2) noise."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (n, 2))
    prior = StationaryPrior("matern", nu=truth["nu"])
    theta = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in truth.items()}
    theta["nugget"] = torch.zeros(1, dtype=torch.float64)
    cov = prior.covariance(pts, pts, theta, nugget=False)[0].numpy()
    chol = np.linalg.cholesky(cov + 1e-10 * np.eye(n))
    values = chol @ rng.normal(size=n) + tau * rng.normal(size=n)
    return Observations.at_points(pts, values, 0.0)


@pytest.fixture(scope="module")
def replicates():
    """(tau hat, se) of R isotropic REML fits to independent datasets."""
    out = []
    for r in range(R):
        est = reml_noise(_simulate(SEED0 + r), anisotropic=False)
        out.append((est.sd, est.sd_se))
    return np.array(out)


def _calibrated(z):
    """Whether z-scores look N(0, 1) within the Monte Carlo error of len(z) replicates.

    mean: |mean| < 3 / sqrt(R) (3 sigma); sd: within the 0.001 and 0.999 quantiles of
    sqrt(chi2_(R-1) / (R-1)); coverage: #(|z| < 1.96) at least the 0.001 quantile of
    Binomial(R, 0.95). Each fails a calibrated set with probability about 0.001.
    """
    n = len(z)
    lo, hi = (math.sqrt(stats.chi2.ppf(q, n - 1) / (n - 1)) for q in (0.001, 0.999))
    inside = int(np.sum(np.abs(z) < 1.96))
    return (
        abs(z.mean()) < 3 / math.sqrt(n)
        and lo < z.std(ddof=1) < hi
        and inside >= stats.binom.ppf(0.001, n, 0.95)
    )


def test_noise_z_scores_are_standard_normal_over_replicates(replicates):
    tau_hat, se = replicates.T
    assert np.isfinite(se).all() and (se > 0).all()
    z = (tau_hat - TAU) / se
    assert _calibrated(z), (z.mean(), z.std(ddof=1), np.mean(np.abs(z) < 1.96))


def test_calibration_check_has_power(replicates):
    tau_hat, se = replicates.T
    assert not _calibrated((tau_hat - 1.5 * TAU) / se)  # a wrong truth
    assert not _calibrated((tau_hat - TAU) / (se / 2))  # an understated standard error


def test_single_dataset_anisotropic_fit_covers_the_truth_and_rejects_a_wrong_one():
    est = reml_noise(_simulate(1))
    assert isinstance(est, NoiseEstimate) and est.fit.method == "reml"
    assert abs(est.sd - TAU) < 3 * est.sd_se, est.describe()
    assert est.variance == pytest.approx(est.sd**2)
    assert est.variance_se == pytest.approx(2 * est.sd * est.sd_se)  # delta method
    assert est.describe() == f"noise sd {est.sd:.3g} ± {est.sd_se:.2g} (REML nugget)"
    lo, hi = est.interval(0.95)
    assert lo < est.sd < hi and math.log(hi / est.sd) == pytest.approx(
        1.959964 * est.sd_se / est.sd, rel=1e-5
    )
    with warnings.catch_warnings():  # the field drowns in this noise: its range is unbounded
        warnings.simplefilter("ignore", FitWarning)
        loud = reml_noise(_simulate(1, tau=3 * TAU))  # power: sd x 3 tested against 0.3
    assert abs(loud.sd - TAU) > 3 * loud.sd_se, loud.describe()


def _numpy_negative_reml(pts, y, log_var, log_ell, log_nugget):
    """Negative REML log-likelihood, written out with GSTools' Matérn(nu = 1.5)."""
    model = gstools.Matern(dim=2, var=math.exp(log_var), len_scale=math.exp(log_ell), nu=1.5)
    k = model.covariance(cdist(pts, pts)) + math.exp(log_nugget) * np.eye(len(y))
    chol = np.linalg.cholesky(k)
    solve = lambda b: np.linalg.solve(chol.T, np.linalg.solve(chol, b))  # noqa: E731
    ones = np.ones(len(y))
    gls = ones @ solve(ones)
    r = y - ones @ solve(y) / gls
    return np.log(np.diag(chol)).sum() + 0.5 * math.log(gls) + 0.5 * r @ solve(r)


def test_hessian_standard_errors_match_finite_differences_and_the_profile_likelihood():
    obs = _simulate(2)
    fit = fit_covariance(obs, anisotropic=False)
    p, ses = fit.params, fit.standard_errors
    z_hat = np.log([p["variance"], p["length_scale"], p["nugget"]])

    def f(z):
        return _numpy_negative_reml(obs.locations, obs.values, *z)

    # the full observed information by central differences of an independent likelihood
    h, eye = 1e-3, np.eye(3)

    def second(a, b):
        pairs = ((a + b, 1), (a - b, -1), (b - a, -1), (-a - b, 1))
        return sum(sign * f(z_hat + h * d) for d, sign in pairs) / (4 * h * h)

    hess = np.array([[second(a, b) for b in eye] for a in eye])
    se_fd = np.sqrt(np.diag(np.linalg.inv(hess)))
    got = [ses["variance"] / p["variance"], ses["length_scale"] / p["length_scale"]]
    np.testing.assert_allclose([*got, ses["nugget"] / p["nugget"]], se_fd, rtol=2e-3)

    # the curvature of the profile likelihood of log nugget: 1 / se(log nugget)^2
    def profile(log_nugget):
        res = optimize.minimize(
            lambda u: f([u[0], u[1], log_nugget]),
            z_hat[:2],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
        )
        return res.fun

    step = 0.05
    curvature = (profile(z_hat[2] + step) - 2 * profile(z_hat[2]) + profile(z_hat[2] - step)) / (
        step * step
    )
    se_log_nugget = ses["nugget"] / p["nugget"]
    assert se_log_nugget == pytest.approx(curvature**-0.5, rel=0.02)
    assert ses["noise_sd"] == pytest.approx(math.sqrt(p["nugget"]) * se_log_nugget / 2)
    assert ses["mean"] > 0 and set(ses) >= {"variance", "length_scale", "nugget", "noise_sd"}


def test_noiseless_data_put_the_nugget_on_its_bound_and_warn():
    truth = {**TRUTH, "length_scale": 0.3}  # n = 60, no noise: the nugget hits its 1e-6 bound
    obs = _simulate(5, n=60, tau=0.0, truth=truth)
    with pytest.warns(FitWarning, match="no finite standard error.*nugget sits on its lower"):
        est = reml_noise(obs)
    assert est.sd < 1e-2 and math.isnan(est.sd_se) and math.isnan(est.variance_se)
    assert "no noise detected" in est.describe()
    assert all(math.isnan(v) for v in est.interval())
    assert any("no finite standard error" in m for m in est.fit.warnings)
    # fit_covariance itself stays quiet: a zero nugget is a legitimate answer
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitWarning)
        fit = fit_covariance(Observations(obs.operator, obs.values, 0.0), anisotropic=False)
    assert math.isnan(fit.standard_errors["nugget"]) and np.isfinite(
        fit.standard_errors["variance"]
    )


def test_variogram_fits_have_no_standard_errors():
    fit = fit_covariance(_simulate(3), method="variogram")
    assert fit.standard_errors == {} and fit.se_notes == []
