"""The linear-Gaussian observation model of a field on a grid, in the model's units.

``y = A x + eps`` with ``x`` a field on an ``(H, W)`` grid flattened row-major (``d = H*W``),
``A`` of shape ``(n, d)`` and ``eps ~ N(0, diag(tau^2))``, ``tau >= 0`` (0 is noiseless).
Built from :class:`~geodiff.observe.Observations` with
:meth:`LinearGaussianProblem.from_observations`, which also divides values and noise by
the model's data scale, so that samplers see the units the denoiser was trained in.

The samplers that need a spectral view of ``A`` use :meth:`LinearGaussianProblem.whitened`:
with noise ``tau_i > 0`` the rows are whitened first, then a thin SVD
``A_w = U S Vᵀ`` turns the problem into ``ȳ = Vᵀ x + eps̄`` with independent noise of sd
``τ̄_k`` along the ``r = rank(A)`` orthonormal directions ``V[:, k]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geodiff.errors import GeodiffError
from geodiff.grid import Grid

__all__ = ["LinearGaussianProblem", "SpectralProblem"]

#: singular values below this fraction of the largest carry no information and are dropped
_RANK_TOLERANCE = 1e-10


@dataclass(frozen=True)
class SpectralProblem:
    """``ȳ = Vᵀ x + eps̄``, ``eps̄ ~ N(0, diag(noise_sd**2))`` (see module docs).

    Attributes
    ----------
    basis : torch.Tensor, float64, shape (d, r)
        Orthonormal directions ``V`` of the observed subspace.
    values : torch.Tensor, float64, shape (r,)
        ``ȳ``.
    noise_sd : torch.Tensor, float64, shape (r,)
        ``τ̄`` (0 for noiseless observations).
    """

    basis: torch.Tensor
    values: torch.Tensor
    noise_sd: torch.Tensor

    def to(self, device) -> SpectralProblem:
        return SpectralProblem(
            self.basis.to(device), self.values.to(device), self.noise_sd.to(device)
        )


@dataclass(frozen=True)
class LinearGaussianProblem:
    """Observations ``y = A x + eps`` of a field on a grid.

    Attributes
    ----------
    matrix : torch.Tensor, float64, shape (n, d)
        ``A``, acting on row-major flattened fields.
    values : torch.Tensor, float64, shape (n,)
        ``y``.
    noise_sd : torch.Tensor, float64, shape (n,)
        ``tau`` of each observation.
    shape : tuple of int
        ``(H, W)`` of the field.
    """

    matrix: torch.Tensor
    values: torch.Tensor
    noise_sd: torch.Tensor
    shape: tuple[int, int]

    def __post_init__(self):
        a = torch.as_tensor(self.matrix, dtype=torch.float64)
        y = torch.as_tensor(self.values, dtype=torch.float64).reshape(-1)
        tau = torch.as_tensor(self.noise_sd, dtype=torch.float64).reshape(-1)
        if tau.numel() == 1:
            tau = tau.expand(y.shape[0]).clone()
        d = int(np.prod(self.shape))
        if a.ndim != 2 or a.shape != (y.shape[0], d):
            raise GeodiffError(
                f"operator must have shape ({y.shape[0]}, {d}) for {y.shape[0]} observations "
                f"of a {self.shape} field, got {tuple(a.shape)}"
            )
        if tau.shape != y.shape:
            raise GeodiffError(f"need one noise sd per observation, got {tuple(tau.shape)}")
        if not (torch.isfinite(a).all() and torch.isfinite(y).all() and torch.isfinite(tau).all()):
            raise GeodiffError("the operator, values and noise must be finite")
        if (tau < 0).any():
            raise GeodiffError("noise standard deviations must be >= 0")
        if y.shape[0] == 0:
            raise GeodiffError("no observations")
        object.__setattr__(self, "matrix", a)
        object.__setattr__(self, "values", y)
        object.__setattr__(self, "noise_sd", tau)
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @classmethod
    def from_observations(
        cls, obs, grid: Grid, scale: float = 1.0, method: str = "bilinear"
    ) -> LinearGaussianProblem:
        """The observations of a field on ``grid``, divided by ``scale``.

        Parameters
        ----------
        obs : Observations
            Points are read from the grid field by ``method`` (bilinear by default);
            block means integrate the bilinear interpolant exactly.
        grid : Grid
        scale : float
            The model's data scale (values and noise are divided by it).
        method : {"bilinear", "nearest"}
        """
        if not scale > 0:
            raise GeodiffError(f"scale must be positive, got {scale}")
        a = obs.operator.grid_matrix(grid, method).to_dense()
        return cls(a, obs.values / scale, obs.noise_sd / scale, grid.shape)

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    @property
    def noiseless(self) -> bool:
        return bool((self.noise_sd == 0).all())

    def apply(self, fields: torch.Tensor) -> torch.Tensor:
        """``A x`` for fields of shape (B, 1, H, W) or (B, H, W) or (B, d); returns (B, n)."""
        flat = fields.reshape(fields.shape[0], -1)
        return flat @ self.matrix.to(flat.device, flat.dtype).T

    def to(self, device) -> LinearGaussianProblem:
        return LinearGaussianProblem(
            self.matrix.to(device), self.values.to(device), self.noise_sd.to(device), self.shape
        )

    def whitened(self) -> SpectralProblem:
        """The problem along the orthonormal directions of the observed subspace.

        Noiseless observations, or observations that all have noise, are supported;
        a mix of both is refused (give the noiseless ones a small noise instead).

        Raises
        ------
        GeodiffError
            Noiseless observations that contradict each other (``y`` outside the range
            of a rank-deficient ``A``), or a mix of noiseless and noisy observations.
        """
        tau = self.noise_sd
        zero = tau == 0
        if zero.any() and not zero.all():
            raise GeodiffError(
                "a mix of noiseless and noisy observations is not supported by this sampler; "
                "give the noiseless ones a small noise sd"
            )
        weight = torch.ones_like(tau) if zero.all() else 1.0 / tau
        a, y = self.matrix * weight[:, None], self.values * weight
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        keep = s > _RANK_TOLERANCE * s.max()
        u, s, vh = u[:, keep], s[keep], vh[keep]
        projected = u.T @ y
        if zero.all():
            lost = (y - u @ projected).norm()
            if lost > 1e-6 * max(1.0, float(y.norm())):
                raise GeodiffError(
                    "noiseless observations contradict each other (they are linearly dependent "
                    f"but their values are not; residual {float(lost):.3g}); give them a noise sd"
                )
            noise = torch.zeros_like(s)
        else:
            noise = 1.0 / s
        return SpectralProblem(vh.T.contiguous(), projected / s, noise)
