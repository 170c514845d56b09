"""Fully Bayesian reference posterior: Pyro NUTS over the prior's parameters.

The model is the simulator's own prior (:meth:`GRFPrior.pyro_theta`, map latents
whitened) and the exact marginal likelihood of the observations::

    theta ~ prior,    y | theta ~ N(0, W C_theta(P, P) W^T + diag(tau^2))

so one likelihood costs one Cholesky of an ``n_obs x n_obs`` matrix, whatever the grid.
Predictions marginalise over ``theta``: for each retained draw, the field at the targets
is drawn by exact Gaussian conditioning (:func:`conditional_simulation`).

Chains run one after another, each from its own prior draw and seed (Pyro's parallel
chains need one process per chain; on the 2-core machines this targets they would fight
over the cores). R-hat (split, across chains), bulk effective sample size and
divergences are reported, with an :class:`MCMCWarning` when they are poor.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide import init_to_sample
from pyro.ops.stats import effective_sample_size, split_gelman_rubin
from tqdm.auto import tqdm

from geodiff.baselines.kriging import conditional_simulation
from geodiff.baselines.transformed import LATENT_SITE, latent_predictive, latent_pyro_model
from geodiff.errors import GeodiffError, renamed_arguments
from geodiff.fields.parameters import ScalarPrior
from geodiff.grid import Grid
from geodiff.machine import check_dense
from geodiff.observe import Observations
from geodiff.prediction import Prediction, check_finite
from geodiff.rng import derive_seed

__all__ = ["MCMCResult", "MCMCWarning", "mcmc_posterior", "n_hyperparameters", "pyro_model"]

#: thresholds below which the chains are reported as poor
RHAT_MAX = 1.05
ESS_MIN = 100
_JITTER = 1e-9  # relative diagonal jitter of the likelihood's covariance
_FORMER_NAMES = {"n_draws": "draws"}  # predict()'s former argument names
_CHAIN_STREAM, _PREDICT_STREAM = 10, 11


class MCMCWarning(UserWarning):
    """Chains that have not converged or mixed well enough to trust."""


def n_hyperparameters(prior) -> int:
    """Random scalar parameters of ``prior`` (map latents, whitened ``N(0, I)``, excluded)."""
    return sum(
        1 for leaf in prior.leaves().values() if isinstance(leaf, ScalarPrior) and not leaf.is_fixed
    )


def pyro_model(prior, obs: Observations, noise_prior=None):
    """The Pyro model of ``obs`` under ``prior``, for NUTS or any other Pyro inference.

    The prior's sites (``prior.pyro_theta``, angles as 2-D points on a circle) come
    first, then ``y ~ N(0, A C_theta A^T + diag(tau^2))`` observed at ``obs.values``.
    With a ``noise_prior`` (:class:`~geodiff.noise.NoisePrior`), a site
    ``noise_variance ~ noise_prior`` is one more unknown, added to every observation's
    own noise variance.

    A heavy-tailed prior (not Gaussian given θ) samples its latent Gaussian values at the
    observations' support too (:func:`geodiff.baselines.transformed.latent_pyro_model`).

    Returns
    -------
    callable
        A model function taking no arguments.
    """
    if not getattr(prior, "is_gaussian", True):
        return latent_pyro_model(prior, obs, noise_prior)
    y = torch.as_tensor(obs.values, dtype=torch.float64)
    noise = torch.as_tensor(obs.noise_variance, dtype=torch.float64)

    def model():
        theta = prior.pyro_theta(periodic_angles=True)
        cov = obs.operator.covariance(prior, theta)[0]
        scale = cov.diagonal().mean()
        extra = 0.0 if noise_prior is None else pyro.sample("noise_variance", noise_prior.pyro())
        cov = cov + torch.diag(noise + extra + _JITTER * scale)
        pyro.sample("y", dist.MultivariateNormal(torch.zeros_like(y), covariance_matrix=cov), obs=y)

    return model


@dataclass
class MCMCResult:
    """Posterior draws of the parameters and their diagnostics.

    Attributes
    ----------
    prior : GRFPrior
    obs : Observations
    samples : dict of str to torch.Tensor, each (chains, draws, ...)
        The random sites (scalars and map latents).
    diagnostics : dict of str to dict
        Per site: ``rhat`` and ``ess`` (the worst over a site's components).
    divergences : list of int
        Divergent transitions after warm-up, per chain.
    seconds : float
        Wall time of all chains, warm-up included.
    warnings : list of str
    """

    prior: object
    obs: Observations
    samples: dict
    diagnostics: dict
    divergences: list
    seconds: float
    warnings: list = field(default_factory=list)

    @property
    def n_draws(self) -> int:
        first = next(iter(self.samples.values()))
        return first.shape[0] * first.shape[1]

    @property
    def min_ess(self) -> float:
        return min(d["ess"] for d in self.diagnostics.values())

    @property
    def max_rhat(self) -> float:
        return max(d["rhat"] for d in self.diagnostics.values())

    def theta(self) -> dict:
        """All draws, chains concatenated, as a full ``theta`` (batch = chains * draws)."""
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in self.samples.items()}
        flat.pop("noise_variance", None)
        flat.pop(LATENT_SITE, None)
        return self.prior.complete_theta(flat)

    def noise_sd_draws(self) -> np.ndarray | None:
        """The inferred nugget's sd of every draw, chains concatenated (None if not inferred)."""
        if "noise_variance" not in self.samples:
            return None
        return self.samples["noise_variance"].reshape(-1).sqrt().numpy()

    def predict(self, targets, draws: int | None = None, seed: int = 0, progress=False, **former):
        """Posterior predictive draws of the field at targets.

        Parameters
        ----------
        targets : Grid or array_like of shape (m, 2)
        draws : int, optional
            Parameter draws used, evenly thinned from all chains (default: all); one
            field is drawn per parameter draw.
        seed : int
        progress : bool
        **former
            ``n_draws``, the former name of ``draws`` (one release, with a warning).

        Returns
        -------
        Prediction
            Represented by its draws, shape (draws, m).
        """
        from geodiff.baselines.kriging import n_targets_of

        check_dense("MCMC", len(self.obs.operator.support), n_targets_of(targets), joint=True)
        theta = self.theta()
        total = next(iter(theta.values())).shape[0]
        draws = renamed_arguments(former, _FORMER_NAMES, "predict").get("draws", draws)
        n_draws = total if draws is None else min(int(draws), total)
        picks = np.unique(np.linspace(0, total - 1, n_draws).round().astype(int))
        nugget_sd, draws = self.noise_sd_draws(), []
        for k in tqdm(picks, desc="predictive", unit="draw", disable=not progress, leave=False):
            one = {key: v[k : k + 1] for key, v in theta.items()}
            obs = self.obs
            if nugget_sd is not None:
                noise = np.sqrt(obs.noise_variance + nugget_sd[k] ** 2)
                obs = Observations(obs.operator, obs.values, noise)
            draw_seed = derive_seed(seed, _PREDICT_STREAM, int(k))
            if LATENT_SITE in self.samples:  # a heavy-tailed prior: its latent values given
                white = self.samples[LATENT_SITE].reshape(total, -1)[k]
                x = latent_predictive(self.prior, one, white, obs, targets, draw_seed)
            else:
                x = conditional_simulation(self.prior, one, obs, targets, 1, draw_seed)
            draws.append(x.reshape(-1).numpy())
        grid = targets if isinstance(targets, Grid) else None
        points = grid.points() if grid is not None else np.asarray(targets, dtype=float)
        info = {
            "max_rhat": self.max_rhat,
            "min_ess": self.min_ess,
            "divergences": sum(self.divergences),
            "warnings": list(self.warnings),
        }
        draws = np.stack(draws)
        check_finite(draws, "posterior draws", self.obs.values, advice="rescale them")
        info["parameter_seconds"] = self.seconds  # the part that does not grow with the draws
        return Prediction.from_draws(
            points, draws, grid=grid, method="mcmc", info=info, seconds=self.seconds,
            noise_sd_draws=None if nugget_sd is None else nugget_sd[picks],
        )  # fmt: skip

    def summary(self) -> dict:
        """Per site: posterior mean, sd, 5% and 95% quantiles, R-hat and ESS (scalars)."""
        out = {}
        for key, value in self.samples.items():
            flat = value.reshape(-1, *value.shape[2:])
            if flat.ndim > 1:
                continue
            q05, q95 = torch.quantile(flat, torch.tensor([0.05, 0.95], dtype=flat.dtype))
            out[key] = {
                "mean": float(flat.mean()),
                "sd": float(flat.std()),
                "q05": float(q05),
                "q95": float(q95),
                **self.diagnostics[key],
            }
        return out

    def summary_text(self) -> str:
        """Chains, time, :meth:`summary` as a fixed-width table, and the divergences."""
        chains, draws = next(iter(self.samples.values())).shape[:2]
        lines = [f"NUTS: {chains} chains x {draws} draws in {self.seconds:.1f} s"]
        lines += summary_table(self.summary())
        lines.append(f"divergences per chain: {self.divergences}")
        return "\n".join(lines)


def mcmc_posterior(
    prior,
    obs: Observations,
    *,
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    max_tree_depth: int = 8,
    target_accept: float = 0.8,
    jit: bool = True,
    progress: bool = True,
    noise_prior=None,
) -> MCMCResult:
    """Run NUTS on the prior's parameters given observations.

    Parameters
    ----------
    prior : GRFPrior
    obs : Observations
        Inside the prior's domain; at least as many as the prior's random scalar
        parameters (see :func:`n_hyperparameters`).
    num_samples, warmup_steps : int
        Per chain.
    num_chains : int
        At least 2 for R-hat.
    seed : int
    max_tree_depth : int
        NUTS' limit: at most ``2**max_tree_depth`` gradient evaluations per draw.
    target_accept : float
    jit : bool
        Compile the potential with the PyTorch JIT (faster for small problems).
    progress : bool
    noise_prior : NoisePrior, optional
        Infer a nugget ``τ²`` (added to the observations' own noise) with this prior,
        as one more NUTS site ``noise_variance``.

    Returns
    -------
    MCMCResult
    """
    if not isinstance(obs, Observations):
        raise GeodiffError(f"expected Observations, got {type(obs).__name__}")
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
        if not isinstance(value, int) or value < 1:
            raise GeodiffError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise GeodiffError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
    obs.check_inside(prior.domain, "the prior's domain")
    check_dense("MCMC", len(obs.operator.support), copies=4)
    n_params = n_hyperparameters(prior)
    if n_params == 0:
        raise GeodiffError(f"prior {prior.name!r} has no random parameter to sample")
    if len(obs) < n_params:
        raise GeodiffError(
            f"{len(obs)} observation(s) for {n_params} random parameters of prior "
            f"{prior.name!r}; give at least {n_params}"
        )
    model = pyro_model(prior, obs, noise_prior)
    chains, divergences = [], []
    started = time.perf_counter()
    for chain in range(num_chains):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, _CHAIN_STREAM, chain))
            kernel = NUTS(
                model,
                target_accept_prob=target_accept,
                max_tree_depth=max_tree_depth,
                jit_compile=jit,
                ignore_jit_warnings=True,
                init_strategy=init_to_sample,
            )
            run = MCMC(
                kernel,
                num_samples=num_samples,
                warmup_steps=warmup_steps,
                num_chains=1,
                disable_progbar=not progress,
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                # torch 2.13 deprecates torch.jit.trace, which Pyro's jit_compile uses
                warnings.filterwarnings("ignore", message=".*torch.jit.trace.*")
                run.run()
        chains.append({k: v.detach() for k, v in run.get_samples().items()})
        divergences.append(len(run.diagnostics()["divergences"]["chain 0"]))
    wall = time.perf_counter() - started
    sites = {k: torch.stack([c[k] for c in chains]) for k in chains[0]}
    diagnostics = {k: _diagnose(v) for k, v in sites.items()}
    samples = dict(sites)
    for key in prior.periodic_keys():  # back from (u, v) to the angle; diagnose (u, v)
        samples[key] = prior.angle_from_xy(key, samples.pop(key + ".xy"))
        diagnostics[key] = diagnostics.pop(key + ".xy")
    result = MCMCResult(prior, obs, samples, diagnostics, divergences, wall)
    result.warnings.extend(_problems(result, num_chains))
    for message in result.warnings:
        warnings.warn(message, MCMCWarning, stacklevel=2)
    return result


def summary_table(summary: dict) -> list[str]:
    """A posterior summary (``{name: {mean, sd, q05, q95, rhat, ess}}``) as fixed-width lines."""
    columns = ("mean", "sd", "q05", "q95")
    lines = [f"{'parameter':24s} " + " ".join(f"{c:>9s}" for c in columns) + "  R-hat    ESS"]
    for key, row in summary.items():
        lines.append(
            f"{key:24s} {row['mean']:9.4g} {row['sd']:9.4g} {row['q05']:9.4g} "
            f"{row['q95']:9.4g} {row['rhat']:6.3f} {row['ess']:6.0f}"
        )
    return lines


def _diagnose(value: torch.Tensor) -> dict:
    """Worst split R-hat and bulk ESS over a site's components; value (chains, draws, ...)."""
    flat = value.reshape(value.shape[0], value.shape[1], -1)
    ess = effective_sample_size(flat, chain_dim=0, sample_dim=1)
    if value.shape[0] > 1 or value.shape[1] >= 4:
        rhat = split_gelman_rubin(flat, chain_dim=0, sample_dim=1)
        rhat = float(torch.nan_to_num(rhat, nan=1.0).max())
    else:
        rhat = float("nan")
    # a constant chain (or a tiny one) can give a negative or NaN estimate: clip it at 0
    ess = torch.nan_to_num(ess, nan=0.0, posinf=0.0).clamp_min(0.0)
    return {"rhat": rhat, "ess": float(ess.min())}


def _problems(result: MCMCResult, num_chains: int) -> list[str]:
    out = []
    if num_chains < 2:
        out.append("one chain: R-hat across chains cannot check convergence; run 2 or more")
    if result.max_rhat > RHAT_MAX:
        worst = max(result.diagnostics, key=lambda k: result.diagnostics[k]["rhat"])
        out.append(
            f"R-hat {result.max_rhat:.3f} > {RHAT_MAX} (site {worst}): the chains disagree; "
            "run longer or check the model"
        )
    if result.min_ess < ESS_MIN:
        worst = min(result.diagnostics, key=lambda k: result.diagnostics[k]["ess"])
        out.append(
            f"effective sample size {result.min_ess:.0f} < {ESS_MIN} (site {worst}): "
            "posterior summaries are noisy; run more samples"
        )
    if sum(result.divergences) > 0:
        out.append(
            f"{sum(result.divergences)} divergent transition(s): the sampler may miss parts of "
            "the posterior; raise target_accept"
        )
    return out
