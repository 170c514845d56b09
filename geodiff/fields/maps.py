"""Smooth random maps of a covariance parameter over the domain.

A map is ``m(s) = center * exp(spread * z(s))`` (positive parameters: length scale,
anisotropy ratio, variance) or ``m(s) = center + spread * z(s)`` (the anisotropy angle),
where ``z`` is a unit-variance GSTools Gaussian random field observed at a ``K x K``
grid of knots spanning the domain and carried to any point by simple kriging with the
same model (the "predictive process"):

    z(s) = c(s, knots)^T C^-1 z_knots,   z_knots = L w,   C = L L^T,   w ~ N(0, I).

So the map's whole randomness is the white-noise vector ``w`` of length ``K**2`` (plus
``center`` and ``spread`` when they have priors): low-dimensional, explicit, smooth,
defined and differentiable at every point, and the same object drives simulation, the
MCMC reference and the exact denoisers. The whitened ``w`` is also the parameterisation
NUTS likes best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from geodiff.errors import ConfigError
from geodiff.fields.correlation import get_family
from geodiff.fields.parameters import ScalarPrior

__all__ = ["MapPrior", "SpectralMapPrior"]

_JITTER = 1e-8


def map_transform(z, center, spread, log_scale: bool):
    """A map from its unit field ``z``: ``center exp(spread z)`` or ``center + spread z``."""
    if log_scale:
        return center * torch.exp(spread * z)
    return center + spread * z


@dataclass(frozen=True)
class MapPrior:
    """Prior over a spatially varying parameter.

    Parameters
    ----------
    center : ScalarPrior
        Median of a log-scale map, mean of a linear one.
    spread : ScalarPrior
        Standard deviation of ``log m`` (log scale) or of ``m`` (linear) at the knots.
    log_scale : bool
        Whether the map is ``center * exp(spread z)`` (True) or ``center + spread z``.
    knots : int
        Knots per axis, ``K``; the map has ``K**2`` latent values.
    model : str
        GSTools family of the map's own GRF (e.g. ``"gaussian"``, ``"matern"``).
    len_scale : float
        Correlation length of the map's GRF, in domain units.
    domain : ((float, float), (float, float))
        ``((x_min, x_max), (y_min, y_max))`` that the knots span.
    model_kwargs : dict
        Extra GSTools arguments of the map's model (e.g. ``{"nu": 2.5}``).
    """

    center: ScalarPrior
    spread: ScalarPrior
    log_scale: bool
    knots: int = 5
    model: str = "gaussian"
    len_scale: float = 0.3
    domain: tuple = ((0.0, 1.0), (0.0, 1.0))
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.knots, int) or self.knots < 2:
            raise ConfigError(f"map knots must be an integer >= 2, got {self.knots!r}")
        if not self.len_scale > 0:
            raise ConfigError(f"map len_scale must be > 0, got {self.len_scale!r}")
        get_family(self.model)  # validates the name

    @property
    def n_latent(self) -> int:
        return self.knots**2

    def knot_points(self) -> np.ndarray:
        """Knot coordinates, shape ``(K**2, 2)``, row-major like grid nodes."""
        (x0, x1), (y0, y1) = self.domain
        xx, yy = np.meshgrid(np.linspace(x0, x1, self.knots), np.linspace(y0, y1, self.knots))
        return np.stack([xx.ravel(), yy.ravel()], axis=1)

    def _gstools_model(self):
        return get_family(self.model).gstools(
            var=1.0, len_scale=self.len_scale, **self.model_kwargs
        )

    def basis(self, points) -> torch.Tensor:
        """Matrix ``B`` with ``z(points) = B @ w``.

        Parameters
        ----------
        points : array_like, shape (n, 2)

        Returns
        -------
        torch.Tensor, float64, shape (n, K**2)
        """
        model = self._gstools_model()
        knots = self.knot_points()
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        c_kk = model.correlation(np.linalg.norm(knots[:, None] - knots[None], axis=-1))
        c_pk = model.correlation(np.linalg.norm(pts[:, None] - knots[None], axis=-1))
        chol = np.linalg.cholesky(c_kk + _JITTER * np.eye(len(knots)))
        # c_pk C^-1 L = c_pk L^-T
        basis = np.linalg.solve(chol, c_pk.T).T
        return torch.as_tensor(basis, dtype=torch.float64)

    def values(
        self, points: torch.Tensor, center: torch.Tensor, spread: torch.Tensor, latent
    ) -> torch.Tensor:
        """Map values at ``points`` (any device: the basis is built on the host, once).

        Parameters
        ----------
        points : torch.Tensor, shape (n, 2)
        center, spread : torch.Tensor, shape (B,)
        latent : torch.Tensor, shape (B, K**2)

        Returns
        -------
        torch.Tensor, shape (B, n), on ``latent``'s device
        """
        basis = self.basis(torch.as_tensor(points).detach().cpu().numpy())
        return self.evaluate(basis, center, spread, latent)

    def evaluate(
        self, basis: torch.Tensor, center: torch.Tensor, spread: torch.Tensor, latent: torch.Tensor
    ) -> torch.Tensor:
        """Map values at the points of ``basis``.

        Parameters
        ----------
        basis : torch.Tensor, shape (n, K**2)
        center, spread : torch.Tensor, shape (B,)
        latent : torch.Tensor, shape (B, K**2)

        Returns
        -------
        torch.Tensor, shape (B, n)
        """
        z = latent @ basis.to(latent).T
        return map_transform(z, center[:, None], spread[:, None], self.log_scale)

    def to_config(self) -> dict:
        keys = ("median", "log_sd") if self.log_scale else ("mean", "sd")
        map_table = {"knots": self.knots, "model": self.model, "len_scale": self.len_scale}
        map_table.update(self.model_kwargs)
        return {
            "map": map_table,
            keys[0]: self.center.to_config(),
            keys[1]: self.spread.to_config(),
        }


@dataclass(frozen=True)
class SpectralMapPrior:
    """Prior over a spatially varying parameter, stationary in physical coordinates.

    ``z(s) = M^-1/2 sum_i (a_i cos(k_i . s) + b_i sin(k_i . s))`` with ``M`` random
    waves: ``a_i, b_i ~ N(0, 1)`` and wave vectors ``k_i = g_i sqrt(pi / 2) / len_scale``,
    ``g_i ~ N(0, I_2)`` — the spectral law of GSTools' Gaussian model
    ``exp(-pi/4 (r / len_scale)^2)`` (GSTools' randomisation method). ``z`` has unit
    variance and that correlation exactly; its law is the same under any shift of ``s``
    (a shift rotates each ``(a_i, b_i)``, whose law is rotation invariant), so a window of
    a large map has the prior of a map of the window's size: the map needs no domain.
    All its randomness is the ``4 M`` standard normals ``(g, a, b)``, the whitened form
    NUTS likes. With finitely many waves ``z`` is Gaussian given ``k`` only.

    Parameters
    ----------
    center : ScalarPrior
        Median of a log-scale map, mean of a linear one.
    spread : ScalarPrior
        Standard deviation of ``log m`` (log scale) or of ``m`` (linear).
    log_scale : bool
        Whether the map is ``center * exp(spread z)`` (True) or ``center + spread z``.
    modes : int
        Number of waves ``M``; the map has ``4 M`` latent values.
    len_scale : float
        Correlation length of ``z`` in physical units (GSTools' Gaussian model).
    model : str
        Only ``"gaussian"``.
    """

    center: ScalarPrior
    spread: ScalarPrior
    log_scale: bool
    modes: int = 64
    len_scale: float = 10.0
    model: str = "gaussian"

    def __post_init__(self):
        if isinstance(self.modes, bool) or not isinstance(self.modes, int) or self.modes < 1:
            raise ConfigError(f"map modes must be an integer >= 1, got {self.modes!r}")
        if not self.len_scale > 0:
            raise ConfigError(f"map len_scale must be > 0, got {self.len_scale!r}")
        if self.model != "gaussian":
            raise ConfigError(f"a spectral map has a 'gaussian' model, got {self.model!r}")

    @property
    def n_latent(self) -> int:
        return 4 * self.modes

    def values(
        self, points: torch.Tensor, center: torch.Tensor, spread: torch.Tensor, latent
    ) -> torch.Tensor:
        """Map values at ``points``.

        Parameters
        ----------
        points : torch.Tensor, shape (n, 2)
        center, spread : torch.Tensor, shape (B,)
        latent : torch.Tensor, shape (B, 4 M): ``(g_x, g_y, a, b)``, ``M`` each

        Returns
        -------
        torch.Tensor, shape (B, n), on ``latent``'s device
        """
        m = self.modes
        pts = torch.as_tensor(points).to(latent)
        phase = pts @ self._waves(latent)  # (B, n, M)
        a, b = latent[:, None, 2 * m : 3 * m], latent[:, None, 3 * m :]
        z = (a * torch.cos(phase) + b * torch.sin(phase)).sum(-1) / math.sqrt(m)
        return map_transform(z, center[:, None], spread[:, None], self.log_scale)

    def lattice_values(self, xs, ys, center, spread, latent) -> torch.Tensor:
        """Map values on the lattice ``xs x ys``, separably (two matrix products).

        ``cos(kx x + ky y) = cos kx x cos ky y - sin kx x sin ky y``, so the waves are
        evaluated along each axis once: ``O((H + W) M + H W M)`` flops in two products.

        Parameters
        ----------
        xs : torch.Tensor, shape (W,)
        ys : torch.Tensor, shape (H,)
        center, spread : torch.Tensor, shape (B,)
        latent : torch.Tensor, shape (B, 4 M)

        Returns
        -------
        torch.Tensor, shape (B, H, W)
        """
        m = self.modes
        wave = self._waves(latent)  # (B, 2, M)
        px = torch.as_tensor(xs).to(latent)[None, :, None] * wave[:, None, 0]  # (B, W, M)
        py = torch.as_tensor(ys).to(latent)[None, :, None] * wave[:, None, 1]  # (B, H, M)
        a, b = latent[:, None, 2 * m : 3 * m], latent[:, None, 3 * m :]
        cx, sx, cy, sy = torch.cos(px), torch.sin(px), torch.cos(py), torch.sin(py)
        z = cy @ (a * cx + b * sx).transpose(1, 2) + sy @ (b * cx - a * sx).transpose(1, 2)
        return map_transform(
            z / math.sqrt(m), center[:, None, None], spread[:, None, None], self.log_scale
        )

    def _waves(self, latent: torch.Tensor) -> torch.Tensor:
        """Wave vectors ``k``, shape (B, 2, M)."""
        m = self.modes
        return latent[:, : 2 * m].reshape(-1, 2, m) * (math.sqrt(math.pi / 2) / self.len_scale)

    def to_config(self) -> dict:
        keys = ("median", "log_sd") if self.log_scale else ("mean", "sd")
        map_table = {"modes": self.modes, "model": self.model, "len_scale": self.len_scale}
        return {
            "map": map_table,
            keys[0]: self.center.to_config(),
            keys[1]: self.spread.to_config(),
        }
