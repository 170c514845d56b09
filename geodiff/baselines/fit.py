"""The practitioner's plug-in baseline: fit a covariance to the observations, then krige.

Two ways to fit a stationary model with a constant unknown mean:

* ``"ml"`` (default): restricted maximum likelihood (REML, the mean profiled out),
  variance, length scale, nugget and — with ``anisotropic=True`` — anisotropy ratio and
  angle, by L-BFGS-B with exact torch gradients from several starting points;
* ``"variogram"``: GSTools' empirical isotropic variogram and ``CovModel.fit_variogram``.

Both start from guesses scaled to the data (sample variance, the spread of the
locations), stay inside bounds scaled the same way, and warn (:class:`FitWarning`,
also kept in :attr:`CovarianceFit.warnings`) when a parameter ends on a bound, the
range exceeds the observed extent, the optimiser fails or the variogram fits poorly.
:func:`ordinary_kriging` then predicts with GSTools' ``krige.Ordinary``, the fitted
nugget acting as measurement error.
"""

from __future__ import annotations

import math
import time
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
from geodiff.grid import Grid
from geodiff.observe import Observations
from geodiff.prediction import Prediction, check_finite

__all__ = ["CovarianceFit", "FitWarning", "fit_covariance", "ordinary_kriging", "plug_in_settings"]

_METHODS = ("ml", "variogram")
_DEFAULT_SHAPE = {"matern": {"nu": 1.5}, "stable": {"alpha": 1.5}}
_MIN_RATIO = 0.1  # smallest anisotropy ratio fitted
_R2_WARN = 0.5


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
        ``"ml"`` or ``"variogram"``.
    score : float
        REML log-likelihood (``"ml"``) or the variogram fit's R² (``"variogram"``).
    warnings : list of str
    """

    family: str
    params: dict
    method: str
    score: float
    warnings: list = field(default_factory=list)

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


def fit_covariance(
    obs: Observations,
    family: str = "matern",
    *,
    method: str = "ml",
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
    method : {"ml", "variogram"}
    anisotropic : bool
        Fit an anisotropy ratio and angle too (``"ml"`` only; variogram fits are
        isotropic).
    shape : dict, optional
        The family's shape parameter, held fixed (default ``nu = 1.5`` for Matérn,
        ``alpha = 1.5`` for stable).

    Returns
    -------
    CovarianceFit
    """
    if method not in _METHODS:
        raise GeodiffError(f"unknown fitting method {method!r}; choose from {_METHODS}")
    if obs.operator.kind != "points":
        raise GeodiffError("covariance fitting needs point observations off any grid")
    fam = get_family(family)
    shape = dict(_DEFAULT_SHAPE.get(fam.name, {}) if shape is None else shape)
    if set(shape) != set(fam.shape_parameters):
        raise GeodiffError(f"family {fam.name!r} needs shape parameter(s) {fam.shape_parameters}")
    aniso = anisotropic and method == "ml"
    n_params = 6 if aniso else 4  # mean, variance, length scale, nugget (+ ratio, angle)
    if len(obs) <= n_params:
        raise GeodiffError(
            f"{len(obs)} observations cannot fit {n_params} parameters (mean, variance, "
            f"length scale, nugget{', anisotropy ratio and angle' if aniso else ''}); "
            "give more observations"
        )
    if np.ptp(obs.values) == 0:
        raise GeodiffError("all observed values are equal: no covariance can be fitted")
    if method == "ml":
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
    return CovarianceFit(fam.name, params, "ml", score, messages)


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


def _range_warning(params: dict, diameter: float, messages: list) -> None:
    if params["length_scale"] > diameter:
        messages.append(
            f"fitted length scale {params['length_scale']:.3g} exceeds the extent of the "
            f"observations ({diameter:.3g}): the sill is not reached and the variance is poorly "
            "determined"
        )


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


# ------------------------------------------------------------------------ krige
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


def ordinary_kriging(
    obs: Observations,
    targets,
    *,
    fit: CovarianceFit | None = None,
    family: str = "matern",
    method: str = "ml",
    anisotropic: bool = True,
    shape: dict | None = None,
) -> Prediction:
    """Ordinary kriging (unknown constant mean) with a fitted covariance, via GSTools.

    Parameters
    ----------
    obs : Observations
        Point observations; the known noise adds to the fitted nugget as measurement
        error, and predictions are of the field without either.
    targets : Grid or array_like of shape (m, 2)
    fit : CovarianceFit, optional
        A fit to use; else one is made with ``family, method, anisotropic, shape`` (see
        :func:`fit_covariance`).

    Returns
    -------
    Prediction
        Gaussian, with ``info["fit"]`` the fitted parameters and ``info["warnings"]``.
    """
    from geodiff.baselines.kriging import n_targets_of
    from geodiff.machine import check_dense

    started = time.perf_counter()
    check_dense("kriging", len(obs), n_targets_of(targets), copies=3)
    if fit is None:
        fit = fit_covariance(obs, family, method=method, anisotropic=anisotropic, shape=shape)
    grid = targets if isinstance(targets, Grid) else None
    points = grid.points() if grid is not None else np.asarray(targets, dtype=float)
    krige = gstools.krige.Ordinary(
        fit.gstools_model(nugget=False),
        cond_pos=obs.locations.T,
        cond_val=obs.values,
        exact=False,
        cond_err=obs.noise_variance + fit.params["nugget"],
        pseudo_inv=False,
    )
    from geodiff.baselines.kriging import check_gstools_conditioning

    check_gstools_conditioning(krige)
    mean, var = krige(points.T, mesh_type="unstructured", return_var=True, store=False)
    info = {
        "fit": dict(fit.params),
        "fit_method": fit.method,
        "fit_score": fit.score,
        "warnings": list(fit.warnings),
        "wall_time": time.perf_counter() - started,
    }
    sd = np.sqrt(np.clip(np.asarray(var, dtype=float), 0.0, None))
    check_finite(mean, "means", obs.values, advice="rescale them")
    check_finite(sd, "standard deviations", obs.values, advice="rescale them")
    return Prediction(
        points, np.asarray(mean, dtype=float), sd, None, grid, "ordinary kriging", info
    )
