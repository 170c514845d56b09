"""A first prior from the data, and a check that a trained model's prior covers the data.

**A prior config from observations** (:func:`prior_from_data`, :func:`prior_toml`,
:func:`write_prior_from_data`). A new user's first ``krige``/``mcmc``/``train`` should
start from a prior on the data's own domain and scales, not the unit square. From point
observations in physical coordinates and units, a stationary prior config is built by
these rules (numbers are module constants):

* **domain** — the bounding box of the observations widened on every side by
  ``margin`` (default 0.1) times its longer side: the rule of
  :meth:`geodiff.transform.DomainMap.fit` (whose helper is private, so the two lines are
  repeated here), without its final widening to a model's aspect ratio — there is no
  model yet. No datum sits on the edge, where a learned prior is least constrained.
* **length scale** — ``loguniform(low, high)`` around the length scale ``l`` of an
  isotropic REML fit (:func:`geodiff.fields.fit.fit_covariance`, the family's shape
  held fixed, noise as given with the observations, a free nugget): ``low = l / 3``,
  ``high = 3 l`` (:data:`LENGTH_FACTOR`). ``l`` is GSTools' ``len_scale``, the very
  parameter the prior samples (the practical range, where the correlation falls to 5 %,
  is a family-dependent multiple of it — 3.87 l for Matérn nu = 1.5 — and is given in a
  comment only). The factor 3 each way covers the REML estimate's error from ~10²
  points (typically tens of per cent), the anisotropy the isotropic fit averages over
  (the prior's main axis is up to 1 / 0.4 times the minor one) and leaves room for the
  posterior to move. The interval is then kept inside ``[2 s, D]`` (:data:`MIN_SPACINGS`),
  with ``s`` the median nearest-neighbour distance between stations and ``D`` the
  domain's diagonal: scales below about two station spacings are not resolved by the
  data, and above the domain's size a field is a trend the data cannot tell from a
  longer-range one (only ``variance / length**(2 nu)`` is identified). Keeping means
  *shifting* the interval, in log, until it fits, which preserves its width (or taking
  the whole window when that is narrower); the floor is at most ``D / 3``.
* **variance** — ``loguniform(v / 3, 3 v)`` (:data:`VARIANCE_FACTOR`) around the fitted
  partial sill ``v`` (the sill minus the nugget), in the data's units squared. Its
  error from one realisation is large when the range is long compared with the domain.
* **nugget** — fixed to 0: the prediction methods infer the measurement noise
  separately (from ``noise_sd`` or by their own noise estimate), so a nugget in the
  prior would count it twice.
* **anisotropy** — ratio ``uniform(0.4, 1)`` and angle ``uniform(0, pi)``, as in the
  shipped ``stationary-matern`` config: a ratio and direction estimated from ~10²
  scattered points are too uncertain to narrow the prior on.
* **shape** — held at the given value (Matérn ``nu = 1.5``, stable ``alpha = 1.5`` by
  default).

The fields of the prior have zero mean; the data's fitted mean is reported in a comment
(the prediction methods remove it with their value map, e.g. ``--standardise``).
Coordinates are translated and divided by the bounding box's longer side before the fit
(and the result multiplied back), so the whole rule is equivariant: coordinates scaled
by ``c`` give a domain and a length-scale range scaled by ``c``.

**Coverage of a trained prior** (:func:`prior_coverage`, :func:`check_prior_coverage`).
A trained model's prior covers a range of length scales, :func:`length_scale_range`
(model units); divided by :attr:`DomainMap.coordinate_scale` it is the range in physical
units. An isotropic REML fit of the physical observations (at most :data:`MAX_FIT_POINTS`
of them, a fixed random subset beyond) gives the data's length scale; when it falls
outside the range, the predictions lean on the prior's nearest scales, and
:func:`check_prior_coverage` warns with :class:`PriorRangeWarning`.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from geodiff.errors import GeodiffError
from geodiff.fields.correlation import get_family
from geodiff.fields.maps import MapPrior, SpectralMapPrior
from geodiff.fields.parameters import ScalarPrior
from geodiff.observe import Observations, point_operator
from geodiff.transform import padded_box

__all__ = [
    "LENGTH_FACTOR",
    "MAX_FIT_POINTS",
    "MIN_POINTS",
    "MIN_SPACINGS",
    "VARIANCE_FACTOR",
    "DataPriorConfig",
    "PriorCoverage",
    "PriorRangeWarning",
    "check_prior_coverage",
    "length_scale_range",
    "prior_coverage",
    "prior_from_data",
    "prior_toml",
    "write_prior_from_data",
]

logger = logging.getLogger(__name__)

#: fewest observations a prior is derived from (a 4-parameter fit needs well over 4)
MIN_POINTS = 10
#: the length-scale range is [l / LENGTH_FACTOR, l * LENGTH_FACTOR] before clipping
LENGTH_FACTOR = 3.0
#: the variance range is [v / VARIANCE_FACTOR, v * VARIANCE_FACTOR]
VARIANCE_FACTOR = 3.0
#: the shortest length scale of the range, in median nearest-neighbour distances
MIN_SPACINGS = 2.0
#: observations used by the coverage check's fit (a random subset beyond, for speed)
MAX_FIT_POINTS = 400
#: anisotropy priors of the shipped stationary config
ANIS_RATIO = {"distribution": "uniform", "low": 0.4, "high": 1.0}
ANGLE = {"distribution": "uniform", "low": 0.0, "high": math.pi}
#: quantiles used for the range of a distribution with unbounded support
QUANTILES = (0.01, 0.99)
#: a map's values are taken to lie within median * exp(+-MAP_SDS * log_sd)
MAP_SDS = 2.0
_COLLINEAR = 1e-9  # smallest / largest singular value of the centred coordinates


class DataPriorConfig(dict):
    """A prior config (a plain ``dict`` to :func:`prior_from_config`) with its provenance.

    Attributes
    ----------
    notes : dict of str to list of str
        Comment lines for :func:`prior_toml`: ``"header"`` and one entry per top-level
        key or parameter name.
    derivation : dict of str to float
        The numbers the ranges came from (fitted mean, partial sill, nugget and length
        scale, practical range, station spacing, domain diagonal, number of points).
    """

    def __init__(self, config: dict, notes: dict | None = None, derivation: dict | None = None):
        super().__init__(config)
        self.notes = dict(notes or {})
        self.derivation = dict(derivation or {})


# ------------------------------------------------------------------- from data
def _check_points(obs: Observations) -> tuple[np.ndarray, np.ndarray]:
    """Locations (n, 2) and values (n,) of observations a prior can be derived from."""
    if not isinstance(obs, Observations):
        raise GeodiffError(f"expected Observations, got {type(obs).__name__}")
    if obs.operator.kind != "points":
        raise GeodiffError(
            f"a prior is derived from point observations; these are {obs.operator.kind} "
            "(use the block centres as points, or write the prior by hand)"
        )
    pts, values = np.asarray(obs.locations, float), np.asarray(obs.values, float)
    n = len(values)
    if n < MIN_POINTS:
        raise GeodiffError(
            f"{n} observations are too few to derive a prior: at least {MIN_POINTS} are needed"
        )
    if not (np.isfinite(pts).all() and np.isfinite(values).all()):
        raise GeodiffError("observations contain NaN or infinite coordinates or values")
    if np.ptp(values) == 0:
        raise GeodiffError(
            "all observed values are equal (constant values): no variance or length scale "
            "can be estimated"
        )
    sv = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    if np.ptp(pts, 0).min() == 0 or sv[1] <= _COLLINEAR * sv[0]:
        raise GeodiffError(
            "the stations are collinear (they lie on one line: the bounding box has zero "
            "area or the coordinates have rank 1), so a 2-d covariance cannot be estimated"
        )
    return pts, values


def _fit(pts: np.ndarray, obs: Observations, family: str, shape: dict | None):
    """Isotropic REML fit on coordinates scaled to a unit longer side.

    Returns
    -------
    (CovarianceFit, float)
        The fit in scaled coordinates and the scale (physical length per fit length).
    """
    from geodiff.fields.fit import fit_covariance

    lo = pts.min(0)
    side = float(np.ptp(pts, 0).max())
    scaled = Observations(point_operator((pts - lo) / side), obs.values, obs.noise_sd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kept in fit.warnings and logged below
        fit = fit_covariance(scaled, family, method="reml", anisotropic=False, shape=shape)
    for message in fit.warnings:
        logger.warning("covariance fit for the prior: %s", message)
    return fit, side


def _log_window(centre: float, factor: float, lo: float, hi: float) -> tuple[float, float]:
    """``[centre / factor, centre * factor]`` shifted in log to lie in ``[lo, hi]``."""
    if lo * factor**2 >= hi:  # window narrower than the interval: take it whole
        return lo, hi
    low = min(max(centre / factor, lo), hi / factor**2)
    return low, low * factor**2


def prior_from_data(
    obs: Observations,
    *,
    family: str = "matern",
    shape: dict | None = None,
    name: str | None = None,
    margin: float = 0.1,
) -> DataPriorConfig:
    """A stationary prior config fitted to point observations (rules: module docstring).

    Parameters
    ----------
    obs : Observations
        At least :data:`MIN_POINTS` point observations, in physical coordinates and
        units, not collinear, not all equal.
    family : str
        GSTools family of the prior (``matern``, ``exponential``, ``gaussian``,
        ``stable``, ``spherical``).
    shape : dict, optional
        The family's shape parameter, fixed in the prior (default ``{"nu": 1.5}`` for
        Matérn, ``{"alpha": 1.5}`` for stable).
    name : str, optional
        The config's name (default ``"from-data-<family>"``).
    margin : float
        Widening of the domain, as a fraction of the bounding box's longer side.

    Returns
    -------
    DataPriorConfig
        A ``dict`` that :func:`geodiff.fields.config.prior_from_config` reads, carrying
        the comments and numbers :func:`prior_toml` writes beside it.

    Raises
    ------
    GeodiffError
        Too few, collinear, constant, non-finite or non-point observations.
    """
    fam = get_family(family)
    pts, _ = _check_points(obs)
    domain = padded_box(pts, margin)
    fit, side = _fit(pts, obs, fam.name, shape)
    p = fit.params
    shape = {k: float(p[k]) for k in fam.shape_parameters}
    ell, variance = p["length_scale"] * side, p["variance"]
    dist, _ = cKDTree(pts).query(pts, k=2)
    spacing = float(np.median(dist[:, 1]))
    diagonal = math.hypot(domain[0][1] - domain[0][0], domain[1][1] - domain[1][0])
    floor = min(MIN_SPACINGS * spacing, diagonal / LENGTH_FACTOR)
    low, high = _log_window(ell, LENGTH_FACTOR, floor, diagonal)
    practical = float(fit.gstools_model(nugget=False).percentile_scale(0.95)) * side
    derivation = {
        "n": len(obs),
        "mean": float(p["mean"]),
        "partial_sill": float(variance),
        "nugget": float(p["nugget"]),
        "length_scale": float(ell),
        "practical_range": practical,
        "spacing": spacing,
        "floor": floor,
        "diagonal": diagonal,
    }
    shape_text = ", ".join(f"{k} = {v:g}" for k, v in shape.items())
    config = {
        "name": name or f"from-data-{fam.name}",
        "description": (
            f"Stationary {fam.name}{f' ({shape_text})' if shape_text else ''} prior derived "
            f"from {len(obs)} observations by geodiff.fields.from_data.prior_from_data"
        ),
        "type": "stationary",
        "family": fam.name,
        "domain": [list(axis) for axis in domain],
        "parameters": _parameters(shape, variance, low, high),
    }
    notes = _notes(derivation, margin, shape_text, fit.warnings)
    logger.info(
        "prior from %d observations: length scale %.4g - %.4g (fitted %.4g), partial sill %.4g",
        len(obs), low, high, ell, variance,
    )  # fmt: skip
    return DataPriorConfig(config, notes, derivation)


def _parameters(shape: dict, variance: float, low: float, high: float) -> dict:
    """The ``[parameters]`` table of :func:`prior_from_data` (rules: module docstring)."""
    return {
        **shape,
        "variance": {
            "distribution": "loguniform",
            "low": variance / VARIANCE_FACTOR,
            "high": variance * VARIANCE_FACTOR,
        },
        "nugget": 0.0,
        "length_scale": {"distribution": "loguniform", "low": low, "high": high},
        "anis_ratio": dict(ANIS_RATIO),
        "angle": dict(ANGLE),
    }


def _notes(d: dict, margin: float, shape_text: str, fit_warnings: list) -> dict:
    """Comment lines of :func:`prior_toml` for a config built by :func:`prior_from_data`."""
    header = [
        f"Stationary prior derived from {d['n']} point observations by",
        "geodiff.fields.from_data.prior_from_data (rules in that module's docstring).",
        "Isotropic REML fit (coordinates and values in the data's units):",
        f"  mean {d['mean']:.6g}, partial sill {d['partial_sill']:.6g}, nugget {d['nugget']:.6g},",
        f"  length scale {d['length_scale']:.6g} (practical range, 5 % correlation: "
        f"{d['practical_range']:.6g}),",
        f"  median station spacing {d['spacing']:.6g}, domain diagonal {d['diagonal']:.6g}.",
        "The fields have zero mean: the prediction methods remove the data's mean",
        "(e.g. with --standardise or a value shift).",
    ]
    header += [f"fit warning: {w}" for w in fit_warnings]
    return {
        "header": header,
        "domain": [f"bounding box of the stations widened by {margin:g} x its longer side"],
        "shape": [f"held fixed ({shape_text})"] if shape_text else [],
        "variance": [
            f"fitted partial sill {d['partial_sill']:.4g} divided and multiplied by "
            f"{VARIANCE_FACTOR:g}"
        ],
        "nugget": [
            "fixed to 0: the measurement noise is inferred separately by the prediction",
            f"methods (the fit's nugget, {d['nugget']:.4g}, is not carried over)",
        ],
        "length_scale": [
            f"fitted length scale {d['length_scale']:.4g} divided and multiplied by "
            f"{LENGTH_FACTOR:g}, kept (by a",
            f"shift in log) inside [{MIN_SPACINGS:g} x spacing, domain diagonal] = "
            f"[{d['floor']:.4g}, {d['diagonal']:.4g}]",
        ],
        "anis_ratio": ["minor / main axis, as in the shipped stationary-matern prior"],
        "angle": ["radians from x, as in the shipped stationary-matern prior"],
    }


# ------------------------------------------------------------------------ TOML
def _toml_value(value) -> str:
    """One TOML value: a number, string, boolean, array or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GeodiffError(f"cannot write the non-finite number {value} to a prior config")
        return repr(value)  # shortest text that reads back to the same float
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (np.floating, np.integer)):
        return _toml_value(value.item())
    raise GeodiffError(f"cannot write a {type(value).__name__} to a prior config")


def _toml_key(key: str) -> str:
    key = str(key)
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def prior_toml(config: dict) -> str:
    """TOML text that :func:`geodiff.fields.config.load_prior` reads back as ``config``.

    Parameters
    ----------
    config : dict
        A prior config: top-level scalars and ``domain``, and a ``parameters`` table of
        numbers or (nested) inline tables — e.g. :func:`prior_from_data`'s result (whose
        notes become comments) or :meth:`GRFPrior.to_config`.

    Returns
    -------
    str
    """
    notes = getattr(config, "notes", {})
    shape_keys = {"nu", "alpha"}

    def comments(key: str) -> list[str]:
        lines = notes.get("shape" if key in shape_keys else key, [])
        return [f"# {line}" for line in lines]

    out = [f"# {line}" for line in notes.get("header", [])]
    for key, value in config.items():
        if key == "parameters":
            continue
        out += [*comments(key), f"{_toml_key(key)} = {_toml_value(value)}"]
    if "parameters" in config:
        out += ["", "[parameters]"]
        for key, value in config["parameters"].items():
            out += [*comments(key), f"{_toml_key(key)} = {_toml_value(value)}"]
    text = "\n".join(out) + "\n"
    _check_round_trip(text, config)
    return text


def _check_round_trip(text: str, config: dict) -> None:
    """Raise if ``text`` does not parse back to ``config`` (a serialiser bug)."""
    from geodiff.fields.config import tomllib

    def plain(value):
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value.item() if isinstance(value, (np.floating, np.integer)) else value

    if tomllib.loads(text) != plain(config):
        raise GeodiffError("internal error: the prior config's TOML text does not read back")


def write_prior_from_data(obs: Observations, out_path, *, overwrite: bool = False, **kw) -> Path:
    """Write :func:`prior_from_data`'s config as TOML, atomically.

    Parameters
    ----------
    obs : Observations
    out_path : str or Path
        The ``.toml`` file; an existing one is an error unless ``overwrite``.
    overwrite : bool
    **kw
        Passed to :func:`prior_from_data` (``family``, ``shape``, ``name``, ``margin``).

    Returns
    -------
    Path
    """
    from geodiff.io import write_text

    path = Path(out_path)
    if path.exists() and not overwrite:  # refuse before the (seconds-long) fit
        raise GeodiffError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    text = prior_toml(prior_from_data(obs, **kw))
    written = write_text(path, text, overwrite=overwrite)
    logger.info("wrote prior config %s", written)
    return written


# -------------------------------------------------------------------- coverage
class PriorRangeWarning(UserWarning):
    """The data's length scale lies outside the range a trained model's prior covers."""


def _scalar_range(prior: ScalarPrior) -> tuple[float, float]:
    """Support of a positive scalar prior, its QUANTILES where unbounded (or at 0)."""
    lo, hi = (float(v) for v in prior.support)
    if prior.is_fixed:
        return lo, hi
    d = prior.distribution()
    if not (lo > 0 and math.isfinite(lo)):
        lo = float(d.icdf(torch.tensor(QUANTILES[0], dtype=torch.float64)))
    if not math.isfinite(hi):
        hi = float(d.icdf(torch.tensor(QUANTILES[1], dtype=torch.float64)))
    return lo, hi


def length_scale_range(prior) -> tuple[float, float]:
    """The main-axis length scales a prior covers, in its own (model) units.

    A scalar length scale: its prior's support (the 1 % / 99 % quantiles at an unbounded
    or zero end; the value itself when fixed). A map (non-stationary prior): the range of
    its median widened by ``exp(±2 s)``, ``s`` the upper end of the range of its
    ``log_sd`` — the knot values are log-normal about the median with that spread, and
    the smooth interpolation between knots spreads no wider, so about 95 % of the local
    length scales of every field fall inside.

    Parameters
    ----------
    prior : GRFPrior

    Returns
    -------
    (float, float)
        ``(low, high)``, ``0 < low <= high``.
    """
    param = prior.parameters["length_scale"]
    if isinstance(param, (MapPrior, SpectralMapPrior)):
        lo, hi = _scalar_range(param.center)
        spread = float(_scalar_range_any(param.spread)[1])
        return lo * math.exp(-MAP_SDS * spread), hi * math.exp(MAP_SDS * spread)
    return _scalar_range(param)


def _scalar_range_any(prior: ScalarPrior) -> tuple[float, float]:
    """Like :func:`_scalar_range` for a non-negative parameter (a zero end is kept)."""
    lo, hi = (float(v) for v in prior.support)
    if not math.isfinite(hi):
        hi = float(prior.distribution().icdf(torch.tensor(QUANTILES[1], dtype=torch.float64)))
    return lo, hi


def _fmt(x: float) -> str:
    """Three significant digits, without an exponent for ordinary magnitudes."""
    return f"{float(f'{x:.3g}'):.10g}"


@dataclass(frozen=True)
class PriorCoverage:
    """The length scales a trained model's prior covers, against the data's.

    Attributes
    ----------
    model_range : (float, float)
        :func:`length_scale_range` of the prior, in model units.
    physical_range : (float, float)
        The same in physical units (``model_range / coordinate_scale``).
    data_length_scale : float or None
        The observations' REML length scale, physical units (None: no fit possible).
    inside : bool or None
        ``physical_range[0] <= data_length_scale <= physical_range[1]`` (None: no fit).
    unit : str
        Name of the physical length unit, for messages.
    notes : list of str
        Why there is no fit, or the fit's warnings.
    """

    model_range: tuple
    physical_range: tuple
    data_length_scale: float | None = None
    inside: bool | None = None
    unit: str = ""
    notes: list = field(default_factory=list)

    def message(self) -> str:
        """One line: the prior's range, the data's length scale and what it means."""
        unit = f" {self.unit}" if self.unit else ""
        lo, hi = self.physical_range
        text = f"the model's prior covers length scales {_fmt(lo)}–{_fmt(hi)}{unit}"
        if self.data_length_scale is None:
            why = f" ({self.notes[0]})" if self.notes else ""
            return f"{text}; the data's length scale could not be fitted{why}"
        text += f"; the data's fitted length scale is {_fmt(self.data_length_scale)}{unit}"
        if self.inside:
            return f"{text} (inside)"
        side = "shorter" if self.data_length_scale > hi else "longer"
        return f"{text} (outside: predictions lean on the prior's {side} scales)"


def prior_coverage(prior, domain_map, obs: Observations | None = None, *, unit: str = ""):
    """The length scales a trained model's prior covers, in physical units, and the data's.

    Parameters
    ----------
    prior : GRFPrior
        The trained model's prior, in model units.
    domain_map : DomainMap
        From physical to model coordinates.
    obs : Observations, optional
        Point observations in physical coordinates; without them (or for block means,
        or when the fit fails) only the prior's range is reported.
    unit : str
        Name of the physical length unit (e.g. ``"m"``), for :meth:`PriorCoverage.message`.

    Returns
    -------
    PriorCoverage
    """
    model_range = tuple(float(v) for v in length_scale_range(prior))
    scale = float(domain_map.coordinate_scale)
    physical = (model_range[0] / scale, model_range[1] / scale)
    if obs is None:
        return PriorCoverage(model_range, physical, unit=unit, notes=["no observations given"])
    ell, notes = _data_length_scale(prior, domain_map, obs)
    if ell is None:
        logger.info("prior coverage: no length scale fitted to the data (%s)", notes[0])
        return PriorCoverage(model_range, physical, unit=unit, notes=notes)
    ell /= scale
    inside = bool(physical[0] <= ell <= physical[1])
    return PriorCoverage(model_range, physical, ell, inside, unit, notes)


def _data_length_scale(prior, domain_map, obs: Observations) -> tuple[float | None, list]:
    """Isotropic REML length scale of ``obs`` in model units, and notes."""
    from geodiff.fields.fit import fit_covariance

    if obs.operator.kind != "points":
        return None, [f"the fit needs point observations, these are {obs.operator.kind}"]
    if len(obs) > MAX_FIT_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(obs), MAX_FIT_POINTS, replace=False))
        obs = obs.subset(keep)
    model_obs = domain_map.to_model_observations(obs)
    shape = {k: prior.parameters[k].prior_median() for k in prior.family.shape_parameters}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kept in fit.warnings
            fit = fit_covariance(
                model_obs, prior.family.name, method="reml", anisotropic=False, shape=shape
            )
    except GeodiffError as err:
        return None, [str(err)]
    return float(fit.params["length_scale"]), list(fit.warnings)


def check_prior_coverage(prior, domain_map, obs: Observations, *, unit: str = ""):
    """:func:`prior_coverage`, logged, with a :class:`PriorRangeWarning` when outside.

    Parameters
    ----------
    prior : GRFPrior
    domain_map : DomainMap
    obs : Observations
        In physical coordinates and units.
    unit : str

    Returns
    -------
    PriorCoverage
    """
    coverage = prior_coverage(prior, domain_map, obs, unit=unit)
    if coverage.inside is False:
        warnings.warn(coverage.message(), PriorRangeWarning, stacklevel=2)
    else:
        logger.info("%s", coverage.message())
    return coverage
