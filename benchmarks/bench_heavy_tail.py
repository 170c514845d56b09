"""Heavy-tailed fields: the learned prior's posterior against NUTS and trans-Gaussian kriging.

One command, resumable (per-dataset results are appended to ``--results`` and reused)::

    python benchmarks/bench_heavy_tail.py --model runs/heavy-tail-32 --datasets 100 \\
        --mcmc-datasets 20

Datasets: θ, a 32² field and ``n`` observations (30 and 100) at distinct random grid
nodes with noise sd 0.1, all drawn from the model's training prior
(``heavy-tail-anisotropy``). Observations at nodes make the grid model and the
continuous one the same, so NUTS's latent values are exactly the field's. Methods, each
with 99 draws (so the order-statistic intervals have exact nominal coverage 0.90 and
0.98):

* ``diffusion`` — MMPS with the trained network (its default settings);
* ``mcmc`` — NUTS over θ and the latent values at the observations
  (:mod:`geodiff.baselines.transformed`), 2 chains, on the first ``--mcmc-datasets``;
* ``tg-fitted`` — today's answer: ``--transform normal-score`` + ordinary kriging (REML);
* ``tg-oracle`` — trans-Gaussian kriging with the true θ and transform.

Scores at every node: CRPS; the threshold-weighted CRPS of the upper tail
(``scoringrules.twcrps_ensemble`` with the chaining function of ``1{z > t90}``, ``t90``
the prior's pooled 90 % quantile); Brier scores of ``P(X > t90)`` and ``P(X > t99)``;
90 % and 98 % coverage; seconds per 100 draws.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import scoringrules
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff.diffusion.model import load_model
from geodiff.evaluate.predictors import PredictionTask, run_predictor
from geodiff.evaluate.tasks import build_task
from geodiff.fields.simulate import simulate
from geodiff.observe import Observations
from geodiff.rng import derive_seed

DRAWS = 99
NOISE_SD = 0.1
METHODS = ("diffusion", "mcmc", "tg-fitted", "tg-oracle")


def prior_thresholds(model, seed: int) -> dict:
    """The prior's pooled 90 % and 99 % quantiles (2,000 exact fields)."""
    fields = simulate(model.prior, model.grid, 2000, seed=derive_seed(seed, 99)).fields
    values = fields.double().numpy().reshape(-1)
    return {"t90": float(np.quantile(values, 0.9)), "t99": float(np.quantile(values, 0.99))}


def node_dataset(model, n_obs: int, seed: int, k: int):
    """θ, a true field and its noisy values at ``n_obs`` distinct random nodes."""
    import torch

    prior, grid = model.prior, model.grid
    gen = torch.Generator().manual_seed(derive_seed(seed, 1, n_obs, k))
    theta = prior.sample_theta(1, gen)
    truth = simulate(prior, grid, 1, seed=derive_seed(seed, 2, n_obs, k), theta=theta).fields[0]
    truth = truth.double().numpy()
    rng = np.random.default_rng(derive_seed(seed, 3, n_obs, k))
    nodes = rng.choice(grid.n_nodes, n_obs, replace=False)
    points = np.asarray(grid.points())[nodes]
    values = truth.reshape(-1)[nodes] + NOISE_SD * rng.standard_normal(n_obs)
    return theta, truth.reshape(-1), Observations.at_points(points, values, NOISE_SD)


def tail_scores(draws: np.ndarray, truth: np.ndarray, thresholds: dict) -> dict:
    """CRPS, upper-tail twCRPS, Brier scores and 90 % / 98 % coverage of 99 draws."""
    s = len(draws)
    order = np.sort(draws, axis=0)
    t90, t99 = thresholds["t90"], thresholds["t99"]
    out = {
        "crps": float(np.mean(scoringrules.crps_ensemble(truth, draws.T, estimator="fair"))),
        "twcrps": float(np.mean(scoringrules.twcrps_ensemble(truth, draws.T, a=t90))),
        "brier90": float(np.mean(((draws > t90).mean(0) - (truth > t90)) ** 2)),
        "brier99": float(np.mean(((draws > t99).mean(0) - (truth > t99)) ** 2)),
    }
    for level, name in ((0.9, "cover90"), (0.98, "cover98")):
        k = max(1, round((1 - level) / 2 * (s + 1)))
        out[name] = float(np.mean((truth >= order[k - 1]) & (truth <= order[s - k])))
    return out


def score_dataset(model, n_obs: int, k: int, args, thresholds: dict) -> dict:
    theta, truth, obs = node_dataset(model, n_obs, args.seed, k)
    grid = model.grid
    task = PredictionTask(model.prior, obs, grid, model=model, theta=theta, grid_field=False)
    run = functools.partial(run_predictor, task=task, seed=args.seed, key=(n_obs, k),
                            draws=DRAWS)  # fmt: skip
    wanted = [m for m in args.methods if m != "mcmc" or k < args.mcmc_datasets]
    preds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in wanted:
            if name == "diffusion":
                preds[name] = run("diffusion", **args.diffusion_options)
            elif name == "tg-oracle":
                preds[name] = run("kriging-oracle")
            elif name == "tg-fitted":
                fitted = build_task(obs, "grid", model=model, transform="normal-score")
                preds[name] = run_predictor("kriging-ok", fitted, seed=args.seed,
                                            key=(n_obs, k), draws=DRAWS)  # fmt: skip
            else:
                preds[name] = run("mcmc", warmup=args.mcmc_warmup, samples=args.mcmc_samples,
                                  on_grid=False)  # fmt: skip
    record = {"n_obs": n_obs, "dataset": k}
    for name, pred in preds.items():
        draws = pred.draws if pred.draws is not None else _quantile_draws(pred)
        record[name] = {"seconds": pred.seconds, **tail_scores(draws, truth, thresholds)}
        if name == "diffusion":  # what it ran with, the model's stored settings included
            record[name]["options"] = {k: v for k, v in pred.info.get("options", {}).items()
                                       if isinstance(v, (int, float, str, type(None)))}  # fmt: skip
        if name == "mcmc":
            record[name]["max_rhat"] = pred.info["max_rhat"]
            record[name]["divergences"] = pred.info["divergences"]
    return record


def with_changes(args, **changes) -> argparse.Namespace:
    """A copy of ``args`` with ``changes``."""
    return argparse.Namespace(**{**vars(args), **changes})


def _quantile_draws(pred) -> np.ndarray:
    """A prediction without joint draws as its marginal quantiles at levels i / (S + 1):
    the order-statistic intervals of :func:`tail_scores` are then its exact 90 % and 98 %
    intervals, and the ensemble CRPS approximates its own (only marginal scores are used).
    """
    return pred.quantiles(np.arange(1, DRAWS + 1) / (DRAWS + 1))


def _read(path: Path) -> dict:
    if not path.exists():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        done.setdefault((record["n_obs"], record["dataset"]), {}).update(record)
    return done


def _mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def report(records: list, args, thresholds: dict) -> str:
    scores = ("crps", "twcrps", "brier90", "brier99", "cover90", "cover98")
    lines = [
        f"Datasets from `heavy-tail-anisotropy` on a 32² grid, observations at random nodes "
        f"with noise sd {NOISE_SD}; {DRAWS} draws per method; thresholds: the prior's pooled "
        f"90 % quantile t90 = {thresholds['t90']:.3f} and 99 % t99 = {thresholds['t99']:.3f}. "
        "Means ± standard errors over datasets; lower is better except coverage (nominal "
        "0.900 and 0.980, exact for order-statistic intervals of 99 draws).",
        "",
        "| observations | method | datasets | CRPS | twCRPS (> t90) | Brier t90 | Brier t99 | "
        "cover 90 % | cover 98 % | s per 100 draws |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_obs in args.n_obs:
        rows = [r for r in records if r["n_obs"] == n_obs]
        for name in METHODS:
            have = [r[name] for r in rows if name in r]
            if len(have) < 2:
                continue
            cells = []
            for score in scores:
                mean, se = _mean_se([h[score] for h in have])
                cells.append(f"{mean:.4f} ± {se:.4f}")
            seconds = np.mean([h["seconds"] for h in have]) * 100 / DRAWS
            lines.append(f"| {n_obs} | {name} | {len(have)} | {' | '.join(cells)} | "
                         f"{seconds:.1f} |")  # fmt: skip
    lines += ["", *_ratios(records, args)]
    return "\n".join(lines)


#: NUTS counts as converged on a dataset whose largest R-hat is below this (2 chains)
RHAT_CONVERGED = 1.1
SCORES = ("crps", "twcrps", "brier90", "brier99")


def _paired_ratio(pairs: list, other: str, score: str) -> str:
    """``mean(diffusion) / mean(other)`` ± the standard error of the paired differences
    over the same datasets, in units of ``mean(other)``."""
    mine = np.array([r["diffusion"][score] for r in pairs])
    theirs = np.array([r[other][score] for r in pairs])
    se = (mine - theirs).std(ddof=1) / np.sqrt(len(pairs)) / theirs.mean()
    return f"{score} {mine.mean() / theirs.mean():.3f} ± {se:.3f}"


def _ratios(records: list, args) -> list:
    """Paired ratios of the diffusion's scores to the others', on the datasets both ran;
    against NUTS also on those where it converged (:data:`RHAT_CONVERGED`)."""
    out = ["Paired ratios (mean of diffusion / mean of the other over the same datasets, ± "
           "the standard error of the paired differences):", ""]  # fmt: skip
    for n_obs in args.n_obs:
        rows = [r for r in records if r["n_obs"] == n_obs and "diffusion" in r]
        converged = [r for r in rows if "mcmc" in r and r["mcmc"]["max_rhat"] < RHAT_CONVERGED]
        subsets = [("tg-fitted", rows, ""), ("mcmc", rows, ""), ("tg-oracle", rows, ""),
                   ("mcmc", converged, f", NUTS's R-hat < {RHAT_CONVERGED}")]  # fmt: skip
        for other, subset, where in subsets:
            pairs = [r for r in subset if other in r]
            if len(pairs) < 2:
                continue
            ratios = ", ".join(_paired_ratio(pairs, other, s) for s in SCORES)
            out.append(f"- {n_obs} observations, diffusion / {other} ({len(pairs)} datasets"
                       f"{where}): {ratios}")  # fmt: skip
        rhats = [r["mcmc"]["max_rhat"] for r in rows if "mcmc" in r]
        if rhats:
            divs = sum(r["mcmc"]["divergences"] for r in rows if "mcmc" in r)
            both = [r for r in rows if "mcmc" in r]
            slower = sum(r["mcmc"]["seconds"] for r in both) / sum(
                r["diffusion"]["seconds"] for r in both
            )
            # the median is robust to the few datasets timed while the CPU was shared
            median = np.median([r["mcmc"]["seconds"] / r["diffusion"]["seconds"] for r in both])
            out.append(f"- {n_obs} observations, NUTS: largest R-hat {max(rhats):.3f}, median "
                       f"{np.median(rhats):.3f}, below {RHAT_CONVERGED} on {len(converged)} of "
                       f"{len(rhats)} datasets; {divs} divergences in all; {slower:.1f} × the "
                       f"diffusion's time for the same draws in total, {median:.1f} × in the "
                       "median dataset")  # fmt: skip
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/heavy-tail-32")
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--mcmc-datasets", type=int, default=20)
    parser.add_argument("--mcmc-warmup", type=int, default=300)
    parser.add_argument("--mcmc-samples", type=int, default=100)
    parser.add_argument("--n-obs", type=int, nargs="+", default=[30, 100])
    parser.add_argument("--results", type=Path, default=Path("runs/heavy-tail-posterior.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="methods to run (runs with different ones may share --results)",
    )
    parser.add_argument(
        "--diffusion-options",
        type=json.loads,
        default={},
        help="the diffusion predictor's options as JSON, e.g. '{\"cg_iterations\": 0}'",
    )
    parser.add_argument("--print-only", action="store_true")
    args = parser.parse_args(argv)
    model = load_model(args.model, "cpu")
    thresholds = prior_thresholds(model, args.seed)
    done = _read(args.results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for k in range(args.datasets):
        for n_obs in args.n_obs:
            have = done.get((n_obs, k), {})
            todo = [m for m in args.methods if m not in have]
            if not todo or (todo == ["mcmc"] and k >= args.mcmc_datasets):
                continue
            record = score_dataset(model, n_obs, k, with_changes(args, methods=todo), thresholds)
            done.setdefault((n_obs, k), {}).update(record)
            with args.results.open("a") as f:  # one write per line: safe for parallel runs
                f.write(json.dumps(record) + "\n")
            print(f"dataset {k} ({n_obs} obs): "
                  + ", ".join(f"{m} {record[m]['crps']:.4f}" for m in METHODS if m in record),
                  flush=True)  # fmt: skip
    records = [done[key] for key in sorted(done) if key[1] < args.datasets]
    body = report(records, args, thresholds)
    print(body)
    if not args.print_only:
        command = (f"python benchmarks/bench_heavy_tail.py --model {args.model} --datasets "
                   f"{args.datasets} --mcmc-datasets {args.mcmc_datasets} --mcmc-warmup "
                   f"{args.mcmc_warmup} --mcmc-samples {args.mcmc_samples}")  # fmt: skip
        if args.diffusion_options:
            command += f" --diffusion-options '{json.dumps(args.diffusion_options)}'"
        update_section("heavy-tail-posterior", "Heavy-tailed fields: posterior prediction",
                       command, body)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
