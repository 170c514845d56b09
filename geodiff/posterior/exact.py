"""Exact answers for the posterior samplers on a Gaussian prior, in the model's units.

* :func:`gaussian_posterior` — the posterior of ``N(0, Σ)`` given linear-Gaussian
  observations (what kriging computes, here for a dense grid covariance).
* :func:`mcgdiff_limit` — the law MCGdiff's draws converge to as the particle count
  grows, when driven by the Gaussian oracle: the posterior of the prior that the finite
  DDIM chain actually samples. Its distance to :func:`gaussian_posterior` is the chain's
  discretisation error; the sampler's distance to it is pure Monte Carlo error.
"""

from __future__ import annotations

import torch

from geodiff.diffusion.exact import ddim_state_variance, oracle_gain
from geodiff.diffusion.samplers import check_timesteps
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.linalg import robust_cholesky
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["condition_gaussian", "gaussian_posterior", "mcgdiff_limit"]


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
    cross = cov @ matrix.T  # (d, n)
    chol = robust_cholesky(matrix @ cross + torch.diag(noise_var), "covariance of the observations")
    half = torch.linalg.solve_triangular(chol, cross.T, upper=False)  # L⁻¹ A Σ, (n, d)
    mean = half.T @ torch.linalg.solve_triangular(chol, values[:, None], upper=False)[:, 0]
    return mean, cov - half.T @ half


def gaussian_posterior(cov, problem: LinearGaussianProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact posterior of the field ``N(0, cov)`` given ``problem``; shapes (d,), (d, d)."""
    return condition_gaussian(cov, problem.matrix, problem.values, problem.noise_sd**2)


def mcgdiff_limit(
    cov, problem: LinearGaussianProblem, schedule: NoiseSchedule, timesteps, eta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of MCGdiff's output as its particle count grows.

    Parameters
    ----------
    cov : torch.Tensor, shape (d, d)
        The Gaussian prior whose oracle drives the sampler.
    problem : LinearGaussianProblem
    schedule : NoiseSchedule
    timesteps : sequence of int
        The steps the sampler visits.
    eta : float
        The chain's DDIM η.

    Returns
    -------
    mean : torch.Tensor, float64, shape (d,)
    cov : torch.Tensor, float64, shape (d, d)
    """
    ts = check_timesteps(timesteps)
    cov = torch.as_tensor(cov, dtype=torch.float64)
    eigval, eigvec = torch.linalg.eigh(0.5 * (cov + cov.T))
    eigval = eigval.clamp_min(0.0)
    ab = float(schedule.alpha_bar[ts[-1]])
    chain_var = torch.as_tensor(ddim_state_variance(schedule, ts, eigval.numpy(), eta))
    chain_cov = (eigvec * chain_var) @ eigvec.T  # the chain's law of x_t at the last step
    spec = problem.whitened()
    pseudo_var = (1 - ab) + ab * spec.noise_sd**2
    mean, post = condition_gaussian(chain_cov, spec.basis.T, ab**0.5 * spec.values, pseudo_var)
    gain = (eigvec * torch.as_tensor(oracle_gain(ab, eigval.numpy()))) @ eigvec.T
    return gain @ mean, gain @ post @ gain.T
