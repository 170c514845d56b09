"""The trained denoiser: a diffusers ``UNet2DModel`` network behind the denoiser interface.

The network predicts the training target (``eps``, ``v`` or ``x0``); :class:`Denoiser`
turns that into ``x̂_0`` so samplers only ever see ``D(x_t, t) -> x̂_0``
(the interface and the parameterisations: :mod:`geodiff.diffusion.denoiser`).
"""

from __future__ import annotations

import torch

from geodiff.diffusion.denoiser import PREDICTIONS, training_target, x0_from_output
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError

__all__ = [
    "NETWORKS",
    "PRECISIONS",
    "PREDICTIONS",
    "Denoiser",
    "graph_bytes",
    "is_fully_convolutional",
    "network_config",
    "size_multiple",
]

#: the arithmetic the network may run in at inference (:meth:`Denoiser.set_precision`)
PRECISIONS = ("float32", "bfloat16")

#: Explicit backbone sizes (diffusers' defaults are far too large for these fields):
#: ``small`` (1.1 M parameters) trains on a CPU at 32²; ``base`` (6.3 M, 25 MB in float32,
#: attention at 16² and 8²) is the 64² GPU model; ``tiny`` is for tests. ``conv`` (2.9 M,
#: four levels, no attention) is fully convolutional: trained on windows of a
#: translation-invariant prior, it denoises grids of any size (:func:`is_fully_convolutional`);
#: ``conv-wide`` (6.6 M) is ``conv`` with 1.5 × the channels, to measure whether capacity
#: or CPU time limits the any-size prior (``benchmarks/bench_window.py``).
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
    "conv": {
        "block_out_channels": [32, 64, 64, 128],
        "down_block_types": ["DownBlock2D"] * 4,
        "up_block_types": ["UpBlock2D"] * 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
    },
    "conv-wide": {
        "block_out_channels": [48, 96, 96, 192],
        "down_block_types": ["DownBlock2D"] * 4,
        "up_block_types": ["UpBlock2D"] * 4,
        "layers_per_block": 1,
        "norm_num_groups": 8,
    },
}


def size_multiple(config: dict) -> int:
    """The number every grid side must be a multiple of for the network ``config``."""
    return 2 ** (len(config["block_out_channels"]) - 1)


def is_fully_convolutional(config: dict) -> bool:
    """Whether the network ``config`` has no attention: its output at a node depends on a
    neighbourhood only, so its weights apply to any grid whose sides are multiples of
    :func:`size_multiple`."""
    blocks = [*config.get("down_block_types", ()), *config.get("up_block_types", ())]
    return bool(blocks) and not any("Attn" in b for b in blocks)


#: bytes per grid node of one field's forward pass held for a vector-Jacobian product, per
#: channel of the first level (``conv``, 32 channels, measured at 128² and 256² on the CPU
#: by ``python benchmarks/bench_any_size.py graph``: BENCHMARKS.md, "Memory of the
#: network's graph per grid node")
_GRAPH_BYTES_PER_NODE_CHANNEL = 330


def graph_bytes(config: dict, n_nodes: int) -> float:
    """Bytes one field's denoiser call holds with its graph (for a gradient), estimated."""
    return _GRAPH_BYTES_PER_NODE_CHANNEL * config["block_out_channels"][0] * n_nodes


def network_config(name: str, size: int) -> dict:
    """The backbone config ``name`` (one of :data:`NETWORKS`) for ``size × size`` fields."""
    if name not in NETWORKS:
        raise GeodiffError(f"network must be one of {sorted(NETWORKS)}, got {name!r}")
    config = dict(NETWORKS[name], sample_size=int(size), in_channels=1, out_channels=1)
    if size % size_multiple(config):
        raise GeodiffError(
            f"network {name!r} needs a grid size divisible by {size_multiple(config)}"
        )
    return config


class Denoiser(torch.nn.Module):
    """The trained network as a denoiser ``D(x_t, t) -> x̂_0`` (:mod:`~geodiff.diffusion.denoiser`).

    Parameters
    ----------
    config : dict
        ``UNet2DModel`` keyword arguments (see :func:`network_config`), kept as :attr:`config`.
    schedule : NoiseSchedule
    prediction : {"eps", "v", "x0"}
        What the network predicts (the training target).

    Attributes
    ----------
    backbone : diffusers.UNet2DModel
        The network itself (its parameters are this module's).
    config : dict
        The network's configuration.
    """

    def __init__(self, config: dict, schedule: NoiseSchedule, prediction: str = "v"):
        super().__init__()
        from diffusers import UNet2DModel

        if prediction not in PREDICTIONS:
            raise GeodiffError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        try:
            self.backbone = UNet2DModel(**config)
        except (TypeError, ValueError) as err:
            raise GeodiffError(f"invalid network config: {err}") from err
        self.config, self.schedule, self.prediction = dict(config), schedule, prediction
        self.register_buffer("alpha_bar", schedule.alpha_bar.float(), persistent=False)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The training target for clean fields ``x0`` noised by ``noise`` at steps ``t``."""
        return training_target(self.prediction, x0, noise, self._alpha_bar(t, x0))

    def network_output(self, x_t: torch.Tensor, t, backbone=None) -> torch.Tensor:
        """The network's raw output (its estimate of the training target), shape of ``x_t``.

        ``backbone`` runs instead of :attr:`backbone` if given (e.g. its DDP wrapper).
        """
        backbone = self.backbone if backbone is None else backbone
        return backbone(x_t, self._steps(t, x_t)).sample

    #: the network's arithmetic at inference: float32, or bfloat16 autocast (see set_precision)
    precision = "float32"

    def set_precision(self, precision: str) -> Denoiser:
        """Run the backbone in ``"float32"`` or under ``"bfloat16"`` autocast from now on.

        bfloat16 keeps about 3 significant digits: x̂_0 moves by about 2e-2 of its norm at
        pure noise, 3e-3 at mid-range noise and under 3e-4 near the end
        (``tests/test_models.py``; BENCHMARKS.md "Denoiser forward passes on the CPU",
        where a CPU with AVX-512 BF16 runs a pass 1.7 × faster; hardware without
        bfloat16 arithmetic may gain nothing). Outputs then depend on the batch within
        that rounding, and vector-Jacobian products run through the bfloat16 backbone
        too. The conversion to x̂_0 and everything after it stay in float32 or float64.
        """
        if precision not in PRECISIONS:
            raise GeodiffError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        return self

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """x̂_0 = E[x_0 | x_t] as learned, with the shape and dtype of ``x_t``.

        ``x_t`` (B, 1, H, W) is cast to the network's dtype; ``t`` is a scalar or (B,).
        Differentiable in ``x_t`` when grad is enabled.
        """
        x = x_t.to(self.alpha_bar.dtype)
        t = self._steps(t, x)
        low = self.precision == "bfloat16"
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=low):
            out = self.network_output(x, t)
        out = out.to(x.dtype)
        return x0_from_output(self.prediction, out, x, self._alpha_bar(t, x)).to(x_t.dtype)

    @staticmethod
    def _steps(t, x_t: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])

    def _alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar.to(like.device)[t.long()]
        return ab.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
