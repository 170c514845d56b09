"""Denoising error per noise level, for the network and for the exact oracle."""

from __future__ import annotations

from collections.abc import Callable

import torch

from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.rng import derive_seed

__all__ = ["denoising_mse", "validation_steps"]

_NOISE_STREAM = 50


def validation_steps(schedule: NoiseSchedule, n: int = 10) -> torch.Tensor:
    """``n`` steps whose noise-to-signal ratios σ are log-spaced from 0.01 to 100."""
    sigmas = torch.logspace(-2, 2, n, dtype=torch.float64)
    return torch.unique(schedule.nearest_step(sigmas))


@torch.no_grad()
def denoising_mse(
    denoise: Callable,
    fields: torch.Tensor,
    schedule: NoiseSchedule,
    steps: torch.Tensor,
    *,
    seed: int = 0,
    batch_size: int = 128,
    device=None,
    per_field: bool = False,
) -> torch.Tensor:
    """Per-pixel MSE of ``denoise(x_t, t) -> x̂_0`` at each step, with fixed noise.

    Parameters
    ----------
    denoise : callable
    fields : torch.Tensor, shape (n, 1, H, W)
        Clean fields in the model's units.
    schedule : NoiseSchedule
    steps : torch.Tensor of int, shape (L,)
    seed : int
        The same seed gives the same noise, so two denoisers can be compared pairwise.
    batch_size : int
    device : optional
        Where ``denoise`` wants its input.
    per_field : bool
        Each field's own MSE instead of the mean over fields (to compare two denoisers
        field by field, with a paired standard error).

    Returns
    -------
    torch.Tensor, float64, shape (L,), or (n, L) with ``per_field``
    """
    out = torch.zeros(len(fields), len(steps), dtype=torch.float64)
    for i, t in enumerate(steps.tolist()):
        gen = torch.Generator().manual_seed(derive_seed(seed, _NOISE_STREAM, t))
        for lo in range(0, len(fields), batch_size):
            x0 = fields[lo : lo + batch_size].float()
            noise = torch.randn(x0.shape, generator=gen)
            t_batch = torch.full((len(x0),), t, dtype=torch.long)
            x_t = schedule.add_noise(x0, noise, t_batch)
            x0_hat = denoise(x_t.to(device), t_batch.to(device)).float().cpu()
            out[lo : lo + len(x0), i] = (x0_hat - x0).double().square().flatten(1).mean(1)
    return out if per_field else out.mean(0)
