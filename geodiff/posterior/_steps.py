"""What the posterior samplers share: the start, the steps, a differentiable denoiser call."""

from __future__ import annotations

import torch

from geodiff.diffusion.samplers import check_timesteps, initial_noise
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError


def start(shape, generators: list, device) -> torch.Tensor:
    """``x_T ~ N(0, I)`` in float64, one row per generator, shape ``(B, 1, H, W)``."""
    if not generators:
        raise GeodiffError("need at least one generator (one per posterior draw)")
    return initial_noise((1, *shape), generators, device, torch.float64)


def visited_steps(
    schedule: NoiseSchedule, steps: int, timesteps=None
) -> list[tuple[int, int | None]]:
    """``(t, t_next)`` pairs for ``steps`` evenly spaced steps; ``t_next`` is None last."""
    if timesteps is None:
        if not isinstance(steps, int) or steps < 1:
            raise GeodiffError(f"steps must be a positive integer, got {steps!r}")
        timesteps = schedule.timesteps(steps)
    ts = check_timesteps(timesteps).tolist()
    return list(zip(ts, [*ts[1:], None], strict=True))


def step_tensor(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def denoise_with_grad(denoiser, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x̂_0, x)`` with ``x`` a fresh leaf that requires grad, for vector-Jacobian products."""
    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        x0 = denoiser(leaf, step_tensor(t, leaf))
    return x0, leaf


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)
