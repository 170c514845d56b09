"""Priors over scalar parameters: fixed values and a few explicit distributions.

Every distribution here is a Pyro distribution (hence a torch one), so the same object
gives the simulator's draws, the log-density and the ``pyro.sample`` site of the MCMC
reference. Draws go through the inverse CDF of a uniform variate taken from an explicit
``torch.Generator``, so a seed fixes them (torch distributions' own ``sample`` accepts
no generator).
"""

from __future__ import annotations

import math
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.transforms import ExpTransform

from geodiff.errors import ConfigError

__all__ = [
    "Fixed",
    "HalfNormal",
    "LogNormal",
    "LogUniform",
    "Normal",
    "ScalarPrior",
    "Uniform",
    "scalar_prior_from_config",
]

_DTYPE = torch.float64


class ScalarPrior(ABC):
    """A prior over one real parameter.

    Subclasses define :meth:`distribution` (``None`` for a fixed value) and the interval
    ``support`` that holds all its mass, used to validate configurations.
    """

    support: tuple[float, float]

    @abstractmethod
    def distribution(self) -> dist.Distribution | None:
        """The Pyro distribution, or ``None`` for a fixed value."""

    @property
    def is_fixed(self) -> bool:
        return self.distribution() is None

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One draw as a 0-d float64 tensor."""
        u = torch.rand((), generator=generator, dtype=_DTYPE)
        return self.distribution().icdf(u.clamp(1e-12, 1 - 1e-12))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(value)

    def prior_median(self) -> float:
        """The prior median (the value itself when fixed)."""
        if self.is_fixed:
            return float(self.support[0])
        return float(self.distribution().icdf(torch.tensor(0.5, dtype=_DTYPE)))

    @abstractmethod
    def to_config(self) -> float | dict:
        """The TOML-ready value this prior was read from."""


@dataclass(frozen=True)
class Fixed(ScalarPrior):
    """A known value: not sampled, no density."""

    value: float

    @property
    def support(self):
        return (self.value, self.value)

    def distribution(self):
        return None

    def sample(self, generator):
        return torch.tensor(self.value, dtype=_DTYPE)

    def to_config(self):
        return self.value


@dataclass(frozen=True)
class Uniform(ScalarPrior):
    """Uniform on ``[low, high]``."""

    low: float
    high: float

    @property
    def support(self):
        return (self.low, self.high)

    def distribution(self):
        return dist.Uniform(
            torch.tensor(self.low, dtype=_DTYPE), torch.tensor(self.high, dtype=_DTYPE)
        )

    def to_config(self):
        return {"distribution": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(ScalarPrior):
    """Log-uniform (scale-invariant) on ``[low, high]``, ``0 < low < high``."""

    low: float
    high: float

    @property
    def support(self):
        return (self.low, self.high)

    def distribution(self):
        base = dist.Uniform(
            torch.tensor(math.log(self.low), dtype=_DTYPE),
            torch.tensor(math.log(self.high), dtype=_DTYPE),
        )
        return _BoundedLogUniform(base, [ExpTransform()], validate_args=False)

    def to_config(self):
        return {"distribution": "loguniform", "low": self.low, "high": self.high}


class _BoundedLogUniform(dist.TransformedDistribution):
    """exp(Uniform(log low, log high)) whose support is ``[low, high]``.

    A plain TransformedDistribution reports the exp transform's codomain (all positive
    numbers) as its support; Pyro's NUTS then samples in an unconstrained space that
    leaves ``[low, high]`` and every such step diverges.
    """

    arg_constraints: typing.ClassVar[dict] = {}

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        base = self.base_dist
        return constraints.interval(base.low.exp(), base.high.exp())


@dataclass(frozen=True)
class Normal(ScalarPrior):
    """Normal with mean ``loc`` and standard deviation ``scale``."""

    loc: float
    scale: float

    @property
    def support(self):
        return (-math.inf, math.inf)

    def distribution(self):
        return dist.Normal(
            torch.tensor(self.loc, dtype=_DTYPE), torch.tensor(self.scale, dtype=_DTYPE)
        )

    def to_config(self):
        return {"distribution": "normal", "loc": self.loc, "scale": self.scale}


@dataclass(frozen=True)
class LogNormal(ScalarPrior):
    """Log-normal given by its ``median`` and the standard deviation of its log, ``log_sd``."""

    median: float
    log_sd: float

    @property
    def support(self):
        return (0.0, math.inf)

    def distribution(self):
        return dist.LogNormal(
            torch.tensor(math.log(self.median), dtype=_DTYPE),
            torch.tensor(self.log_sd, dtype=_DTYPE),
        )

    def to_config(self):
        return {"distribution": "lognormal", "median": self.median, "log_sd": self.log_sd}


@dataclass(frozen=True)
class HalfNormal(ScalarPrior):
    """Half-normal on ``[0, inf)`` with scale ``scale``."""

    scale: float

    @property
    def support(self):
        return (0.0, math.inf)

    def distribution(self):
        return dist.HalfNormal(torch.tensor(self.scale, dtype=_DTYPE))

    def to_config(self):
        return {"distribution": "halfnormal", "scale": self.scale}


# name -> (class, required keys, which keys must be > 0)
_DISTRIBUTIONS = {
    "uniform": (Uniform, ("low", "high"), ()),
    "loguniform": (LogUniform, ("low", "high"), ("low",)),
    "normal": (Normal, ("loc", "scale"), ("scale",)),
    "lognormal": (LogNormal, ("median", "log_sd"), ("median", "log_sd")),
    "halfnormal": (HalfNormal, ("scale",), ("scale",)),
}


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def scalar_prior_from_config(
    spec,
    where: str,
    *,
    lower: float = -math.inf,
    upper: float = math.inf,
    strict_lower: bool = True,
) -> ScalarPrior:
    """Build a scalar prior from a number or ``{distribution = "...", ...}`` table.

    Parameters
    ----------
    spec : float or dict
        A fixed value, or a table naming a distribution and its arguments.
    where : str
        Dotted location in the config, used in error messages.
    lower, upper : float
        Bounds the parameter must respect; the whole support of a distribution must lie
        inside them (strictly above ``lower`` when ``strict_lower``).
    """
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("distribution", None)
        if name not in _DISTRIBUTIONS:
            raise ConfigError(
                f"{where}: 'distribution' must be one of {sorted(_DISTRIBUTIONS)}, got {name!r}"
            )
        cls, keys, positive = _DISTRIBUTIONS[name]
        missing = [k for k in keys if k not in spec]
        unknown = sorted(set(spec) - set(keys))
        if missing or unknown:
            raise ConfigError(
                f"{where}: a {name} distribution takes keys {list(keys)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        args = {k: _number(spec[k], f"{where}.{k}") for k in keys}
        for k in positive:
            if args[k] <= 0:
                raise ConfigError(f"{where}.{k}: must be > 0, got {args[k]}")
        if "low" in args and args["low"] >= args["high"]:
            raise ConfigError(f"{where}: needs low < high, got {args['low']} >= {args['high']}")
        prior = cls(**args)
    else:
        prior = Fixed(_number(spec, where))
    lo, hi = prior.support
    # a distribution puts no mass on a single point, so a support that merely touches a
    # strict bound (lognormal, halfnormal on (0, inf)) respects it; a fixed value must not
    below = lo <= lower if (strict_lower and prior.is_fixed) else lo < lower
    if below or hi > upper:
        bound = f"> {lower}" if strict_lower else f">= {lower}"
        if upper < math.inf:
            bound += f" and <= {upper}"
        what = (
            f"got {lo:g}" if prior.is_fixed else f"its distribution's support is [{lo:g}, {hi:g}]"
        )
        raise ConfigError(f"{where}: must be {bound}; {what}")
    return prior
