"""Exact reference laws of the posterior samplers with a Gaussian oracle, for tests and
benchmarks (not for predictions).

* :func:`mcgdiff_limit` — the law MCGdiff's draws converge to as the particle count
  grows, when driven by the Gaussian oracle: the posterior of the prior that the finite
  DDIM chain actually samples. Its distance to
  :func:`~geodiff.posterior.exact.gaussian_posterior` is the chain's discretisation error;
  the sampler's distance to it is pure Monte Carlo error.
* :func:`mmps_limit`, :func:`daps_limit`, :func:`pigdm_limit` — the exact law of the
  draws of MMPS (conjugate gradients run to convergence), DAPS and ΠGDM driven by the
  oracle of ``N(0, Σ)``. With a linear denoiser each of their steps is affine in the
  state plus independent Gaussian noise, so the draws are exactly Gaussian and their
  mean and covariance follow from the steps, written here as matrices (independently of
  the samplers' code, which the tests compare with them).
"""

from __future__ import annotations

import itertools

import torch

from geodiff.diffusion.exact import ddim_state_variance, gaussian_sampler_law, oracle_gain
from geodiff.diffusion.samplers import check_timesteps, ddim_coefficients
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.posterior.exact import condition_gaussian, gaussian_posterior
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["daps_limit", "mcgdiff_limit", "mmps_limit", "pigdm_limit"]


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
    oracle = _OracleMatrices(cov)
    ab = float(schedule.alpha_bar[ts[-1]])
    chain_var = torch.as_tensor(ddim_state_variance(schedule, ts, oracle.eigval.numpy(), eta))
    chain_cov = (oracle.eigvec * chain_var) @ oracle.eigvec.T  # the chain's x_t at the last step
    spec = problem.whitened()
    pseudo_var = (1 - ab) + ab * spec.noise_sd**2
    mean, post = condition_gaussian(chain_cov, spec.basis.T, ab**0.5 * spec.values, pseudo_var)
    gain = oracle.gain(ab)
    return gain @ mean, gain @ post @ gain.T


class _OracleMatrices:
    """``G_ᾱ = √ᾱ Σ (ᾱΣ + (1-ᾱ)I)⁻¹``, the oracle of ``N(0, Σ)`` as a matrix, per ᾱ."""

    def __init__(self, cov):
        cov = torch.as_tensor(cov, dtype=torch.float64)
        eigval, self.eigvec = torch.linalg.eigh(0.5 * (cov + cov.T))
        self.eigval = eigval.clamp_min(0.0)

    def gain(self, alpha_bar: float) -> torch.Tensor:
        g = torch.as_tensor(oracle_gain(alpha_bar, self.eigval.numpy()))
        return (self.eigvec * g) @ self.eigvec.T


def _observed(problem: LinearGaussianProblem):
    """``(A, y, τ²)`` of the problem."""
    return problem.dense_matrix(), problem.values, problem.noise_sd**2


def _identity(problem: LinearGaussianProblem) -> torch.Tensor:
    return torch.eye(problem.dim, dtype=torch.float64)


def mmps_limit(
    cov,
    problem: LinearGaussianProblem,
    schedule: NoiseSchedule,
    timesteps,
    integrator: str = "dpm2m",
    eta: float = 0.0,
    warm_start: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The law of MMPS's draws with the oracle of ``N(0, cov)`` and exact conjugate gradients.

    The conditional denoiser is then the oracle of the posterior ``N(μ, P)``, so the
    integrator samples ``N(μ, P)`` with its own discretisation error: along each
    eigenvector of ``P`` it is the scalar chain of
    :func:`~geodiff.diffusion.exact.gaussian_sampler_law`, shifted by ``μ`` (the steps
    commute with the shift ``x_t → x_t - √ᾱ_t μ``; the start ``x_T ~ N(0, I)`` misses its
    exact mean ``√ᾱ_T μ`` by a term the transfer coefficient carries through).

    Parameters
    ----------
    cov : torch.Tensor, shape (d, d)
    problem : LinearGaussianProblem
    schedule : NoiseSchedule
    timesteps : sequence of int
        The steps the integrator visits.
    integrator : {"dpm2m", "ddim"}
    eta : float
        DDIM's η.
    warm_start : bool
        The chain starts at ``timesteps[0]`` from the exact law of its state there,
        ``N(√ᾱ μ, ᾱ P + (1-ᾱ) I)`` (MMPS's ``start_sigma`` with the preconditioner
        ``cov``), instead of ``N(0, I)``.

    Returns
    -------
    mean : torch.Tensor, float64, shape (d,)
    cov : torch.Tensor, float64, shape (d, d)
    """
    ts = check_timesteps(timesteps, minimum=2 if integrator == "dpm2m" else 1)
    mean, post = gaussian_posterior(cov, problem)
    eigval, eigvec = torch.linalg.eigh(0.5 * (post + post.T))
    eigval = eigval.clamp_min(0.0)
    ab_start = float(schedule.alpha_bar[ts[0]])
    start_var = (ab_start * eigval + 1 - ab_start).numpy() if warm_start else None
    transfer, var = gaussian_sampler_law(
        schedule, ts, eigval.numpy(), integrator, eta, start_variance=start_var
    )
    if warm_start:  # the start has the exact mean: nothing to carry
        return mean, (eigvec * torch.as_tensor(var)) @ eigvec.T
    start_offset = ab_start**0.5 * (eigvec.T @ mean)
    out_mean = mean - eigvec @ (torch.as_tensor(transfer) * start_offset)
    return out_mean, (eigvec * torch.as_tensor(var)) @ eigvec.T


def daps_limit(
    cov, problem: LinearGaussianProblem, schedule: NoiseSchedule, timesteps
) -> tuple[torch.Tensor, torch.Tensor]:
    """The law of DAPS's draws with the oracle of ``N(0, cov)``; arguments as :func:`mmps_limit`.

    Each level: ``x̂_0 = G x_t``; ``x_0 = P (x̂_0 + r ξ) + r² Aᵀ K⁻¹ (y - τ η)`` with
    ``K = r² A Aᵀ + diag(τ²)``, ``P = I - r² Aᵀ K⁻¹ A``, ``r² = 1 - ᾱ``; then
    ``x_next = √ᾱ_next x_0 + √(1-ᾱ_next) z``.
    """
    oracle, (a, y, tau2), eye = _OracleMatrices(cov), _observed(problem), _identity(problem)
    m, c = torch.zeros(len(eye), dtype=torch.float64), eye.clone()  # x_T ~ N(0, I)
    for t, t_next in itertools.pairwise([*check_timesteps(timesteps).tolist(), None]):
        ab = float(schedule.alpha_bar[t])
        g, r2 = oracle.gain(ab), 1 - ab
        k_inv_a = torch.linalg.solve(r2 * a @ a.T + torch.diag(tau2), a)  # K⁻¹ A, (n, d)
        proj = eye - r2 * a.T @ k_inv_a
        m0 = proj @ g @ m + r2 * k_inv_a.T @ y
        c0 = proj @ (g @ c @ g.T + r2 * eye) @ proj.T + r2**2 * (k_inv_a.T * tau2) @ k_inv_a
        if t_next is None:
            return m0, 0.5 * (c0 + c0.T)
        ab_next = float(schedule.alpha_bar[t_next])
        m, c = ab_next**0.5 * m0, ab_next * c0 + (1 - ab_next) * eye
    raise AssertionError("unreachable: the last level returns")


def pigdm_limit(
    cov, problem: LinearGaussianProblem, schedule: NoiseSchedule, timesteps, eta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The law of ΠGDM's draws with the oracle of ``N(0, cov)``; arguments as :func:`mmps_limit`.

    Each step, with ``G`` the oracle, ``K = (1-ᾱ) A Aᵀ + diag(τ²)`` and
    ``s = √(ᾱ_next ᾱ) (1-ᾱ)``: the guidance ``s Gᵀ Aᵀ K⁻¹ (y - A G x_t)`` is added to the
    DDIM step ``√ᾱ_next G x_t + keep (x_t - √ᾱ G x_t) / √(1-ᾱ) + σ z``; the last step
    (``ᾱ_next = 1``) returns ``G x_t`` plus its guidance.
    """
    oracle, (a, y, tau2), eye = _OracleMatrices(cov), _observed(problem), _identity(problem)
    m, c = torch.zeros(len(eye), dtype=torch.float64), eye.clone()  # x_T ~ N(0, I)
    for t, t_next in itertools.pairwise([*check_timesteps(timesteps).tolist(), None]):
        ab = float(schedule.alpha_bar[t])
        ab_next = 1.0 if t_next is None else float(schedule.alpha_bar[t_next])
        g = oracle.gain(ab)
        s = (ab_next * ab) ** 0.5 * (1 - ab)
        pull = s * g.T @ torch.linalg.solve((1 - ab) * a @ a.T + torch.diag(tau2), a).T  # (d, n)
        if t_next is None:
            step, sigma = g - pull @ a @ g, 0.0
        else:
            keep, sigma = ddim_coefficients(ab, ab_next, eta)
            step = ab_next**0.5 * g + keep / (1 - ab) ** 0.5 * (eye - ab**0.5 * g) - pull @ a @ g
        m, c = step @ m + pull @ y, step @ c @ step.T + sigma**2 * eye
    return m, 0.5 * (c + c.T)
