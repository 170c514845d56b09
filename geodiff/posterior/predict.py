"""Prediction with a trained diffusion prior: observations in, posterior draws and summaries out.

:func:`diffusion_posterior` maps the observations onto the model's domain and units
(:class:`~geodiff.transform.DomainMap`), runs a posterior sampler with the model's
network and returns :class:`PosteriorDraws` — fields on the model's grid, in physical
coordinates and units — which :meth:`PosteriorDraws.at` reads at any targets as a
:class:`~geodiff.prediction.Prediction` (mean, sd, quantiles, exceedance probabilities).
:func:`predict` does both, mirroring ``geodiff predict``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.netcdf import write_fields_netcdf
from geodiff.observe import Observations
from geodiff.posterior.mcgdiff import DEFAULT_PARTICLES
from geodiff.posterior.methods import POSTERIOR_SAMPLERS, posterior_sample
from geodiff.posterior.mmps import mmps_cost
from geodiff.posterior.problem import LinearGaussianProblem
from geodiff.prediction import Prediction
from geodiff.rng import generators_for
from geodiff.transform import DomainMap

__all__ = ["DEFAULT_METHOD", "PosteriorDraws", "diffusion_posterior", "predict"]

#: the method ``geodiff predict`` uses unless told otherwise (chosen in BENCHMARKS.md)
DEFAULT_METHOD = "mmps"
_POSTERIOR_STREAM = 30


@dataclass
class PosteriorDraws:
    """Posterior draws of the whole field, in physical coordinates and units.

    Attributes
    ----------
    fields : numpy.ndarray, float32, shape (S, H, W)
    grid : Grid
        The model's grid, with its extent in physical coordinates.
    domain_map : DomainMap
    method : str
    info : dict
        Options, wall time, sampler diagnostics.
    """

    fields: np.ndarray
    grid: Grid
    domain_map: DomainMap
    method: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.fields)

    def at(self, targets="grid") -> Prediction:
        """The predictive distribution at ``"grid"`` (every node) or at (m, 2) physical points.

        Points are read from each draw by bilinear interpolation.

        Raises
        ------
        GeodiffError
            A target outside the model's domain (in physical coordinates).
        """
        info = {"method": self.method, **self.info}
        if isinstance(targets, str):
            if targets != "grid":
                raise GeodiffError(f"targets must be 'grid' or points, got {targets!r}")
            return Prediction.from_draws(
                self.grid.points(), self.fields, grid=self.grid, method=self.method, info=info
            )
        points = np.asarray(targets, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2:
            raise GeodiffError(f"targets must have shape (m, 2), got {points.shape}")
        outside = ~self.grid.contains(points)
        if outside.any():
            k = int(np.argmax(outside))
            raise GeodiffError(
                f"{int(outside.sum())} target(s) lie outside the model's domain "
                f"{_extent_text(self.grid.extent)}, first #{k} at {tuple(points[k])}"
            )
        values = self.grid.interpolate(torch.from_numpy(self.fields).double(), points).numpy()
        return Prediction.from_draws(points, values, method=self.method, info=info)

    def write(self, path, attrs: dict | None = None):
        """Write the draws as NetCDF ``fields(sample, y, x)`` (atomic)."""
        meta = {"method": self.method, "content": "posterior draws", **(attrs or {})}
        return write_fields_netcdf(path, self.fields, self.grid, meta)


def _extent_text(extent) -> str:
    (x0, x1), (y0, y1) = extent
    return f"[{x0:.6g}, {x1:.6g}] x [{y0:.6g}, {y1:.6g}]"


def diffusion_posterior(
    model,
    obs: Observations,
    *,
    method: str = DEFAULT_METHOD,
    samples: int = 100,
    seed: int = 0,
    domain_map: DomainMap | None = None,
    batch_size: int = 64,
    progress: bool = False,
    **options,
) -> PosteriorDraws:
    """Posterior draws of the field given observations, with a trained diffusion prior.

    Parameters
    ----------
    model : DiffusionModel
    obs : Observations
        Points or block means, in physical coordinates and units.
    method : str
        A key of :data:`~geodiff.posterior.POSTERIOR_SAMPLERS`.
    samples : int
        Number of posterior draws ``S``.
    seed : int
        Draw ``i`` depends on ``(seed, i)`` only, not on ``batch_size``.
    domain_map : DomainMap, optional
        Physical → model map (see :mod:`geodiff.transform`); default: the identity,
        for data already in the model's coordinates and units.
    batch_size : int
        Fields per denoiser evaluation (MCGdiff: draws × particles).
    progress : bool
        Show a progress bar.
    **options
        The sampler's own options (``steps``, ``particles``, ``step_size``, ``eta``,
        ``cg_iterations``); ``steps=None`` is the sampler's default. MMPS is preconditioned
        by the model's prior covariance (:meth:`DiffusionModel.prior_covariance`) unless
        given a ``preconditioner``.

    Returns
    -------
    PosteriorDraws

    Raises
    ------
    GeodiffError
        Observations outside the model's domain, an unknown method or option.
    """
    if method not in POSTERIOR_SAMPLERS:
        raise GeodiffError(
            f"unknown posterior method {method!r}; choose from {sorted(POSTERIOR_SAMPLERS)}"
        )
    if not isinstance(samples, int) or samples < 1:
        raise GeodiffError(f"number of posterior draws must be a positive integer, got {samples!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise GeodiffError(f"batch size must be a positive integer, got {batch_size!r}")
    if obs.operator.grid is not None and obs.operator.grid != model.grid:
        raise GeodiffError(
            f"the observations were put on a {obs.operator.grid.shape} grid over "
            f"{_extent_text(obs.operator.grid.extent)}, but the checkpoint's grid is "
            f"{model.grid.shape} over {_extent_text(model.grid.extent)}"
        )
    dmap = DomainMap.identity(model.grid.extent) if domain_map is None else domain_map
    if dmap.model_extent != model.grid.extent:
        raise GeodiffError("the domain map was made for another model's domain")
    if obs.operator.grid is None:
        model_obs = dmap.to_model_observations(obs)
    elif dmap == DomainMap.identity(model.grid.extent):
        model_obs = obs
    else:
        raise GeodiffError(
            "observations put on the model's grid are in its coordinates and units already; "
            "map physical observations before putting them on a grid"
        )
    hint = "" if domain_map is not None else " (map physical coordinates with a domain)"
    model_obs.check_inside(model.grid.extent, f"the model's domain{hint}")
    problem = LinearGaussianProblem.from_observations(model_obs, model.grid, model.data_scale)
    device = model.device
    model.denoiser.eval()

    def denoiser(x_t, t):
        return model.denoiser.predict(x_t.to(torch.float32), t)[0]

    if options.get("steps", 0) is None:
        options = {k: v for k, v in options.items() if k != "steps"}
    if method == "mmps" and options.get("preconditioner") is None:
        options = dict(options, preconditioner=model.prior_covariance().to(device))
    per_batch = (
        max(1, batch_size // options.get("particles", DEFAULT_PARTICLES))
        if method == "mcgdiff"
        else batch_size
    )
    draws, diagnostics = [], []
    started = time.perf_counter()
    bar = _progress(samples, progress, f"{method} posterior")
    for lo in range(0, samples, per_batch):
        indices = range(lo, min(samples, lo + per_batch))
        run_options = dict(options, device=device)
        if method == "mcgdiff":
            diag = {}
            run_options["diagnostics"] = diag
            diagnostics.append(diag)
        x = posterior_sample(
            method,
            denoiser,
            model.schedule,
            problem,
            generators_for(seed, _POSTERIOR_STREAM, indices),
            **run_options,
        )
        draws.append(x[:, 0].to("cpu", torch.float64).numpy() * model.data_scale)
        bar.update(len(indices))
    bar.close()
    elapsed = time.perf_counter() - started
    fields = dmap.to_physical_values(np.concatenate(draws)).astype(np.float32)
    info = {
        "options": {k: v for k, v in options.items() if k != "preconditioner"},
        "samples": samples,
        "seed": seed,
        "wall_time_s": elapsed,
        "device": str(device),
        "domain_map": dmap.to_dict(),
        "n_observations": len(obs),
    }
    if method == "mmps":
        info["per_draw"] = mmps_cost(model.schedule, len(problem), **options)
    if diagnostics:
        info["min_relative_ess"] = float(min(min(d["ess"], default=1.0) for d in diagnostics))
    return PosteriorDraws(fields, dmap.physical_grid(model.grid), dmap, method, info)


def predict(model, obs: Observations, at="grid", **kwargs) -> Prediction:
    """:func:`diffusion_posterior` read at ``at`` (``"grid"`` or (m, 2) physical points)."""
    return diffusion_posterior(model, obs, **kwargs).at(at)


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="draw")
