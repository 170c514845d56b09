"""How far from the prior are DDIM, DDPM and DPM-Solver++(2M) after K steps, with no network?

Driven by the exact oracle on Gaussian priors (parameter draws of a prior config on a
grid), each sampler's output covariance is known in closed form
(:func:`geodiff.diffusion.exact.gaussian_sampler_variance`); this reports the ratio of its
variance to the prior's, for the whole field and along the worst eigenvector. No Monte
Carlo: the figures are exact for the schedule. Writes its section of BENCHMARKS.md.

    python benchmarks/bench_samplers.py [--grid 32] [--prior stationary-matern]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff import Grid, load_prior
from geodiff.diffusion.exact import gaussian_sampler_variance
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.tables import markdown_table

CASES = [("ddim", 0.0), ("ddim", 1.0), ("dpm2m", 0.0)]
STEPS = (10, 25, 50, 100, 250, 1000)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=32)
    parser.add_argument("--prior", default="stationary-matern")
    parser.add_argument("--draws", type=int, default=8, help="parameter draws (Gaussians)")
    args = parser.parse_args(argv)
    prior, grid = load_prior(args.prior), Grid.square(args.grid)
    theta = prior.sample_theta(args.draws, generator=torch.Generator().manual_seed(0))
    pts = torch.as_tensor(grid.points(), dtype=torch.float64)
    cov = prior.covariance(pts, pts, theta)
    eigvals = [torch.linalg.eigvalsh(c).clamp(min=0).numpy() for c in cov]
    schedule = NoiseSchedule()
    rows = []
    for sampler, eta in CASES:
        for k in STEPS:
            if sampler == "dpm2m":
                ts = schedule.log_snr_timesteps(k).numpy()
            else:
                ts = schedule.timesteps(k).numpy()
            total, worst_lo, worst_hi = [], np.inf, 0.0
            for lam in eigvals:
                var = gaussian_sampler_variance(schedule, ts, lam, sampler, eta)
                total.append(var.sum() / lam.sum())
                big = lam > 1e-3 * lam.max()  # directions that carry the field
                ratio = var[big] / lam[big]
                worst_lo, worst_hi = min(worst_lo, ratio.min()), max(worst_hi, ratio.max())
            name = "DPM-Solver++(2M)" if sampler == "dpm2m" else f"DDIM η={eta:g}"
            rows.append((name, k, len(ts), np.mean(total), worst_lo, worst_hi))
            print(rows[-1], flush=True)
    body = (
        f"Exact oracle of {args.draws} parameter draws of {args.prior} on a {args.grid}² grid, "
        "cosine schedule, T = 1000. `variance ratio` is the total variance of the samples "
        "over the prior's (mean over draws; 1 is exact); the range is over eigen-directions "
        "with eigenvalue above 1e-3 of the largest, worst over draws. DPM-Solver++ spaces its "
        "steps evenly in log-SNR and merges those that round to the same discrete step, so "
        "it makes fewer denoiser calls than requested.\n\n"
    )
    header = [
        "sampler",
        "steps requested",
        "denoiser calls",
        "variance ratio",
        "worst direction: low",
        "high",
    ]
    table = [
        [name, k, calls, f"{total:.4f}", f"{lo:.3f}", f"{hi:.3f}"]
        for name, k, calls, total, lo, hi in rows
    ]
    body += markdown_table(header, table) + "\n"
    cmd = "python benchmarks/bench_samplers.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    print(f"wrote {update_section('samplers', 'Sampler discretisation error', cmd, body)}")


if __name__ == "__main__":
    main()
