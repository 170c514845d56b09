"""Exact (Bayes-optimal) denoisers for Gaussian and Gaussian-mixture priors.

For a prior ``x_0 ~ N(0, Σ)`` and ``x_t = √ᾱ x_0 + √(1-ᾱ) ε`` the posterior mean is
``E[x_0 | x_t] = √ᾱ Σ (ᾱΣ + (1-ᾱ)I)⁻¹ x_t``; for a mixture over parameter draws
``Σ_j`` it is the mixture of those means with weights ``∝ w_j N(x_t; 0, ᾱΣ_j + (1-ᾱ)I)``.
One eigendecomposition ``Σ_j = U_j diag(λ_j) U_jᵀ`` per component makes every noise level
cheap: the covariance of ``x_t`` is ``U_j diag(ᾱλ_j + 1 - ᾱ) U_jᵀ``.

These serve as (a) the floor of the network's MSE at each noise level and (b) a drop-in
denoiser (the interface of :mod:`geodiff.diffusion.denoiser`, as the trained network's)
with which samplers can be tested against exact Gaussian answers.
"""

from __future__ import annotations

import math

import torch

from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.rng import derive_seed

__all__ = ["GaussianMixtureOracle", "mixture_oracle"]


def mixture_oracle(prior, grid: Grid, schedule: NoiseSchedule, **options):
    """The exact mixture denoiser of ``prior`` on ``grid``: dense eigendecompositions for
    GRF priors, sparse factorisations (:class:`~geodiff.diffusion.spde_oracle.
    SPDEMixtureOracle`) for SPDE priors. ``options`` as :meth:`GaussianMixtureOracle.from_prior`.

    Raises
    ------
    GeodiffError
        A prior that is not Gaussian given θ (a heavy-tailed one): it has no exact
        mixture denoiser.
    """
    if not getattr(prior, "is_gaussian", True):
        raise GeodiffError(
            f"prior {prior.name!r} is not Gaussian given its parameters, so it has no exact "
            "mixture oracle: train with --oracle-components 0"
        )
    if prior.kind == "spde":
        from geodiff.diffusion.spde_oracle import SPDEMixtureOracle

        return SPDEMixtureOracle.from_prior(prior, grid, schedule, **options)
    return GaussianMixtureOracle.from_prior(prior, grid, schedule, **options)


class GaussianMixtureOracle:
    """The exact denoiser of a finite mixture of zero-mean Gaussians on a grid.

    Parameters
    ----------
    covariances : torch.Tensor, shape (J, d, d)
        Component covariances (``d = H*W``, row-major grid order), in the model's units.
    schedule : NoiseSchedule
    shape : tuple of int
        ``(H, W)`` of one field.
    weights : torch.Tensor, shape (J,), optional
        Mixture weights (uniform by default).
    """

    def __init__(self, covariances, schedule: NoiseSchedule, shape, weights=None):
        cov = torch.as_tensor(covariances, dtype=torch.float64)
        if cov.ndim == 2:
            cov = cov[None]
        d = math.prod(shape)
        if cov.ndim != 3 or cov.shape[1:] != (d, d):
            raise GeodiffError(f"covariances must have shape (J, {d}, {d}), got {tuple(cov.shape)}")
        cov = 0.5 * (cov + cov.transpose(1, 2))
        eigval, eigvec = torch.linalg.eigh(cov)
        self.eigval = eigval.clamp(min=0.0)  # (J, d)
        self.eigvec = eigvec  # (J, d, d)
        n = cov.shape[0]
        w = torch.full((n,), 1.0 / n, dtype=torch.float64) if weights is None else weights
        w = torch.as_tensor(w, dtype=torch.float64)
        if w.shape != (n,) or (w < 0).any() or w.sum() <= 0:
            raise GeodiffError("mixture weights must be non-negative, one per component")
        self.log_weights = (w / w.sum()).log()
        self.schedule, self.shape = schedule, tuple(shape)

    @classmethod
    def from_prior(
        cls,
        prior,
        grid: Grid,
        schedule: NoiseSchedule,
        *,
        n_components: int = 64,
        seed: int = 0,
        scale: float = 1.0,
        theta: dict | None = None,
    ) -> GaussianMixtureOracle:
        """The oracle of ``prior`` on ``grid``: a mixture over ``n_components`` θ draws.

        With ``theta`` given (a batch of J parameter sets), those components instead; a
        batch of one gives the Gaussian oracle of the prior with θ fixed. ``scale``
        divides the fields (the model's data normalisation), so covariances are
        divided by ``scale**2``.
        """
        if theta is None:
            gen = torch.Generator().manual_seed(derive_seed(seed, 0))
            theta = prior.sample_theta(n_components, generator=gen)
        pts = torch.as_tensor(grid.points(), dtype=torch.float64)
        cov = prior.covariance(pts, pts, theta) / scale**2
        return cls(cov, schedule, grid.shape)

    @property
    def n_components(self) -> int:
        return self.eigval.shape[0]

    def _project(self, x_t: torch.Tensor) -> torch.Tensor:
        flat = x_t.reshape(x_t.shape[0], -1).to("cpu", torch.float64)  # (B, d)
        return torch.einsum("jdk,bd->bjk", self.eigvec, flat)  # (B, J, d)

    def _posterior(self, x_t: torch.Tensor, t):
        """ᾱ (B,1,1), variances (B,J,d), projections (B,J,d), component probabilities (B,J)."""
        t = self._steps(t, x_t.shape[0])
        ab = self.schedule.alpha_bar[t][:, None, None]
        var = ab * self.eigval[None] + (1 - ab)
        z = self._project(x_t)
        loglik = -0.5 * ((z**2 / var) + var.log()).sum(-1)
        return ab, var, z, torch.softmax(loglik + self.log_weights, dim=-1)

    def posterior_weights(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Component probabilities given ``x_t``, float64, shape (B, J)."""
        return self._posterior(x_t, t)[3]

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t], with the shape and dtype of ``x_t``.

        Parameters
        ----------
        x_t : torch.Tensor, shape (B, 1, H, W)
        t : int or torch.Tensor of int, shape () or (B,)
        """
        ab, var, z, post = self._posterior(x_t, t)
        shrunk = ab.sqrt() * self.eigval[None] / var * z * post[..., None]  # (B, J, d)
        x0 = torch.einsum("jdk,bjk->bd", self.eigvec, shrunk)
        return x0.reshape(x_t.shape).to(x_t.device, x_t.dtype)

    def gaussian_mse(self, t) -> torch.Tensor:
        """Per-pixel MSE of the denoiser of each component alone, shape (J,).

        For one Gaussian this is the exact Bayes risk ``mean_k λ_k(1-ᾱ)/(ᾱλ_k + 1-ᾱ)``;
        for a mixture it is a lower bound (the component is known).
        """
        ab = self.schedule.alpha_bar[int(t)]
        return (self.eigval * (1 - ab) / (ab * self.eigval + 1 - ab)).mean(-1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` exact draws from the mixture, float64, shape (n, 1, H, W)."""
        gen = torch.Generator().manual_seed(derive_seed(seed, 1))
        comp = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=gen)
        z = torch.randn(n, self.eigval.shape[1], generator=gen, dtype=torch.float64)
        x = torch.einsum("ndk,nk->nd", self.eigvec[comp], self.eigval[comp].sqrt() * z)
        return x.reshape(n, 1, *self.shape)

    def _steps(self, t, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1).cpu()
        if t.numel() == 1:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise GeodiffError(f"t must be a scalar or have shape ({batch},)")
        return t
