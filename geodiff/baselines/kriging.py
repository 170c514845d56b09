"""Kriging: exact Gaussian conditioning given the parameters, and conditional simulation.

* :func:`simple_kriging` — the oracle: the prior's covariance at the true ``theta``,
  zero mean. For a Gaussian prior with known parameters its mean and variance *are* the
  posterior. Stationary priors observed at points go through GSTools' ``krige.Simple``;
  every other case (non-stationary covariances, block means, fields on a grid, a
  nugget in the field) through the same formula in torch with the prior's own
  covariance.
* :func:`conditional_simulation` — joint posterior draws by Matheron's rule (kriging of
  the residuals of unconditional simulations).

* :func:`ordinary_kriging` — the practitioner's plug-in baseline: a stationary
  covariance fitted to the observations (:mod:`geodiff.fields.fit`), then GSTools'
  ``krige.Ordinary`` with the fitted nugget acting as measurement error.
"""

from __future__ import annotations

import time

import gstools
import numpy as np
import torch

from geodiff.errors import GeodiffError
from geodiff.fields.fit import CovarianceFit, fit_covariance
from geodiff.fields.simulate import simulate
from geodiff.grid import Grid
from geodiff.linalg import check_conditioning, condition_on, robust_cholesky
from geodiff.machine import check_dense
from geodiff.observe import ObservationOperator, Observations, point_operator
from geodiff.prediction import Prediction, check_finite
from geodiff.rng import derive_seed

__all__ = [
    "conditional_simulation",
    "gaussian_condition",
    "ordinary_kriging",
    "simple_kriging",
    "target_operator",
]

_ENGINES = ("auto", "gstools", "torch")
_NOISE_STREAM = 2  # stream of the simulated measurement errors in Matheron's rule
_DIAGONAL_CHUNK = 512
ILL_CONDITIONED_HINT = (
    "observations nearly coincide or are too dense for their noise: merge them "
    "(--merge-duplicates) or give a larger --noise-sd"
)


def n_targets_of(targets) -> int:
    """How many targets ``targets`` (a Grid or (m, 2) points) holds, without making them."""
    if isinstance(targets, Grid):
        return targets.n_nodes
    return len(targets) if hasattr(targets, "__len__") else 0


def target_operator(
    targets, obs: Observations, domain=None
) -> tuple[ObservationOperator, np.ndarray, Grid | None]:
    """Targets as an operator of the same model as the observations.

    Parameters
    ----------
    targets : Grid or array_like of shape (m, 2)
    obs : Observations
        When its operator lives on a grid, targets are read from that grid field.
    domain : ((float, float), (float, float)), optional
        Refuse targets outside it.

    Returns
    -------
    operator : ObservationOperator
    points : numpy.ndarray, shape (m, 2)
    grid : Grid or None
        ``targets`` when it is a grid.
    """
    grid = targets if isinstance(targets, Grid) else None
    points = grid.points() if grid is not None else targets
    op = point_operator(points)
    if domain is not None:
        op.check_inside(domain, "the prior's domain (targets)")
    if obs.operator.grid is not None:
        op = op.on_grid(obs.operator.grid, obs.operator.method)
    return op, op.locations, grid


def _check_inputs(prior, theta: dict, obs: Observations) -> dict:
    if not isinstance(obs, Observations):
        raise GeodiffError(f"expected Observations, got {type(obs).__name__}")
    theta = prior.complete_theta(theta)
    if next(iter(theta.values())).shape[0] != 1:
        raise GeodiffError("kriging takes one parameter set (a batch of 1)")
    if not prior.extends_beyond_domain:
        obs.check_inside(prior.domain, "the prior's domain")
    return theta


def gaussian_condition(prior, theta: dict, obs: Observations, targets, *, full_cov=False) -> dict:
    """Mean and covariance of the field at targets given the observations and ``theta``.

    ``mean = k K^-1 y``, ``cov = C_tt - k K^-1 k^T`` with ``K = W C W^T + diag(tau^2)``
    and ``k`` the covariance between targets and observations, in float64 torch.

    Parameters
    ----------
    prior : GRFPrior
    theta : dict
        One parameter set (see :meth:`GRFPrior.complete_theta`).
    obs : Observations
    targets : Grid or array_like of shape (m, 2)
    full_cov : bool
        Return the (m, m) covariance too; else only its diagonal.

    Returns
    -------
    dict with ``mean`` (m,), ``var`` (m,), ``cov`` (m, m) if asked, ``points`` (m, 2),
    ``grid``
    """
    theta = _check_inputs(prior, theta, obs)
    n_targets = n_targets_of(targets)
    check_dense("kriging", len(obs.operator.support), n_targets, joint=full_cov)
    op, points, grid = target_operator(targets, obs, prior.domain)
    chol = _observation_cholesky(prior, theta, obs)
    y = torch.as_tensor(obs.values, dtype=torch.float64)
    cross = op.covariance(prior, theta, obs.operator)[0]  # (m, n)
    mean, half = condition_on(chol, cross, y)
    out = {"mean": mean, "points": points, "grid": grid}
    if full_cov:
        out["cov"] = op.covariance(prior, theta)[0] - half.T @ half
        out["var"] = out["cov"].diagonal().clone()
    else:
        out["var"] = _prior_variance(prior, theta, op) - (half * half).sum(0)
    out["var"] = out["var"].clamp_min(0.0)
    return out


def _observation_cholesky(prior, theta: dict, obs: Observations) -> torch.Tensor:
    cov = obs.operator.covariance(prior, theta)[0]
    cov = cov + torch.diag(torch.as_tensor(obs.noise_variance, dtype=cov.dtype))
    chol = robust_cholesky(cov, "covariance of the observations")
    check_conditioning(chol, "covariance of the observations", ILL_CONDITIONED_HINT)
    return chol


def check_gstools_conditioning(krige) -> None:
    """:func:`check_conditioning` of the covariance a GSTools kriging solves with."""
    try:
        cov = krige.model.covariance(krige._get_dists(krige._krige_pos))
    except AttributeError:  # another GSTools: its internals moved
        return
    cov = np.array(cov, dtype=float)
    cov[np.diag_indices(len(cov))] += krige.cond_err
    chol, info = torch.linalg.cholesky_ex(torch.as_tensor(cov))
    if int(info):  # not even positive definite: infinitely ill-conditioned
        chol = torch.zeros(1, 1, dtype=torch.float64)
    check_conditioning(chol, "covariance of the observations", ILL_CONDITIONED_HINT)


def _prior_variance(prior, theta: dict, op: ObservationOperator) -> torch.Tensor:
    """Diagonal of ``W C W^T``, in chunks of targets (never the full (m, m) matrix)."""
    out = []
    for lo in range(0, len(op), _DIAGONAL_CHUNK):
        part = op.subset(slice(lo, lo + _DIAGONAL_CHUNK))
        out.append(part.covariance(prior, theta)[0].diagonal())
    return torch.cat(out)


def simple_kriging(
    prior, theta: dict, obs: Observations, targets, *, engine: str = "auto", full_cov=False
) -> Prediction:
    """Simple kriging with known parameters: the exact posterior of a Gaussian prior.

    Parameters
    ----------
    prior : GRFPrior
    theta : dict
        The parameters (see :meth:`GRFPrior.complete_theta`); e.g. the true ones.
    obs : Observations
    targets : Grid or array_like of shape (m, 2)
    engine : {"auto", "gstools", "torch"}
        ``"auto"`` uses GSTools where it has the model (a stationary prior without a
        nugget, observed at points off any grid), else torch.
    full_cov : bool
        Keep the (m, m) posterior covariance in ``info["cov"]`` (torch engine).

    Returns
    -------
    Prediction
        Gaussian: ``mean`` and ``sd`` at the targets.
    """
    if engine not in _ENGINES:
        raise GeodiffError(f"unknown kriging engine {engine!r}; choose from {_ENGINES}")
    started = time.perf_counter()
    theta = _check_inputs(prior, theta, obs)
    if prior.kind == "spde" and not full_cov:
        return _spde_kriging(prior, theta, obs, targets, started)
    check_dense("kriging", len(obs.operator.support), n_targets_of(targets), joint=full_cov)
    gstools_ok = (
        prior.is_stationary
        and not prior._has_nugget
        and obs.operator.kind == "points"
        and not full_cov
    )
    if engine == "gstools" and not gstools_ok:
        raise GeodiffError(
            "GSTools kriging needs a stationary prior without nugget and point observations "
            "off any grid; use engine='torch'"
        )
    if engine == "gstools" or (engine == "auto" and gstools_ok):
        _, points, grid = target_operator(targets, obs, prior.domain)
        mean, var = _gstools_simple(prior, theta, obs, points)
        info = {"engine": "gstools"}
    else:
        cond = gaussian_condition(prior, theta, obs, targets, full_cov=full_cov)
        points, grid = cond["points"], cond["grid"]
        mean, var = cond["mean"].numpy(), cond["var"].numpy()
        info = {"engine": "torch"}
        if full_cov:
            info["cov"] = cond["cov"].numpy()
    info["theta"] = {k: v[0].tolist() for k, v in theta.items()}
    check_finite(mean, "means", obs.values, advice="rescale them")
    check_finite(var, "variances", obs.values, advice="rescale them")
    return Prediction(points, mean, np.sqrt(var), None, grid, "simple kriging", info,
                      seconds=time.perf_counter() - started)  # fmt: skip


def _spde_kriging(prior, theta: dict, obs: Observations, targets, started: float) -> Prediction:
    """Simple kriging of an SPDE prior by sparse solves (:mod:`geodiff.baselines.spde_kriging`)."""
    from geodiff.baselines.spde_kriging import spde_condition

    cond = spde_condition(prior, theta, obs, targets)
    info = {"engine": "spde", "sd_method": cond["sd_method"],
            "sd_relative_error": cond["sd_relative_error"],
            "theta": {k: v[0].tolist() for k, v in theta.items()}}  # fmt: skip
    check_finite(cond["mean"], "means", obs.values, advice="rescale them")
    return Prediction(cond["points"], cond["mean"], cond["sd"], None, cond["grid"],
                      "simple kriging", info, seconds=time.perf_counter() - started)  # fmt: skip


def gstools_model(prior, theta: dict) -> gstools.CovModel:
    """The GSTools model of a stationary prior at one parameter set (without nugget)."""
    if not prior.is_stationary:
        raise GeodiffError("GSTools has no model for a non-stationary prior")
    one = {k: float(v.reshape(-1)[0]) for k, v in theta.items()}
    shape = {k: one[k] for k in prior.family.shape_parameters}
    ell = one["length_scale"]
    return prior.family.gstools(
        var=one["variance"],
        len_scale=[ell, one["anis_ratio"] * ell],
        angles=one["angle"],
        **shape,
    )


def _gstools_simple(prior, theta, obs: Observations, points: np.ndarray):
    model = gstools_model(prior, theta)
    krige = gstools.krige.Simple(
        model,
        cond_pos=obs.locations.T,
        cond_val=obs.values,
        mean=0.0,
        exact=False,
        cond_err=obs.noise_variance,
        pseudo_inv=False,
    )
    check_gstools_conditioning(krige)
    mean, var = krige(points.T, mesh_type="unstructured", return_var=True, store=False)
    return np.asarray(mean, dtype=float), np.clip(np.asarray(var, dtype=float), 0.0, None)


def conditional_simulation(
    prior, theta: dict, obs: Observations, targets, n: int, seed: int = 0
) -> torch.Tensor:
    """Joint draws of the field at targets given the observations, with ``theta`` known.

    Matheron's rule: draw the field ``u`` and measurement errors ``e`` from the prior,
    then ``x = u + k K^-1 (y - W u(P) - e)``. Exact in distribution. When the
    observations live on the target grid, ``u`` comes from :func:`simulate` (circulant
    embedding for stationary priors); otherwise from one Cholesky factorisation of the
    joint covariance of the targets and the observations' support.

    Parameters
    ----------
    prior : GRFPrior
    theta : dict
        One parameter set.
    obs : Observations
    targets : Grid or array_like of shape (m, 2)
    n : int
        Number of draws.
    seed : int

    Returns
    -------
    torch.Tensor, float64, shape (n, H, W) for a grid, else (n, m)
    """
    if not isinstance(n, int) or n < 1:
        raise GeodiffError(f"number of draws must be a positive integer, got {n!r}")
    theta = _check_inputs(prior, theta, obs)
    if prior.kind == "spde":  # exact sparse conditioning (perturbation-optimisation)
        from geodiff.baselines.spde_kriging import spde_condition

        cond = spde_condition(prior, theta, obs, targets, draws=n, seed=seed, with_sd=False)
        draws = torch.as_tensor(cond["draws"])
        return draws.reshape(n, *targets.shape) if isinstance(targets, Grid) else draws
    check_dense("conditional simulation", len(obs.operator.support), n_targets_of(targets),
                joint=True)  # fmt: skip
    op, _, grid = target_operator(targets, obs, prior.domain)
    same_grid = grid is not None and obs.operator.grid == grid
    if same_grid:
        fields = simulate(prior, grid, n, seed, theta=theta, device="cpu").fields
        u_targets = fields.double().reshape(n, -1)
        nodes = grid.interpolation_weights(obs.operator.support, "nearest")[1]
        u_support = u_targets[:, nodes]
        cross = prior.covariance(grid.points(), obs.operator.support, theta)[0]
        cross = cross @ torch.as_tensor(obs.operator.weights.toarray().T)
    else:
        u_targets, u_support = _joint_draws(prior, theta, op, obs.operator, n, seed)
        u_targets = op.apply(u_targets)
        cross = op.covariance(prior, theta, obs.operator)[0]
    gen = torch.Generator().manual_seed(derive_seed(seed, _NOISE_STREAM))
    noise = torch.randn(n, len(obs), generator=gen, dtype=torch.float64)
    noise = noise * torch.as_tensor(obs.noise_sd)
    residual = torch.as_tensor(obs.values) - obs.operator.apply(u_support) - noise  # (n, nobs)
    chol = _observation_cholesky(prior, theta, obs)
    weights = torch.cholesky_solve(residual.T, chol)  # K^-1 r, (nobs, n)
    draws = u_targets + (cross @ weights).T
    return draws.reshape(n, *grid.shape) if grid is not None else draws


def _joint_draws(prior, theta, op_a: ObservationOperator, op_b: ObservationOperator, n, seed):
    """Prior draws of the field at both supports, jointly: (n, m_a), (n, m_b)."""
    points = np.concatenate([op_a.support, op_b.support])
    cov = prior.covariance(points, points, theta)[0]
    chol = robust_cholesky(cov, "joint prior covariance")
    gen = torch.Generator().manual_seed(derive_seed(seed, 1))
    z = torch.randn(n, len(points), generator=gen, dtype=torch.float64)
    values = z @ chol.T
    return values[:, : len(op_a.support)], values[:, len(op_a.support) :]


def ordinary_kriging(
    obs: Observations,
    targets,
    *,
    fit: CovarianceFit | None = None,
    family: str = "matern",
    method: str = "reml",
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
    check_gstools_conditioning(krige)
    mean, var = krige(points.T, mesh_type="unstructured", return_var=True, store=False)
    info = {
        "fit": dict(fit.params),
        "fit_method": fit.method,
        "fit_score": fit.score,
        "warnings": list(fit.warnings),
    }
    sd = np.sqrt(np.clip(np.asarray(var, dtype=float), 0.0, None))
    check_finite(mean, "means", obs.values, advice="rescale them")
    check_finite(sd, "standard deviations", obs.values, advice="rescale them")
    return Prediction(points, np.asarray(mean, dtype=float), sd, None, grid, "ordinary kriging",
                      info, seconds=time.perf_counter() - started)  # fmt: skip
