"""Fit a stationary covariance to observations: REML, the nugget estimate, variograms.

The practitioner's plug-in (ordinary kriging, :func:`geodiff.baselines.kriging.ordinary_kriging`),
the inferred measurement noise (:mod:`geodiff.noise`) and priors fitted to data
(:mod:`geodiff.fields.from_data`) all start here. Two ways to fit a stationary model with a
constant unknown mean:

* ``"reml"`` (default): restricted maximum likelihood (the mean profiled out),
  variance, length scale, nugget and — with ``anisotropic=True`` — anisotropy ratio and
  angle, by L-BFGS-B with exact torch gradients from several starting points;
* ``"variogram"``: GSTools' empirical isotropic variogram and ``CovModel.fit_variogram``.

Both start from guesses scaled to the data (sample variance, the spread of the
locations), stay inside bounds scaled the same way, and warn (:class:`FitWarning`,
also kept in :attr:`CovarianceFit.warnings`) when a parameter ends on a bound, the
range exceeds the observed extent, the optimiser fails or the variogram fits poorly.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import gstools
import numpy as np
import torch
from scipy import optimize
from scipy.spatial import cKDTree

from geodiff.errors import GeodiffError
from geodiff.fields.correlation import get_family
from geodiff.fields.prior import StationaryPrior
from geodiff.observe import Observations

__all__ = [
    "CovarianceFit",
    "FitWarning",
    "NoiseEstimate",
    "fit_covariance",
    "plug_in_settings",
    "reml_noise",
]

_METHODS = ("reml", "variogram")
#: the former name of ``"reml"``, accepted with a DeprecationWarning for one release
_RENAMED = {"ml": "reml"}
_DEFAULT_SHAPE = {"matern": {"nu": 1.5}, "stable": {"alpha": 1.5}}
_MIN_RATIO = 0.1  # smallest anisotropy ratio fitted
_R2_WARN = 0.5
_PACKED = ("variance", "length_scale", "nugget", "anis_ratio", "angle")  # order of z
_EIG_RTOL = 1e-10  # Hessian eigenvalues below this fraction of the largest count as zero

logger = logging.getLogger(__name__)


class FitWarning(UserWarning):
    """A fitted covariance that the data may not support."""


@dataclass
class CovarianceFit:
    """A stationary covariance fitted to observations.

    Attributes
    ----------
    family : str
    params : dict of str to float
        ``mean, variance, length_scale, anis_ratio, angle, nugget`` and the family's
        shape parameter, in the data's units.
    method : str
        ``"reml"`` or ``"variogram"``.
    score : float
        REML log-likelihood (``"reml"``) or the variogram fit's R² (``"variogram"``).
    warnings : list of str
    standard_errors : dict of str to float
        ``"reml"`` only (empty for variogram fits): asymptotic standard errors, in the
        data's units, from the observed information (the Hessian of the negative REML
        log-likelihood in the log-parameters at the optimum), by the delta method:
        ``variance, length_scale, nugget, noise_sd`` (= sqrt(nugget)), ``mean`` (GLS,
        given the covariance) and, if anisotropic, ``anis_ratio, angle``. A parameter on
        a bound of the optimiser is held fixed there and gets NaN (the others are then
        conditional on it); one along a flat direction of the likelihood gets inf.
    se_notes : list of str
        Why a standard error is NaN or inf.
    """

    family: str
    params: dict
    method: str
    score: float
    warnings: list = field(default_factory=list)
    standard_errors: dict = field(default_factory=dict)
    se_notes: list = field(default_factory=list)

    def gstools_model(self, nugget: bool = True) -> gstools.CovModel:
        """The fitted model as a GSTools ``CovModel``."""
        p = self.params
        shape = {k: p[k] for k in get_family(self.family).shape_parameters}
        return get_family(self.family).gstools(
            var=p["variance"],
            len_scale=[p["length_scale"], p["anis_ratio"] * p["length_scale"]],
            angles=p["angle"],
            nugget=p["nugget"] if nugget else 0.0,
            **shape,
        )


def _geometry(obs: Observations) -> tuple[float, float]:
    """(diameter of the locations, median nearest-neighbour distance)."""
    pts = obs.locations
    diameter = float(np.linalg.norm(pts.max(0) - pts.min(0)))
    dist, _ = cKDTree(pts).query(pts, k=2)
    return diameter, float(np.median(dist[:, 1]))


def fit_method_name(method: str) -> str:
    """The fitting method's name, ``"ml"`` mapped to ``"reml"`` (what it runs) with a warning."""
    if method in _RENAMED:
        warnings.warn(f"fit method {method!r} is now called {_RENAMED[method]!r}",
                      DeprecationWarning, stacklevel=3)  # fmt: skip
        method = _RENAMED[method]
    if method not in _METHODS:
        raise GeodiffError(f"unknown fitting method {method!r}; choose from {_METHODS}")
    return method


def fit_covariance(
    obs: Observations,
    family: str = "matern",
    *,
    method: str = "reml",
    anisotropic: bool = True,
    shape: dict | None = None,
) -> CovarianceFit:
    """Fit a stationary covariance with a constant unknown mean to observations.

    Parameters
    ----------
    obs : Observations
        Point observations (block means are not supported by these estimators).
    family : str
        GSTools family (``matern``, ``exponential``, ``gaussian``, ``stable``,
        ``spherical``).
    method : {"reml", "variogram"}
        (``"ml"``, the former name of ``"reml"``, still works and warns.)
    anisotropic : bool
        Fit an anisotropy ratio and angle too (``"reml"`` only; variogram fits are
        isotropic).
    shape : dict, optional
        The family's shape parameter, held fixed (default ``nu = 1.5`` for Matérn,
        ``alpha = 1.5`` for stable).

    Returns
    -------
    CovarianceFit
    """
    method = fit_method_name(method)
    if obs.operator.kind != "points":
        raise GeodiffError("covariance fitting needs point observations off any grid")
    fam = get_family(family)
    shape = dict(_DEFAULT_SHAPE.get(fam.name, {}) if shape is None else shape)
    if set(shape) != set(fam.shape_parameters):
        raise GeodiffError(f"family {fam.name!r} needs shape parameter(s) {fam.shape_parameters}")
    aniso = anisotropic and method == "reml"
    n_params = 6 if aniso else 4  # mean, variance, length scale, nugget (+ ratio, angle)
    if len(obs) <= n_params:
        raise GeodiffError(
            f"{len(obs)} observations cannot fit {n_params} parameters (mean, variance, "
            f"length scale, nugget{', anisotropy ratio and angle' if aniso else ''}); "
            "give more observations"
        )
    if np.ptp(obs.values) == 0:
        raise GeodiffError("all observed values are equal: no covariance can be fitted")
    if method == "reml":
        fit = _fit_reml(obs, fam, shape, anisotropic)
    else:
        fit = _fit_variogram(obs, fam, shape)
    for message in fit.warnings:
        warnings.warn(message, FitWarning, stacklevel=2)
    return fit


# ------------------------------------------------------------------------- REML
def _fit_reml(obs: Observations, fam, shape: dict, anisotropic: bool) -> CovarianceFit:
    """REML fit of a stationary covariance with a constant unknown mean.

    Parameters
    ----------
    obs : Observations
    fam : CorrelationFamily
    shape : dict
        The family's shape parameters, held fixed.
    anisotropic : bool
        Fit an anisotropy ratio and angle too.

    Returns
    -------
    CovarianceFit
    """
    y_raw = obs.values
    centre, scale = float(y_raw.mean()), float(y_raw.std())
    y = torch.as_tensor((y_raw - centre) / scale)
    noise = torch.as_tensor(obs.noise_variance / scale**2)
    pts = torch.as_tensor(obs.locations)
    diameter, spacing = _geometry(obs)
    bounds = _reml_bounds(diameter, spacing, anisotropic)
    model = StationaryPrior(fam.name, **shape)

    def reml(z: torch.Tensor):
        """:func:`_negative_reml` of these data."""
        return _negative_reml(z, model, pts, y, noise, shape, anisotropic)

    best = _minimise_reml(reml, _reml_starts(bounds, diameter, anisotropic), bounds)
    messages = []
    if not best.success:
        messages.append(f"REML optimiser did not converge: {best.message}")
    z = best.x
    messages += _bound_messages(z, bounds, anisotropic)
    theta = _unpack_reml(torch.as_tensor(z), shape, anisotropic)
    ratio, angle = float(theta["anis_ratio"][0]), float(theta["angle"][0])
    if anisotropic:  # GSTools convention: main axis the longer one, angle in [0, pi)
        angle = angle % math.pi
    params = {
        "mean": centre + scale * float(reml(torch.as_tensor(z))[1]),
        "variance": float(theta["variance"][0]) * scale**2,
        "length_scale": float(theta["length_scale"][0]),
        "anis_ratio": ratio,
        "angle": angle,
        "nugget": math.exp(z[2]) * scale**2,
        **shape,
    }
    _range_warning(params, diameter, messages)
    score = -float(best.fun) - (len(y) - 1) * math.log(scale)  # REML, data units
    se_log, notes = _log_standard_errors(reml, z, bounds, anisotropic)
    if any(np.isinf(se_log)):
        messages.append(f"the REML likelihood is flat in some direction: {notes[-1]}")
    ses = _data_standard_errors(params, se_log, anisotropic)
    ses["mean"] = scale * _gls_mean_sd(model, pts, noise, torch.as_tensor(z), shape, anisotropic)
    return CovarianceFit(fam.name, params, "reml", score, messages, ses, notes)


def _reml_bounds(diameter: float, spacing: float, anisotropic: bool) -> list:
    """Bounds of the packed parameters, for standardised data.

    Parameters
    ----------
    diameter, spacing : float
        See :func:`_geometry`.
    anisotropic : bool

    Returns
    -------
    list of (float, float)
        For (log var, log ell, log nugget) and, if anisotropic, (log ratio, angle).
    """
    bounds = [
        (math.log(1e-2), math.log(1e2)),
        (math.log(spacing / 4), math.log(5 * diameter)),
        (math.log(1e-6), math.log(10.0)),
    ]
    if anisotropic:
        bounds += [(math.log(_MIN_RATIO), 0.0), (-math.pi, 2 * math.pi)]
    return bounds


def _unpack_reml(z: torch.Tensor, shape: dict, anisotropic: bool) -> dict:
    """The theta dict (batch of one, nugget zero) of packed parameters ``z``.

    Parameters
    ----------
    z : torch.Tensor, shape (3,) or (5,)
        (log var, log ell, log nugget[, log ratio, angle]).
    shape : dict
    anisotropic : bool

    Returns
    -------
    dict of str to torch.Tensor
    """
    ratio = torch.exp(z[3]) if anisotropic else torch.ones((), dtype=z.dtype)
    angle = z[4] if anisotropic else torch.zeros((), dtype=z.dtype)
    theta = {
        "variance": torch.exp(z[0])[None],
        "length_scale": torch.exp(z[1])[None],
        "anis_ratio": ratio[None],
        "angle": angle[None],
        "nugget": torch.zeros(1, dtype=z.dtype),
    }
    for key, value in shape.items():
        theta[key] = torch.tensor([value], dtype=z.dtype)
    return theta


def _negative_reml(z: torch.Tensor, model, pts, y, noise, shape: dict, anisotropic: bool):
    """(negative REML log-likelihood, GLS mean) of standardised data, or None.

    Parameters
    ----------
    z : torch.Tensor
        Packed parameters (see :func:`_unpack_reml`).
    model : StationaryPrior
    pts, y, noise : torch.Tensor
        Locations, standardised values and their noise variances.
    shape : dict
    anisotropic : bool

    Returns
    -------
    tuple of torch.Tensor, or None
        None when the covariance is not numerically positive definite.
    """
    theta = _unpack_reml(z, shape, anisotropic)
    cov = model.covariance(pts, pts, theta, nugget=False)[0]
    chol, info = torch.linalg.cholesky_ex(cov + torch.diag(noise + torch.exp(z[2])))
    if info != 0:
        return None
    ones = torch.ones(len(y), 1, dtype=torch.float64)
    kinv_1 = torch.cholesky_solve(ones, chol)
    kinv_y = torch.cholesky_solve(y[:, None], chol)
    gls = (ones.T @ kinv_1)[0, 0]
    beta = (ones.T @ kinv_y)[0, 0] / gls
    quad = (y[:, None] * kinv_y).sum() - beta * beta * gls
    return 0.5 * (2 * torch.log(chol.diagonal()).sum() + torch.log(gls) + quad), beta


def _reml_starts(bounds: list, diameter: float, anisotropic: bool) -> list:
    """Starting points of the optimiser: two length scales (and two angles).

    Parameters
    ----------
    bounds : list of (float, float)
    diameter : float
    anisotropic : bool

    Returns
    -------
    list of list of float
    """
    starts = []
    for ell in (0.1 * diameter, 0.3 * diameter):
        ell = float(np.clip(ell, math.exp(bounds[1][0]) * 1.01, math.exp(bounds[1][1]) / 1.01))
        base = [0.0, math.log(ell), math.log(0.1)]
        starts += [[*base, math.log(0.6), a] for a in (0.0, math.pi / 2)] if anisotropic else [base]
    return starts


def _minimise_reml(reml, starts: list, bounds: list):
    """L-BFGS-B with exact gradients from each start; the best result.

    Parameters
    ----------
    reml : callable
        ``reml(z)`` as :func:`_negative_reml`.
    starts : list of list of float
    bounds : list of (float, float)

    Returns
    -------
    scipy.optimize.OptimizeResult
    """

    def objective(z_np: np.ndarray):
        z = torch.tensor(z_np, dtype=torch.float64, requires_grad=True)
        value = reml(z)
        if value is None:
            return 1e10, np.zeros_like(z_np)
        value[0].backward()
        return float(value[0].detach()), z.grad.numpy().copy()

    best = None
    for z0 in starts:
        res = optimize.minimize(objective, np.array(z0), jac=True, method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    return best


def _bound_messages(z: np.ndarray, bounds: list, anisotropic: bool) -> list:
    """Warnings for fitted parameters that sit on a bound.

    Parameters
    ----------
    z : np.ndarray
        The fitted packed parameters.
    bounds : list of (float, float)
    anisotropic : bool

    Returns
    -------
    list of str
    """
    messages = []
    names = ["variance", "length_scale", "nugget", "anis_ratio", "angle"]
    for k, (lo, hi) in enumerate(bounds[:4] if anisotropic else bounds):
        if names[k] == "anis_ratio" and z[k] >= hi - 1e-3:
            continue  # isotropy is a legitimate answer
        if z[k] <= lo + 1e-3 * (hi - lo) and names[k] != "nugget":
            messages.append(
                f"fitted {names[k]} sits on its lower bound: the data do not identify it"
            )
        elif z[k] >= hi - 1e-3 * (hi - lo):
            messages.append(
                f"fitted {names[k]} sits on its upper bound: the data do not identify it"
            )
    return messages


def _free_parameters(z: np.ndarray, bounds: list, anisotropic: bool) -> tuple[np.ndarray, list]:
    """Which packed parameters are free (off their bounds) for the observed information.

    Parameters
    ----------
    z : np.ndarray, shape (p,)
        The fitted packed parameters.
    bounds : list of (float, float)
    anisotropic : bool

    Returns
    -------
    free : np.ndarray of bool, shape (p,)
    notes : list of str
        One per parameter held fixed, with the reason.
    """
    free, notes = np.ones(len(z), dtype=bool), []
    for k, (lo, hi) in enumerate(bounds):
        tol = 1e-3 * (hi - lo)
        if z[k] <= lo + tol or z[k] >= hi - tol:
            free[k] = False
            side = "lower" if z[k] <= lo + tol else "upper"
            notes.append(f"{_PACKED[k]} sits on its {side} bound: held fixed, no standard error")
    ratio_hi = bounds[3][1] - 1e-3 * (bounds[3][1] - bounds[3][0]) if anisotropic else 0.0
    if anisotropic and z[3] >= ratio_hi and free[4]:  # isotropic: no angle is identified
        free[4] = False
        notes.append("the fit is isotropic, so the angle is not identified: no standard error")
    return free, notes


def _log_standard_errors(reml, z: np.ndarray, bounds: list, anisotropic: bool):
    """Standard errors of the packed parameters from the observed information.

    The Hessian ``H`` of the negative REML log-likelihood in ``z`` at the optimum (exact,
    by torch double backward); parameters on a bound are held fixed there (their rows
    and columns dropped, the rest conditional on them). The covariance of the free ones
    is ``H^-1``; if ``H`` is not positive definite, it is inverted on its positive
    eigenspace and parameters loading on a flat or negative direction get inf.

    Parameters
    ----------
    reml : callable
        ``reml(z)`` as :func:`_negative_reml`.
    z : np.ndarray, shape (p,)
        The optimum.
    bounds : list of (float, float)
    anisotropic : bool

    Returns
    -------
    se : np.ndarray, shape (p,)
        NaN for parameters held fixed, inf along flat directions.
    notes : list of str
        Why some are NaN or inf; a flat direction's note comes last.
    """
    free, notes = _free_parameters(z, bounds, anisotropic)
    se = np.full(len(z), np.nan)
    if not free.any():
        return se, notes
    z_t = torch.as_tensor(np.asarray(z, dtype=np.float64))
    hess = torch.autograd.functional.hessian(lambda v: reml(v)[0], z_t).numpy()
    h = hess[np.ix_(free, free)]
    h = 0.5 * (h + h.T)
    if not np.isfinite(h).all():
        notes.append("the REML Hessian is not finite: no standard errors")
        return se, notes
    lam, vec = np.linalg.eigh(h)
    flat = lam <= _EIG_RTOL * np.abs(lam).max()
    var = (vec[:, ~flat] ** 2 / lam[~flat]).sum(1)
    unbounded = (np.abs(vec[:, flat]) > 1e-6).any(1)
    var[unbounded] = np.inf
    se[free] = np.sqrt(var)
    if unbounded.any():
        names = [_PACKED[k] for k in np.flatnonzero(free)[unbounded]]
        notes.append(
            f"the REML Hessian is not positive definite (smallest eigenvalue {lam.min():.3g}): "
            f"infinite standard errors for {', '.join(names)}"
        )
    return se, notes


def _data_standard_errors(params: dict, se_log: np.ndarray, anisotropic: bool) -> dict:
    """Delta-method standard errors in the data's units from those of the packed ones.

    Parameters
    ----------
    params : dict
        The fitted parameters, data units.
    se_log : np.ndarray, shape (p,)
        Standard errors of (log var, log ell, log nugget[, log ratio, angle]); the
        standardisation of the data shifts the logs by constants, so these hold for the
        data's units too.
    anisotropic : bool

    Returns
    -------
    dict of str to float
        ``se(exp(u)) = exp(u) se(u)``; ``noise_sd = sqrt(nugget)`` has
        ``se = sqrt(nugget) se(log nugget) / 2``.
    """
    ses = {
        "variance": params["variance"] * se_log[0],
        "length_scale": params["length_scale"] * se_log[1],
        "nugget": params["nugget"] * se_log[2],
        "noise_sd": math.sqrt(params["nugget"]) * se_log[2] / 2,
    }
    if anisotropic:
        ses["anis_ratio"] = params["anis_ratio"] * se_log[3]
        ses["angle"] = float(se_log[4])
    return {k: float(v) for k, v in ses.items()}


def _gls_mean_sd(model, pts, noise, z: torch.Tensor, shape: dict, anisotropic: bool) -> float:
    """Standard deviation ``(1^T K^-1 1)^-1/2`` of the GLS mean given the covariance.

    Parameters
    ----------
    model : StationaryPrior
    pts, noise : torch.Tensor, shapes (n, 2) and (n,)
    z : torch.Tensor, shape (p,)
        Packed parameters (see :func:`_unpack_reml`), of standardised data.
    shape : dict
    anisotropic : bool

    Returns
    -------
    float
        In standardised units.
    """
    with torch.no_grad():
        theta = _unpack_reml(z, shape, anisotropic)
        cov = model.covariance(pts, pts, theta, nugget=False)[0]
        chol = torch.linalg.cholesky(cov + torch.diag(noise + torch.exp(z[2])))
        ones = torch.ones(len(pts), 1, dtype=torch.float64)
        return float(torch.cholesky_solve(ones, chol).sum()) ** -0.5


def _range_warning(params: dict, diameter: float, messages: list) -> None:
    if params["length_scale"] > diameter:
        messages.append(
            f"fitted length scale {params['length_scale']:.3g} exceeds the extent of the "
            f"observations ({diameter:.3g}): the sill is not reached and the variance is poorly "
            "determined"
        )


# ------------------------------------------------------------------ noise (REML)
@dataclass
class NoiseEstimate:
    """The measurement noise of observations estimated as a REML nugget.

    Attributes
    ----------
    sd : float
        Noise standard deviation ``tau = sqrt(nugget)``, in the units of the values.
    sd_se : float
        Its asymptotic standard error (observed information, delta method); NaN when
        the nugget sits on a bound of the fit (e.g. the data look noiseless).
    variance : float
        ``tau**2``, the nugget.
    variance_se : float
    fit : CovarianceFit
        The full REML fit (all parameters, their standard errors, warnings).
    """

    sd: float
    sd_se: float
    variance: float
    variance_se: float
    fit: CovarianceFit

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Wald interval for ``tau`` on the log scale (stays positive): ``tau exp(±z se/tau)``.

        Returns
        -------
        (float, float)
            NaN when there is no finite standard error.
        """
        from scipy.stats import norm

        if not (0 < level < 1):
            raise GeodiffError(f"interval level must be in (0, 1), got {level!r}")
        if not (np.isfinite(self.sd_se) and self.sd > 0):
            return math.nan, math.nan
        half = norm.ppf(0.5 + level / 2) * self.sd_se / self.sd
        return self.sd * math.exp(-half), self.sd * math.exp(half)

    def describe(self) -> str:
        """One line, e.g. ``"noise sd 0.271 ± 0.031 (REML nugget)"``."""
        if np.isfinite(self.sd_se):
            return f"noise sd {self.sd:.3g} ± {self.sd_se:.2g} (REML nugget)"
        if any(note.startswith("nugget sits on its lower") for note in self.fit.se_notes):
            return f"noise sd {self.sd:.3g} (REML nugget on its lower bound: no noise detected)"
        return f"noise sd {self.sd:.3g} (REML nugget; no finite standard error)"


def reml_noise(
    obs: Observations,
    family: str = "matern",
    shape: dict | None = None,
    anisotropic: bool = True,
) -> NoiseEstimate:
    """Estimate the measurement noise of point observations as a REML nugget.

    Fits a stationary covariance with an unknown constant mean and a nugget
    (:func:`fit_covariance`, ``method="reml"``) to ``obs`` taken as noiseless, so that the
    nugget is the whole noise (measurement error plus any variation below the sampling
    scale), and gives its standard error from the observed information.

    Parameters
    ----------
    obs : Observations
        Point observations, n > 6 (4 if isotropic); their ``noise_sd`` is ignored.
    family : str
        GSTools family, as :func:`fit_covariance`.
    shape : dict, optional
        The family's shape parameter, held fixed (default ``nu = 1.5`` for Matérn).
    anisotropic : bool
        Fit an anisotropy ratio and angle too.

    Returns
    -------
    NoiseEstimate
        Warns (:class:`FitWarning`, also kept in ``fit.warnings``) when the noise has no
        finite standard error.
    """
    if obs.operator.kind == "points" and np.any(obs.noise_sd > 0):
        logger.info("reml_noise ignores the given noise sd: the nugget is the noise")
    exact = Observations(obs.operator, obs.values, 0.0)
    fit = fit_covariance(exact, family, method="reml", anisotropic=anisotropic, shape=shape)
    ses, nugget = fit.standard_errors, fit.params["nugget"]
    if not np.isfinite(ses["noise_sd"]):
        message = "the REML noise sd has no finite standard error: " + "; ".join(fit.se_notes)
        fit.warnings.append(message)
        warnings.warn(message, FitWarning, stacklevel=2)
    estimate = NoiseEstimate(math.sqrt(nugget), ses["noise_sd"], nugget, ses["nugget"], fit)
    logger.info(estimate.describe())
    return estimate


# -------------------------------------------------------------------- variogram
def _fit_variogram(obs: Observations, fam, shape: dict) -> CovarianceFit:
    pts, values = obs.locations, obs.values
    diameter, spacing = _geometry(obs)
    bins = np.linspace(0.0, diameter / 2, 16)
    centres, gamma, counts = gstools.vario_estimate(
        pts.T, values, bins, return_counts=True, mesh_type="unstructured"
    )
    keep = counts > 0
    sample_var = float(values.var())
    best = None
    for start in (0.05, 0.1, 0.2):  # least squares on a variogram has local minima
        model = fam.gstools(**shape)
        model.var_bounds = [1e-2 * sample_var, 1e2 * sample_var]
        model.len_scale_bounds = [spacing / 4, 5 * diameter]
        model.nugget_bounds = [0.0, 10 * sample_var]
        init = {"var": sample_var, "len_scale": start * diameter, "nugget": 0.1 * sample_var}
        _, _, r2 = model.fit_variogram(
            centres[keep],
            gamma[keep],
            init_guess=init,
            weights=counts[keep],
            return_r2=True,
            **shape,
        )
        if best is None or r2 > best[1]:
            best = (model, r2)
    model, r2 = best
    messages = []
    if r2 < _R2_WARN:
        messages.append(f"the variogram model fits poorly (R² = {r2:.2f})")
    for name, value, (lo, hi) in (
        ("variance", model.var, model.var_bounds),
        ("length_scale", model.len_scale, model.len_scale_bounds),
    ):
        if value <= lo * 1.001 or value >= hi * 0.999:
            messages.append(f"fitted {name} sits on a bound: the data do not identify it")
    params = {
        "mean": float(values.mean()),
        "variance": float(model.var),
        "length_scale": float(model.len_scale),
        "anis_ratio": 1.0,
        "angle": 0.0,
        "nugget": float(model.nugget),
        **shape,
    }
    _range_warning(params, diameter, messages)
    return CovarianceFit(fam.name, params, "variogram", float(r2), messages)


def plug_in_settings(prior) -> dict:
    """The family and shape of ``prior`` for a plug-in fit: ``ordinary_kriging(obs, targets,
    **plug_in_settings(prior))``.

    Returns
    -------
    dict
        ``family`` (the prior's covariance family) and ``shape`` (its shape parameters,
        e.g. Matérn's ν, held at their prior medians: a plug-in fit does not estimate them).
    """
    shape = {k: prior.parameters[k].prior_median() for k in prior.family.shape_parameters}
    return {"family": prior.family.name, "shape": shape}
