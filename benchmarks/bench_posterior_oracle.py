"""How close are the diffusion posterior samplers to exact kriging, with no network?

The denoiser is the exact oracle of a Gaussian prior with θ fixed (stationary Matérn 1.5,
unit variance, length scale 0.15, anisotropy 0.6, angle 0.5) on a 32² grid, so the only
errors left are the samplers' own: their approximations, their discretisation and their
Monte Carlo noise. For 20, 50 and 200 point observations (uniform locations, bilinear
read-out) with noise sd τ = 0 and 0.1 — one seeded true field and set of locations per
case — each sampler draws ``S`` posterior fields, compared with the exact Gaussian
posterior (:func:`geodiff.posterior.gaussian_posterior`):

* the error of the sampler's mean in exact posterior sd, its sd over the exact one,
  the exact posterior mass of its 90% intervals and how often they hold the truth;
* the sliced Wasserstein distance between its draws and ``S`` exact draws, next to the
  same distance between two sets of ``S`` exact draws (the distance's noise floor);
* the draws' misfit to the data, and wall and CPU time.

A row of ``S`` exact draws gives the Monte Carlo reference of every column, and
:func:`geodiff.posterior.mcgdiff_limit` the law MCGdiff converges to as its particle count
grows (its gap to exact is the DDIM chain's discretisation). Two more tables: MCGdiff's
particle trend against that limit (with its smallest effective sample size) and DPS's
sensitivity to its step size. Writes its section of BENCHMARKS.md.

Usage::

    python benchmarks/bench_posterior_oracle.py            # full run (about 20 min, 1 thread)
    python benchmarks/bench_posterior_oracle.py --quick    # smoke run (16² grid), prints only

Options: ``--draws S`` (64), ``--trend-draws`` (24), ``--particles`` (1 4 16 32 64 256),
``--threads`` (1: on a shared machine, more threads spin-wait and cost more CPU),
``--print-only``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script
from scipy import special

from geodiff import Grid
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.fields.config import load_prior
from geodiff.metrics.scores import interval_coverage, sliced_wasserstein
from geodiff.observe import Observations
from geodiff.posterior import (
    LinearGaussianProblem,
    gaussian_posterior,
    posterior_sample,
)
from geodiff.rng import derive_seed, generators_for
from geodiff.tables import markdown_table
from geodiff.testing import daps_limit, mcgdiff_limit, mmps_limit, pigdm_limit

PRIOR = "stationary-matern"
THETA = {"length_scale": 0.15, "anis_ratio": 0.6, "angle": 0.5}
SD_MIN = 1e-3  # nodes with a smaller exact posterior sd are pinned by the data: skipped
Z90 = 1.6448536269514722  # standard normal 95% quantile
PROJECTIONS = 200
STEPS = 100  # MCGdiff, DAPS, ΠGDM
DIVERGED = 1e3  # a draw of a unit-variance field beyond this (or non-finite) has diverged


@dataclass
class Case:
    """One dataset: truth, observations and the exact posterior."""

    n: int
    tau: float
    seed: int
    truth: np.ndarray  # (d,)
    problem: LinearGaussianProblem
    mean: np.ndarray  # (d,)
    sd: np.ndarray  # (d,)
    cov: torch.Tensor  # (d, d)
    factor: np.ndarray  # (d, d), cov = factor @ factor.T
    mask: np.ndarray  # (d,) bool, sd > SD_MIN
    reference: np.ndarray  # (S, d) exact draws the samplers are compared with
    floor_draws: np.ndarray  # (S, d) independent exact draws (noise floor, MC reference)

    @property
    def label(self) -> str:
        return f"n={self.n}, τ={self.tau:g}"


def psd_factor(cov: torch.Tensor) -> np.ndarray:
    """``F`` with ``F Fᵀ = cov`` (eigenvalues clamped at 0: noiseless data pin directions)."""
    val, vec = torch.linalg.eigh(0.5 * (cov + cov.T))
    return (vec * val.clamp_min(0.0).sqrt()).numpy()


def gaussian_draws(mean, factor, count: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).standard_normal((count, len(mean)))
    return mean + z @ factor.T


def make_case(n, tau, prior, theta, grid, oracle, cov, draws) -> Case:
    seed = 1000 * n + round(100 * tau)
    truth = oracle.sample(1, seed=seed)[0, 0]
    rng = np.random.default_rng(derive_seed(seed, 1))
    locations = rng.uniform(size=(n, 2))
    values = grid.interpolate(truth[None], locations)[0].numpy()
    values = values + tau * rng.standard_normal(n)
    obs = Observations.at_points(locations, values, tau)
    problem = LinearGaussianProblem.from_observations(obs, grid)
    mean, post = gaussian_posterior(cov, problem)
    factor = psd_factor(post)
    mean = mean.numpy()
    sd = np.sqrt(np.clip(np.diag(post.numpy()), 0.0, None))
    return Case(
        n=n,
        tau=tau,
        seed=seed,
        truth=truth.numpy().reshape(-1),
        problem=problem,
        mean=mean,
        sd=sd,
        cov=post,
        factor=factor,
        mask=sd > SD_MIN,
        reference=gaussian_draws(mean, factor, draws, derive_seed(seed, 2)),
        floor_draws=gaussian_draws(mean, factor, draws, derive_seed(seed, 3)),
    )


def normal_cdf(x):
    return special.ndtr(x)


def score(draws: np.ndarray, case: Case, mean=None, sd=None, reference=None) -> dict:
    """Metrics of draws (S, d) against the exact posterior.

    ``mean`` and ``sd`` replace the exact ones in ``mean_err`` and ``sd_ratio``;
    ``reference`` replaces the exact draws the SW distance is taken to.
    """
    m = case.mask
    mean = case.mean if mean is None else mean
    sd = case.sd if sd is None else sd
    finite = np.isfinite(draws).all(axis=1) & (np.abs(draws).max(axis=1, initial=0) < DIVERGED)
    out = {"nonfinite": int((~finite).sum())}
    draws = draws[finite]
    if len(draws) < 2:
        keys = ("mean_err", "sd_ratio", "mass90", "truth90", "sw", "misfit")
        return out | {k: math.nan for k in keys}
    s_mean, s_sd = draws.mean(0), draws.std(0, ddof=1)
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    mass = normal_cdf((hi - case.mean) / case.sd) - normal_cdf((lo - case.mean) / case.sd)
    out["mean_err"] = float(np.sqrt(np.mean(((s_mean - mean)[m] / sd[m]) ** 2)))
    out["sd_ratio"] = float(np.mean(s_sd[m] / sd[m]))
    out["mass90"] = float(mass[m].mean())
    out["truth90"] = float(interval_coverage(case.truth[m], lo[m], hi[m]).mean())
    reference = case.reference if reference is None else reference
    out["sw"] = sliced_wasserstein(
        draws, reference, n_projections=PROJECTIONS, seed=case.seed % 2**31
    )
    out["misfit"] = misfit(draws, case)
    return out


def misfit(draws: np.ndarray, case: Case) -> float:
    """RMS over draws and observations of ``A x - y`` (field units)."""
    residual = case.problem.apply(torch.as_tensor(draws)) - case.problem.values
    return float(residual.pow(2).mean().sqrt())


def gaussian_score(case: Case, mean: np.ndarray, cov: torch.Tensor, draws: int) -> dict:
    """The columns of :func:`score` for a Gaussian law, exactly (SW from ``draws`` draws)."""
    m = case.mask
    sd = np.sqrt(np.clip(np.diag(cov.numpy()), 0.0, None))
    lo, hi = mean - Z90 * sd, mean + Z90 * sd
    mass = normal_cdf((hi - case.mean) / case.sd) - normal_cdf((lo - case.mean) / case.sd)
    sample = gaussian_draws(mean, psd_factor(cov), draws, derive_seed(case.seed, 4))
    return {
        "nonfinite": 0,
        "mean_err": float(np.sqrt(np.mean(((mean - case.mean)[m] / case.sd[m]) ** 2))),
        "sd_ratio": float(np.mean(sd[m] / case.sd[m])),
        "mass90": float(mass[m].mean()),
        "truth90": float(interval_coverage(case.truth[m], lo[m], hi[m]).mean()),
        "sw": sliced_wasserstein(
            sample, case.reference, n_projections=PROJECTIONS, seed=case.seed % 2**31
        ),
        "misfit": misfit(sample, case),
    }


def run_sampler(method, options, case, oracle, schedule, draws, diagnostics=None):
    gens = generators_for(case.seed, 7, range(draws))
    t0, c0 = time.perf_counter(), time.process_time()
    out = posterior_sample(method, oracle, schedule, case.problem, gens, **options)
    wall = (time.perf_counter() - t0, time.process_time() - c0)
    if diagnostics is not None:
        diagnostics.update(out.info)
    return out.draws.reshape(draws, -1).numpy(), wall


def fmt(x, digits=3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


MAIN_HEADER = [
    "case",
    "sampler",
    "mean err",
    "sd ratio",
    "cov90 (exact mass)",
    "cov90 (truth)",
    "SW to exact",
    "data misfit",
    "wall (s)",
    "CPU (s)",
]
TREND_HEADER = [
    "case",
    "particles",
    "mean err vs limit",
    "sd ratio vs limit",
    "SW to exact",
    "SW floor",
    "min ESS",
    "resampling steps",
    "wall (s)",
    "CPU (s)",
]
SUMMARY_HEADER = [
    "sampler",
    "mean err",
    "sd ratio (range)",
    "cov90 (exact mass)",
    "SW / floor",
    "wall (s)",
    "CPU (s)",
]


def row_line(header, cells) -> str:
    """One row as it will appear in its table (printed while the benchmark runs)."""
    return markdown_table(header, [cells]).rsplit("\n", 1)[-1]


def main_row(name: str, case: Case, r: dict, wall) -> list:
    bad = f" ({r['nonfinite']} diverged draws dropped)" if r["nonfinite"] else ""
    return [
        case.label,
        f"{name}{bad}",
        fmt(r["mean_err"]),
        fmt(r["sd_ratio"]),
        fmt(r["mass90"]),
        fmt(r["truth90"]),
        fmt(r["sw"]),
        fmt(r["misfit"]),
        *(["–", "–"] if wall is None else [f"{wall[0]:.1f}", f"{wall[1]:.1f}"]),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (16² grid); prints only")
    parser.add_argument("--draws", type=int, default=None, help="posterior draws per sampler")
    parser.add_argument(
        "--trend-draws", type=int, default=None, help="draws per MCGdiff particle count"
    )
    parser.add_argument(
        "--particles", type=int, nargs="+", default=None, help="MCGdiff particle trend"
    )
    parser.add_argument("--print-only", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: the cores are shared)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    size = 16 if args.quick else 32
    draws = args.draws or (32 if args.quick else 64)
    trend_draws = args.trend_draws or (16 if args.quick else 24)
    sizes = (20,) if args.quick else (20, 50, 200)
    trend_n = sizes[0] if args.quick else 50
    particles = args.particles or ([1, 4, 16] if args.quick else [1, 4, 16, 32, 64, 256])
    dps_steps = 200 if args.quick else 1000
    methods = [
        ("MMPS (30 steps, CG to convergence)", "mmps", {"steps": 30, "cg_iterations": None}),
        (
            "MMPS (30 steps, 1 CG iteration, prior-marginal preconditioner; default)",
            "mmps",
            {"steps": 30, "cg_iterations": 1, "preconditioner": "marginal"},
        ),
        (
            "MMPS (30 steps, 1 CG iteration, no preconditioner)",
            "mmps",
            {"steps": 30, "cg_iterations": 1},
        ),
        (
            "MMPS (30 steps, 3 CG iterations, no preconditioner)",
            "mmps",
            {"steps": 30, "cg_iterations": 3},
        ),
        ("MCGdiff (32 particles)", "mcgdiff", {"steps": STEPS, "particles": 32, "eta": 1.0}),
        ("DAPS", "daps", {"steps": STEPS}),
        ("ΠGDM", "pigdm", {"steps": STEPS, "eta": 1.0}),
        (f"DPS ({dps_steps} steps)", "dps", {"steps": dps_steps, "step_size": 1.0, "eta": 1.0}),
        ("DPS (100 steps)", "dps", {"steps": 100, "step_size": 1.0, "eta": 1.0}),
    ]
    step_sizes = (0.3, 1.0, 3.0)

    prior = load_prior(PRIOR)
    theta = prior.complete_theta(THETA)
    grid = Grid.square(size, prior.domain)
    schedule = NoiseSchedule()
    oracle = GaussianMixtureOracle.from_prior(prior, grid, schedule, theta=theta)
    pts = torch.as_tensor(grid.points(), dtype=torch.float64)
    prior_cov = prior.covariance(pts, pts, theta)[0]
    limit_ts = schedule.timesteps(STEPS)
    marginal = prior.marginal_covariance(grid.points())  # what a trained model's MMPS uses
    for _label, _method, options in methods:
        if options.get("preconditioner") == "marginal":
            options["preconditioner"] = marginal
    mmps_ts = schedule.log_snr_timesteps(30)

    main_rows, trend_rows, dps_rows, floors = [], [], [], []
    results = []  # (sampler label, score, wall, SW floor) of the main table
    trend = {}  # case label -> [(particles, score, min ESS, trend floor)]
    limits = []  # score of mcgdiff_limit per case
    zetas = []  # (ζ', score) of the DPS step-size sweep
    saved = {}  # method label -> (draws, wall) of the current case
    for n in sizes:
        for tau in (0.0, 0.1):
            case = make_case(n, tau, prior, theta, grid, oracle, prior_cov, draws)
            floor = sliced_wasserstein(
                case.floor_draws,
                case.reference,
                n_projections=PROJECTIONS,
                seed=case.seed % 2**31,
            )
            floors.append((case.label, floor, int((~case.mask).sum())))
            exact_truth = float(
                (np.abs(case.truth - case.mean)[case.mask] <= Z90 * case.sd[case.mask]).mean()
            )
            exact_row = score(case.floor_draws, case)
            main_rows.append(
                main_row(f"exact, {draws} draws (MC reference)", case, exact_row, None)
            )
            print(
                row_line(MAIN_HEADER, main_rows[-1]),
                f"exact intervals hold the truth at {exact_truth:.3f}",
                flush=True,
            )
            lim_mean, lim_cov = mcgdiff_limit(prior_cov, case.problem, schedule, limit_ts, eta=1.0)
            lim = gaussian_score(case, lim_mean.numpy(), lim_cov, draws)
            results.append(("MCGdiff limit", lim, None, floor))
            limits.append(lim)
            results.append(("exact draws", exact_row, None, floor))
            main_rows.append(main_row(f"MCGdiff limit, {STEPS} steps (exact law)", case, lim, None))
            print(row_line(MAIN_HEADER, main_rows[-1]), flush=True)
            for label, law in (
                ("MMPS limit, 30 steps", mmps_limit(prior_cov, case.problem, schedule, mmps_ts)),
                ("DAPS limit", daps_limit(prior_cov, case.problem, schedule, limit_ts)),
                ("ΠGDM limit", pigdm_limit(prior_cov, case.problem, schedule, limit_ts)),
            ):
                r = gaussian_score(case, law[0].numpy(), law[1], draws)
                results.append((label, r, None, floor))
                main_rows.append(main_row(f"{label} (exact law)", case, r, None))
                print(row_line(MAIN_HEADER, main_rows[-1]), flush=True)
            for label, method, options in methods:
                out, wall = run_sampler(method, options, case, oracle, schedule, draws)
                r = score(out, case)
                results.append((label, r, wall, floor))
                saved[label] = (out, wall)
                main_rows.append(main_row(label, case, r, wall))
                print(row_line(MAIN_HEADER, main_rows[-1]), flush=True)
            if n == trend_n:
                lim_m = lim_mean.numpy()
                lim_sd = np.sqrt(np.clip(np.diag(lim_cov.numpy()), 0.0, None))
                ref = case.reference[:trend_draws]
                trend_floor = sliced_wasserstein(
                    case.floor_draws[:trend_draws],
                    ref,
                    n_projections=PROJECTIONS,
                    seed=case.seed % 2**31,
                )
                for p in particles:
                    diag = {}
                    opts = {"steps": STEPS, "particles": p, "eta": 1.0}
                    out, wall = run_sampler(
                        "mcgdiff", opts, case, oracle, schedule, trend_draws, diag
                    )
                    r = score(out, case, mean=lim_m, sd=lim_sd, reference=ref)
                    ess = min(diag["ess"]) if diag.get("ess") else math.nan
                    trend.setdefault(case.label, []).append((p, r, ess, trend_floor))
                    bad = f" ({r['nonfinite']} diverged)" if r["nonfinite"] else ""
                    trend_rows.append(
                        [
                            case.label,
                            f"{p}{bad}",
                            fmt(r["mean_err"]),
                            fmt(r["sd_ratio"]),
                            fmt(r["sw"]),
                            fmt(trend_floor),
                            fmt(ess, 2),
                            str(len(diag.get("resampled", []))),
                            f"{wall[0]:.1f}",
                            f"{wall[1]:.1f}",
                        ]
                    )
                    print(row_line(TREND_HEADER, trend_rows[-1]), flush=True)
                if tau > 0:
                    for zeta in step_sizes:
                        label = f"DPS ({dps_steps} steps)"
                        if zeta == 1.0 and label in saved:
                            out, wall = saved[label]
                        else:
                            opts = {"steps": dps_steps, "step_size": zeta, "eta": 1.0}
                            out, wall = run_sampler("dps", opts, case, oracle, schedule, draws)
                        r = score(out, case)
                        zetas.append((zeta, r))
                        dps_rows.append(main_row(f"ζ' = {zeta:g}", case, r, wall))
                        print(row_line(MAIN_HEADER, dps_rows[-1]), flush=True)
            saved.clear()  # only the current case's runs are reused
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s", flush=True)

    summary_rows, ranking = [], []
    for label in ["exact draws", "MCGdiff limit", *(m[0] for m in methods)]:
        rs = [(r, w, f) for name, r, w, f in results if name == label]
        sw_ratio = float(np.mean([r["sw"] / f for r, _, f in rs]))
        walls = [w[0] for _, w, _ in rs if w is not None]
        cpus = [w[1] for _, w, _ in rs if w is not None]
        summary_rows.append(
            [
                label,
                fmt(np.mean([r["mean_err"] for r, _, _ in rs])),
                f"{fmt(np.nanmin([r['sd_ratio'] for r, _, _ in rs]))}–"
                f"{fmt(np.nanmax([r['sd_ratio'] for r, _, _ in rs]))}",
                fmt(np.mean([r["mass90"] for r, _, _ in rs])),
                fmt(sw_ratio, 2),
                *([f"{np.mean(walls):.1f}", f"{np.mean(cpus):.1f}"] if walls else ["–", "–"]),
            ]
        )
        if walls:
            ranking.append((sw_ratio, label, float(np.mean(cpus))))
    ranking.sort(key=lambda item: (not np.isfinite(item[0]), item[0]))
    ranked = "; ".join(f"{label} {fmt(ratio, 2)} ({cpu:.0f} s)" for ratio, label, cpu in ranking)
    by_mean = sorted(
        (
            (np.mean([r["mean_err"] for name, r, w, _ in results if name == label]), label)
            for label, *_ in methods
        ),
        key=lambda item: (not np.isfinite(item[0]), item[0]),
    )
    ranked_mean = "; ".join(f"{label} {fmt(err, 2)}" for err, label in by_mean)
    worst_sd = "; ".join(
        f"{label} {fmt(worst, 2)}"
        for label, worst in (
            (
                label,
                max(
                    (r["sd_ratio"] for name, r, _, _ in results if name == label),
                    key=lambda x: abs(math.log(x)) if x > 0 else math.inf,  # nan, 0: worst
                ),
            )
            for label, *_ in methods
        )
    )
    sentences = [
        f"Mean err, mean over the cases, smallest first (Monte Carlo alone: "
        f"{1 / math.sqrt(draws):.3f}): {ranked_mean}.",
        f"Sd ratio furthest from 1 over the cases: {worst_sd}.",
        f"The {STEPS}-step chain's own error (MCGdiff limit) is at most "
        f"{max(r['mean_err'] for r in limits):.3f} in mean err, with sd ratios "
        f"{min(r['sd_ratio'] for r in limits):.3f}–{max(r['sd_ratio'] for r in limits):.3f}.",
    ]
    for label, rows in trend.items():
        (p0, r0, _, fl), (p1, r1, e1, _) = rows[0], rows[-1]
        sentences.append(
            f"MCGdiff at {label}, from {p0} to {p1} particles: mean err vs its limit "
            f"{r0['mean_err']:.2f} → {r1['mean_err']:.2f}, sd ratio vs its limit "
            f"{r0['sd_ratio']:.2f} → {r1['sd_ratio']:.2f}, SW to exact "
            f"{r0['sw']:.2f} → {r1['sw']:.2f} (floor {fl:.2f}); smallest relative ESS at "
            f"{p1} particles {e1:.3f}."
        )
    if zetas:
        sentences.append(
            "DPS's data misfit grows with ζ': "
            + ", ".join(f"{r['misfit']:.3f} at ζ' = {z:g}" for z, r in zetas)
            + "."
        )
    summary = (
        "**Summary over the cases** (means over the "
        f"{len(results) // (len(methods) + 2)} cases; `SW / floor` is the SW to exact "
        "draws over the noise floor of its case, 1 being as close as exact draws).\n\n"
        + markdown_table(SUMMARY_HEADER, summary_rows)
        + "\n\n"
        f"Samplers by mean SW / floor, closest to exact first (mean CPU time for S = "
        f"{draws} draws): {ranked}. " + " ".join(sentences) + "\n"
    )
    pinned = [f"{label}: {k}" for label, _, k in floors if k]
    body = (
        f"Exact oracle denoiser of {PRIOR} with θ fixed (length scale {THETA['length_scale']}, "
        f"anisotropy {THETA['anis_ratio']}, angle {THETA['angle']}) on a {size}² grid, cosine "
        f"schedule (T = 1000); n point observations at uniform locations (bilinear), noise sd "
        f"τ; one seeded true field and set of locations per case; S = {draws} posterior draws "
        f"per sampler, each from its own generator. MCGdiff, DAPS and ΠGDM take {STEPS} steps "
        f"(η = 1), DPS ζ' = 1 and η = 1. Nodes whose exact posterior sd is below {SD_MIN:g} "
        "(pinned by noiseless data) are left out of every per-node column.\n\n"
        f"- `mean err`: RMS over nodes of (sampler mean − exact mean) / exact sd; Monte Carlo "
        f"alone gives about 1/√S = {1 / math.sqrt(draws):.3f}.\n"
        "- `sd ratio`: mean over nodes of sampler sd / exact sd (1 is exact).\n"
        "- `cov90 (exact mass)`: exact posterior probability of the sampler's per-node interval "
        "[q05, q95], mean over nodes (0.90 is exact; finite S puts exact draws a little "
        "below).\n"
        "- `cov90 (truth)`: fraction of nodes whose true value lies in that interval (one "
        "field, so strongly correlated across nodes: compare with the exact row).\n"
        f"- `SW to exact`: sliced 2-Wasserstein distance ({PROJECTIONS} projections) between "
        "the S draws and S exact posterior draws. The `exact` row is the same distance "
        "between two independent sets of S exact draws: the noise floor.\n"
        "- `data misfit`: RMS over draws and observations of A x − y, the draws' misfit to "
        "the data in field units (compare with the exact row; τ = 0 asks for 0).\n"
        "- `MCGdiff limit`: the law MCGdiff's draws converge to as particles → ∞ "
        "(`mcgdiff_limit`, Gaussian, computed exactly; its SW from S draws of it); its gap to "
        "exact is the discretisation of the 100-step chain.\n"
        f"- `wall`, `CPU`: seconds of wall-clock and of process CPU time for the S draws, "
        f"torch on {torch.get_num_threads()} thread(s). The machine's cores were shared with "
        "other work during the run, so wall times are noisy; CPU time is the steadier "
        "measure of cost.\n\n"
        + ("Nodes left out: " + ", ".join(pinned) + ".\n\n" if pinned else "")
        + summary
        + "\n"
        + markdown_table(MAIN_HEADER, main_rows)
        + "\n\n"
        f"**MCGdiff's particle trend** (S = {trend_draws} draws per row, 100 steps, n = "
        f"{trend_n}). `mean err` and `sd ratio` are against `mcgdiff_limit` (its mean and sd), "
        "the law the sampler converges to, so they isolate the particle error (Monte Carlo "
        f"alone gives a mean err of about 1/√S = {1 / math.sqrt(trend_draws):.3f}); `SW` is "
        f"to {trend_draws} exact posterior draws, next to its noise floor at that S. "
        "`min ESS`: smallest over steps of "
        "the relative effective sample size (mean over draws) before resampling; "
        "`resampling steps`: steps at which some draw resampled (of 99).\n\n"
        + markdown_table(TREND_HEADER, trend_rows)
        + "\n\n"
        f"**DPS step size** ζ' ({dps_steps} steps, η = 1), columns as in the first table.\n\n"
        + markdown_table(MAIN_HEADER, dps_rows)
        + "\n"
    )
    print("\n" + body)
    if args.quick or args.print_only:
        return
    cmd = "python benchmarks/bench_posterior_oracle.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    title = f"Posterior samplers with the exact oracle denoiser ({size}², fixed θ)"
    print(f"wrote {update_section('posterior-oracle', title, cmd, body)}")


if __name__ == "__main__":
    main()
