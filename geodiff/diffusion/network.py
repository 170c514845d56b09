"""The denoiser: a diffusers ``UNet2DModel`` backbone behind one interface.

The backbone predicts the training target (``eps``, ``v`` or ``x0``); :class:`Denoiser`
turns that into ``x̂_0`` and ``ε̂`` so samplers only ever see ``D(x_t, t) -> x̂_0``:

- ε-prediction:  x̂_0 = (x_t - √(1-ᾱ) ε̂) / √ᾱ
- v-prediction:  v = √ᾱ ε - √(1-ᾱ) x_0,  x̂_0 = √ᾱ x_t - √(1-ᾱ) v̂,  ε̂ = √(1-ᾱ) x_t + √ᾱ v̂
- x0-prediction: ε̂ = (x_t - √ᾱ x̂_0) / √(1-ᾱ)
"""

from __future__ import annotations

import torch

from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError

__all__ = ["NETWORKS", "PREDICTIONS", "Denoiser", "network_config"]

PREDICTIONS = ("eps", "v", "x0")

#: Explicit backbone sizes (diffusers' defaults are far too large for these fields):
#: ``small`` (1.1 M parameters) trains on a CPU at 32²; ``base`` (6.3 M, 25 MB in float32,
#: attention at 16² and 8²) is the 64² GPU model; ``tiny`` is for tests.
NETWORKS = {
    "tiny": {
        "block_out_channels": [16, 32],
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
        "norm_num_groups": 8,
    },
    "small": {
        "block_out_channels": [32, 64, 64],
        "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
        "norm_num_groups": 8,
    },
    "base": {
        "block_out_channels": [64, 128, 128, 128],
        "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
        "norm_num_groups": 16,
    },
}


def network_config(name: str, size: int) -> dict:
    """The backbone config ``name`` (one of :data:`NETWORKS`) for ``size × size`` fields."""
    if name not in NETWORKS:
        raise GeodiffError(f"network must be one of {sorted(NETWORKS)}, got {name!r}")
    config = dict(NETWORKS[name], sample_size=int(size), in_channels=1, out_channels=1)
    levels = len(config["block_out_channels"])
    if size % 2 ** (levels - 1):
        raise GeodiffError(f"network {name!r} needs a grid size divisible by {2 ** (levels - 1)}")
    return config


class Denoiser(torch.nn.Module):
    """``D(x_t, t) -> x̂_0`` built on a ``UNet2DModel``.

    Parameters
    ----------
    network : dict
        ``UNet2DModel`` keyword arguments (see :func:`network_config`).
    schedule : NoiseSchedule
    prediction : {"eps", "v", "x0"}
        What the backbone predicts (the training target).
    """

    def __init__(self, network: dict, schedule: NoiseSchedule, prediction: str = "v"):
        super().__init__()
        from diffusers import UNet2DModel

        if prediction not in PREDICTIONS:
            raise GeodiffError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        try:
            self.backbone = UNet2DModel(**network)
        except (TypeError, ValueError) as err:
            raise GeodiffError(f"invalid network config: {err}") from err
        self.network, self.schedule, self.prediction = dict(network), schedule, prediction
        self.register_buffer("alpha_bar", schedule.alpha_bar.float(), persistent=False)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The training target for clean fields ``x0`` noised by ``noise`` at steps ``t``."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        ab = self._alpha_bar(t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The backbone's raw output (the training target's estimate), shape of ``x_t``."""
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        return self.backbone(x_t, t).sample

    def predict(self, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x̂_0, ε̂)`` for noisy fields ``x_t`` (B, 1, H, W) at steps ``t`` (scalar or (B,))."""
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        out = self(x_t, t).to(x_t.dtype)
        ab = self._alpha_bar(t, x_t)
        if self.prediction == "eps":
            return (x_t - (1 - ab).sqrt() * out) / ab.sqrt(), out
        if self.prediction == "x0":
            return out, (x_t - ab.sqrt() * out) / (1 - ab).sqrt()
        return ab.sqrt() * x_t - (1 - ab).sqrt() * out, (1 - ab).sqrt() * x_t + ab.sqrt() * out

    @torch.no_grad()
    def denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """x̂_0 = E[x_0 | x_t] as learned, shape of ``x_t`` (the samplers' interface)."""
        return self.predict(x_t, t)[0]

    def _alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar.to(like.device)[t.long()]
        return ab.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
