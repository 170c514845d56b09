"""Cost of the Pyro NUTS reference posterior for 50, 100 and 200 observations.

For each shipped prior and number of observations, one dataset is drawn exactly from the
model (parameters from the prior, the field at uniform random points by Cholesky, noise
sd 0.1), and :func:`geodiff.baselines.mcmc.mcmc_posterior` runs 2 chains. Reported:

* wall time (warm-up included) and the smallest bulk effective sample size over every
  sampled quantity — map latents included — and over the scalar parameters, each per
  second of wall time;
* the baseline measured in the same run: the time of one evaluation of the potential
  and its gradient (one Cholesky of the n x n covariance plus backpropagation), and the
  ratio ``wall / (iterations x gradient time)``, the number of gradient evaluations an
  iteration costs — NUTS' tree size plus Pyro's overhead — which is what a faster
  sampler or likelihood would have to beat.

Usage::

    python benchmarks/bench_mcmc.py            # full run (about 30 min on 2 cores)
    python benchmarks/bench_mcmc.py --quick    # smoke run, prints only
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script
from pyro.infer.mcmc.util import initialize_model

from geodiff.baselines.mcmc import MCMCWarning, mcmc_posterior, pyro_model
from geodiff.fields.config import load_prior
from geodiff.observe import Observations
from geodiff.rng import derive_seed
from geodiff.tables import markdown_table

PRIORS = ("stationary-matern", "nonstationary-anisotropy")
NOISE = 0.1


def dataset(prior, n: int, seed: int) -> Observations:
    """n noisy observations of one field drawn exactly from the prior."""
    gen = torch.Generator().manual_seed(derive_seed(seed, n))
    theta = prior.sample_theta(generators=[gen])
    rng = np.random.default_rng(seed + n)
    points = rng.uniform(0, 1, (n, 2))
    cov = prior.covariance(points, points, theta)[0]
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    values = torch.linalg.cholesky(cov + 1e-10 * torch.eye(n, dtype=cov.dtype)) @ z
    return Observations.at_points(points, values.numpy() + NOISE * rng.normal(size=n), NOISE)


def gradient_time(prior, obs: Observations, repeats: int = 20) -> float:
    """Seconds per evaluation of the potential energy and its gradient."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        init, potential, _, _ = initialize_model(pyro_model(prior, obs))
    params = {k: v.detach().clone().requires_grad_() for k, v in init.items()}
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            energy = potential(params)
            torch.autograd.grad(energy, list(params.values()))
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def run(prior_name: str, n: int, warmup: int, samples: int, chains: int, jit: bool = True) -> dict:
    prior = load_prior(prior_name)
    obs = dataset(prior, n, seed=0)
    t_grad = gradient_time(prior, obs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MCMCWarning)
        result = mcmc_posterior(
            prior,
            obs,
            num_samples=samples,
            warmup_steps=warmup,
            num_chains=chains,
            seed=1,
            jit=jit,
            progress=False,
        )
    scalar_ess = min(d["ess"] for k, d in result.diagnostics.items() if not k.endswith(".latent"))
    iterations = chains * (warmup + samples)
    return {
        "prior": prior_name,
        "n": n,
        "jit": jit,
        "wall": result.seconds,
        "draws": result.n_draws,
        "ess": result.min_ess,
        "scalar_ess": scalar_ess,
        "rhat": result.max_rhat,
        "divergences": sum(result.divergences),
        "t_grad": t_grad,
        "grad_per_iter": result.seconds / (iterations * t_grad),
        "warnings": len(caught),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; prints only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = (20,) if args.quick else (50, 100, 200)
    warmup, samples, chains = (20, 20, 2) if args.quick else (300, 300, 2)
    rows = []
    cases = [(p, n, True) for p in PRIORS for n in sizes]
    cases += [(p, sizes[0], False) for p in PRIORS]  # does the JIT help?
    for prior_name, n, jit in cases:
        row = run(prior_name, n, warmup, samples, chains, jit)
        rows.append(row)
        print(
            f"{prior_name:26s} n={n:4d} jit={jit:d} wall {row['wall']:8.1f} s  "
            f"min ESS {row['ess']:7.1f} "
            f"({row['ess'] / row['wall']:.3f}/s)  scalar ESS {row['scalar_ess']:7.1f}  "
            f"R-hat {row['rhat']:.3f}  div {row['divergences']}  "
            f"grad {1e3 * row['t_grad']:.2f} ms  x{row['grad_per_iter']:.1f}",
            flush=True,
        )
    if args.quick:
        return
    lines = [
        f"{chains} chains x ({warmup} warm-up + {samples} draws), one dataset per row drawn "
        f"exactly from the prior at uniform random points, noise sd {NOISE}. The last rows "
        "repeat the smallest case without the PyTorch JIT (same chains, so the ratio of wall "
        "times is the JIT's gain).",
        "ESS: smallest bulk effective sample size over every sampled quantity (map latents "
        "included) and over the scalar parameters only. Gradient: one potential + gradient "
        "evaluation, timed in the same run; `wall / (iterations x gradient)` is the cost of "
        "one NUTS iteration in gradient evaluations.",
        "",
    ]
    header = [
        "prior",
        "observations",
        "JIT",
        "wall time (s)",
        "min ESS",
        "min ESS / s",
        "scalar ESS / s",
        "max R-hat",
        "divergences",
        "gradient (ms)",
        "wall / (iterations x gradient)",
    ]
    table = [
        [
            r["prior"],
            r["n"],
            "on" if r["jit"] else "off",
            f"{r['wall']:.1f}",
            f"{r['ess']:.0f}",
            f"{r['ess'] / r['wall']:.3f}",
            f"{r['scalar_ess'] / r['wall']:.3f}",
            f"{r['rhat']:.3f}",
            r["divergences"],
            f"{1e3 * r['t_grad']:.2f}",
            f"{r['grad_per_iter']:.1f}",
        ]
        for r in rows
    ]
    lines.append(markdown_table(header, table))
    command = "python benchmarks/bench_mcmc.py" + (
        f" --threads {args.threads}" if args.threads else ""
    )
    path = update_section("mcmc", "MCMC reference (Pyro NUTS) cost", command, "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
