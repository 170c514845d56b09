"""DDIM and DDPM ancestral sampling as pure functions of a denoiser, and their steps.

Legend (Song et al. 2021, eq. 12; Ho et al. 2020):

- ``D(x_t, t)``  the denoiser, returning x̂_0 = E[x_0 | x_t] (:mod:`geodiff.diffusion.denoiser`)
- ``ab``, ``ab_next``  ᾱ at the current and the next (less noisy) step
- ``eps``        ε̂ = (x_t - √ᾱ x̂_0) / √(1-ᾱ)
- ``sigma``      σ = η √((1-ᾱ_next)/(1-ᾱ)) √(1 - ᾱ/ᾱ_next); η = 1 on every step is DDPM
- update         x_next = √ᾱ_next x̂_0 + √(1-ᾱ_next-σ²) ε̂ + σ z  (:func:`ddim_step`, the one
  implementation, which the posterior samplers share)

DPM-Solver++(2M) (Lu et al. 2022) is the second-order multistep solver of the same
probability-flow ODE, in terms of x̂_0 and the half log-SNR λ = log(√ᾱ/√(1-ᾱ)):
with h = λ_next - λ_t and r = h_prev / h,
D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0,prev and
x_next = (√(1-ᾱ_next)/√(1-ᾱ)) x_t - √ᾱ_next (e^{-h} - 1) D.
Its first step is DDIM's.

Each ensemble member draws its noise from its own generator, so sample ``i`` does not
depend on the batch it is drawn in. No file I/O, no plotting.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from geodiff.diffusion.denoiser import eps_from_x0
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError

__all__ = [
    "SAMPLERS",
    "check_timesteps",
    "ddim_coefficients",
    "ddim_mean",
    "ddim_sample",
    "ddim_step",
    "ddpm_sample",
    "denoise_with_grad",
    "dpm_solver_sample",
    "initial_noise",
    "sample",
    "step_tensor",
    "visited_steps",
]


def initial_noise(shape, generators: list, device=None, dtype=torch.float32) -> torch.Tensor:
    """x_T ~ N(0, I), one row per generator, shape ``(len(generators), *shape)``."""
    rows = [torch.randn(tuple(shape), generator=g, dtype=dtype) for g in generators]
    return torch.stack(rows).to(device)


def ddim_coefficients(alpha_bar: float, alpha_bar_next: float, eta: float) -> tuple[float, float]:
    """``(keep, sigma)`` of the DDIM step ``x_next = √ᾱ_next x̂_0 + keep ε̂ + sigma z``."""
    sigma = eta * ((1 - alpha_bar_next) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_next)) ** 0.5
    return max(1 - alpha_bar_next - sigma**2, 0.0) ** 0.5, sigma


def check_timesteps(timesteps, minimum: int = 1) -> torch.Tensor:
    """``timesteps`` as a 1-D long tensor, refusing one that is not strictly decreasing."""
    ts = torch.as_tensor(timesteps, dtype=torch.long)
    if ts.ndim != 1 or len(ts) < minimum or (ts[1:] >= ts[:-1]).any():
        raise GeodiffError(
            f"timesteps must be a strictly decreasing 1-D sequence of {minimum} or more"
        )
    return ts


def visited_steps(
    schedule: NoiseSchedule,
    steps: int,
    timesteps=None,
    *,
    log_snr: bool = False,
    minimum: int = 1,
) -> list[tuple[int, int | None]]:
    """``(t, t_next)`` pairs of the steps to visit; ``t_next`` is None on the last.

    ``steps`` evenly spaced steps (in t, or in log-SNR with ``log_snr``, see
    :meth:`NoiseSchedule.log_snr_timesteps`), or the decreasing ``timesteps`` if given.
    """
    if timesteps is None:
        if not isinstance(steps, int) or steps < 1:
            raise GeodiffError(f"steps must be a positive integer, got {steps!r}")
        timesteps = schedule.log_snr_timesteps(steps) if log_snr else schedule.timesteps(steps)
    ts = check_timesteps(timesteps, minimum).tolist()
    return list(zip(ts, [*ts[1:], None], strict=True))


def step_tensor(t: int, x: torch.Tensor) -> torch.Tensor:
    """The step ``t`` for every row of ``x``, a long tensor (B,) on ``x``'s device."""
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def denoise_with_grad(denoiser, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x̂_0, leaf)``: the denoiser called with grad on ``leaf``, a fresh copy of ``x``.

    For vector-Jacobian products ``torch.autograd.grad(x̂_0, leaf, v)``.
    """
    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        x0 = denoiser(leaf, step_tensor(t, leaf))
    return x0, leaf


def ddim_mean(
    x: torch.Tensor, x0: torch.Tensor, ab: float, ab_next: float, eta: float = 0.0
) -> tuple[torch.Tensor, float]:
    """``(√ᾱ_next x̂_0 + √(1-ᾱ_next-σ²) ε̂, σ)``: the mean and noise sd of a DDIM step."""
    keep, sigma = ddim_coefficients(ab, ab_next, eta)
    return ab_next**0.5 * x0 + keep * eps_from_x0(x, x0, ab), sigma


def ddim_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    ab: float,
    ab_next: float,
    *,
    eta: float = 0.0,
    generators: list | torch.Generator | None = None,
    guidance: torch.Tensor | None = None,
) -> torch.Tensor:
    """One DDIM step from ``x`` (at ᾱ = ``ab``) with estimate ``x0`` to ᾱ = ``ab_next``.

    ``x_next = √ᾱ_next x̂_0 + √(1-ᾱ_next-σ²) ε̂ [+ guidance] + σ z``, with ``z`` drawn from
    ``generators`` (see :func:`ddim_sample`) when σ > 0.
    """
    x_next, sigma = ddim_mean(x, x0, ab, ab_next, eta)
    if guidance is not None:
        x_next = x_next + guidance
    if sigma > 0:
        x_next = x_next + sigma * noise_like(x_next, generators)
    return x_next


def noise_like(x: torch.Tensor, generators) -> torch.Tensor:
    """Standard normal noise shaped like ``x``: one row per generator, or from one."""
    if generators is None:
        return torch.randn_like(x)
    if isinstance(generators, torch.Generator):
        return torch.randn(x.shape, generator=generators, dtype=x.dtype).to(x.device)
    if len(generators) != x.shape[0]:
        raise GeodiffError(f"need one generator per sample: {len(generators)} for {x.shape[0]}")
    return initial_noise(x.shape[1:], generators, x.device, x.dtype)


def ddim_sample(
    denoiser: Callable,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    generators: list | torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Run DDIM from ``x_T`` to a clean sample.

    Parameters
    ----------
    denoiser : callable
        ``D(x_t, t) -> x̂_0`` with ``x_t`` (B, 1, H, W) and ``t`` an int tensor (B,).
    schedule : NoiseSchedule
    x_T : torch.Tensor, shape (B, 1, H, W)
        Start (pure noise at step T-1).
    steps : int
        Number of denoiser evaluations (ignored when ``timesteps`` is given).
    eta : float
        0 is deterministic DDIM; 1 adds DDPM's posterior noise.
    generators : list of torch.Generator, or torch.Generator, optional
        For the noise when ``eta > 0``: one per sample (sample ``i`` then does not depend
        on the batch; costs one small draw per sample and step), or one for the batch.
    timesteps : torch.Tensor of int, optional
        Decreasing steps to visit (default ``schedule.timesteps(steps)``).
    callback : callable, optional
        ``callback(i, t, x_t, x0_hat)`` after each step.

    Returns
    -------
    torch.Tensor, shape (B, 1, H, W)
        x̂_0 of the last step.
    """
    if eta < 0:
        raise GeodiffError(f"eta must be >= 0, got {eta}")
    alpha_bar = schedule.alpha_bar
    x = x_T
    for i, (t, t_next) in enumerate(visited_steps(schedule, steps, timesteps)):
        x0 = denoiser(x, step_tensor(t, x))
        if t_next is not None:  # the last step returns x̂_0 itself
            ab, ab_next = float(alpha_bar[t]), float(alpha_bar[t_next])
            x = ddim_step(x, x0, ab, ab_next, eta=eta, generators=generators)
        if callback is not None:
            callback(i, t, x, x0)
    return x0


def ddpm_sample(
    denoiser: Callable,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    generators: list | torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """DDPM ancestral sampling: every step of the schedule, with its posterior noise.

    Identical to :func:`ddim_sample` with ``eta=1`` on all ``T`` steps (the DDPM
    posterior variance β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t) β_t). Arguments as there.
    """
    return ddim_sample(
        denoiser,
        schedule,
        x_T,
        steps=schedule.steps,
        eta=1.0,
        generators=generators,
        callback=callback,
    )


def dpm_solver_sample(
    denoiser: Callable,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int = 50,
    timesteps: torch.Tensor | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Deterministic DPM-Solver++(2M) from ``x_T`` to a clean sample.

    Parameters
    ----------
    denoiser, schedule, x_T, callback
        As in :func:`ddim_sample`.
    steps : int
        Requested steps, spaced evenly in log-SNR (:meth:`NoiseSchedule.log_snr_timesteps`;
        close steps merge, so slightly fewer denoiser calls are made).
    timesteps : torch.Tensor of int, optional
        Decreasing steps to visit instead.

    Returns
    -------
    torch.Tensor, shape (B, 1, H, W)
    """
    pairs = visited_steps(schedule, steps, timesteps, log_snr=True, minimum=2)
    ab = schedule.alpha_bar
    half_log_snr = 0.5 * (ab.log() - (1 - ab).log())
    x, previous, h_previous = x_T, None, None
    for i, (t, t_next) in enumerate(pairs):
        x0 = denoiser(x, step_tensor(t, x))
        if t_next is not None:  # the last step returns x̂_0 itself
            h = float(half_log_snr[t_next] - half_log_snr[t])
            if previous is None:
                d = x0
            else:
                r = h_previous / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous
            ratio = float(((1 - ab[t_next]) / (1 - ab[t])).sqrt())
            x = ratio * x - float(ab[t_next].sqrt()) * math.expm1(-h) * d
            previous, h_previous = x0, h
        if callback is not None:
            callback(i, t, x, x0)
    return x0


#: samplers by name (the command line's ``--sampler``)
SAMPLERS = ("dpm2m", "ddim", "ddpm")


def sample(
    denoiser: Callable,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    sampler: str = "dpm2m",
    steps: int = 50,
    eta: float = 0.0,
    generators: list | torch.Generator | None = None,
    callback: Callable | None = None,
) -> torch.Tensor:
    """Dispatch to :func:`dpm_solver_sample`, :func:`ddim_sample` or :func:`ddpm_sample`."""
    if sampler == "dpm2m":
        if eta:
            raise GeodiffError("the dpm2m sampler is deterministic: use ddim for eta > 0")
        return dpm_solver_sample(denoiser, schedule, x_T, steps=steps, callback=callback)
    if sampler == "ddim":
        return ddim_sample(
            denoiser, schedule, x_T, steps=steps, eta=eta, generators=generators, callback=callback
        )
    if sampler == "ddpm":
        return ddpm_sample(denoiser, schedule, x_T, generators=generators, callback=callback)
    raise GeodiffError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
