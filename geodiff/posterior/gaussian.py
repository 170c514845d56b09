"""The Gaussian stand-in for the prior that MMPS preconditions with and warm-starts from.

MMPS needs, at each noise level, the exact ``Cov[x_0 | x_t]`` of a Gaussian close to the
prior (``V̄``), the observations' covariance under it (``M = A V̄ Aᵀ + diag(τ²)``), and an
exact draw of ``x_t`` given ``y`` under it (the warm start). Two Gaussians provide them:

- :class:`DenseGaussian` — any covariance ``Σ̄`` given as a ``(d, d)`` matrix, by its
  eigendecomposition: exact, ``O(d³)`` once, so for grids up to about 64².
- :class:`StationaryGaussian` — a stationary covariance ``c(h)`` known up to a lag radius
  ``K``, embedded in a torus of at least ``(H + K + 1) × (W + K + 1)`` nodes (the next
  FFT-friendly sizes), where it is diagonal in
  Fourier: ``V̄`` is a filter, ``x_t`` a filtered white noise, ``M`` an ``n × n`` matrix of
  kernel values. No ``d × d`` object exists; the cost is FFTs of the torus and
  ``O(n² k²)`` kernel look-ups for rows of ``A`` with ``k`` nonzeros (4 for bilinear
  points). The torus law restricted to the grid has covariance ``c(h)`` exactly when
  ``c`` vanishes beyond ``K`` and its torus spectrum is non-negative; negative spectral
  values (from truncating ``c``) are set to 0.

Legend: ``ᾱ`` the schedule's signal fraction at the level; ``σ² = (1-ᾱ)/ᾱ``; ``λ`` the
torus spectrum of ``c``; ``V̄ = Σ̄ - Σ̄ (Σ̄ + σ² I)⁻¹ Σ̄``, along ``λ``: ``λ σ² / (λ + σ²)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.fft import next_fast_len

from geodiff.errors import GeodiffError
from geodiff.linalg import robust_cholesky

__all__ = ["DenseGaussian", "StationaryGaussian", "as_gaussian", "model_gaussian"]

#: bytes of one (b, k, n, k) array of kernel look-ups (rows are taken in blocks below it)
_GATHER_BYTES = 2**25
#: bytes of the factors kept across batches (25 levels of 1,000 observations fit; of
#: 5,000, five levels: the others are factorised again for each batch)
_LEVEL_CACHE_BYTES = 2**30


def as_gaussian(preconditioner):
    """A :class:`DenseGaussian` from a ``(d, d)`` covariance, or the Gaussian given."""
    if isinstance(preconditioner, (DenseGaussian, StationaryGaussian)):
        return preconditioner
    return DenseGaussian(preconditioner)


class DenseGaussian:
    """``N(0, Σ̄)`` with ``Σ̄`` a dense ``(d, d)`` covariance (see module docs)."""

    def __init__(self, cov):
        self.cov = torch.as_tensor(cov, dtype=torch.float64)
        if self.cov.ndim != 2 or self.cov.shape[0] != self.cov.shape[1]:
            raise GeodiffError(f"a covariance must be square, got shape {tuple(self.cov.shape)}")

    def guess(self, problem):
        """``at(ᾱ) -> (r -> M⁻¹ r, v -> V̄ Aᵀ v)`` for ``problem`` (rows (B, n))."""
        a = problem.dense_matrix()
        cov = self.cov.to(a.device)
        d = a.shape[1]
        if cov.shape != (d, d):
            raise GeodiffError(
                f"the preconditioner must have shape ({d}, {d}), got {tuple(cov.shape)}"
            )
        eigval, eigvec = torch.linalg.eigh(0.5 * (cov + cov.T))
        eigval, a_u, tau2 = eigval.clamp_min(0.0), a @ eigvec, problem.noise_sd**2

        def at(ab: float):
            post_var = eigval * (1 - ab) / (ab * eigval + 1 - ab)  # V̄ along U
            m = (a_u * post_var) @ a_u.T + torch.diag(tau2)
            chol = robust_cholesky(0.5 * (m + m.T), "MMPS's preconditioner")
            v_at = (eigvec * post_var) @ a_u.T  # V̄ Aᵀ, (d, n)
            return (lambda r: torch.cholesky_solve(r.T, chol).T), (lambda v: v @ v_at.T)

        return at

    def start(self, problem, ab: float, noise: torch.Tensor) -> torch.Tensor:
        """``x_t`` given ``y`` at ``ᾱ``: ``N(√ᾱ μ, ᾱ P + (1-ᾱ) I)``, ``(μ, P)`` the posterior
        of ``N(0, Σ̄)``; row ``i`` a fixed linear map of ``noise[i]`` (B, H, W)."""
        from geodiff.posterior.exact import gaussian_posterior

        mean, post = gaussian_posterior(self.cov.to(noise.device), problem)
        eye = torch.eye(len(mean), dtype=mean.dtype, device=noise.device)
        law = ab * 0.5 * (post + post.T) + (1 - ab) * eye
        chol = robust_cholesky(law, "the warm start's Gaussian")  # eigenvalues >= 1 - ᾱ > 0
        return ab**0.5 * mean + noise.reshape(len(noise), -1) @ chol.T

    def start_noise_shape(self, n_observations: int, shape) -> tuple[int, int]:
        """The standard normals one warm-start draw takes: one per node."""
        return tuple(shape)


class StationaryGaussian:
    """``N(0, Σ̄)`` with ``Σ̄_ij = c(s_i - s_j)``, ``c`` on lags up to ``K`` cells (module docs).

    Parameters
    ----------
    lag_covariance : array_like, shape (2K + 1, 2K + 1)
        ``c`` at lags ``(dy, dx)`` in cells, ``[K, K]`` the variance; symmetrised.
    shape : (int, int)
        The grid ``(H, W)``.
    """

    def __init__(self, lag_covariance, shape):
        c = torch.as_tensor(np.asarray(lag_covariance), dtype=torch.float64)
        if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] % 2 == 0:
            raise GeodiffError(f"a lag covariance must be (2K+1, 2K+1), got shape {tuple(c.shape)}")
        if not torch.isfinite(c).all():
            raise GeodiffError("the lag covariance must be finite")
        self.lags = 0.5 * (c + c.flip(0, 1))
        self.radius = (c.shape[0] - 1) // 2
        self.shape = tuple(int(s) for s in shape)
        self.torus = tuple(next_fast_len(s + self.radius + 1) for s in self.shape)
        self._spectra: dict = {}
        self._levels_key, self._levels = None, {}

    # ------------------------------------------------------------------ spectra
    def spectrum(self, device) -> torch.Tensor:
        """``λ`` on the torus, clipped at 0, float64, shape (P, Q)."""
        key = str(device)
        if key not in self._spectra:
            p, q = self.torus
            k = self.radius
            ring = torch.zeros(p, q, dtype=torch.float64)
            rows = torch.arange(-k, k + 1) % p
            cols = torch.arange(-k, k + 1) % q
            ring[rows[:, None], cols[None, :]] = self.lags
            lam = torch.fft.fft2(ring).real.clamp_min(0.0)
            self._spectra[key] = lam.to(device)
        return self._spectra[key]

    def _filter(self, fields: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """``F⁻¹ diag(gain) F`` on the torus applied to (B, H, W) fields (zero outside)."""
        h, w = self.shape
        p, q = self.torus
        padded = fields.new_zeros(len(fields), p, q)
        padded[:, :h, :w] = fields
        out = torch.fft.irfft2(torch.fft.rfft2(padded) * gain[:, : q // 2 + 1], s=(p, q))
        return out[:, :h, :w]

    def _kernel(self, gain: torch.Tensor) -> torch.Tensor:
        """The torus covariance of the filter ``gain``: lag ``(dy, dx)`` at ``[dy % P, dx % Q]``."""
        return torch.fft.ifft2(gain).real

    def _observation_covariance(self, kernel: torch.Tensor, rows) -> torch.Tensor:
        """``A K Aᵀ`` (n, n) for the torus covariance ``kernel``, by kernel look-ups;
        ``rows`` is :meth:`LinearGaussianProblem.rows`."""
        index, weight = (t.to(kernel.device) for t in rows)
        p, q = self.torus
        w_grid = self.shape[1]
        r, c = index // w_grid, index % w_grid  # (n, k)
        n, k = index.shape
        out = torch.zeros(n, n, dtype=torch.float64, device=kernel.device)
        block = max(1, _GATHER_BYTES // (8 * n * k * k))
        for lo in range(0, n, block):
            sl = slice(lo, lo + block)
            # torus lags between the entries of rows lo.. and of every row: (b, k, n, k)
            lag = ((r[sl, :, None, None] - r[None, None]) % p) * q
            lag += (c[sl, :, None, None] - c[None, None]) % q
            values = torch.take(kernel, lag) * weight[sl, :, None, None] * weight[None, None]
            out[sl] = values.sum((1, 3))
        return out

    def _check(self, problem) -> None:
        if tuple(problem.shape) != self.shape:
            raise GeodiffError(
                f"the stationary Gaussian is for a {self.shape} grid, the problem's is "
                f"{tuple(problem.shape)}"
            )

    # -------------------------------------------------------------- MMPS's needs
    def guess(self, problem):
        """``at(ᾱ) -> (r -> M⁻¹ r, v -> V̄ Aᵀ v)`` for ``problem`` (rows (B, n)).

        The factor of ``M`` at each level is kept for the next call with the same
        observation operator and noise (the batches of one posterior run), up to 1 GiB.
        """
        self._check(problem)
        device = problem.values.device
        lam, tau2 = self.spectrum(device), problem.noise_sd**2
        h, w = self.shape
        rows = problem.rows()
        levels = self._levels_for(rows, tau2)

        def at(ab: float):
            gain = lam * (1 - ab) / (ab * lam + 1 - ab)
            chol = levels.get(ab)
            if chol is None:
                m = self._observation_covariance(self._kernel(gain), rows) + torch.diag(tau2)
                chol = robust_cholesky(0.5 * (m + m.T), "MMPS's preconditioner")
                if (len(levels) + 1) * chol.numel() * 8 <= _LEVEL_CACHE_BYTES:
                    levels[ab] = chol

            def v_times(v):
                spread = problem.adjoint(v).reshape(len(v), h, w)
                return self._filter(spread, gain).reshape(len(v), -1)

            return (lambda r: torch.cholesky_solve(r.T, chol).T), v_times

        return at

    def _levels_for(self, rows, tau2) -> dict:
        """The cache of factors by level for this operator and noise (reset for others)."""
        key = self._levels_key
        same = key is not None and all(
            a.shape == b.shape and a.device == b.device and torch.equal(a, b)
            for a, b in zip(key, (*rows, tau2), strict=True)
        )
        if not same:
            self._levels_key, self._levels = (*rows, tau2), {}
        return self._levels

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """Fields ``N(0, Σ̄)`` from torus white noise (B, P, Q); returns (B, H, W)."""
        lam = self.spectrum(noise.device)
        h, w = self.shape
        field = torch.fft.ifft2(torch.fft.fft2(noise) * lam.sqrt()).real
        return field[:, :h, :w]

    def start(self, problem, ab: float, noise: torch.Tensor) -> torch.Tensor:
        """``x_t`` given ``y`` at ``ᾱ``, exact under ``N(0, Σ̄)`` (Matheron's rule).

        ``noise`` is (B, *:meth:`start_noise_shape`) standard normals: the torus draw of
        ``x_0``, then the state's noise and the observations'; returns (B, d).
        """
        self._check(problem)
        h, w = self.shape
        p = self.torus[0]
        n = len(problem)
        x0 = self.sample(noise[:, :p])
        rest = noise[:, p:].reshape(len(noise), -1)
        eps, eps_y = rest[:, : h * w], rest[:, h * w : h * w + n]
        x_t = ab**0.5 * x0.reshape(len(noise), -1) + (1 - ab) ** 0.5 * eps
        simulated = problem.apply(x0) + problem.noise_sd * eps_y
        # at ᾱ = 0 the guess's V̄ is Σ̄ itself: M⁻¹ for M = A Σ̄ Aᵀ + diag(τ²), and Σ̄ Aᵀ
        solve, cov_times = self.guess(problem)(0.0)
        return x_t + ab**0.5 * cov_times(solve(problem.values - simulated))

    def start_noise_shape(self, n_observations: int, shape) -> tuple[int, int]:
        """Standard normals per warm-start draw, as rows of the torus width ``Q``."""
        h, w = self.shape
        p, q = self.torus
        extra = math.ceil((h * w + n_observations) / q)
        return (p + extra, q)


def model_gaussian(model):
    """The Gaussian that MMPS preconditions with and warm-starts from, in network units.

    A model for any grid size gets the :class:`StationaryGaussian` of its
    :meth:`~geodiff.diffusion.model.DiffusionModel.lag_covariance` (no ``d × d`` object);
    others the :class:`DenseGaussian` of its
    :meth:`~geodiff.diffusion.model.DiffusionModel.prior_covariance`.
    """
    if model.any_size:
        return StationaryGaussian(model.lag_covariance(), model.grid.shape)
    return DenseGaussian(model.prior_covariance().to(model.device))
