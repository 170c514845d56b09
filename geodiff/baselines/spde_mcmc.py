"""The fully Bayesian reference for SPDE priors: elliptical slice sampling over θ.

NUTS, the reference for the dense priors (:mod:`geodiff.baselines.mcmc`), needs the
gradient of the likelihood, which for a sparse precision needs selected entries of its
inverse (no wheel-installable package has them). The SPDE prior does not need it: every
entry of θ is a standard normal after whitening — map latents are ``N(0, I)`` already,
a random scalar is ``F^-1(Phi(u))`` with ``u ~ N(0, 1)`` — so elliptical slice sampling
(Murray, Adams & MacKay 2010) targets the posterior exactly with likelihood evaluations
only, and has no step size to tune. The likelihood ``y | θ ~ N(0, A Q_θ^-1 A^T + N)``
costs one factorisation of ``K`` and one of the posterior precision
(:meth:`geodiff.baselines.spde_kriging.SPDEConditional.log_likelihood`).

The posterior predictive is exact given each θ draw: one conditional draw of the field by
perturbation-optimisation (:func:`geodiff.baselines.spde_kriging.spde_condition`).

Cost (2 cores, ``benchmarks/bench_spde.py``, section "The reference posterior"): one
likelihood with 100 observations takes about 0.03 s at 32^2, 0.09 s at 64^2 and 0.3 s at
128^2; a transition of ``spde-anisotropy``'s 770 whitened values makes about 4 of them.
Such chains mix slowly (R-hat needs thousands of transitions), so 64^2 is the largest size
at which a reference run takes minutes, not hours.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from geodiff.baselines.spde_kriging import SPDEConditional, spde_condition
from geodiff.errors import GeodiffError, renamed_arguments
from geodiff.grid import Grid
from geodiff.observe import Observations
from geodiff.prediction import Prediction
from geodiff.rng import derive_seed

__all__ = ["SPDEPosterior", "spde_log_likelihood", "spde_mcmc"]

_NORMAL = torch.distributions.Normal(0.0, 1.0)
_EDGE = 1e-12  # clamp of Phi(u) away from 0 and 1


def _random_leaves(prior) -> dict:
    """The random entries of θ: a scalar prior, or the length of a latent vector."""
    return {
        key: leaf
        for key, leaf in prior.leaves().items()
        if isinstance(leaf, int) or not leaf.is_fixed
    }


def theta_from_white(prior, white: torch.Tensor) -> dict:
    """θ (a batch of 1) from the whitened vector ``white`` (standard normal a priori).

    Parameters
    ----------
    prior : geodiff.fields.spde.SPDEPrior
    white : torch.Tensor, float64, shape (D,)

    Returns
    -------
    dict, as :meth:`GRFPrior.complete_theta`
    """
    values, pos = {}, 0
    for key, leaf in _random_leaves(prior).items():
        if isinstance(leaf, int):
            values[key] = white[pos : pos + leaf][None]
            pos += leaf
        else:
            u = _NORMAL.cdf(white[pos]).clamp(_EDGE, 1 - _EDGE)
            values[key] = leaf.distribution().icdf(u.to(torch.float64)).reshape(1)
            pos += 1
    return prior.complete_theta(values)


def white_size(prior) -> int:
    """Length of the whitened θ."""
    return sum(leaf if isinstance(leaf, int) else 1 for leaf in _random_leaves(prior).values())


def spde_log_likelihood(prior, theta: dict, obs: Observations, grid: Grid) -> float:
    """``log p(y | θ)`` of observations of an SPDE prior's field on ``grid``."""
    return SPDEConditional(prior.grid_operator(grid, theta), obs).log_likelihood()


def elliptical_slice_step(white, log_lik: float, log_likelihood, generator):
    """One elliptical slice sampling transition for a ``N(0, I)`` prior.

    Parameters
    ----------
    white : torch.Tensor, shape (D,)
        The current state.
    log_lik : float
        Its log-likelihood.
    log_likelihood : callable
        ``white -> float``.
    generator : torch.Generator

    Returns
    -------
    (torch.Tensor, float, int)
        The next state, its log-likelihood, and the likelihood evaluations made.
    """
    nu = torch.randn(white.shape, generator=generator, dtype=white.dtype)
    threshold = log_lik + math.log(float(torch.rand((), generator=generator, dtype=white.dtype)))
    angle = float(torch.rand((), generator=generator, dtype=white.dtype)) * 2 * math.pi
    low, high = angle - 2 * math.pi, angle
    for calls in range(1, 200):
        proposal = white * math.cos(angle) + nu * math.sin(angle)
        value = log_likelihood(proposal)
        if value > threshold:
            return proposal, value, calls
        if angle < 0:
            low = angle
        else:
            high = angle
        angle = low + (high - low) * float(torch.rand((), generator=generator, dtype=white.dtype))
    return white, log_lik, calls  # the bracket shrank to the current state


@dataclass
class SPDEPosterior:
    """Draws of θ from the posterior of an SPDE prior, with diagnostics.

    Attributes
    ----------
    white : torch.Tensor, shape (chains, draws, D)
        Whitened θ draws.
    log_likelihood : torch.Tensor, shape (chains, draws)
    diagnostics : dict
        ``{name: {"rhat": float, "ess": float}}`` for the log-likelihood and each scalar
        entry of θ (split R-hat and bulk ESS over chains, as for NUTS).
    seconds : float
    calls_per_draw : float
        Likelihood evaluations per transition.
    """

    prior: object
    obs: Observations
    grid: Grid
    white: torch.Tensor
    log_likelihood: torch.Tensor
    diagnostics: dict = field(default_factory=dict)
    seconds: float = 0.0
    calls_per_draw: float = 0.0

    @property
    def max_rhat(self) -> float:
        return max(d["rhat"] for d in self.diagnostics.values())

    @property
    def min_ess(self) -> float:
        return min(d["ess"] for d in self.diagnostics.values())

    def theta(self) -> dict:
        """Every θ draw, a batch of ``chains * draws``."""
        flat = self.white.reshape(-1, self.white.shape[-1])
        draws = [theta_from_white(self.prior, w) for w in flat]
        return {k: torch.cat([d[k] for d in draws]) for k in draws[0]}

    def predict(self, targets, draws: int | None = None, seed: int = 0, **former) -> Prediction:
        """Posterior predictive draws of the field at ``targets`` (a Grid or (k, 2) points).

        Draw ``i`` uses θ draw ``i`` of an even thinning and its own exact conditional
        draw of the field.

        ``n_draws``, the former name of ``draws``, still works for one release (with a warning).

        Returns
        -------
        Prediction
            Represented by its draws, shape (draws, k).
        """
        draws = renamed_arguments(former, {"n_draws": "draws"}, "predict").get("draws", draws)
        flat = self.white.reshape(-1, self.white.shape[-1])
        n = len(flat) if draws is None else min(int(draws), len(flat))
        picks = np.linspace(0, len(flat) - 1, n).round().astype(int)
        out = []
        for i, k in enumerate(picks):
            theta = theta_from_white(self.prior, flat[k])
            cond = spde_condition(self.prior, theta, self.obs, targets, draws=1,
                                  seed=derive_seed(seed, i), with_sd=False)  # fmt: skip
            out.append(cond["draws"][0])
        grid = targets if isinstance(targets, Grid) else None
        points = grid.points() if grid is not None else np.asarray(targets, dtype=float)
        info = {"max_rhat": self.max_rhat, "min_ess": self.min_ess, "sampler": "elliptical slice",
                "parameter_seconds": self.seconds}  # fmt: skip
        return Prediction.from_draws(points, np.stack(out), grid=grid, method="mcmc", info=info,
                                     seconds=self.seconds)  # fmt: skip

    def summary(self) -> dict:
        """Per scalar entry of θ and the log-likelihood: mean, sd, 5%/95%, R-hat, ESS."""
        theta = self.theta()
        values = {"log_likelihood": self.log_likelihood.reshape(-1)}
        values.update({k: theta[k] for k in self.diagnostics if k in theta})
        out = {}
        for key, flat in values.items():
            q05, q95 = torch.quantile(flat, torch.tensor([0.05, 0.95], dtype=flat.dtype))
            out[key] = {"mean": float(flat.mean()), "sd": float(flat.std()), "q05": float(q05),
                        "q95": float(q95), **self.diagnostics[key]}  # fmt: skip
        return out

    def summary_text(self) -> str:
        """Chains, time and :meth:`summary` as a fixed-width table."""
        chains, draws = self.log_likelihood.shape
        from geodiff.baselines.mcmc import summary_table

        head = (
            f"elliptical slice sampling: {chains} chains x {draws} draws in "
            f"{self.seconds:.1f} s ({self.calls_per_draw:.1f} likelihoods per draw)"
        )
        return "\n".join([head, *summary_table(self.summary())])


def spde_mcmc(
    prior,
    obs: Observations,
    grid: Grid,
    *,
    chains: int = 2,
    warmup: int = 100,
    samples: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> SPDEPosterior:
    """Posterior draws of θ of an SPDE prior given observations of its field on ``grid``.

    Parameters
    ----------
    prior : geodiff.fields.spde.SPDEPrior
    obs : Observations
        With their noise (every ``tau > 0``, or exact data).
    grid : Grid
        The lattice the field lives on (the prior's discretisation).
    chains, warmup, samples : int
        Chains (each from its own prior draw and generator), discarded and kept
        transitions per chain.
    seed : int
    progress : bool

    Returns
    -------
    SPDEPosterior
    """
    from geodiff.baselines.mcmc import RHAT_MAX, MCMCWarning, _diagnose

    if prior.kind != "spde":
        raise GeodiffError("spde_mcmc samples SPDE priors; use mcmc_posterior for the others")
    for name, value in (("chains", chains), ("samples", samples), ("warmup", warmup)):
        if not isinstance(value, int) or value < (0 if name == "warmup" else 1):
            raise GeodiffError(f"{name} must be a positive integer, got {value!r}")
    started = time.perf_counter()
    size = white_size(prior)

    def log_likelihood(white):
        return spde_log_likelihood(prior, theta_from_white(prior, white), obs, grid)

    states = torch.empty(chains, samples, size, dtype=torch.float64)
    logliks = torch.empty(chains, samples, dtype=torch.float64)
    calls = 0
    bar = tqdm(total=chains * (warmup + samples), desc="slice sampling", disable=not progress)
    for c in range(chains):
        gen = torch.Generator().manual_seed(derive_seed(seed, c))
        white = torch.randn(size, generator=gen, dtype=torch.float64)
        value = log_likelihood(white)
        for it in range(warmup + samples):
            white, value, made = elliptical_slice_step(white, value, log_likelihood, gen)
            calls += made
            if it >= warmup:
                states[c, it - warmup], logliks[c, it - warmup] = white, value
            bar.update(1)
    bar.close()
    diagnostics = {"log_likelihood": _diagnose(logliks)}
    pos = 0
    for key, leaf in _random_leaves(prior).items():
        width = leaf if isinstance(leaf, int) else 1
        if width == 1:
            diagnostics[key] = _diagnose(states[:, :, pos])
        pos += width
    result = SPDEPosterior(
        prior, obs, grid, states, logliks, diagnostics,
        seconds=time.perf_counter() - started,
        calls_per_draw=calls / (chains * (warmup + samples)),
    )  # fmt: skip
    if chains < 2 or result.max_rhat > RHAT_MAX:
        worst = max(diagnostics, key=lambda k: diagnostics[k]["rhat"])
        warnings.warn(
            f"slice sampling has not converged: R-hat {result.max_rhat:.3f} on {worst} "
            f"(more than {RHAT_MAX}; one chain cannot show it); run more --mcmc-warmup "
            "and --mcmc-samples",
            MCMCWarning,
            stacklevel=2,
        )
    return result
