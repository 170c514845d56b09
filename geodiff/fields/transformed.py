"""Heavy-tailed priors: a Gaussian random field passed through Tukey's g-and-h transform.

A :class:`TransformedPrior` wraps a Gaussian prior (its ``latent``) and draws two more
parameters per field, the skewness ``g`` and the tail weight ``h`` of
:mod:`geodiff.fields.tukey`. At every point ``s``, with ``v(s)`` the latent variance::

    X(s) = sqrt(v(s)) tau_{g,h}(Z(s) / sqrt(v(s)))

so that ``X`` has the latent's dependence (a copula) and tails of index ``1 / h``. Given
θ, the mean and covariance of ``X`` are exact (closed-form moments of the transform, see
:func:`geodiff.fields.tukey.gh_covariance`); the law of ``X`` is not Gaussian.

In a TOML config, the transform is a ``[marginal]`` table beside ``[parameters]``::

    [marginal]
    transform = "tukey-gh"
    skew = { distribution = "uniform", low = 0.0, high = 0.5 }   # g
    tail = { distribution = "uniform", low = 0.0, high = 0.3 }   # h: tail index 1/h

and θ gains the entries ``"skew"`` and ``"tail"``.
"""

from __future__ import annotations

import pyro
import torch

from geodiff.errors import ConfigError
from geodiff.fields.parameters import ScalarPrior, scalar_prior_from_config
from geodiff.fields.prior import theta_generators
from geodiff.fields.tukey import gh_covariance, gh_inverse, gh_mean, gh_transform
from geodiff.rng import derive_seed

__all__ = ["MARGINAL_KEYS", "TransformedPrior", "marginal_from_config"]

#: the θ entries a transform adds, in order
MARGINAL_KEYS = ("skew", "tail")
#: the largest tail weight a prior may put mass on: the variance (and so the network's
#: training loss and the kriging baselines) needs h < 1/2 (:data:`tukey.H_MAX`)
TAIL_MAX = 0.45
_TRANSFORMS = ("tukey-gh",)
#: the interval each transform parameter's prior must lie in
_BOUNDS = {"skew": (-2.0, 2.0), "tail": (0.0, TAIL_MAX)}


class TransformedPrior:
    """A heavy-tailed prior: the Gaussian prior ``latent`` through a g-and-h transform.

    Parameters
    ----------
    latent : GRFPrior
        The Gaussian field before the transform (stationary, non-stationary or SPDE).
    skew, tail : float or ScalarPrior
        Priors of ``g`` and ``h`` (``0 <= h <= 0.45``).
    name : str, optional
    """

    kind = "transformed"
    is_gaussian = False

    def __init__(self, latent, *, skew=0.0, tail=0.0, name: str | None = None):
        if getattr(latent, "kind", None) == self.kind:
            raise ConfigError("a transformed prior's latent field must be Gaussian")
        self.latent = latent
        if latent._has_nugget:
            raise ConfigError(
                "a transformed prior's latent field takes no nugget (the transform would act "
                "on it): give the measurement noise with the observations instead"
            )
        self.marginal = {"skew": _scalar(skew, "skew"), "tail": _scalar(tail, "tail")}
        self.name = name or f"{latent.name}-tukey"

    # --------------------------------------------------------- what the latent fixes
    @property
    def family(self):
        return self.latent.family

    @property
    def domain(self):
        return self.latent.domain

    @property
    def is_stationary(self) -> bool:
        return self.latent.is_stationary

    @property
    def translation_invariant(self) -> bool:
        return self.latent.translation_invariant

    @property
    def extends_beyond_domain(self) -> bool:
        return self.latent.extends_beyond_domain

    @property
    def map_parameters(self) -> tuple[str, ...]:
        return self.latent.map_parameters

    @property
    def parameters(self) -> dict:
        return {**self.latent.parameters, **self.marginal}

    def window(self, shape):
        return self.latent.window(shape)

    def grid_maps(self, theta: dict, grid) -> dict:
        return self.latent.grid_maps(theta, grid)

    def periodic_keys(self) -> tuple[str, ...]:
        return self.latent.periodic_keys()

    def angle_from_xy(self, key: str, xy: torch.Tensor) -> torch.Tensor:
        return self.latent.angle_from_xy(key, xy)

    # ---------------------------------------------------------------- parameters
    def leaves(self) -> dict:
        """The latent's entries of θ, then ``skew`` and ``tail``."""
        return {**self.latent.leaves(), **self.marginal}

    def sample_theta(self, n: int | None = None, generator=None, *, generators=None) -> dict:
        """Draw θ: the latent's parameters, then ``g`` and ``h`` from the same generators.

        Same arguments and shapes as :meth:`GRFPrior.sample_theta`.
        """
        generators = theta_generators(n, generator, generators)
        theta = self.latent.sample_theta(generators=generators)
        for key, leaf in self.marginal.items():
            theta[key] = torch.stack([leaf.sample(g) for g in generators])
        return theta

    def complete_theta(self, values: dict) -> dict:
        """As :meth:`GRFPrior.complete_theta`, with ``skew`` and ``tail``."""
        unknown = sorted(set(values) - set(self.leaves()))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for prior {self.name!r}")
        latent = self.latent.complete_theta({k: v for k, v in values.items()
                                             if k not in self.marginal})  # fmt: skip
        batch = next(iter(latent.values())).shape[0]
        for key, leaf in self.marginal.items():
            if key in values:
                value = torch.as_tensor(values[key], dtype=torch.float64).reshape(-1)
                if not torch.isfinite(value).all():
                    raise ConfigError(f"parameter {key} is not finite")
                if key == "tail" and ((value < 0) | (value > TAIL_MAX)).any():
                    raise ConfigError(f"parameter tail must be in [0, {TAIL_MAX}]")
            elif leaf.is_fixed:
                value = torch.tensor([leaf.value], dtype=torch.float64)
            else:
                raise ConfigError(f"parameter {key} of prior {self.name!r} is not given")
            if value.shape[0] not in (1, batch):
                raise ConfigError(f"parameters have different batch sizes {value.shape[0]}, "
                                  f"{batch}")  # fmt: skip
            latent[key] = value.expand(batch).clone()
        return latent

    def log_prob(self, theta: dict) -> torch.Tensor:
        """Log-density of θ (fixed entries contribute nothing), shape (B,)."""
        total = self.latent.log_prob(theta)
        for key, leaf in self.marginal.items():
            if not leaf.is_fixed:
                total = total + leaf.log_prob(theta[key])
        return total

    def pyro_theta(self, prefix: str = "", *, periodic_angles: bool = False) -> dict:
        """θ as Pyro sample sites (see :meth:`GRFPrior.pyro_theta`), with ``skew``, ``tail``."""
        theta = self.latent.pyro_theta(prefix, periodic_angles=periodic_angles)
        for key, leaf in self.marginal.items():
            if leaf.is_fixed:
                theta[key] = torch.tensor([leaf.value], dtype=torch.float64)
            else:
                theta[key] = pyro.sample(prefix + key, leaf.distribution())[None]
        return theta

    def latent_theta(self, theta: dict) -> dict:
        """The latent Gaussian's entries of θ (without ``skew`` and ``tail``)."""
        return {key: value for key, value in theta.items() if key not in self.marginal}

    # ----------------------------------------------------------- the transform
    def scale(self, theta: dict, points) -> torch.Tensor:
        """``sqrt(v(s))`` at points, shape (B, n)."""
        return self.latent.local_parameters(theta, points)["variance"].sqrt()

    def transform(self, latent_values: torch.Tensor, theta: dict, scale: torch.Tensor):
        """``X = scale tau(Z / scale)`` for latent values ``Z``.

        Parameters
        ----------
        latent_values : torch.Tensor, shape (B, ...)
        theta : dict with ``skew``, ``tail`` of shape (B,)
        scale : torch.Tensor, broadcastable to ``latent_values``
        """
        extra = (1,) * (latent_values.ndim - 1)
        g = theta["skew"].reshape(-1, *extra).to(latent_values)
        h = theta["tail"].reshape(-1, *extra).to(latent_values)
        return scale * gh_transform(latent_values / scale, g, h)

    def inverse(self, values: torch.Tensor, theta: dict, scale: torch.Tensor) -> torch.Tensor:
        """The latent values ``Z`` whose transform is ``values`` (see :meth:`transform`)."""
        extra = (1,) * (values.ndim - 1)
        g = theta["skew"].reshape(-1, *extra).double()
        h = theta["tail"].reshape(-1, *extra).double()
        return scale * gh_inverse(values.double() / scale, g, h)

    def transform_fields(self, fields: torch.Tensor, theta: dict, grid) -> torch.Tensor:
        """Latent fields ``(n, H, W)`` with per-field θ (batch ``n``) to the prior's fields."""
        if fields.shape[0] == 0:
            return fields
        scale = self.scale(theta, grid.points()).reshape(-1, *grid.shape).to(fields.device)
        out = self.transform(fields.double(), theta, scale.double())
        return out.to(fields.dtype)

    # ------------------------------------------------------------------ moments
    def mean(self, theta: dict, points) -> torch.Tensor:
        """``E[X(s) | θ]`` at points, shape (B, n)."""
        scale = self.scale(theta, points)
        return scale * gh_mean(theta["skew"], theta["tail"])[:, None].to(scale)

    def covariance(self, x, y, theta: dict, *, nugget: bool = True) -> torch.Tensor:
        """``Cov(X(x), X(y) | θ)``, exact, shape (B, n, m) (see :mod:`geodiff.fields.tukey`).

        ``nugget`` is accepted for the common signature: the latent has none.
        """
        del nugget
        cov = self.latent.covariance(x, y, theta, nugget=False)
        sx, sy = self.scale(theta, x).to(cov), self.scale(theta, y).to(cov)
        scale = sx[:, :, None] * sy[:, None, :]
        rho = (cov / scale).clamp(-1.0, 1.0)
        g = theta["skew"][:, None, None].to(cov)
        h = theta["tail"][:, None, None].to(cov)
        out = scale * gh_covariance(rho, g, h)
        return out

    def marginal_covariance(self, points, n_theta: int = 64, seed: int = 0) -> torch.Tensor:
        """The fields' second moment ``E[X(x) X(y)]`` under the prior, at ``points``.

        The covariance of the zero-mean Gaussian closest to the prior, as
        :meth:`GRFPrior.marginal_covariance` is for zero-mean fields: a Monte Carlo mean
        over ``n_theta`` draws of θ of ``Cov(X | θ) + E[X | θ] E[X | θ]^T``.

        Returns
        -------
        torch.Tensor, float64, shape (n, n)
        """
        theta = self.sample_theta(
            n_theta, generator=torch.Generator().manual_seed(derive_seed(seed, 0))
        )
        pts = torch.as_tensor(points, dtype=torch.float64)
        total = torch.zeros(len(pts), len(pts), dtype=torch.float64)
        for lo in range(0, n_theta, 8):
            part = {key: v[lo : lo + 8] for key, v in theta.items()}
            mean = self.mean(part, pts)
            total += (self.covariance(pts, pts, part) + mean[:, :, None] * mean[:, None]).sum(0)
        return total / n_theta

    # --------------------------------------------------------------- simulation
    def simulate(self, grid, n: int, seed: int = 0, **kwargs):
        """Exact simulation on a grid; see :func:`geodiff.fields.simulate.simulate`."""
        from geodiff.fields.simulate import simulate

        return simulate(self, grid, n, seed=seed, **kwargs)

    # ------------------------------------------------------------------- config
    def to_config(self) -> dict:
        config = self.latent.to_config()
        config["name"] = self.name
        config["marginal"] = {"transform": "tukey-gh",
                              **{k: v.to_config() for k, v in self.marginal.items()}}  # fmt: skip
        return config

    def __repr__(self) -> str:
        return f"TransformedPrior(name={self.name!r}, latent={self.latent!r})"


def _scalar(value, key: str) -> ScalarPrior:
    lower, upper = _BOUNDS[key]
    if isinstance(value, ScalarPrior):
        prior = value
    else:
        prior = scalar_prior_from_config(value, key, lower=lower, upper=upper, strict_lower=False)
    lo, hi = prior.support
    if lo < lower or hi > upper:
        raise ConfigError(f"{key}: must lie in [{lower}, {upper}], its support is [{lo}, {hi}]")
    return prior


def marginal_from_config(table, where: str) -> dict:
    """The keyword arguments of :class:`TransformedPrior` from a ``[marginal]`` table."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [marginal] must be a table")
    table = dict(table)
    transform = table.pop("transform", None)
    if transform not in _TRANSFORMS:
        raise ConfigError(f"{where}.transform: must be one of {list(_TRANSFORMS)}, "
                          f"got {transform!r}")  # fmt: skip
    unknown = sorted(set(table) - set(MARGINAL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected {list(MARGINAL_KEYS)}")
    out = {}
    for key in MARGINAL_KEYS:
        if key in table:
            lower, upper = _BOUNDS[key]
            out[key] = scalar_prior_from_config(table[key], f"{where}.{key}", lower=lower,
                                                upper=upper, strict_lower=False)  # fmt: skip
    return out
