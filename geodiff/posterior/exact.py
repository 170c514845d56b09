"""Gaussian conditioning, written once, in the model's units.

* :func:`condition_gaussian` — the posterior of ``N(0, Σ)`` given ``y = A x + ε``.
* :func:`gaussian_posterior` — the same for a :class:`LinearGaussianProblem` (what kriging
  computes, here for a dense grid covariance).

The exact laws of the samplers' draws with a Gaussian oracle are in :mod:`geodiff.testing`.
"""

from __future__ import annotations

import torch

from geodiff.linalg import condition_on, robust_cholesky
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["condition_gaussian", "gaussian_posterior"]


def condition_gaussian(cov, matrix, values, noise_var) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of ``x ~ N(0, cov)`` given ``values = matrix x + N(0, diag(noise_var))``.

    Parameters
    ----------
    cov : torch.Tensor, shape (d, d)
    matrix : torch.Tensor, shape (n, d)
    values, noise_var : torch.Tensor, shape (n,)

    Returns
    -------
    mean : torch.Tensor, float64, shape (d,)
    cov : torch.Tensor, float64, shape (d, d)
    """
    cov = torch.as_tensor(cov, dtype=torch.float64)
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    cross = cov @ matrix.T  # Cov(x, y) = Σ Aᵀ, (d, n)
    chol = robust_cholesky(matrix @ cross + torch.diag(noise_var), "covariance of the observations")
    mean, half = condition_on(chol, cross, values)
    return mean, cov - half.T @ half


def gaussian_posterior(cov, problem: LinearGaussianProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact posterior of the field ``N(0, cov)`` given ``problem``; shapes (d,), (d, d)."""
    return condition_gaussian(cov, problem.dense_matrix(), problem.values, problem.noise_sd**2)
