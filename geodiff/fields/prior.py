"""Priors over Gaussian random fields: the one object every component shares.

A prior owns

* sampling the parameters ``theta`` (:meth:`GRFPrior.sample_theta`),
* their log-density (:meth:`GRFPrior.log_prob`) and the same thing as Pyro sample sites
  (:meth:`GRFPrior.pyro_theta`),
* the covariance between two point sets given ``theta``, in torch and differentiable
  (:meth:`GRFPrior.covariance`),
* exact simulation on a grid (:meth:`GRFPrior.simulate`).

``theta`` is a dict of float64 tensors with a leading batch dimension ``B``: one entry
per scalar parameter (shape ``(B,)``) and, for each spatially varying parameter ``p``,
entries ``p.median``/``p.log_sd`` (or ``p.mean``/``p.sd``) of shape ``(B,)`` and the
whitened knot values ``p.latent`` of shape ``(B, K**2)``. Fixed parameters appear too,
as constants, so that a ``theta`` describes its field completely.

The covariance is the Paciorek–Schervish construction around a GSTools base correlation
``rho`` of unit length scale::

    Sigma(s)  = R(angle) diag(l^2, (r l)^2) R(angle)^T
    C(s, s')  = sigma(s) sigma(s') |Sigma(s)|^1/4 |Sigma(s')|^1/4 |Sigma_bar|^-1/2 rho(sqrt(Q))
                + nugget * [s == s']
    Sigma_bar = (Sigma(s) + Sigma(s')) / 2,   Q = (s - s')^T Sigma_bar^-1 (s - s')

With constant maps the determinant factor is exactly 1 and ``C`` is GSTools' stationary
anisotropic model ``CovModel(var, len_scale=[l, r l], angles=angle, nugget)``.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from geodiff.errors import ConfigError, GeodiffError
from geodiff.fields.correlation import MAX_NU, CorrelationFamily, get_family
from geodiff.fields.maps import MapPrior, SpectralMapPrior
from geodiff.fields.parameters import Fixed, ScalarPrior, Uniform, scalar_prior_from_config
from geodiff.grid import Grid
from geodiff.rng import derive_seed

__all__ = ["LOCAL_PARAMETERS", "GRFPrior", "NonStationaryPrior", "StationaryPrior"]

#: parameters that may vary in space, in the order they are stored
LOCAL_PARAMETERS = ("variance", "length_scale", "anis_ratio", "angle")
#: (lower, upper, lower bound is strict) for every parameter
BOUNDS = {
    "variance": (0.0, math.inf, True),
    "length_scale": (0.0, math.inf, True),
    "anis_ratio": (0.0, math.inf, True),
    "angle": (-math.inf, math.inf, True),
    "nugget": (0.0, math.inf, False),
    "nu": (0.0, MAX_NU, True),
    "alpha": (0.0, 2.0, True),
}
_DTYPE = torch.float64
#: the kinds of spatially varying parameter
MAP_TYPES = (MapPrior, SpectralMapPrior)
_DEFAULT_DOMAIN = ((0.0, 1.0), (0.0, 1.0))
# elements per block of the CPU covariance loop: whole-matrix passes take 1.26 s for one
# 64x64 non-stationary grid covariance on 2 cores, 2**16-element blocks 0.30 s
_BLOCK_ELEMENTS = 2**16


def _as_scalar_prior(value, name: str) -> ScalarPrior:
    """Validate a number or scalar prior against the bounds of parameter ``name``."""
    lower, upper, strict = BOUNDS[name]
    spec = value.to_config() if isinstance(value, ScalarPrior) else value
    return scalar_prior_from_config(spec, name, lower=lower, upper=upper, strict_lower=strict)


def _points(points) -> torch.Tensor:
    pts = torch.as_tensor(points, dtype=_DTYPE)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {tuple(pts.shape)}")
    return pts


class GRFPrior:
    """A prior over (possibly non-stationary) Gaussian random fields with zero mean.

    Use :class:`StationaryPrior` or :class:`NonStationaryPrior`; this base holds the
    shared machinery.

    Parameters
    ----------
    family : str
        Base correlation: ``"matern"``, ``"exponential"``, ``"gaussian"``, ``"stable"``
        (and ``"spherical"`` for stationary priors).
    variance, length_scale, anis_ratio, angle : float, ScalarPrior or MapPrior
        Marginal variance, main-axis length scale, ratio of the minor to the main length
        scale, and the main axis' angle (radians, counter-clockwise from x), in GSTools'
        conventions.
    nugget : float or ScalarPrior
        Variance of the white-noise (nugget) component.
    domain : ((float, float), (float, float))
        The domain the prior is defined over, ``((x_min, x_max), (y_min, y_max))``.
    name : str, optional
    **shape : float or ScalarPrior
        The family's shape parameter: ``nu`` (Matérn, ``0 < nu <= 20``) or ``alpha``
        (stable, ``0 < alpha <= 2``).
    """

    kind = "grf"

    def __init__(
        self,
        family: str = "matern",
        *,
        variance=1.0,
        length_scale=0.1,
        anis_ratio=1.0,
        angle=0.0,
        nugget=0.0,
        domain=_DEFAULT_DOMAIN,
        name: str | None = None,
        **shape,
    ):
        self.family: CorrelationFamily = (
            family if isinstance(family, CorrelationFamily) else get_family(family)
        )
        self.domain = tuple(tuple(float(v) for v in axis) for axis in domain)
        self.name = name or f"{self.kind}-{self.family.name}"
        unknown = sorted(set(shape) - set(self.family.shape_parameters))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for family {self.family.name!r}")
        missing = [p for p in self.family.shape_parameters if p not in shape]
        if missing:
            raise ConfigError(f"family {self.family.name!r} needs parameter(s) {missing}")
        local = {
            "variance": variance,
            "length_scale": length_scale,
            "anis_ratio": anis_ratio,
            "angle": angle,
        }
        self.parameters: dict[str, ScalarPrior | MapPrior] = {}
        for key, value in local.items():
            self.parameters[key] = (
                value if isinstance(value, MAP_TYPES) else _as_scalar_prior(value, key)
            )
        self.parameters["nugget"] = _as_scalar_prior(nugget, "nugget")
        for key in self.family.shape_parameters:
            self.parameters[key] = _as_scalar_prior(shape[key], key)

    # ------------------------------------------------------------------ structure
    @property
    def is_stationary(self) -> bool:
        """True when no parameter varies in space."""
        return not self.map_parameters

    @property
    def translation_invariant(self) -> bool:
        """True when the prior is the same in law under any shift of the domain."""
        return self.is_stationary

    #: whether the prior is defined beyond its domain, which only anchors its windows (an
    #: SPDE prior with spectral maps); else data must lie inside the domain
    extends_beyond_domain = False

    @property
    def map_parameters(self) -> tuple[str, ...]:
        """Names of the parameters that vary in space."""
        return tuple(k for k, p in self.parameters.items() if isinstance(p, MAP_TYPES))

    def leaves(self) -> dict[str, ScalarPrior | int]:
        """Every entry of ``theta``: its scalar prior, or the latent length of a map."""
        out: dict[str, ScalarPrior | int] = {}
        for key, prior in self.parameters.items():
            if isinstance(prior, MAP_TYPES):
                c, s = ("median", "log_sd") if prior.log_scale else ("mean", "sd")
                out[f"{key}.{c}"] = prior.center
                out[f"{key}.{s}"] = prior.spread
                out[f"{key}.latent"] = prior.n_latent
            else:
                out[key] = prior
        return out

    def _map_keys(self, key: str) -> tuple[str, str, str]:
        prior = self.parameters[key]
        c, s = ("median", "log_sd") if prior.log_scale else ("mean", "sd")
        return f"{key}.{c}", f"{key}.{s}", f"{key}.latent"

    # ------------------------------------------------------------------- sampling
    def sample_theta(self, n: int | None = None, generator=None, *, generators=None) -> dict:
        """Draw parameters.

        Parameters
        ----------
        n : int
            Number of draws (ignored when ``generators`` is given).
        generator : torch.Generator or int, optional
            Source of randomness, or a seed.
        generators : sequence of torch.Generator, keyword-only
            One generator per draw: draw ``i`` then depends on ``generators[i]`` alone.

        Returns
        -------
        dict of str to torch.Tensor, each of shape (B,) or (B, K**2)
        """
        generators = theta_generators(n, generator, generators)
        draws = {key: [] for key in self.leaves()}
        for g in generators:
            for key, leaf in self.leaves().items():
                if isinstance(leaf, int):
                    draws[key].append(torch.randn(leaf, generator=g, dtype=_DTYPE))
                else:
                    draws[key].append(leaf.sample(g))
        return {key: torch.stack(values) for key, values in draws.items()}

    def complete_theta(self, values: dict) -> dict:
        """Parameters given by the user as a full ``theta`` (batch of 1 or more).

        Parameters
        ----------
        values : dict of str to float, array_like or torch.Tensor
            Every random entry of :meth:`leaves` (scalars, or arrays with a leading batch
            dimension); fixed parameters may be left out and are filled in.

        Returns
        -------
        dict of str to torch.Tensor, float64, each (B,) or (B, K**2)
        """
        unknown = sorted(set(values) - set(self.leaves()))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for prior {self.name!r}")
        theta, batch = {}, set()
        for key, leaf in self.leaves().items():
            if key in values:
                given = values[key]
                if isinstance(given, (str, bytes, bool)) or given is None:
                    raise ConfigError(f"parameter {key} must be a number, got {given!r}")
                try:
                    value = torch.as_tensor(given, dtype=_DTYPE)
                except (TypeError, ValueError, RuntimeError):
                    raise ConfigError(
                        f"parameter {key} must be a number or a list of numbers, got {given!r}"
                    ) from None
                want = 1 if not isinstance(leaf, int) else 2
                if value.ndim == want - 1:
                    value = value[None]
                if value.ndim != want or (isinstance(leaf, int) and value.shape[1] != leaf):
                    raise ConfigError(f"parameter {key} has shape {tuple(value.shape)}")
                if not torch.isfinite(value).all():
                    raise ConfigError(f"parameter {key} is not finite")
                theta[key] = value
                batch.add(value.shape[0])
            elif isinstance(leaf, ScalarPrior) and leaf.is_fixed:
                theta[key] = None
            else:
                raise ConfigError(f"parameter {key} of prior {self.name!r} is not given")
        if len(batch) > 1:
            raise ConfigError(f"parameters have different batch sizes {sorted(batch)}")
        size = batch.pop() if batch else 1
        for key, value in theta.items():
            if value is None:
                theta[key] = torch.full((size,), float(self.leaves()[key].value), dtype=_DTYPE)
        for key in ("variance", "length_scale", "anis_ratio"):
            if key in theta and (theta[key] <= 0).any():
                raise ConfigError(f"parameter {key} must be positive")
        return theta

    def log_prob(self, theta: dict) -> torch.Tensor:
        """Log-density of ``theta`` under the prior (fixed entries contribute nothing).

        Returns
        -------
        torch.Tensor, shape (B,)
        """
        total = 0.0
        for key, leaf in self.leaves().items():
            value = theta[key]
            if isinstance(leaf, int):
                total = total + dist.Normal(0.0, 1.0).log_prob(value).sum(-1)
            elif not leaf.is_fixed:
                total = total + leaf.log_prob(value)
        return torch.as_tensor(total, dtype=_DTYPE).expand(next(iter(theta.values())).shape[0])

    def periodic_keys(self) -> tuple[str, ...]:
        """Angle entries whose prior is uniform over one full period (``pi``)."""
        return tuple(
            key
            for key, leaf in self.leaves().items()
            if key in ("angle", "angle.mean")
            and isinstance(leaf, Uniform)
            and abs(leaf.high - leaf.low - math.pi) < 1e-9
        )

    def pyro_theta(self, prefix: str = "", *, periodic_angles: bool = False) -> dict:
        """Sample ``theta`` as Pyro sites inside a Pyro model.

        Random scalars become sites named ``prefix + key``, map latents become
        ``N(0, I)`` sites of length ``K**2``; fixed values are constants. Every returned
        tensor has a leading batch dimension of 1, ready for :meth:`covariance`.

        Parameters
        ----------
        prefix : str
        periodic_angles : bool, keyword-only
            Sample each angle of :meth:`periodic_keys` as a site ``key + ".xy"`` of two
            standard normals ``(u, v)`` and set ``angle = low + (atan2(v, u) + pi) / 2``:
            the same uniform prior, but without the artificial boundary at ``low`` and
            ``low + pi`` (the covariance is ``pi``-periodic in the angle), so that NUTS
            can move across it. :meth:`angle_from_xy` maps draws back.
        """
        theta = {}
        periodic = self.periodic_keys() if periodic_angles else ()
        for key, leaf in self.leaves().items():
            if isinstance(leaf, int):
                site = dist.Normal(torch.zeros(leaf, dtype=_DTYPE), 1.0).to_event(1)
                theta[key] = pyro.sample(prefix + key, site)[None]
            elif leaf.is_fixed:
                theta[key] = torch.tensor([leaf.value], dtype=_DTYPE)
            elif key in periodic:
                site = dist.Normal(torch.zeros(2, dtype=_DTYPE), 1.0).to_event(1)
                xy = pyro.sample(prefix + key + ".xy", site)
                theta[key] = self.angle_from_xy(key, xy)[None]
            else:
                theta[key] = pyro.sample(prefix + key, leaf.distribution())[None]
        return theta

    def angle_from_xy(self, key: str, xy: torch.Tensor) -> torch.Tensor:
        """Angles of the periodic entry ``key`` from ``(u, v)`` draws of shape (..., 2)."""
        low = self.leaves()[key].low
        return low + (torch.atan2(xy[..., 1], xy[..., 0]) + math.pi) / 2

    # ----------------------------------------------------------------- covariance
    def local_parameters(self, theta: dict, points) -> dict:
        """Values of the four local parameters at points.

        Parameters
        ----------
        theta : dict
            Batch of parameters (leading dimension ``B``).
        points : array_like, shape (n, 2)

        Returns
        -------
        dict with keys ``variance, length_scale, anis_ratio, angle``, each (B, n)
        """
        pts = _points(points)
        out = {}
        for key in LOCAL_PARAMETERS:
            prior = self.parameters[key]
            if isinstance(prior, MAP_TYPES):
                ck, sk, lk = self._map_keys(key)
                out[key] = prior.values(pts, theta[ck], theta[sk], theta[lk])
            else:
                out[key] = theta[key][:, None].expand(-1, len(pts))
        return out

    def _shape_arguments(self, theta: dict) -> dict:
        shape = {}
        for key in self.family.shape_parameters:
            prior = self.parameters[key]
            shape[key] = prior.value if isinstance(prior, Fixed) else theta[key][:, None, None]
        return shape

    def marginal_covariance(self, points, n_theta: int = 64, seed: int = 0) -> torch.Tensor:
        """The field's covariance under the prior, ``E_θ[C_θ]``, at ``points``.

        A Monte Carlo mean over ``n_theta`` parameter draws (seeded by ``seed``),
        evaluated a few draws at a time to bound memory.

        Parameters
        ----------
        points : array_like, shape (n, 2)
        n_theta : int
        seed : int

        Returns
        -------
        torch.Tensor, float64, shape (n, n)
        """
        theta = self.sample_theta(
            n_theta, generator=torch.Generator().manual_seed(derive_seed(seed, 0))
        )
        pts = _points(points)
        total = torch.zeros(len(pts), len(pts), dtype=torch.float64)
        for lo in range(0, n_theta, 8):
            part = {key: v[lo : lo + 8] for key, v in theta.items()}
            total += self.covariance(pts, pts, part).sum(0)
        return total / n_theta

    def lag_covariance(
        self, cell_size: float, radius: int, n_theta: int = 64, seed: int = 0
    ) -> np.ndarray:
        """The field's covariance by lag under the prior, ``c(h) = E_θ[C_θ(s, s + h)]``.

        For a translation-invariant prior this does not depend on ``s``: a Monte Carlo
        mean over ``n_theta`` parameter draws (seeded by ``seed``) of the exact covariance
        between the domain's lower-left corner ``s`` and the nodes ``s + h`` of a lattice
        of spacing ``cell_size``, ``|h| <= radius`` cells on each axis (no nugget).

        Returns
        -------
        numpy.ndarray, float64, shape (2 radius + 1, 2 radius + 1)
            ``[radius + dy, radius + dx]`` is the lag ``(dy, dx) * cell_size``.

        Raises
        ------
        GeodiffError
            A prior that is not translation invariant.
        """
        if not self.translation_invariant:
            raise GeodiffError("a covariance by lag needs a translation-invariant prior")
        (x0, _), (y0, _) = self.domain
        steps = cell_size * np.arange(-radius, radius + 1)
        xs, ys = np.meshgrid(x0 + steps, y0 + steps)
        lags = np.column_stack([xs.ravel(), ys.ravel()])
        theta = self.sample_theta(
            n_theta, generator=torch.Generator().manual_seed(derive_seed(seed, 1))
        )
        total = np.zeros(len(lags))
        for lo in range(0, n_theta, 8):
            part = {key: v[lo : lo + 8] for key, v in theta.items()}
            cov = self.covariance(lags, np.array([[x0, y0]]), part, nugget=False)
            total += cov[:, :, 0].sum(0).cpu().numpy()
        return total.reshape(2 * radius + 1, 2 * radius + 1) / n_theta

    def covariance(self, x, y, theta: dict, *, nugget: bool = True) -> torch.Tensor:
        """Covariance between the field at ``x`` and at ``y`` given ``theta``.

        Parameters
        ----------
        x : array_like, shape (n, 2)
        y : array_like, shape (m, 2)
        theta : dict
            Batch of parameters with leading dimension ``B``.
        nugget : bool
            Add the nugget variance where a point of ``x`` coincides with one of ``y``.

        Returns
        -------
        torch.Tensor, float64, shape (B, n, m)
        """
        # points are data: the maps' bases are built from them on the host, once, and
        # everything that depends on theta stays on theta's device
        x_host, y_host = _points(x).cpu(), _points(y).cpu()
        device = next(iter(theta.values())).device
        x, y = x_host.to(device), y_host.to(device)
        shape = self._shape_arguments(theta)
        if self.is_stationary:
            ax, bx, cx, _ = _anisotropy(*(theta[k][:, None, None] for k in LOCAL_PARAMETERS[1:]))
            ay, by, cy = ax, bx, cx
            var_x = var_y = theta["variance"][:, None, None]
        else:
            px = self.local_parameters(theta, x_host)
            py = self.local_parameters(theta, y_host)
            ax, bx, cx, det_x = (t[:, :, None] for t in _anisotropy(*_local_triplet(px)))
            ay, by, cy, det_y = (t[:, None, :] for t in _anisotropy(*_local_triplet(py)))
            # sigma(s) |Sigma(s)|^1/4, the per-point part of the normalising factor
            var_x = px["variance"][:, :, None] * det_x.sqrt()
            var_y = py["variance"][:, None, :] * det_y.sqrt()
        batch = next(iter(theta.values())).shape[0]
        out = torch.empty(batch, len(x), len(y), dtype=_DTYPE, device=device)
        # blocks of rows keep the ~20 elementwise passes in cache on the CPU (see
        # _BLOCK_ELEMENTS); the GPU wants big kernels
        budget = _BLOCK_ELEMENTS if device.type == "cpu" else 2**27
        step = max(1, budget // max(1, batch * len(y)))
        for lo in range(0, len(x), step):
            rows = slice(lo, lo + step)
            dx = x[rows, 0, None] - y[None, :, 0]  # (r, m)
            dy = x[rows, 1, None] - y[None, :, 1]
            a = 0.5 * (_rows(ax, rows) + ay)
            b = 0.5 * (_rows(bx, rows) + by)
            c = 0.5 * (_rows(cx, rows) + cy)
            det = a * c - b * b
            q = (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det
            scale = torch.sqrt(_rows(var_x, rows) * var_y)
            if not self.is_stationary:
                scale = scale / torch.sqrt(det)
            value = scale * self.family(q, **shape)
            if nugget and self._has_nugget:
                value = value + theta["nugget"][:, None, None] * ((dx == 0) & (dy == 0))
            out[:, rows] = value
        return out

    @property
    def _has_nugget(self) -> bool:
        prior = self.parameters["nugget"]
        return not (isinstance(prior, Fixed) and prior.value == 0)

    def grid_maps(self, theta: dict, grid) -> dict:
        """Spatially varying parameters evaluated on a grid's nodes.

        Returns
        -------
        dict of str to torch.Tensor, each (B, H, W); only parameters that are maps
        """
        local = self.local_parameters(theta, grid.points())
        return {key: local[key].reshape(-1, *grid.shape) for key in self.map_parameters}

    # ----------------------------------------------------------------- simulation
    def window(self, shape) -> Grid:
        """The default grid of ``shape = (H, W)`` nodes for this prior: its domain."""
        return Grid(shape, self.domain)

    def simulate(self, grid, n: int, seed: int = 0, **kwargs):
        """Exact simulation on a grid; see :func:`geodiff.fields.simulate.simulate`."""
        from geodiff.fields.simulate import simulate

        return simulate(self, grid, n, seed=seed, **kwargs)

    # --------------------------------------------------------------------- config
    def to_config(self) -> dict:
        """A TOML-ready description from which :func:`prior_from_config` rebuilds the prior."""
        params = {key: prior.to_config() for key, prior in self.parameters.items()}
        return {
            "name": self.name,
            "type": self.kind,
            "family": self.family.name,
            "domain": [list(axis) for axis in self.domain],
            "parameters": params,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, family={self.family.name!r})"


def theta_generators(n, generator=None, generators=None) -> list:
    """One generator per parameter draw, as :meth:`GRFPrior.sample_theta` takes them:
    ``generators`` as given, else ``n`` times ``generator`` (a seed or None: seed 0)."""
    if generators is not None:
        return list(generators)
    if isinstance(generator, int) or generator is None:
        generator = torch.Generator().manual_seed(0 if generator is None else generator)
    return [generator] * int(n)


def _rows(t: torch.Tensor, rows: slice) -> torch.Tensor:
    """Rows of a per-point (B, n, 1) tensor; a broadcast (B, 1, 1) one as is."""
    return t[:, rows] if t.shape[1] > 1 else t


def _local_triplet(local: dict):
    return local["length_scale"], local["anis_ratio"], local["angle"]


def _anisotropy(length_scale, anis_ratio, angle):
    """Entries of ``Sigma = R diag(l^2, (r l)^2) R^T`` and its determinant (same shapes)."""
    l2 = length_scale * length_scale
    r2 = anis_ratio * anis_ratio
    cos, sin = torch.cos(angle), torch.sin(angle)
    a = l2 * (cos * cos + r2 * sin * sin)
    b = l2 * (1.0 - r2) * cos * sin
    c = l2 * (sin * sin + r2 * cos * cos)
    return a, b, c, l2 * l2 * r2


class StationaryPrior(GRFPrior):
    """A stationary anisotropic GRF prior: GSTools' model with random parameters.

    Examples
    --------
    >>> from geodiff import StationaryPrior, LogUniform
    >>> prior = StationaryPrior("matern", nu=1.5, length_scale=LogUniform(0.05, 0.3))
    """

    kind = "stationary"

    def __init__(self, family: str = "matern", **kwargs):
        maps = [k for k, v in kwargs.items() if isinstance(v, MAP_TYPES)]
        if maps:
            raise ConfigError(
                f"a stationary prior cannot have spatially varying {maps}; use NonStationaryPrior"
            )
        super().__init__(family, **kwargs)


class NonStationaryPrior(GRFPrior):
    """A non-stationary GRF prior: Paciorek–Schervish with maps of its parameters."""

    kind = "nonstationary"

    def __init__(self, family: str = "matern", **kwargs):
        super().__init__(family, **kwargs)
        for key in self.map_parameters:  # knot maps span a domain; spectral maps need none
            if (
                isinstance(self.parameters[key], MapPrior)
                and self.parameters[key].domain != self.domain
            ):
                raise ConfigError(
                    f"the {key} map spans {self.parameters[key].domain}, "
                    f"not the prior's domain {self.domain}"
                )
        if not self.family.valid_in_all_dimensions:
            raise ConfigError(
                f"family {self.family.name!r} is not positive definite in every dimension, "
                "which the Paciorek–Schervish construction needs; use matern, exponential, "
                "gaussian or stable"
            )
