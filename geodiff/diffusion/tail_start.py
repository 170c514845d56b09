"""A heavy-tailed start for the reverse process (truncated diffusion), fitted to fields.

The plain sampler starts at the last step from ``N(0, I)``: the forward process has
turned every field into noise there, but the reverse process must then rebuild the tails
from a Gaussian start, which is where score-based models first fail on heavy-tailed data.
The remedy of truncated diffusion starts at an intermediate step ``t_s`` instead, from an
approximation of the law of ``x_{t_s} = sqrt(ab) x_0 + sqrt(1 - ab) eps``: here ``x_0``
is drawn from a cheap heavy-tailed model fitted to training fields, and ``eps`` is exact.
The choice of ``t_s`` (given as its noise-to-signal ratio ``sigma_s``) is judged by the
max-sliced Wasserstein distance to exact fields (``benchmarks/bench_tail_start.py``).

The fitted model (:class:`TailStart`) is a Gaussian copula with a g-and-h marginal:

* marginal: ``x = loc + scale tau_{g,h}(z)`` with ``(loc, scale, g, h)`` fitted to the
  pooled quantiles of the fields (least squares on 199 levels),
* dependence: ``z`` Gaussian, stationary, with the lag covariance of the fields' normal
  scores ``Phi^-1(F(x))`` (averaged over node pairs at each lag on a torus), sampled by
  FFT.

It needs no training beyond these fits (seconds), so plain and remedy compare at the
same network and the same training budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, stats

from geodiff.diffusion.samplers import dpm_solver_sample
from geodiff.errors import GeodiffError
from geodiff.fields.tukey import gh_transform
from geodiff.rng import generators_for

__all__ = ["TailStart", "fit_tail_start", "sample_with_tail_start"]

_LEVELS = np.arange(1, 200) / 200.0
_START_STREAM = 41


@dataclass(frozen=True)
class TailStart:
    """A Gaussian copula with a g-and-h marginal on a grid (see the module docstring).

    Attributes
    ----------
    loc, scale, skew, tail : float
        The marginal ``loc + scale tau_{skew, tail}(z)``.
    spectrum : np.ndarray, shape (H, W)
        The FFT of the latent's correlation by lag on the grid's torus (clipped at 0).
    """

    loc: float
    scale: float
    skew: float
    tail: float
    spectrum: np.ndarray

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` fields, shape (n, H, W); field ``i`` depends on ``(seed, i)`` only."""
        h, w = self.spectrum.shape
        out = np.empty((n, h, w))
        for i, gen in enumerate(generators_for(seed, _START_STREAM, range(n))):
            white = torch.randn(h, w, generator=gen, dtype=torch.float64).numpy()
            z = np.fft.ifft2(np.sqrt(self.spectrum) * np.fft.fft2(white)).real
            out[i] = self.loc + self.scale * gh_transform(torch.as_tensor(z), self.skew,
                                                            self.tail).numpy()  # fmt: skip
        return out


def _fit_marginal(values: np.ndarray) -> tuple:
    """``(loc, scale, g, h)`` whose g-and-h quantiles match the values' (least squares)."""
    target = np.quantile(values, _LEVELS)
    z = stats.norm.ppf(_LEVELS)
    spread = target[-10] - target[9]

    def residual(p):
        loc, log_scale, g, h = p
        q = loc + np.exp(log_scale) * gh_transform(torch.as_tensor(z), g, h).numpy()
        return (q - target) / spread

    start = [float(np.median(values)), float(np.log(np.std(values) + 1e-12)), 0.0, 0.05]
    bounds = ([-np.inf, -30, -2, 0], [np.inf, 30, 2, 0.45])
    fit = optimize.least_squares(residual, start, bounds=bounds)
    loc, log_scale, g, h = fit.x
    return float(loc), float(np.exp(log_scale)), float(g), float(h)


def fit_tail_start(fields) -> TailStart:
    """Fit :class:`TailStart` to fields of shape (n, H, W) (the network's training law).

    Raises
    ------
    GeodiffError
        Fewer than 20 fields, or fields that are not finite.
    """
    x = np.asarray(fields, dtype=np.float64)
    if x.ndim != 3 or len(x) < 20:
        raise GeodiffError(f"fit_tail_start needs at least 20 fields of shape (n, H, W), got "
                           f"{x.shape}")  # fmt: skip
    if not np.isfinite(x).all():
        raise GeodiffError("fit_tail_start needs finite fields")
    loc, scale, g, h = _fit_marginal(x.reshape(-1))
    ranks = stats.rankdata(x.reshape(-1)).reshape(x.shape) / (x.size + 1)
    scores = stats.norm.ppf(ranks)
    power = np.abs(np.fft.fft2(scores - scores.mean())) ** 2
    correlation = np.fft.ifft2(power.mean(0)).real
    correlation /= correlation[0, 0]
    spectrum = np.clip(np.fft.fft2(correlation).real, 0.0, None)
    return TailStart(loc, scale, g, h, spectrum)


def sample_with_tail_start(model, start: TailStart, n: int, *, start_sigma: float,
                           steps: int = 50, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Fields from ``model``, reversing from ``start`` noised to ``start_sigma``.

    Parameters
    ----------
    model : DiffusionModel
    start : TailStart
        Fitted to fields in physical units (as :meth:`DiffusionModel.sample` returns).
    n : int
    start_sigma : float
        The noise-to-signal ratio of the first step (the nearest step of the schedule).
    steps : int
        DPM-Solver++(2M) steps from there, even in log-SNR.
    seed : int

    Returns
    -------
    torch.Tensor, float32, shape (n, H, W), physical units
    """
    schedule = model.schedule
    first = int(schedule.nearest_step(start_sigma))
    ab = float(schedule.alpha_bar[first])
    x0 = torch.as_tensor(start.sample(n, seed), dtype=torch.float32) / model.data_scale
    noise = torch.stack([torch.randn(*x0.shape[1:], generator=g)
                         for g in generators_for(seed, _START_STREAM + 1, range(n))])  # fmt: skip
    x_t = (ab**0.5 * x0 + (1 - ab) ** 0.5 * noise)[:, None].to(model.device)
    timesteps = schedule.log_snr_timesteps(steps, first=first)
    model.denoiser.eval()
    with torch.no_grad():
        out = dpm_solver_sample(model.denoiser, schedule, x_t, timesteps=timesteps)
    return out[:, 0].float().cpu() * model.data_scale
