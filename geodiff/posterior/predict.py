"""Prediction with a trained diffusion prior: observations in, posterior draws and summaries out.

:func:`diffusion_posterior` maps the observations onto the model's domain and units
(:class:`~geodiff.transform.DomainMap`), runs a posterior sampler with the model's
network and returns :class:`PosteriorDraws` — fields on the model's grid, in physical
coordinates and units — which :meth:`PosteriorDraws.at` reads at any targets as a
:class:`~geodiff.prediction.Prediction` (mean, sd, quantiles, exceedance probabilities).
:func:`predict` does both, mirroring ``geodiff predict``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from geodiff.errors import CheckpointError, GeodiffError, renamed_arguments
from geodiff.grid import Grid
from geodiff.logs import progress_bar
from geodiff.machine import check_dense, check_memory
from geodiff.noise import (
    NoiseModel,
    NoisePrior,
    NoiseWarning,
    collapse_message,
    gibbs_noise,
    plug_in_noise,
)
from geodiff.observe import Observations
from geodiff.posterior.methods import posterior_sample, spec
from geodiff.posterior.problem import LinearGaussianProblem
from geodiff.prediction import Prediction, check_finite
from geodiff.rng import generators_for
from geodiff.transform import DomainMap

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_METHOD",
    "PosteriorDraws",
    "diffusion_posterior",
    "posterior_memory",
    "predict",
]

#: the method ``geodiff predict`` uses unless told otherwise (chosen in BENCHMARKS.md)
DEFAULT_METHOD = "mmps"
_POSTERIOR_STREAM, _NOISE_STREAM = 30, 31


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
        Options, sampler diagnostics, the noise's summary.
    noise_sd : numpy.ndarray, shape (S,), optional
        The measurement noise sd each draw was made under (physical units), when it
        was inferred (``noise="reml"``: the plug-in, the same for every draw; ``"bayes"``:
        sampled); None when it was given.
    noise : NoiseModel
        How the noise was learned.
    seconds : float, optional
        Wall time of the sampling.
    """

    fields: np.ndarray
    grid: Grid
    domain_map: DomainMap
    method: str
    info: dict = field(default_factory=dict)
    noise_sd: np.ndarray | None = None
    noise: NoiseModel = NoiseModel.GIVEN
    seconds: float | None = None

    def __post_init__(self):
        check_finite(self.fields, "posterior draws")

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
        made = {"seconds": self.seconds}
        if self.noise is NoiseModel.REML:  # a plug-in: one value
            made["noise_sd"] = float(self.noise_sd[0])
        elif self.noise.sampled:
            made["noise_sd_draws"] = self.noise_sd
        if isinstance(targets, str):
            if targets != "grid":
                raise GeodiffError(f"targets must be 'grid' or points, got {targets!r}")
            return Prediction.from_draws(self.grid.points(), self.fields, grid=self.grid,
                                         method=self.method, info=info, **made)  # fmt: skip
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
        return Prediction.from_draws(points, values, method=self.method, info=info, **made)

    def to_xarray(self, attrs: dict | None = None):
        """The draws as an :class:`xarray.Dataset`: ``fields(sample, y, x)``, float32.

        ``x`` and ``y`` are the physical coordinates of the grid's nodes; ``method``,
        ``content`` and ``attrs`` are global attributes (anything but a string or a
        number written as text), with the plain entries of ``info`` (strings, numbers).
        """
        from geodiff.netcdf import fields_dataset, netcdf_attrs

        meta = {
            **netcdf_attrs({**self.info, "seconds": self.seconds}, plain_only=True),
            "method": self.method,
            "content": "posterior draws",
            **(attrs or {}),
        }
        return fields_dataset(self.fields, self.grid, meta)

    def write(self, path, attrs: dict | None = None, *, overwrite: bool = True):
        """Write :meth:`to_xarray` as NetCDF-3 (atomic; see :mod:`geodiff.netcdf`)."""
        from geodiff.netcdf import write_dataset

        return write_dataset(path, self.to_xarray(attrs), overwrite=overwrite)


def _extent_text(extent) -> str:
    (x0, x1), (y0, y1) = extent
    return f"[{x0:.6g}, {x1:.6g}] x [{y0:.6g}, {y1:.6g}]"


def diffusion_posterior(
    model,
    obs: Observations,
    *,
    method: str = DEFAULT_METHOD,
    draws: int = 100,
    seed: int = 0,
    steps: int | None = None,
    domain_map: DomainMap | None = None,
    batch_size: int = 64,
    progress: bool = False,
    noise: NoiseModel | str = NoiseModel.GIVEN,
    noise_prior: NoisePrior | None = None,
    noise_sweeps: int = 10,
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
    draws : int
        Number of posterior draws ``S`` (formerly ``samples``, which still works for one
        release with a :class:`DeprecationWarning`).
    seed : int
        Draw ``i`` depends on ``(seed, i)`` only, not on ``batch_size``.
    steps : int, optional
        The sampler's steps (default: its own, :attr:`SamplerSpec.steps`).
    domain_map : DomainMap, optional
        Physical → model map (see :mod:`geodiff.transform`); default: the identity,
        for data already in the model's coordinates and units.
    batch_size : int
        Fields per denoiser evaluation (MCGdiff: draws × particles).
    progress : bool
        Show a progress bar.
    noise : NoiseModel or {"given", "reml", "bayes"}
        The measurement noise (see :mod:`geodiff.noise`): the observations' own
        ``noise_sd``; or that plus a nugget ``τ`` estimated by REML (a plug-in); or plus
        a nugget ``τ`` sampled jointly with the field by :func:`~geodiff.noise.gibbs_noise`
        (``noise_sweeps`` sampler runs of about ``draws / noise_sweeps`` draws each,
        after 3 burn-in runs of one draw, started at the REML estimate).
    noise_prior : NoisePrior, optional
        The prior of ``τ²`` in physical units (default :meth:`NoisePrior.weak` of the
        observed values).
    noise_sweeps : int
        Kept Gibbs sweeps (``noise="bayes"``).
    **options
        The sampler's own options (:attr:`SamplerSpec.options`: ``particles``,
        ``step_size``, ``eta``, ``cg_iterations``, …), over the model's measured
        :meth:`~geodiff.diffusion.model.DiffusionModel.posterior_defaults`. The
        sampler's ``prepare`` hook adds what the model provides: MMPS is preconditioned
        by the model's prior covariance (:meth:`DiffusionModel.prior_covariance`) unless
        given a ``preconditioner``.

    Returns
    -------
    PosteriorDraws
        With ``info``: the options given, wall time, device, and the sampler's cost per
        draw (``per_draw``) and diagnostics summary (MCGdiff: ``min_relative_ess``);
        with an inferred noise, ``noise_sd`` per draw and its summary in ``info["noise"]``.

    Raises
    ------
    GeodiffError
        Observations outside the model's domain, an unknown method or option.
    """
    sampler = spec(method)
    if "samples" in options:  # the former name of draws
        draws = renamed_arguments({"samples": options.pop("samples")}, {"samples": "draws"},
                                  "diffusion_posterior")["draws"]  # fmt: skip
    samples = draws
    if not isinstance(samples, int) or samples < 1:
        raise GeodiffError(f"number of posterior draws must be a positive integer, got {samples!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise GeodiffError(f"batch size must be a positive integer, got {batch_size!r}")
    stored = {k: v for k, v in model.posterior_defaults(method).items() if k not in options}
    try:
        sampler.check(stored)
    except GeodiffError as err:
        raise CheckpointError(f"the model's stored posterior_defaults: {err}") from None
    if stored:
        logger.info("%s with this model's measured settings %s (override any of them)",
                    method, stored)  # fmt: skip
    given = {**stored, **options}
    given = given if steps is None else dict(given, steps=steps)
    sampler.check(given)
    noise = NoiseModel.parse(noise)
    if sampler.matrix_free:
        check_memory(
            posterior_memory(model, len(obs), samples, batch_size),
            f"{method} on a {model.grid.shape[0]}x{model.grid.shape[1]} grid with {len(obs)} "
            "observations",
            "use a smaller --grid or fewer observations",
        )
    else:
        check_dense("posterior sampling", len(obs), model.grid.n_nodes, copies=4)
    dmap, model_obs = _model_observations(model, obs, domain_map)
    problem = LinearGaussianProblem.from_observations(
        model_obs, model.grid, model.data_scale, sparse=sampler.matrix_free
    )
    started = time.perf_counter()
    run = _Runner(sampler, model, problem, given, seed, batch_size)
    noise_sd, noise_info = None, {"mode": noise.value}
    if not noise.inferred:
        draws, infos = run(problem, range(samples), progress)
        fields = np.concatenate(draws)
    else:
        start = _reml_noise_sd(model, model_obs, noise)
        noise_info["reml_sd"] = float(dmap.to_physical_sd(start))
        if noise is NoiseModel.REML:
            draws, infos = run(run.with_nugget(start), range(samples), progress)
            fields, noise_sd = np.concatenate(draws), np.full(samples, start)
        else:
            prior = noise_prior or NoisePrior.weak(obs.values)
            prior = prior.scaled(1 / dmap.value_scale)
            fields, noise_sd, infos, chain = _gibbs(
                run, prior, start, samples, noise_sweeps, progress
            )
            noise_info.update(
                prior=prior.scaled(dmap.value_scale).to_dict(),
                chain=dmap.to_physical_sd(chain).tolist(),
            )
            message = collapse_message(float(np.mean(noise_sd)), start)
            if message:
                warnings.warn(message, NoiseWarning, stacklevel=2)
                noise_info["warning"] = message
        noise_sd = dmap.to_physical_sd(noise_sd)
        noise_info.update(_noise_summary(noise_sd))
    elapsed = time.perf_counter() - started
    fields = dmap.to_physical_values(fields).astype(np.float32)
    check_finite(fields, "posterior draws", obs.values)
    info = {
        "options": {k: v for k, v in given.items() if not isinstance(v, torch.Tensor)},
        "draws": samples,
        "seed": seed,
        "device": str(model.device),
        "domain_map": dmap.to_dict(),
        "n_observations": len(obs),
        "noise": noise_info,
    }
    if sampler.cost is not None:
        info["per_draw"] = sampler.cost(model.schedule, problem, run.options(problem))
    if sampler.summary is not None:
        info.update(sampler.summary(infos))
    return PosteriorDraws(fields, dmap.physical_grid(model.grid), dmap, method, info, noise_sd,
                          noise, elapsed)  # fmt: skip


#: memory the denoiser's graphs may take per batch: posterior draws are batched below it
#: (a fraction of a GPU's own memory on a GPU)
GRAPH_BUDGET_BYTES = 2.0e9


def _fields_per_batch(model, sampler, options: dict, batch_size: int) -> int:
    """Fields per batch: ``batch_size`` fields, fewer where their graphs exceed the budget."""
    from geodiff.diffusion.network import graph_bytes

    per_draw = sampler.fields_per_draw(options)
    per_batch = max(1, batch_size // per_draw)
    if sampler.gradients:
        budget = GRAPH_BUDGET_BYTES
        if model.device.type == "cuda":
            budget = 0.5 * torch.cuda.get_device_properties(model.device).total_memory
        field = graph_bytes(model.denoiser.config, model.grid.n_nodes) * per_draw
        per_batch = max(1, min(per_batch, int(budget // field)))
    return per_batch


def posterior_memory(model, n_observations: int, samples: int, batch_size: int = 64) -> float:
    """Bytes :func:`diffusion_posterior` needs with MMPS, estimated before anything is made:
    the prior's Gaussian (``n × n`` matrices, FFT buffers, up to 1 GiB of factors kept
    across batches), the batches' graphs
    (at most :data:`GRAPH_BUDGET_BYTES`) and the draws (float64 then float32)."""
    from geodiff.diffusion.network import graph_bytes
    from geodiff.posterior.methods import spec

    d = model.grid.n_nodes
    per_batch = _fields_per_batch(model, spec("mmps"), {}, batch_size)
    gaussian = 8.0 * (3 * n_observations**2 + 8 * 4 * d) + 2**27 + 2**30  # + kept factors
    return gaussian + per_batch * graph_bytes(model.denoiser.config, d) + 12.0 * samples * d


def _noise_summary(noise_sd: np.ndarray) -> dict:
    q05, q95 = np.quantile(noise_sd, [0.05, 0.95])
    return {"sd_mean": float(noise_sd.mean()), "sd_q05": float(q05), "sd_q95": float(q95)}


def _reml_noise_sd(model, model_obs: Observations, noise: NoiseModel) -> float:
    """The REML nugget's sd (model units); a chain on block means starts at 0.1 data scale."""
    blocks = model_obs.operator.kind != "points" or model_obs.operator.grid is not None
    if blocks and noise.sampled:
        return 0.1 * model.data_scale
    return max(float(plug_in_noise(model_obs, model.prior).sd), 1e-3 * model.data_scale)


def _gibbs(run, prior: NoisePrior, start: float, samples: int, sweeps: int, progress: bool):
    """:func:`gibbs_noise` with the sampler as the field step (model units)."""
    base, infos = run.problem, []
    values = base.values.numpy()
    bar = progress_bar(samples + 3, enabled=progress, desc=f"{run.sampler.name} + noise",
                       unit="draw")  # fmt: skip

    def draw(tau, indices):
        batches, batch_infos = run(run.with_nugget(tau), indices, False)
        infos.extend(batch_infos)
        bar.update(len(indices))
        return np.concatenate(batches)

    def residuals(field):
        scaled = torch.from_numpy(np.asarray(field, dtype=np.float64).reshape(1, -1))
        fitted = base.apply(scaled / run.model.data_scale)[0].numpy()
        return (values - fitted) * run.model.data_scale

    result = gibbs_noise(draw, residuals, prior, start, samples, sweeps=sweeps, burn_in=3,
                         seed=run.seed, stream=_NOISE_STREAM)  # fmt: skip
    bar.close()
    return result.fields, result.noise_sd, infos, result.chain


@dataclass
class _Runner:
    """One sampler on one model, run on any draw indices of a problem."""

    sampler: object
    model: object
    problem: LinearGaussianProblem
    given: dict
    seed: int
    batch_size: int

    def with_nugget(self, tau: float) -> LinearGaussianProblem:
        """The problem with a nugget ``tau`` (model units) added to the known noise."""
        extra = (float(tau) / self.model.data_scale) ** 2
        return replace(self.problem, noise_sd=torch.sqrt(self.problem.noise_sd**2 + extra))

    def options(self, problem) -> dict:
        prepare = self.sampler.prepare
        return self.given if prepare is None else prepare(self.model, problem, self.given)

    def __call__(self, problem, indices, progress):
        return _run_batches(self.sampler, self.model, problem, self.options(problem),
                            list(indices), self.seed, self.batch_size, progress)  # fmt: skip


def _model_observations(model, obs: Observations, domain_map: DomainMap | None):
    """``(domain map, observations in the model's coordinates and units)``, checked."""
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
    return dmap, model_obs


def _run_batches(sampler, model, problem, options, indices, seed, batch_size, progress):
    """The draws of ``indices``, batches of (b, H, W) on the model's grid times ``data_scale``."""
    per_batch = _fields_per_batch(model, sampler, options, batch_size)
    model.denoiser.eval()
    draws, infos = [], []
    bar = progress_bar(len(indices), enabled=progress, desc=f"{sampler.name} posterior",
                       unit="draw")  # fmt: skip
    for lo in range(0, len(indices), per_batch):
        batch = indices[lo : lo + per_batch]
        result = posterior_sample(
            sampler.name,
            model.denoiser,
            model.schedule,
            problem,
            generators_for(seed, _POSTERIOR_STREAM, batch),
            device=model.device,
            **options,
        )
        draws.append(result.draws[:, 0].to("cpu", torch.float64).numpy() * model.data_scale)
        infos.append(result.info)
        bar.update(len(batch))
    bar.close()
    return draws, infos


def predict(model, obs: Observations, at="grid", **kwargs) -> Prediction:
    """:func:`diffusion_posterior` read at ``at`` (``"grid"`` or (m, 2) physical points)."""
    return diffusion_posterior(model, obs, **kwargs).at(at)
