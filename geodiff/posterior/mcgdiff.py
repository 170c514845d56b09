"""MCGdiff: sequential Monte Carlo guided by the observations (Cardoso, Janati, Le Corff &
Moulines, ICLR 2024), for linear-Gaussian observations.

In the whitened basis of :meth:`LinearGaussianProblem.whitened` the observations are
``ȳ = Vᵀ x_0 + eps̄``, ``eps̄ ~ N(0, diag(τ̄²))``. Particles follow the prior's
stochastic DDIM chain (η = 1 is DDPM's kernel ``N(μ(x_t), s_t² I)``), twisted at every
level by the potential

    g_t(x_t) = N(Vᵀ x_t; √ᾱ_t ȳ, (1 - ᾱ_t) + ᾱ_t τ̄²),

the law of the observed coordinates of ``x_t`` under the forward process if ``x_0``'s
were the observation (the paper's potential for τ = 0; the ``ᾱ_t τ̄²`` term carries the
observation noise forward, so one sampler covers τ ≥ 0). Proposals are the exact
product of the kernel and the next potential — Gaussian along ``V``, the prior kernel
elsewhere — and the incremental weights are

    w(x_t) = N(√ᾱ_next ȳ; Vᵀ μ(x_t), s_t² + (1 - ᾱ_next) + ᾱ_next τ̄²) / g_t(x_t),

so the weights telescope: whatever the potentials, the particle system targets the chain's
path law reweighted by the last potential, which at the last step (``ᾱ ≈ 1``) is the
likelihood of the observations. As the number of particles grows, the draws converge to
the posterior of the prior the chain samples — the exact posterior with the oracle
denoiser, up to the chain's discretisation (tested exactly in ``tests/test_posterior.py``).
Each draw is one independent particle system; particles are resampled (systematic) when
their effective sample size falls below ``ess_threshold * particles``. No gradients.
"""

from __future__ import annotations

import math

import torch

from geodiff.diffusion.samplers import ddim_mean, initial_noise, step_tensor, visited_steps
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError
from geodiff.posterior._steps import PosteriorSample, SamplerSpec
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["DEFAULT_PARTICLES", "SPEC", "mcgdiff_sample"]

#: particles per draw unless told otherwise
DEFAULT_PARTICLES = 32


@torch.no_grad()
def mcgdiff_sample(
    denoiser,
    schedule: NoiseSchedule,
    problem: LinearGaussianProblem,
    generators: list,
    *,
    steps: int = 100,
    particles: int = DEFAULT_PARTICLES,
    eta: float = 1.0,
    ess_threshold: float = 0.5,
    timesteps=None,
    device=None,
    callback=None,
) -> PosteriorSample:
    """Posterior draws by MCGdiff, one particle system per draw.

    Parameters
    ----------
    denoiser, schedule, problem, generators, timesteps, device, callback
        As in :func:`~geodiff.posterior.dps.dps_sample` (no gradient needed); the
        denoiser sees ``B * particles`` fields at a time.
    steps : int
        Levels of the chain (denoiser evaluations per particle).
    particles : int
        Particles per draw; the draws converge to the target as this grows.
    eta : float
        DDIM's η of the chain's kernel, > 0 (1 is DDPM's).
    ess_threshold : float in (0, 1]
        Resample when the effective sample size falls below this fraction.

    Returns
    -------
    PosteriorSample
        Draws, float64, shape (B, 1, H, W), and the diagnostics ``ess`` (mean relative
        ESS before each step, list), ``resampled`` (steps at which some draw resampled)
        and ``final_ess`` (the relative ESS of each draw's last weights).
    """
    _check(particles, eta, ess_threshold)
    twist = _Twist(problem.whitened().to(device), particles, generators, device)
    n_runs, d, (h, w) = len(generators), problem.dim, problem.shape
    alpha_bar = schedule.alpha_bar.tolist()
    pairs = visited_steps(schedule, steps, timesteps)
    zeros = torch.zeros(n_runs, particles, d, dtype=torch.float64, device=device)
    x = twist.propose(zeros, zeros[..., : len(twist.ybar)], 1.0, alpha_bar[pairs[0][0]])
    log_w = torch.zeros(n_runs, particles, dtype=torch.float64, device=device)
    ess_trace, resampled = [], []
    for i, (t, t_next) in enumerate(pairs[:-1]):
        ab, ab_next = alpha_bar[t], alpha_bar[t_next]
        fields = x.reshape(-1, 1, h, w)
        x0 = denoiser(fields, step_tensor(t, fields)).to(torch.float64).reshape(x.shape)
        mean, s = ddim_mean(x, x0, ab, ab_next, eta)
        mean_obs = mean @ twist.basis
        log_w = twist.reweight(log_w, x, mean_obs, s, ab, ab_next)
        ess = _relative_ess(log_w)
        ess_trace.append(float(ess.mean()))
        if _resample(log_w, (mean, mean_obs), ess < ess_threshold, generators):
            resampled.append(t)
        x = twist.propose(mean, mean_obs, s, ab_next)
        if callback is not None:
            callback(i, t, x.reshape(-1, 1, h, w), x0.reshape(-1, 1, h, w))
    t_last = pairs[-1][0]
    pick = _systematic(log_w, generators, 1)[:, 0].to(device)
    chosen = x[torch.arange(n_runs, device=device), pick].reshape(n_runs, 1, h, w)
    out = denoiser(chosen, step_tensor(t_last, chosen)).to(torch.float64)
    if callback is not None:
        callback(len(pairs) - 1, t_last, chosen, out)
    info = {"ess": ess_trace, "resampled": resampled, "final_ess": _relative_ess(log_w).tolist()}
    return PosteriorSample(out, info)


def _check(particles, eta, ess_threshold) -> None:
    if not isinstance(particles, int) or particles < 1:
        raise GeodiffError(f"particles must be a positive integer, got {particles!r}")
    if not eta > 0:
        raise GeodiffError(f"MCGdiff needs a stochastic chain: eta must be > 0, got {eta}")
    if not 0 < ess_threshold <= 1:
        raise GeodiffError(f"ess_threshold must lie in (0, 1], got {ess_threshold}")


class _Twist:
    """The potentials ``g_t`` and the twisted proposals, in the whitened basis (module docs)."""

    def __init__(self, whitened, particles: int, generators: list, device):
        self.basis, self.ybar, self.tbar2 = whitened.basis, whitened.values, whitened.noise_sd**2
        self.particles, self.generators, self.device = particles, generators, device

    def potential_var(self, ab: float) -> torch.Tensor:
        return (1 - ab) + ab * self.tbar2

    def propose(self, mean, mean_obs, s, ab):
        """Draw from N(mean, s² I) times the potential at ᾱ = ab; shapes (B, N, d)."""
        d = mean.shape[-1]
        z = initial_noise((self.particles, d), self.generators, self.device, torch.float64)
        z_obs = z @ self.basis
        v = self.potential_var(ab)
        post_mean = (v * mean_obs + s**2 * ab**0.5 * self.ybar) / (s**2 + v)
        post_sd = (s**2 * v / (s**2 + v)).sqrt()
        return mean + s * z + (post_mean + post_sd * z_obs - mean_obs - s * z_obs) @ self.basis.T

    def reweight(self, log_w, x, mean_obs, s, ab, ab_next) -> torch.Tensor:
        """``log_w`` plus the log incremental weights of the step from ᾱ = ab to ab_next."""
        ybar, var = self.ybar, self.potential_var
        log_w = log_w + _log_normal(ab_next**0.5 * ybar, mean_obs, s**2 + var(ab_next))
        return log_w - _log_normal(x @ self.basis, ab**0.5 * ybar, var(ab))


def _resample(log_w: torch.Tensor, states, low: torch.Tensor, generators: list) -> bool:
    """Resample (in place) the ``states`` and weights of the draws where ``low``; any?"""
    rows = torch.nonzero(low).flatten().tolist()
    if not rows:
        return False
    idx = _systematic(log_w[rows], [generators[b] for b in rows]).to(log_w.device)
    index = torch.as_tensor(rows, device=log_w.device)[:, None]
    for state in states:
        state[rows] = state[index, idx]
    log_w[rows] = 0.0
    return True


def _fields_per_draw(options: dict) -> int:
    return options.get("particles", DEFAULT_PARTICLES)


def _summary(infos: list) -> dict:
    return {"min_relative_ess": float(min(min(i["ess"], default=1.0) for i in infos))}


def _log_normal(value, mean, var) -> torch.Tensor:
    """Sum over the last axis of log N(value; mean, var), shape of the leading axes."""
    return -0.5 * ((value - mean) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)


def _relative_ess(log_w: torch.Tensor) -> torch.Tensor:
    """Effective sample size over the particle count, per draw, shape (B,)."""
    w = torch.softmax(log_w, dim=-1)
    return 1.0 / (w**2).sum(-1) / log_w.shape[-1]


def _systematic(log_w: torch.Tensor, generators: list, n: int | None = None) -> torch.Tensor:
    """Systematic resampling of each row of ``log_w`` (R, N): (R, n) ancestors, on the CPU.

    Row ``r`` uses one uniform from ``generators[r]`` (default ``n``: all N particles).
    """
    n = log_w.shape[-1] if n is None else n
    w = torch.softmax(log_w.cpu(), dim=-1)
    start = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
    u = (start[:, None] + torch.arange(n, dtype=torch.float64)) / n
    cdf = torch.cumsum(w, -1)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp(max=w.shape[-1] - 1)


SPEC = SamplerSpec(
    "mcgdiff",
    mcgdiff_sample,
    fields_per_draw=_fields_per_draw,
    summary=_summary,
)
