"""The exact denoiser of an SPDE prior (or a mixture over a few θ) without dense matrices.

For one component the grid field is ``x_0 = E x`` with ``x ~ N(0, Q^-1)`` on the lattice
(``E`` crops the margin). Given ``x_t = sqrt(ab) x_0 / scale + sqrt(1 - ab) eps`` (the
model's units), with ``s = 1 - ab`` and ``c = ab / (s scale^2)``,

    F = Q + c E^T E                              (sparse: E^T E is diagonal)
    E[x_0 / scale | x_t] = (sqrt(ab) / (s scale^2)) E F^-1 E^T x_t

one sparse factorisation per (component, noise level). The mixture weights need the
density of ``x_t``, ``N(0, M)`` with ``M = ab E Q^-1 E^T / scale^2 + s I``; by the
determinant lemma and Woodbury,

    log det M = d log s + log det F - log det Q
    x_t^T M^-1 x_t = (|x_t|^2 - c (E^T x_t)^T F^-1 (E^T x_t)) / s

both from the same factors. :class:`SPDEMixtureOracle` has the call interface of
:class:`geodiff.diffusion.oracle.GaussianMixtureOracle`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.rng import derive_seed

__all__ = ["SPDEMixtureOracle"]

_CACHE_LEVELS = 4  # noise levels whose factorisations are kept


class SPDEMixtureOracle:
    """Exact denoiser of a finite mixture of discretised SPDE priors on a grid.

    Parameters
    ----------
    grid_ops : list of geodiff.fields.spde.SPDEGridOperator
        The components, on the same grid.
    schedule : NoiseSchedule
    scale : float
        The model's data scale (fields are divided by it).
    weights : array_like, shape (J,), optional
        Mixture weights (uniform by default).
    """

    def __init__(self, grid_ops, schedule: NoiseSchedule, *, scale: float = 1.0, weights=None):
        self.grid_ops = list(grid_ops)
        if not self.grid_ops:
            raise GeodiffError("an SPDE oracle needs at least one component")
        shapes = {op.grid.shape for op in self.grid_ops}
        if len(shapes) != 1:
            raise GeodiffError(f"components live on different grids {sorted(shapes)}")
        self.shape = shapes.pop()
        n = len(self.grid_ops)
        w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
            raise GeodiffError("mixture weights must be non-negative, one per component")
        self.log_weights = np.log(w / w.sum())
        self.schedule, self.scale = schedule, float(scale)
        self._logdet_q = [None] * n
        self._cache: dict = {}

    @classmethod
    def from_prior(
        cls,
        prior,
        grid: Grid,
        schedule: NoiseSchedule,
        *,
        n_components: int = 4,
        seed: int = 0,
        scale: float = 1.0,
        theta: dict | None = None,
    ) -> SPDEMixtureOracle:
        """The oracle of an SPDE prior on ``grid``: a mixture over ``n_components`` θ draws.

        With ``theta`` (a batch of J sets) those components; a batch of one is the
        Gaussian oracle at fixed θ.
        """
        if theta is None:
            gen = torch.Generator().manual_seed(derive_seed(seed, 0))
            theta = prior.sample_theta(n_components, generator=gen)
        batch = next(iter(theta.values())).shape[0]
        ops = [prior.grid_operator(grid, {k: v[j : j + 1] for k, v in theta.items()})
               for j in range(batch)]  # fmt: skip
        return cls(ops, schedule, scale=scale)

    @property
    def n_components(self) -> int:
        return len(self.grid_ops)

    def _factor(self, j: int, t: int):
        key = (j, t)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_LEVELS * self.n_components:
                self._cache.pop(next(iter(self._cache)))
            ab = float(self.schedule.alpha_bar[t])
            c = ab / ((1.0 - ab) * self.scale**2)
            op = self.grid_ops[j]
            diagonal = np.zeros(op.operator.size)
            diagonal[op.crop] = c
            self._cache[key] = op.operator.factor_with(diagonal, "oracle system")
        return self._cache[key]

    def _logdet_precision(self, j: int) -> float:
        if self._logdet_q[j] is None:
            self._logdet_q[j] = self.grid_ops[j].operator.logdet_precision()
        return self._logdet_q[j]

    def _components(self, x: np.ndarray, t: int):
        """Per component: denoised means (J, d, B) and log-likelihoods of x_t (J, B)."""
        ab = float(self.schedule.alpha_bar[t])
        s = 1.0 - ab
        c = ab / (s * self.scale**2)
        d = x.shape[0]
        means, loglik = [], []
        for j, op in enumerate(self.grid_ops):
            factor = self._factor(j, t)
            lifted = np.zeros((op.operator.size, x.shape[1]))
            lifted[op.crop] = x
            solved = factor.solve(lifted)[op.crop]  # E F^-1 E^T x_t, (d, B)
            means.append(math.sqrt(ab) / (s * self.scale**2) * solved)
            quad = ((x * x).sum(0) - c * (x * solved).sum(0)) / s
            logdet = d * math.log(s) + factor.logdet() - self._logdet_precision(j)
            loglik.append(-0.5 * (quad + logdet + d * math.log(2 * math.pi)))
        return np.stack(means), np.stack(loglik)

    def _by_level(self, x_t: torch.Tensor, t):
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1).cpu()
        batch = x_t.shape[0]
        if t.numel() == 1:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise GeodiffError(f"t must be a scalar or have shape ({batch},)")
        flat = x_t.detach().reshape(batch, -1).to("cpu", torch.float64).numpy()
        for level in torch.unique(t).tolist():
            rows = (t == level).nonzero().reshape(-1).numpy()
            yield rows, self._components(flat[rows].T, int(level))

    def posterior_weights(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Component probabilities given ``x_t``, float64, shape (B, J)."""
        out = torch.empty(x_t.shape[0], self.n_components, dtype=torch.float64)
        for rows, (_, loglik) in self._by_level(x_t, t):
            out[rows] = torch.softmax(torch.as_tensor(loglik.T + self.log_weights), dim=-1)
        return out

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t], with the shape, device and dtype of ``x_t`` (B, 1, H, W).

        Differentiable in ``x_t`` for one component (fixed θ), where it is linear with a
        symmetric Jacobian: a vector-Jacobian product is the same sparse solve.
        """
        if x_t.requires_grad and torch.is_grad_enabled():
            if self.n_components != 1:
                raise GeodiffError("the SPDE oracle is differentiable for one component only")
            return _LinearOracle.apply(x_t, self, t)
        return self._mean(x_t, t)

    def _mean(self, x_t: torch.Tensor, t) -> torch.Tensor:
        out = torch.empty(x_t.shape[0], math.prod(self.shape), dtype=torch.float64)
        for rows, (means, loglik) in self._by_level(x_t, t):
            post = torch.softmax(torch.as_tensor(loglik.T + self.log_weights), dim=-1)  # (b, J)
            out[rows] = torch.einsum("bj,jdb->bd", post, torch.as_tensor(means))
        return out.reshape(x_t.shape).to(x_t.device, x_t.dtype)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` exact draws from the mixture (model units), float64, shape (n, 1, H, W)."""
        gen = torch.Generator().manual_seed(derive_seed(seed, 1))
        probs = torch.as_tensor(np.exp(self.log_weights))
        comp = torch.multinomial(probs, n, replacement=True, generator=gen)
        out = torch.empty(n, math.prod(self.shape), dtype=torch.float64)
        for i, j in enumerate(comp.tolist()):
            op = self.grid_ops[j]
            z = torch.randn(op.operator.size, generator=gen, dtype=torch.float64).numpy()
            out[i] = torch.as_tensor(op.sample(z)) / self.scale
        return out.reshape(n, 1, *self.shape)


class _LinearOracle(torch.autograd.Function):
    """One component's ``E[x_0 | x_t] = G x_t`` with ``G`` symmetric: ``Gᵀ u = G u``."""

    @staticmethod
    def forward(ctx, x_t, oracle, t):
        ctx.oracle, ctx.t = oracle, t
        return oracle._mean(x_t.detach(), t)

    @staticmethod
    def backward(ctx, grad):
        return ctx.oracle._mean(grad, ctx.t), None, None
