"""Diffusion posterior sampling, DPS (Chung et al., ICLR 2023, Algorithm 1).

Each step is an ancestral (DDIM, η = 1 by default) step of the prior followed by a
gradient step on the data misfit of the denoised field:
``x_next ← x_next - ζ' ∇_{x_t} ‖y - A x̂_0(x_t)‖² / ‖y - A x̂_0(x_t)‖``
(the paper's step ``ζ_t = ζ' / ‖y - A x̂_0‖``). The misfit is not weighted by the noise:
DPS treats τ only through ζ'. Approximate, needs the denoiser's gradient, and sensitive
to ζ' (see BENCHMARKS.md).
"""

from __future__ import annotations

import torch

from geodiff.diffusion.samplers import ddim_step, denoise_with_grad, visited_steps
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError
from geodiff.posterior._steps import PosteriorSample, SamplerSpec, start
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["SPEC", "dps_sample"]


def dps_sample(
    denoiser,
    schedule: NoiseSchedule,
    problem: LinearGaussianProblem,
    generators: list,
    *,
    steps: int = 1000,
    step_size: float = 1.0,
    eta: float = 1.0,
    timesteps=None,
    device=None,
    callback=None,
) -> PosteriorSample:
    """Posterior draws by DPS.

    Parameters
    ----------
    denoiser : callable
        ``D(x_t, t) -> x̂_0`` (:mod:`geodiff.diffusion.denoiser`), called with grad
        enabled to differentiate it in ``x_t``.
    schedule : NoiseSchedule
    problem : LinearGaussianProblem
    generators : list of torch.Generator
        One per draw (draw ``i`` depends only on its generator).
    steps : int
        Denoiser evaluations (the paper uses all 1000).
    step_size : float
        ζ' of the paper.
    eta : float
        DDIM's η for the prior step (1 is the paper's ancestral step).
    timesteps : sequence of int, optional
        Decreasing steps to visit instead of ``steps`` even ones.
    device : torch.device, optional
    callback : callable, optional
        ``callback(i, t, x_t, x0_hat)`` after each step.

    Returns
    -------
    PosteriorSample
        Draws, float64, shape (B, 1, H, W); no diagnostics.
    """
    if not step_size >= 0:
        raise GeodiffError(f"step size must be >= 0, got {step_size}")
    problem = problem.to(device)
    x = start(problem.shape, generators, device)
    alpha_bar = schedule.alpha_bar
    for i, (t, t_next) in enumerate(visited_steps(schedule, steps, timesteps)):
        x0, leaf = denoise_with_grad(denoiser, x, t)
        x0 = x0.to(torch.float64)
        if t_next is None:
            x0 = x0.detach()
        else:
            misfit = (problem.values - problem.apply(x0)).norm(dim=1)  # (B,)
            # ∇‖r‖² / ‖r‖ = 2 ∇‖r‖; draws are independent, so one backward for the sum
            (grad,) = torch.autograd.grad(misfit.sum(), leaf)
            x0 = x0.detach()
            ab, ab_next = float(alpha_bar[t]), float(alpha_bar[t_next])
            guidance = -(2 * step_size * grad.to(torch.float64))
            x = ddim_step(x, x0, ab, ab_next, eta=eta, generators=generators, guidance=guidance)
        if callback is not None:
            callback(i, t, x, x0)
    return PosteriorSample(x0, {})


SPEC = SamplerSpec("dps", dps_sample, gradients=True)
