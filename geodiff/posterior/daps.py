"""Decoupled annealing posterior sampling, DAPS (Zhang et al., CVPR 2025).

At each noise level the chain is decoupled from its past: the denoiser gives
``x̂_0(x_t)``; a clean field is drawn from ``N(x̂_0, r_t² I)`` conditioned on the
observations; it is noised afresh to the next level, ``x_next = √ᾱ_next x_0 + √(1-ᾱ_next) z``.
For linear-Gaussian observations the conditioned draw is exact and closed-form
(Matheron's rule with the ``n x n`` matrix ``r_t² A Aᵀ + diag(τ²)``), where the paper
runs Langevin dynamics; and ``x̂_0`` is the denoiser's one-step estimate, where the paper
may integrate the probability-flow ODE. No gradient of the denoiser is needed.

If ``N(x̂_0, r_t² I)`` were the exact law of ``x_0 | x_t``, every level's state would be an
exact posterior draw at that level; ``r_t² = 1 - ᾱ_t`` is that law's variance for a field
of unit variance with independent pixels (as in ΠGDM), which is the approximation.
"""

from __future__ import annotations

import torch

from geodiff.diffusion.samplers import noise_like, step_tensor, visited_steps
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.linalg import robust_cholesky
from geodiff.posterior._steps import PosteriorSample, SamplerSpec, flat, start
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["SPEC", "daps_sample"]


@torch.no_grad()
def daps_sample(
    denoiser,
    schedule: NoiseSchedule,
    problem: LinearGaussianProblem,
    generators: list,
    *,
    steps: int = 100,
    timesteps=None,
    device=None,
    callback=None,
) -> PosteriorSample:
    """Posterior draws by DAPS.

    Parameters
    ----------
    denoiser, schedule, problem, generators, timesteps, device, callback
        As in :func:`~geodiff.posterior.dps.dps_sample` (no gradient needed).
    steps : int
        Annealing levels, one denoiser evaluation each.

    Returns
    -------
    PosteriorSample
        The conditioned clean fields of the last level, float64, shape (B, 1, H, W);
        no diagnostics.
    """
    problem = problem.to(device)
    a, y, tau = problem.dense_matrix(), problem.values, problem.noise_sd
    gram, noise_var = a @ a.T, torch.diag(tau**2)
    x = start(problem.shape, generators, device)
    alpha_bar = schedule.alpha_bar
    for i, (t, t_next) in enumerate(visited_steps(schedule, steps, timesteps)):
        ab = float(alpha_bar[t])
        x0_hat = flat(denoiser(x, step_tensor(t, x)).to(torch.float64))
        r2 = 1 - ab
        chol = robust_cholesky(r2 * gram + noise_var, "DAPS's observation covariance")
        # Matheron: a draw of N(x̂_0, r² I), corrected by the misfit of its simulated data
        prior_draw = x0_hat + r2**0.5 * noise_like(x0_hat, generators)
        simulated = prior_draw @ a.T + tau * noise_like(
            prior_draw.new_empty(len(x), len(y)), generators
        )
        x0 = prior_draw + r2 * torch.cholesky_solve((y - simulated).T, chol).T @ a
        x0 = x0.reshape(x.shape)
        if t_next is not None:
            ab_next = float(alpha_bar[t_next])
            x = ab_next**0.5 * x0 + (1 - ab_next) ** 0.5 * noise_like(x0, generators)
        if callback is not None:
            callback(i, t, x, x0)
    return PosteriorSample(x0, {})


SPEC = SamplerSpec("daps", daps_sample)
