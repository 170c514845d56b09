"""Posterior samplers with a trained prior, against kriging and MCMC, over many datasets.

For each of ``--pairs`` datasets: parameters θ and a true field are drawn from the
model's training prior (exact simulation on the model's grid), the field is observed at
``--obs`` uniform random points (bilinear reads of the grid field) with noise ``--noise``,
and every method predicts the whole grid:

* ``kriging-oracle`` — simple kriging with the true θ (exact posterior given θ);
* ``kriging-ok`` — ordinary kriging with a covariance fitted by REML (the plug-in practice);
* ``mcmc`` — the fully Bayesian reference (NUTS over θ, then exact conditional draws);
* each diffusion posterior sampler with the trained network.

Scores at the grid nodes, averaged over nodes and datasets: CRPS (ensemble "fair" CRPS
for draws, closed form for Gaussian predictions), RMSE of the posterior mean, coverage
of central 90% intervals, the rank histogram of the truth among the draws (10 bins; PIT
for Gaussian predictions) and wall time. Results are appended to a JSON-lines file per
dataset, so an interrupted run resumes where it stopped.

Usage: ``python benchmarks/bench_posterior_prior.py --model data/stationary-matern-32``
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff.diffusion.model import load_model
from geodiff.evaluate.datasets import synthetic_dataset
from geodiff.evaluate.predictors import PredictionTask, run_predictor
from geodiff.metrics.scores import RANK_BINS as BINS
from geodiff.metrics.scores import rank_histogram, score_prediction
from geodiff.tables import markdown_table

#: each diffusion entry: a posterior method with its options; an entry may name another
#: method with "method" (a variant, e.g. {"mmps-cg1": {"method": "mmps", "cg_iterations": 1}})
#: and the network's arithmetic with "precision" ("float32" or "bfloat16")
DIFFUSION = {
    "mmps": {"steps": 25, "cg_iterations": 1},
    "daps": {"steps": 50},
    "pigdm": {"steps": 50},
    "mcgdiff": {"steps": 30, "particles": 8},
    "dps": {"steps": 200},
}


def run_pair(model, k: int, args, samplers: dict) -> dict:
    """Every method of ``args.methods`` on dataset ``k``: its scores and times."""
    grid = model.grid
    theta, truth, obs = synthetic_dataset(model.prior, grid, args.obs, args.noise, args.seed, k)
    truth = truth.reshape(-1)
    task = PredictionTask(model.prior, obs, grid, model=model, theta=theta)
    out = {"pair": k}
    for method in args.methods:
        if method in samplers:  # a diffusion sampler, or a named variant of one
            options = dict(samplers[method])
            options["method"] = options.pop("method", method)
            model.denoiser.set_precision(options.pop("precision", "float32"))
            name, options["batch_size"] = "diffusion", args.batch_size
        elif method == "mcmc":
            name, options = method, {"warmup": args.mcmc_warmup, "samples": args.mcmc_samples}
        else:
            name, options = method, {}
        pred = run_predictor(name, task, draws=args.draws, seed=args.seed, key=(k,), **options)
        score = score_prediction(pred, truth, seed=k)
        score["wall_s"], score["draws"] = pred.seconds, args.draws
        if method == "mcmc":
            score["fixed_s"] = pred.info["parameter_seconds"]
            score["max_rhat"] = float(pred.info["max_rhat"])
            score["divergences"] = int(pred.info["divergences"])
        out[method] = score
        if args.verbose:
            print(f"dataset {k} {method}: {score['wall_s']:.1f} s, CRPS {score['crps']:.4f}")
    return out


def summarise(records: list[dict], methods: list[str], draws: int) -> str:
    """The markdown table; CRPS ratios to MCMC over the datasets both were run on."""
    rows = []
    for m in methods:
        scored = [r[m] for r in records if m in r]
        if not scored:
            continue
        c = np.array([r["crps"] for r in scored])
        both = [r for r in records if m in r and "mcmc" in r]
        ratio = paired = "—"
        if both:
            diff = np.array([r[m]["crps"] - r["mcmc"]["crps"] for r in both])
            mine = np.mean([r[m]["crps"] for r in both])
            ratio = f"{mine / np.mean([r['mcmc']['crps'] for r in both]):.3f}"
            if len(both) > 1 and m != "mcmc":
                paired = f"{diff.mean():+.4f} ± {diff.std(ddof=1) / math.sqrt(len(diff)):.4f}"
        cover = np.array([r["cover90"] for r in scored])
        cover_se = cover.std(ddof=1) / math.sqrt(len(cover)) if len(cover) > 1 else float("nan")
        counts = np.sum([r["ranks"] for r in scored], axis=0)
        _, p = rank_histogram(np.repeat(np.arange(BINS), counts), BINS - 1, bins=BINS)
        wall = np.array([r["wall_s"] for r in scored])
        fixed = np.array([r.get("fixed_s", 0.0) for r in scored])
        made = np.array([r.get("draws", draws) for r in scored])  # older records: this run's
        if m.startswith("kriging"):
            per100 = f"{wall.mean():.2f} (mean and sd, no draws)"
        else:
            per100 = f"{np.mean(fixed + (wall - fixed) * 100 / made):.1f}"
        se = c.std(ddof=1) / math.sqrt(len(c)) if len(c) > 1 else float("nan")
        shares = " ".join(f"{x / counts.sum():.3f}" for x in counts)
        rows.append(
            (
                m,
                len(scored),
                f"{c.mean():.4f} ± {se:.4f}",
                ratio,
                paired,
                f"{np.mean([r['rmse'] for r in scored]):.4f}",
                f"{cover.mean():.3f} ± {cover_se:.3f}",
                shares,
                f"{p:.2g}",
                per100,
            )
        )
    header = (
        "method",
        "datasets",
        "CRPS (± se)",
        "CRPS / MCMC",
        "CRPS − MCMC (paired se)",
        "RMSE",
        "90% coverage (± se)",
        "rank histogram (10 bins)",
        "χ² p",
        "s per 100 draws",
    )
    lines = [markdown_table(header, rows)]
    rhat = np.array([r["mcmc"]["max_rhat"] for r in records if "mcmc" in r])
    if len(rhat):
        lines.append(
            f"\nMCMC: {int((rhat > 1.05).sum())} of {len(rhat)} runs had a max R-hat above 1.05."
        )
        converged = [r for r in records if r.get("mcmc", {}).get("max_rhat", 2.0) <= 1.05]
        for m in methods:
            both = [r for r in converged if m in r and m != "mcmc"]
            if 1 < len(both) < len(rhat):
                diff = np.array([r[m]["crps"] - r["mcmc"]["crps"] for r in both])
                ratio = np.mean([r[m]["crps"] for r in both]) / np.mean(
                    [r["mcmc"]["crps"] for r in both]
                )
                lines.append(
                    f"On the {len(both)} datasets where MCMC converged, {m}'s CRPS is "
                    f"{ratio:.3f} x MCMC's ({diff.mean():+.4f} ± "
                    f"{diff.std(ddof=1) / math.sqrt(len(diff)):.4f})."
                )
        divergent = [
            r["mcmc"]["divergences"] for r in records if "divergences" in r.get("mcmc", {})
        ]
        if divergent:
            lines.append(
                f"{sum(d > 0 for d in divergent)} of {len(divergent)} runs had divergent "
                f"transitions, {sum(divergent)} in all."
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="data/stationary-matern-32")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--obs", type=int, default=30, help="observations per dataset")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=19, help="draws per method and dataset")
    parser.add_argument(
        "--methods",
        default="kriging-oracle,kriging-ok,mcmc,mmps,daps,pigdm,mcgdiff,dps",
        help="comma-separated",
    )
    parser.add_argument(
        "--sampler-options",
        type=json.loads,
        default={},
        help='JSON overriding the samplers\' options, e.g. \'{"mcgdiff": {"particles": 64}}\'',
    )
    parser.add_argument("--mcmc-warmup", type=int, default=200)
    parser.add_argument("--mcmc-samples", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=None, help="JSON-lines file (resumed)")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--skip", type=int, default=0, help="leave the first datasets to an earlier run"
    )
    parser.add_argument(
        "--mcmc-pairs",
        type=int,
        default=None,
        help="run MCMC on the first datasets only (default: all --pairs)",
    )
    parser.add_argument("--note", default="", help="a sentence for the report (how it was run)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 when sharing a small CPU)"
    )
    parser.add_argument("--verbose", action="store_true", help="print each method's time")
    parser.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument(
        "--section", default=None, help="BENCHMARKS.md section (default: one per model)"
    )
    args = parser.parse_args(argv)
    args.methods = args.methods.split(",")
    if (args.draws + 1) % 20:
        parser.error("--draws + 1 must be a multiple of 20 (exact 90% intervals, 10 rank bins)")
    if args.threads:
        torch.set_num_threads(args.threads)
    samplers = {m: dict(opts) for m, opts in DIFFUSION.items()}
    for method, opts in args.sampler_options.items():
        samplers[method] = {**samplers.get(method, {}), **opts}
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model, device)
    name = Path(args.model).name
    results = args.results or Path("runs") / f"bench_posterior_prior-{name}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if results.exists():
        for line in results.read_text().splitlines():
            record = json.loads(line)  # lines of one dataset merge (runs may share a file)
            done[record["pair"]] = {**done.get(record["pair"], {}), **record}
    from tqdm.auto import tqdm

    for k in tqdm(range(args.pairs), desc="datasets"):
        if k < args.skip:
            continue
        wanted = [m for m in args.methods if m != "mcmc" or k < (args.mcmc_pairs or args.pairs)]
        todo = [m for m in wanted if m not in done.get(k, {})]
        if not todo:
            continue
        record = run_pair(model, k, argparse.Namespace(**{**vars(args), "methods": todo}), samplers)
        done[k] = {**done.get(k, {}), **record}
        with results.open("a") as f:
            f.write(json.dumps(done[k]) + "\n")
    records = [done[k] for k in sorted(done)]
    every = list(dict.fromkeys(m for r in records for m in r if m != "pair"))
    table = summarise(records, every, args.draws)
    options = ", ".join(f"{m}: {samplers[m]}" for m in every if m in samplers)
    sampled = [m for m in every if not m.startswith("kriging")]  # kriging makes no draws
    made = {m: sorted({r[m].get("draws", args.draws) for r in records if m in r}) for m in sampled}
    if all(d == [args.draws] for d in made.values()):
        draws_text = f"{args.draws} posterior draws per method and dataset"
    else:
        draws_text = "posterior draws per method and dataset: " + ", ".join(
            f"{m} {'/'.join(map(str, d))}" for m, d in made.items()
        )
    body = (
        f"Model `{args.model}` on {device}; datasets drawn from its training prior, "
        f"{args.obs} point observations each with noise sd {args.noise}; scores over all "
        f"{model.grid.shape[0]}x{model.grid.shape[1]} grid nodes; {draws_text}; "
        f"MCMC: 2 chains x ({args.mcmc_warmup} warm-up + "
        f"{args.mcmc_samples}) draws. Sampler options: {options}. {args.note}\n\n"
        "CRPS: mean over nodes and datasets (se over datasets). Coverage: fraction of nodes "
        "whose truth lies in the central 90% interval. Rank histogram: share of the truth's "
        "rank among the draws in 10 equal bins (0.1 each when calibrated; PIT for the Gaussian "
        "kriging predictions); the χ² p-value treats nodes as independent, which they are not, "
        "so read it as a summary. Time per 100 draws: diffusion scaled linearly from "
        "the draws it made (one batch); MCMC = NUTS + 100 conditional draws.\n\n" + table
    )
    print(body)
    if not args.no_report:
        given = list(sys.argv[1:] if argv is None else argv)
        if "--note" in given:  # the note is in the body, not in the command
            del given[given.index("--note") : given.index("--note") + 2]
        command = "python benchmarks/bench_posterior_prior.py " + " ".join(
            shlex.quote(a) for a in given
        )
        key, title = f"posterior-prior-{name}", f"Posterior prediction with {name}"
        if args.section:
            key, title = f"{key}-{args.section}", f"{title}: {args.section}"
        update_section(key, title, command, body)


if __name__ == "__main__":
    main()
