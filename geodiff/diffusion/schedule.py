"""Variance-preserving (DDPM) noise schedules.

Legend (Ho et al. 2020; Nichol & Dhariwal 2021):

- ``t``          integer step in ``0 .. T-1`` (``t = 0`` is the least noisy)
- ``alpha_bar``  ᾱ_t, the signal fraction: ``x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε``
- ``beta``       β_t = 1 - ᾱ_t / ᾱ_{t-1}
- ``sigma``      σ_t = √((1-ᾱ_t)/ᾱ_t), the noise-to-signal ratio (EDM's noise level)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from geodiff.errors import GeodiffError

__all__ = ["NoiseSchedule"]

_KINDS = ("cosine", "linear")


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete variance-preserving schedule of ``steps`` noise levels.

    Parameters
    ----------
    kind : {"cosine", "linear"}
        ``"cosine"``: ᾱ_t = cos²(π/2 (t/T + s)/(1 + s)) / cos²(π/2 s/(1+s)), with β
        clipped at ``max_beta``; ``"linear"``: β linear from ``beta_start`` to ``beta_end``.
    steps : int
        T, the number of noise levels.
    cosine_offset : float
        s of the cosine schedule.
    beta_start, beta_end : float
        Ends of the linear schedule.
    max_beta : float
        Largest β of the cosine schedule (keeps ᾱ_{T-1} away from 0).
    """

    kind: str = "cosine"
    steps: int = 1000
    cosine_offset: float = 0.008
    beta_start: float = 1e-4
    beta_end: float = 0.02
    max_beta: float = 0.999

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise GeodiffError(f"schedule kind must be one of {_KINDS}, got {self.kind!r}")
        if not isinstance(self.steps, int) or self.steps < 2:
            raise GeodiffError(f"schedule steps must be an integer >= 2, got {self.steps!r}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise GeodiffError("linear schedule needs 0 < beta_start < beta_end < 1")
        if not 0 < self.max_beta <= 1 or self.cosine_offset < 0:
            raise GeodiffError("cosine schedule needs 0 < max_beta <= 1 and cosine_offset >= 0")

    @cached_property
    def alpha_bar(self) -> torch.Tensor:
        """ᾱ_t for ``t = 0 .. T-1``, float64, shape (T,)."""
        t = torch.arange(self.steps + 1, dtype=torch.float64) / self.steps
        if self.kind == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, self.steps, dtype=torch.float64)
        else:
            s = self.cosine_offset
            f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=self.max_beta)
        return torch.cumprod(1 - betas, 0)

    def sigma(self, t) -> torch.Tensor:
        """Noise-to-signal ratio σ_t = √((1-ᾱ_t)/ᾱ_t), float64, the shape of ``t``."""
        ab = self.alpha_bar[torch.as_tensor(t, dtype=torch.long)]
        return ((1 - ab) / ab).sqrt()

    def nearest_step(self, sigma) -> torch.Tensor:
        """The step whose noise-to-signal ratio is closest to ``sigma`` (in log scale)."""
        all_sigma = self.sigma(torch.arange(self.steps)).log()
        target = torch.as_tensor(sigma, dtype=torch.float64).log()
        return (all_sigma - target[..., None]).abs().argmin(-1)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε.

        Parameters
        ----------
        x0, noise : torch.Tensor, shape (B, C, H, W)
        t : torch.Tensor, int64, shape (B,)
        """
        ab = self.alpha_bar.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def timesteps(self, n: int, first: int | None = None) -> torch.Tensor:
        """``n`` steps from ``first`` (default ``T-1``) down to ``0``, evenly spaced.

        Returns int64, shape (n,) (fewer when ``first < n - 1``: repeated steps merge).
        """
        first = self._first_step(first)
        if not isinstance(n, int) or not 1 <= n <= self.steps:
            raise GeodiffError(f"number of sampling steps must be in 1..{self.steps}, got {n!r}")
        if n == 1:
            return torch.tensor([first])
        steps = torch.linspace(first, 0, n, dtype=torch.float64).round().long()
        return torch.unique(steps).flip(0)

    def log_snr_timesteps(self, n: int, first: int | None = None) -> torch.Tensor:
        """About ``n`` distinct steps from ``first`` (default ``T-1``) to ``0``, even in log-SNR.

        Neighbouring targets that round to the same discrete step are merged, so fewer
        than ``n`` steps may come back (e.g. 38 of 50 for the cosine schedule, T = 1000).
        """
        first = self._first_step(first)
        if not isinstance(n, int) or not 2 <= n <= self.steps:
            raise GeodiffError(f"number of sampling steps must be in 2..{self.steps}, got {n!r}")
        log_snr = self.alpha_bar.log() - (1 - self.alpha_bar).log()
        target = torch.linspace(float(log_snr[first]), float(log_snr[0]), n, dtype=torch.float64)
        steps = (log_snr[None, : first + 1] - target[:, None]).abs().argmin(1)
        return torch.unique(steps).flip(0)

    def _first_step(self, first) -> int:
        if first is None:
            return self.steps - 1
        if isinstance(first, bool) or not 0 < int(first) < self.steps or int(first) != first:
            raise GeodiffError(f"the first step must be an integer in 1..{self.steps - 1}")
        return int(first)

    def to_dict(self) -> dict:
        """Constructor arguments (JSON-ready): ``NoiseSchedule(**s.to_dict()) == s``."""
        return {
            "kind": self.kind,
            "steps": self.steps,
            "cosine_offset": self.cosine_offset,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "max_beta": self.max_beta,
        }

    @classmethod
    def from_dict(cls, data: dict) -> NoiseSchedule:
        """Rebuild from :meth:`to_dict`; unknown keys are an error."""
        unknown = set(data) - set(cls().to_dict())
        if unknown:
            raise GeodiffError(f"unknown schedule key(s) {sorted(unknown)}")
        return cls(**data)
