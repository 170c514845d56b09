"""From a user's data to a :class:`~geodiff.evaluate.predictors.PredictionTask`: one rule.

``krige``, ``mcmc``, ``predict``, ``crossval`` and the Python API read observations in
physical coordinates and units the same way (:func:`build_task`):

1. **Noise.** A number, or the file's ``noise_sd`` column, is a *given* noise; without
   either the noise is inferred (``"bayes"`` by default, or ``"reml"``; see
   :mod:`geodiff.noise`). An inferred nugget adds to a column's noise.
2. **Values.** An optional transform (:mod:`geodiff.anamorphosis`: ``log``, ``boxcox``,
   ``normal-score``) is fitted to the observed values; every method works on the
   transformed values, given noise sds are carried over by the delta method
   (``τ_z = τ_y |T'(y)|``), and predictions are back-transformed at the end. Without a
   transform, strongly skewed values get a :class:`~geodiff.anamorphosis.SkewWarning`.
3. **Coordinates and units.** ``domain="model"``: the data are in the prior's (or
   model's) coordinates and units already. ``"auto"`` or a box: the physical domain is
   mapped onto the prior's by :meth:`~geodiff.transform.DomainMap.fit` (same scale on
   both axes) and, with ``standardise``, the values by their mean and sd. By default
   (``"auto"``) the values are standardised, with a :class:`ValueScaleWarning`, when
   they sit far from the prior's scale — their mean more than 3 prior sds from 0, or
   their sd more than 3 times off — since a zero-mean prior would otherwise pull every
   prediction towards 0 without a word. Predictions come back in physical coordinates
   and units.
4. **Targets.** ``"grid"`` is a grid over the physical domain (the model's own grid for a
   trained model); otherwise (m, 2) physical points.
"""

from __future__ import annotations

import warnings

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.evaluate.predictors import PredictionTask
from geodiff.grid import Grid
from geodiff.noise import NoiseModel
from geodiff.observe import MissingNoiseError, Observations
from geodiff.transform import DomainMap

__all__ = [
    "DegreesWarning",
    "ValueScaleWarning",
    "build_task",
    "prior_data_scale",
    "read_observations",
    "transform_observations",
]

_DATA_SCALE_DRAWS = 256
#: "far from the prior's scale": |mean| above this many prior sds, or sd off by this factor
_SCALE_FACTOR = 3.0


class ValueScaleWarning(UserWarning):
    """The values were standardised because they sit far from the prior's scale."""


class DegreesWarning(UserWarning):
    """The coordinates look like longitude and latitude in degrees."""


#: coordinates "look like degrees": inside [-180, 180] x [-90, 90], a box at most this
#: many units wide, at a latitude where one scale for both axes distorts by over 5 %
_DEGREES_BOX, _DEGREES_DISTORTION = 20.0, 1.05


def read_observations(path, noise_sd=None, *, noise=None, duplicates: str = "reject"):
    """Observations from a CSV file and how their noise is known.

    Parameters
    ----------
    path : path-like
    noise_sd : float or None
        Every row's measurement-noise sd (known); None: the file's ``noise_sd`` column,
        else none known. A noise model's name here (``"reml"``, ``"bayes"``: the former
        way of asking for one) is taken as ``noise``.
    noise : NoiseModel or {"given", "reml", "bayes"}, optional
        How the noise is learned: ``"given"`` (the known sds), ``"reml"``/``"bayes"``
        (a nugget inferred on top of the known sds, if any). Default: given when sds are
        known, else ``"bayes"``.
    duplicates : {"reject", "merge"}

    Returns
    -------
    obs : Observations
    noise : NoiseModel

    Raises
    ------
    GeodiffError
        ``noise="given"`` without a number or a ``noise_sd`` column.
    """
    if isinstance(noise_sd, str):
        noise_sd, noise = None, noise if noise is not None else noise_sd
    mode = None if noise is None else NoiseModel.parse(noise)
    if noise_sd is not None:
        obs = Observations.from_csv(path, float(noise_sd), duplicates=duplicates)
        return obs, mode or NoiseModel.GIVEN
    try:
        return Observations.from_csv(path, None, duplicates=duplicates), mode or NoiseModel.GIVEN
    except MissingNoiseError:
        if mode is NoiseModel.GIVEN:
            raise GeodiffError("the noise is 'given' but neither --noise-sd nor a noise_sd "
                               "column gives it") from None  # fmt: skip
        return Observations.from_csv(path, 0.0, duplicates=duplicates), mode or NoiseModel.BAYES


def transform_observations(obs: Observations, kind: str = "none"):
    """``(transform, observations of the transformed values)``; warns on skewed raw values.

    Given noise sds are carried over by the delta method at each observed value.
    """
    from geodiff.anamorphosis import SkewWarning, fit_transform, latent_noise_sd, skewness_advice

    if kind == "none":
        advice = skewness_advice(obs.values)
        if advice:
            warnings.warn(advice, SkewWarning, stacklevel=2)
        return None, obs
    transform = fit_transform(kind, obs.values)
    values = transform.forward(obs.values)
    noise = latent_noise_sd(transform, obs.values, obs.noise_sd)
    return transform, Observations(obs.operator, values, noise)


def prior_data_scale(prior, seed: int = 0) -> float:
    """The typical sd of the prior's fields: ``sqrt(E[variance])`` over its parameters."""
    import torch

    theta = prior.sample_theta(_DATA_SCALE_DRAWS, torch.Generator().manual_seed(seed))
    variance = theta["variance"].double().reshape(len(theta["variance"]), -1).mean(1)
    return float(variance.mean().sqrt())


def build_task(
    obs: Observations,
    targets="grid",
    *,
    prior=None,
    model=None,
    noise: NoiseModel | str = NoiseModel.GIVEN,
    transform: str = "none",
    domain="model",
    margin: float = 0.1,
    standardise: bool | str = "auto",
    grid: str | tuple = "64",
    theta: dict | None = None,
    target_noise_sd=None,
) -> PredictionTask:
    """A prediction task from physical observations by the module's rule.

    Parameters
    ----------
    obs : Observations
        In physical coordinates and units.
    targets : "grid" or array_like of shape (m, 2)
        Physical prediction points, or a grid over the physical domain.
    prior : GRFPrior, optional
        The prior (default: the model's).
    model : DiffusionModel, optional
    noise : NoiseModel or {"given", "reml", "bayes"}
    transform : {"none", "log", "boxcox", "normal-score"}
    domain : "model", "auto" or ((x0, x1), (y0, y1))
    margin : float
        Widening of an ``"auto"`` domain (fraction of the data box's longer side).
    standardise : bool or "auto"
        Map values by their mean and sd onto the prior's; ``"auto"`` does so (with a
        :class:`ValueScaleWarning`) when they sit far from the prior's scale and the
        domain is mapped (``domain != "model"``).
    grid : str
        ``"N"`` or ``"HxW"`` for grid targets without a model.
    theta : dict, optional
        Known parameters (simple kriging).
    target_noise_sd : float or array_like of shape (m,), optional
        The known noise of a new measurement at the targets, in the data's units
        (default: the median given noise sd; 0 when the noise is inferred).

    Returns
    -------
    PredictionTask
    """
    if prior is None and model is None:
        raise GeodiffError("a task needs a prior or a trained model")
    prior = prior if prior is not None else model.prior
    extent = model.grid.extent if model is not None else prior.domain
    if standardise not in (True, False, "auto"):
        raise GeodiffError(f"standardise must be True, False or 'auto', got {standardise!r}")
    noise = NoiseModel.parse(noise)
    _check_stations(obs, inferred=noise.inferred or standardise is True or transform != "none")
    points = None if _is_grid(targets) else _points(targets)
    if domain == "model":
        try:
            obs.check_inside(extent, "the model's domain" if model is not None else
                             "the prior's domain")  # fmt: skip
        except GeodiffError as err:
            raise GeodiffError(f"{err}; map physical coordinates onto it with --domain auto "
                               "(and values with --standardise)") from None  # fmt: skip
    raw_values = obs.values
    value_transform, obs = transform_observations(obs, transform)
    dmap = None
    if domain != "model":
        scale = model.data_scale if model is not None else prior_data_scale(prior)
        if standardise == "auto":
            standardise = _far_from_prior_scale(obs.values, scale)
        _warn_if_degrees(obs.locations if points is None else np.vstack([obs.locations, points]))
        dmap = DomainMap.fit(
            obs, extent, targets=points, domain=None if domain == "auto" else domain,
            margin=margin, standardise=standardise, data_scale=scale,
        )  # fmt: skip
    if points is None:
        physical = extent if dmap is None else dmap.physical_extent
        shape = model.grid.shape if model is not None else Grid.parse(grid).shape
        target_grid = Grid(shape, physical)
    if target_noise_sd is None:
        target_noise = 0.0 if noise.inferred else float(np.median(obs.noise_sd))
    else:  # the delta method at the observations' median value (as for their noise)
        slope = 1.0 if value_transform is None else _median_slope(value_transform, raw_values)
        target_noise = np.asarray(target_noise_sd, dtype=float) * slope
    return PredictionTask(
        prior, obs, target_grid if points is None else points, model=model, theta=theta,
        domain_map=dmap, noise=noise, target_noise_sd=target_noise, transform=value_transform,
        grid_field=False,
    )  # fmt: skip


def grid_for_cell_size(model, obs: Observations, targets, cell_size: float, *,
                       domain="auto", margin: float = 0.1):  # fmt: skip
    """An any-size model on the grid whose cells are ``cell_size`` physical units wide
    and that covers the physical domain, and that grid's exact physical extent.

    Parameters
    ----------
    model : DiffusionModel
        A model for any grid size (:attr:`~geodiff.diffusion.model.DiffusionModel.any_size`).
    obs : Observations
        In physical coordinates.
    targets : "grid" or array_like of shape (m, 2)
    cell_size : float
        Physical length of one cell (the model's resolution in the data's units).
    domain : "auto" or ((x0, x1), (y0, y1))
        The box to cover: the data's (and targets') box widened by ``margin``, or given.
    margin : float

    Returns
    -------
    model : DiffusionModel
        On ``(H, W)`` nodes, sides rounded up to what the network takes.
    extent : ((float, float), (float, float))
        The grid's physical extent, centred on the box: pass it as the task's domain.
    """
    from geodiff.diffusion.network import size_multiple
    from geodiff.transform import padded_box

    if not (np.isfinite(cell_size) and cell_size > 0):
        raise GeodiffError(f"cell size must be a positive number, got {cell_size}")
    if not model.any_size:
        raise GeodiffError(f"a cell size needs a model of any grid size; this one takes "
                           f"{model.grid_shapes_text()}")  # fmt: skip
    if domain == "auto":
        corners = obs.operator.support
        if not _is_grid(targets):
            corners = np.vstack([corners, _points(targets)])
        domain = padded_box(corners, margin)
    (x0, x1), (y0, y1) = domain
    multiple = size_multiple(model.denoiser.config)
    shape = []
    for span, least in ((y1 - y0, model.window_shape[0]), (x1 - x0, model.window_shape[1])):
        nodes = max(least, int(np.ceil(span / cell_size - 1e-9)) + 1)
        shape.append(-(-nodes // multiple) * multiple)
    h, w = shape
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = (w - 1) * cell_size / 2, (h - 1) * cell_size / 2
    extent = ((cx - half_w, cx + half_w), (cy - half_h, cy + half_h))
    return model.on_grid((h, w)), extent


def _warn_if_degrees(points: np.ndarray) -> None:
    """Warn when mapped coordinates look like longitude/latitude degrees.

    One scale for both axes then stretches east-west distances by ``1 / cos(latitude)``
    (1.47 at 47 degrees N): the covariance's geometry is wrong without a word. Projected
    coordinates (metres, km) are what the domain map expects.
    """
    lo, hi = points.min(0), points.max(0)
    inside = lo[0] >= -180 and hi[0] <= 180 and lo[1] >= -90 and hi[1] <= 90
    if not inside or max(hi - lo) > _DEGREES_BOX:
        return
    latitude = float(np.mean(points[:, 1]))
    stretch = 1.0 / max(np.cos(np.radians(latitude)), 1e-9)
    if stretch > _DEGREES_DISTORTION:
        warnings.warn(
            f"the coordinates look like longitude/latitude in degrees (x in [{lo[0]:.4g}, "
            f"{hi[0]:.4g}], y in [{lo[1]:.4g}, {hi[1]:.4g}]): one scale for both axes "
            f"stretches east-west distances by 1/cos({latitude:.0f}°) = {stretch:.2f}; "
            "project them to metres (e.g. UTM) before predicting",
            DegreesWarning,
            stacklevel=3,
        )


def _far_from_prior_scale(values: np.ndarray, scale: float) -> bool:
    """Whether values are far from a zero-mean prior of sd ``scale`` (warns when so)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        return False
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    far = abs(mean) > _SCALE_FACTOR * scale or not (
        scale / _SCALE_FACTOR <= sd <= _SCALE_FACTOR * scale
    )
    if far:
        warnings.warn(
            f"the values (mean {mean:.4g}, sd {sd:.4g}) are far from the prior's scale "
            f"(mean 0, sd {scale:.4g}): standardising them by their mean and sd (give "
            "--no-standardise to keep them as they are)",
            ValueScaleWarning,
            stacklevel=3,
        )
    return far


def _check_stations(obs: Observations, inferred: bool) -> None:
    """One clear line for data no method can use: one station, a line of them, one value."""
    if len(obs) < 2:
        raise GeodiffError(f"{len(obs)} observation: predictions need at least 2 (and a "
                           "fitted covariance needs more than 6)")  # fmt: skip
    centred = obs.locations - obs.locations.mean(0)
    spread = np.linalg.svd(centred, compute_uv=False)
    if len(obs) >= 3 and spread[1] <= 1e-9 * spread[0]:
        raise GeodiffError(
            f"the {len(obs)} stations lie on one line: a 2-D field cannot be inferred from "
            "them (its variation across the line is not observed)"
        )
    if inferred and np.ptp(obs.values) == 0:
        raise GeodiffError(
            f"all {len(obs)} observed values are equal ({obs.values[0]:g}): no noise, "
            "scale or transform can be estimated from them"
        )


def _median_slope(transform, values) -> float:
    from geodiff.anamorphosis import latent_noise_sd

    return float(latent_noise_sd(transform, [np.median(values)], 1.0)[0])


def _is_grid(targets) -> bool:
    return isinstance(targets, str) and targets == "grid"


def _points(targets) -> np.ndarray:
    points = np.asarray(targets, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise GeodiffError(f"targets must be finite (m, 2) points, got shape {points.shape}")
    return points
