"""Prior configuration files (TOML), written by hand and shipped with the package.

A configuration looks like::

    name = "stationary-matern"
    type = "stationary"              # or "nonstationary"
    family = "matern"                # matern, exponential, gaussian, stable, spherical
    domain = [[0.0, 1.0], [0.0, 1.0]]  # optional; [[x_min, x_max], [y_min, y_max]]

    [parameters]
    nu = 1.5                         # a number fixes a parameter ...
    length_scale = { distribution = "loguniform", low = 0.05, high = 0.3 }  # ... or a prior
    anis_ratio = 1.0
    angle = 0.0
    variance = 1.0
    nugget = 0.0

and, in a non-stationary prior, a parameter may be a map::

    [parameters.length_scale]
    map = { knots = 5, model = "gaussian", len_scale = 0.35 }
    median = { distribution = "loguniform", low = 0.06, high = 0.2 }
    log_sd = 0.4

(``mean``/``sd`` instead of ``median``/``log_sd`` for the angle, which is not positive).

A ``[marginal]`` table passes the Gaussian field through Tukey's g-and-h transform, a
heavy-tailed prior (:mod:`geodiff.fields.transformed`)::

    [marginal]
    transform = "tukey-gh"
    skew = { distribution = "uniform", low = 0.0, high = 0.5 }
    tail = { distribution = "uniform", low = 0.0, high = 0.3 }

An SPDE prior (``type = "spde"``, :mod:`geodiff.fields.spde`) takes ``cell_size`` (its
resolution between arbitrary points) and ``margin`` (its lattice margin in practical
ranges) at the top level, and maps stationary in physical units, given by a number of
random waves instead of knots::

    [parameters.angle]
    map = { modes = 64, model = "gaussian", len_scale = 16.0 }
    mean = { distribution = "uniform", low = 0.0, high = 3.141592653589793 }
    sd = 0.8
"""

from __future__ import annotations

import math
import sys
from importlib import resources
from pathlib import Path

from geodiff.errors import ConfigError, GeodiffError
from geodiff.fields.correlation import get_family
from geodiff.fields.maps import MapPrior, SpectralMapPrior
from geodiff.fields.parameters import scalar_prior_from_config
from geodiff.fields.prior import (
    BOUNDS,
    LOCAL_PARAMETERS,
    GRFPrior,
    NonStationaryPrior,
    StationaryPrior,
)
from geodiff.fields.spde import SPDEPrior
from geodiff.fields.transformed import TransformedPrior, marginal_from_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["builtin_priors", "load_prior", "load_theta", "prior_from_config"]

_TOP_KEYS = {"name", "type", "family", "domain", "parameters", "description", "marginal"}
_SPDE_KEYS = {"cell_size", "margin"}
_MAP_KINDS = ("nonstationary", "spde")
_TYPES = {"stationary": StationaryPrior, "nonstationary": NonStationaryPrior, "spde": SPDEPrior}


def builtin_priors() -> dict[str, Path]:
    """Shipped configurations by name."""
    folder = resources.files("geodiff") / "configs"
    return {Path(f.name).stem: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".toml")}


def load_prior(name_or_path) -> GRFPrior:
    """Read a prior from a TOML file, or a shipped one by name (see :func:`builtin_priors`)."""
    builtin = builtin_priors()
    path = builtin.get(str(name_or_path), Path(name_or_path))
    if not path.is_file():
        raise ConfigError(
            f"no prior config at {str(name_or_path)!r}: "
            f"give a .toml file or one of {sorted(builtin)}"
        )
    try:
        config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    return prior_from_config(config, source=str(path))


def load_theta(path) -> dict:
    """Parameter values from a JSON object file (``None``: no values, ``{}``).

    Raises
    ------
    GeodiffError
        An unreadable file, invalid JSON, or JSON that is not an object.
    """
    import json

    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise GeodiffError(f"{path}: cannot read parameters as JSON: {err}") from None
    if not isinstance(values, dict):
        raise GeodiffError(f"{path}: expected a JSON object of parameter values")
    return values


def prior_from_config(config: dict, source: str = "config") -> GRFPrior:
    """Build a prior from a parsed configuration (see the module docstring)."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a table at the top level")
    types = _TYPES
    kind = config.get("type")
    top = _TOP_KEYS | (_SPDE_KEYS if kind == "spde" else set())
    unknown = sorted(set(config) - top)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(top)}")
    for key in ("type", "family", "parameters"):
        if key not in config:
            raise ConfigError(f"{source}: missing key {key!r}")
    if kind not in types:
        raise ConfigError(f"{source}: 'type' must be one of {sorted(types)}, got {kind!r}")
    family = get_family(config["family"])
    domain = _domain(config.get("domain", [[0.0, 1.0], [0.0, 1.0]]), source)
    params = config["parameters"]
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: [parameters] must be a table")
    allowed = {*LOCAL_PARAMETERS, "nugget", *family.shape_parameters}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: unknown parameter(s) {unknown} for family {family.name!r}; "
            f"expected some of {sorted(allowed)}"
        )
    required = ["length_scale", *family.shape_parameters]
    missing = [p for p in required if p not in params]
    if missing:
        raise ConfigError(f"{source}: missing parameter(s) {missing} in [parameters]")
    kwargs = {}
    for key, spec in params.items():
        where = f"{source}: parameters.{key}"
        if isinstance(spec, dict) and "map" in spec:
            if kind not in _MAP_KINDS or key not in LOCAL_PARAMETERS:
                raise ConfigError(
                    f"{where}: only the local parameters of a nonstationary or spde prior "
                    "can be maps"
                )
            kwargs[key] = _map_prior(spec, key, domain, where)
        else:
            lower, upper, strict = BOUNDS[key]
            kwargs[key] = scalar_prior_from_config(
                spec, where, lower=lower, upper=upper, strict_lower=strict
            )
    kwargs.update({key: config[key] for key in _SPDE_KEYS if key in config})
    try:
        prior = types[kind](family.name, domain=domain, name=config.get("name"), **kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    if "marginal" not in config:
        return prior
    marginal = marginal_from_config(config["marginal"], f"{source}: marginal")
    try:
        return TransformedPrior(prior, name=config.get("name"), **marginal)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def _domain(value, source: str):
    try:
        (x0, x1), (y0, y1) = value
        x0, x1, y0, y1 = (float(v) for v in (x0, x1, y0, y1))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: domain must be [[x_min, x_max], [y_min, y_max]]") from err
    if not (x0 < x1 and y0 < y1) or not all(map(math.isfinite, (x0, x1, y0, y1))):
        raise ConfigError(f"{source}: domain must be finite with min < max, got {value}")
    return ((x0, x1), (y0, y1))


def _map_prior(spec: dict, key: str, domain, where: str) -> MapPrior:
    log_scale = key != "angle"
    center_key, spread_key = ("median", "log_sd") if log_scale else ("mean", "sd")
    expected = {"map", center_key, spread_key}
    unknown, missing = sorted(set(spec) - expected), sorted(expected - set(spec))
    if unknown or missing:
        raise ConfigError(
            f"{where}: a map takes keys {sorted(expected)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    table = dict(spec["map"]) if isinstance(spec["map"], dict) else None
    if table is None:
        raise ConfigError(f"{where}.map: expected a table like {{ knots = 5, len_scale = 0.3 }}")
    if "len_scale" not in table:
        raise ConfigError(f"{where}.map: missing key 'len_scale'")
    spectral = "modes" in table
    if spectral and "knots" in table:
        raise ConfigError(f"{where}.map: give either knots (a knot map) or modes (spectral)")
    modes = table.pop("modes", None)
    knots = table.pop("knots", 5)
    model = table.pop("model", "gaussian")
    len_scale = table.pop("len_scale")
    family = get_family(model)
    extra = sorted(set(table) - set(family.shape_parameters))
    if extra:
        raise ConfigError(f"{where}.map: unknown key(s) {extra}")
    if not isinstance(len_scale, (int, float)) or isinstance(len_scale, bool) or not len_scale > 0:
        raise ConfigError(f"{where}.map.len_scale: must be a number > 0, got {len_scale!r}")
    if spectral and (isinstance(modes, bool) or not isinstance(modes, int) or not 1 <= modes):
        raise ConfigError(f"{where}.map.modes: must be an integer >= 1, got {modes!r}")
    if isinstance(knots, bool) or not isinstance(knots, int) or not 2 <= knots <= 32:
        raise ConfigError(f"{where}.map.knots: must be an integer in [2, 32], got {knots!r}")
    if log_scale:
        lower, upper, _ = BOUNDS[key]
        center = scalar_prior_from_config(
            spec[center_key], f"{where}.{center_key}", lower=lower, upper=upper
        )
    else:
        center = scalar_prior_from_config(spec[center_key], f"{where}.{center_key}")
    spread = scalar_prior_from_config(
        spec[spread_key], f"{where}.{spread_key}", lower=0.0, strict_lower=False
    )
    if spectral:
        if family.name != "gaussian" or table:
            raise ConfigError(f"{where}.map: a spectral map has model = 'gaussian' and no shape")
        return SpectralMapPrior(
            center=center, spread=spread, log_scale=log_scale, modes=modes,
            len_scale=float(len_scale),
        )  # fmt: skip
    return MapPrior(
        center=center,
        spread=spread,
        log_scale=log_scale,
        knots=knots,
        model=family.name,
        len_scale=float(len_scale),
        domain=domain,
        model_kwargs=table,
    )
