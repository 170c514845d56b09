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

from geodiff.diffusion.samplers import ddim_coefficients, initial_noise
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError
from geodiff.posterior._steps import visited_steps
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["DEFAULT_PARTICLES", "mcgdiff_sample"]

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
    diagnostics: dict | None = None,
) -> torch.Tensor:
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
    diagnostics : dict, optional
        Filled with ``ess`` (mean relative ESS before each step, list) and
        ``resampled`` (steps at which some draw resampled).

    Returns
    -------
    torch.Tensor, float64, shape (B, 1, H, W)
    """
    if not isinstance(particles, int) or particles < 1:
        raise GeodiffError(f"particles must be a positive integer, got {particles!r}")
    if not eta > 0:
        raise GeodiffError(f"MCGdiff needs a stochastic chain: eta must be > 0, got {eta}")
    if not 0 < ess_threshold <= 1:
        raise GeodiffError(f"ess_threshold must lie in (0, 1], got {ess_threshold}")
    spec = problem.whitened().to(device)
    basis, ybar, tbar2 = spec.basis, spec.values, spec.noise_sd**2
    n_runs, d, (h, w) = len(generators), problem.dim, problem.shape
    alpha_bar = schedule.alpha_bar.tolist()
    pairs = visited_steps(schedule, steps, timesteps)

    def potential_var(ab: float) -> torch.Tensor:
        return (1 - ab) + ab * tbar2

    def propose(mean, mean_obs, s, ab):
        """Draw from N(mean, s² I) times the potential at ᾱ = ab; shapes (B, N, d)."""
        z = initial_noise((particles, d), generators, device, torch.float64)
        z_obs = z @ basis
        v = potential_var(ab)
        post_mean = (v * mean_obs + s**2 * ab**0.5 * ybar) / (s**2 + v)
        post_sd = (s**2 * v / (s**2 + v)).sqrt()
        return mean + s * z + (post_mean + post_sd * z_obs - mean_obs - s * z_obs) @ basis.T

    zeros = torch.zeros(n_runs, particles, d, dtype=torch.float64, device=device)
    x = propose(zeros, zeros[..., : len(ybar)], 1.0, alpha_bar[pairs[0][0]])
    log_w = torch.zeros(n_runs, particles, dtype=torch.float64, device=device)
    ess_trace, resampled = [], []
    for i, (t, t_next) in enumerate(pairs[:-1]):
        ab, ab_next = alpha_bar[t], alpha_bar[t_next]
        x0 = denoiser(x.reshape(-1, 1, h, w), torch.full((n_runs * particles,), t, device=device))
        x0 = x0.to(torch.float64).reshape(n_runs, particles, d)
        keep, s = ddim_coefficients(ab, ab_next, eta)
        mean = ab_next**0.5 * x0 + keep * (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        mean_obs = mean @ basis
        log_w = log_w + _log_normal(ab_next**0.5 * ybar, mean_obs, s**2 + potential_var(ab_next))
        log_w = log_w - _log_normal(x @ basis, ab**0.5 * ybar, potential_var(ab))
        ess = _relative_ess(log_w)
        ess_trace.append(float(ess.mean()))
        low = torch.nonzero(ess < ess_threshold).flatten().tolist()
        if low:
            resampled.append(t)
            idx = _systematic(log_w[low], [generators[b] for b in low]).to(device)
            rows = torch.as_tensor(low, device=device)[:, None]
            mean[low], mean_obs[low] = mean[rows, idx], mean_obs[rows, idx]
            log_w[low] = 0.0
        x = propose(mean, mean_obs, s, ab_next)
        if callback is not None:
            callback(i, t, x.reshape(-1, 1, h, w), x0.reshape(-1, 1, h, w))
    t_last = pairs[-1][0]
    pick = _systematic(log_w, generators, 1)[:, 0].to(device)
    chosen = x[torch.arange(n_runs, device=device), pick].reshape(n_runs, 1, h, w)
    out = denoiser(chosen, torch.full((n_runs,), t_last, device=device)).to(torch.float64)
    if diagnostics is not None:
        diagnostics.update(
            ess=ess_trace, resampled=resampled, final_ess=_relative_ess(log_w).tolist()
        )
    if callback is not None:
        callback(len(pairs) - 1, t_last, chosen, out)
    return out


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
