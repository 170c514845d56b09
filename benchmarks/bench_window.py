"""Which window and network make the best any-size prior per CPU-hour.

Each configuration trains ``spde-anisotropy`` from scratch (the shipped model's recipe,
``geodiff train --prior spde-anisotropy --network conv --grid 64 --batch-size 32
--fields-per-theta 8``, with the network or the window changed, and the batch with the
window) until its process has used the same CPU
time (``--cpu-minutes``, counted by the process itself, so configurations may share the
machine and still get equal budgets). All run at once, one torch thread each; an
interrupted run resumes from its last checkpoint with the CPU time it had spent then.

Every trained network is then scored on the same fields: its denoising MSE over the exact
mixture oracle's (:func:`bench_any_size.denoising_errors`) at 64² and 128², grids larger than
either window. Windows differ in nodes per field, so the batch is set to equal nodes per
optimiser step (128 fields of 32², 32 of 64²): configurations see the same number of nodes
per step and differ in what one field spans.

Usage: ``python benchmarks/bench_window.py --cpu-minutes 40 --fields 32``
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script
from bench_any_size import denoising_errors, mse_sigmas

from geodiff.diffusion.model import UnfinishedRunWarning, load_model
from geodiff.io import write_text
from geodiff.tables import markdown_table

#: window side, network and batch (equal nodes per step) of each configuration
CONFIGS = {
    "32² window, conv": {"grid": 32, "network": "conv", "batch": 128},
    "64² window, conv": {"grid": 64, "network": "conv", "batch": 32},
    "32² window, conv-wide": {"grid": 32, "network": "conv-wide", "batch": 128},
    "64² window, conv-wide": {"grid": 64, "network": "conv-wide", "batch": 32},
}
#: the shipped model's configuration, the baseline of the ratios
BASELINE = "64² window, conv"
CHECKPOINT_EVERY = 50


def _run_dir(args, name: str) -> Path:
    return Path(args.runs) / name.replace("² window, ", "-")


def _ledger(run: Path) -> dict:
    path = run / "cpu.json"
    return json.loads(path.read_text()) if path.exists() else {"step": 0, "cpu_s": 0.0}


def train_to_budget(run: Path, config: dict, budget_s: float) -> None:
    """Train one configuration in this process until its CPU time, plus what the run spent
    before an interruption (``cpu.json``), reaches ``budget_s``; then checkpoint and stop."""
    from geodiff.diffusion.training import TrainingConfig, train_command

    before, started = _ledger(run)["cpu_s"], time.process_time()

    def spend(step, loss):
        spent = before + time.process_time() - started
        if spent >= budget_s or step % CHECKPOINT_EVERY == 0:  # the trainer checkpoints next
            write_text(run / "cpu.json", json.dumps({"step": step, "cpu_s": spent}))
        if spent >= budget_s:
            raise KeyboardInterrupt  # the trainer checkpoints this step and re-raises

    settings = TrainingConfig(steps=10**7, batch_size=config["batch"],
                              checkpoint_every=CHECKPOINT_EVERY, validate_every=10**9,
                              log_every=10, oracle_components=0, n_preview=0, seed=0)  # fmt: skip
    try:
        train_command(run, settings, prior="spde-anisotropy", grid=str(config["grid"]),
                      network=config["network"], fields_per_theta=8, device="cpu",
                      progress=False, callback=spend)  # fmt: skip
    except KeyboardInterrupt:
        pass


def train_all(args) -> None:
    """Train every configuration not yet at its budget, all at once (one thread each)."""
    children = []
    for name in CONFIGS:
        run = _run_dir(args, name)
        if _ledger(run)["cpu_s"] >= 60.0 * args.cpu_minutes:
            continue  # at its budget (a larger --cpu-minutes resumes it)
        run.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, __file__, "--train-one", name, "--runs", args.runs,
                "--cpu-minutes", str(args.cpu_minutes)]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        with (run / "train.log").open("a") as log:
            children.append((name, subprocess.Popen(argv, stdout=log, stderr=log, env=env)))
    for name, child in children:
        if child.wait():
            raise SystemExit(f"{name}: training failed (exit {child.returncode}): see train.log")


def score_all(args) -> list[dict]:
    """Each trained configuration's MSE ratios at ``args.sizes`` (same fields for all)."""
    torch.set_num_threads(args.threads)
    results = []
    for name, config in CONFIGS.items():
        run = _run_dir(args, name)
        ledger = _ledger(run)
        if ledger["cpu_s"] < 60.0 * args.cpu_minutes:
            raise SystemExit(f"{name}: not trained to its budget yet ({run})")
        with warnings.catch_warnings():  # stopped by its budget: "unfinished" by design
            warnings.simplefilter("ignore", UnfinishedRunWarning)
            model = load_model(run, "cpu")
        log = run / "metrics.jsonl"
        metrics = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        losses = [r["loss"] for r in metrics if "loss" in r] or [float("nan")]
        row = {
            "name": name,
            **config,
            "parameters": model.denoiser.n_parameters,
            "step": int(model.info.get("step", ledger["step"])),
            "cpu_s": ledger["cpu_s"],
            "loss": float(np.mean(losses[-max(1, len(losses) // 5) :])),
            "sigmas": mse_sigmas(model).tolist(),
        }
        for size in args.sizes:
            network, floor = denoising_errors(model, size, args.fields, args.components,
                                              args.seed)  # fmt: skip
            row[f"network{size}"], row[f"oracle{size}"] = network.tolist(), floor.tolist()
            print(name, size, np.round(network.sum(0) / floor.sum(0), 3), flush=True)
        results.append(row)
    write_text(Path(args.runs) / "scores.json", json.dumps(results, indent=1))
    return results


def excess(row: dict, size: int) -> np.ndarray:
    """Per field: the network's excess MSE over the oracle's, in units of the oracle's mean
    at each σ, averaged over σ; shape (n_fields,). Its mean is the mean ratio minus 1."""
    network, floor = np.asarray(row[f"network{size}"]), np.asarray(row[f"oracle{size}"])
    return ((network - floor) / floor.mean(0)).mean(1)


def report(results: list[dict], args) -> str:
    """The comparison table and its legend."""
    base = next(r for r in results if r["name"] == BASELINE)
    sigmas = results[0]["sigmas"]
    rows = []
    for r in results:
        cells = [r["name"], f"{r['parameters'] / 1e6:.1f} M", r["step"],
                 f"{r['step'] * r['batch'] * r['grid'] ** 2 / 1e6:.1f}",
                 f"{r['cpu_s'] / 60:.1f}"]  # fmt: skip
        for size in args.sizes:
            network, floor = np.asarray(r[f"network{size}"]), np.asarray(r[f"oracle{size}"])
            ratios = network.sum(0) / floor.sum(0)
            mine, theirs = excess(r, size), excess(base, size)
            se = (mine - theirs).std(ddof=1) / np.sqrt(len(mine)) / theirs.mean()
            cells += [" / ".join(f"{x:.3f}" for x in ratios[1:5]), f"{ratios.mean():.4f}",
                      f"{mine.mean() / theirs.mean():.3f} ± {se:.3f}"]  # fmt: skip
        rows.append(cells)
    header = ["configuration", "parameters", "steps", "M nodes seen", "CPU min"]
    for size in args.sizes:
        shown = " / ".join(f"{s:.2g}" for s in sigmas[1:5])
        header += [f"{size}²: σ≈{shown}", f"{size}²: mean over σ", f"{size}²: excess / base"]
    best = {s: min(results, key=lambda r: excess(r, s).mean())["name"] for s in args.sizes}
    return (
        f"Each configuration trained `spde-anisotropy` from scratch for {args.cpu_minutes} "
        "CPU-minutes of its own process (one torch thread; all ran at once on this "
        "2-core machine, so each budget is CPU time, not wall time), with the shipped "
        "recipe (`--fields-per-theta 8`, learning rate 2e-4 with 500 warm-up steps, EMA "
        "0.999) and the batch set to equal nodes per step (128 fields of 32², 32 of 64²). "
        f"Scores: the EMA network's denoising MSE over the exact mixture oracle's on "
        f"{args.fields} fields of each size drawn from {args.components} θ draws, the same "
        "fields and noise for every configuration (1 is the oracle; its floor sits a little "
        "below the prior's Bayes risk, so compare rows, not ratios with 1). Excess / base: "
        "the mean over σ of the excess MSE over the oracle's, over the baseline's "
        f"(`{BASELINE}`, the shipped recipe), ± the standard error of the per-field paired "
        "differences; below 1 is better. Lowest excess: "
        + "; ".join(f"{s}²: {best[s]}" for s in args.sizes) + ".\n\n"
        + markdown_table(header, rows)
    )  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-minutes", type=float, default=40.0, help="budget per config")
    parser.add_argument("--runs", default="runs/window", help="run folders (resumed)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--fields", type=int, default=16, help="scored fields per size")
    parser.add_argument("--components", type=int, default=4, help="oracle θ draws")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for scoring")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--train-one", choices=CONFIGS, help=argparse.SUPPRESS)  # a child
    args = parser.parse_args(argv)
    if args.train_one:
        run = _run_dir(args, args.train_one)
        train_to_budget(run, CONFIGS[args.train_one], 60.0 * args.cpu_minutes)
        return
    started = time.perf_counter()
    train_all(args)
    print(f"training done after {time.perf_counter() - started:.0f} s", flush=True)
    if args.train_only:
        return
    body = report(score_all(args), args)
    print(body)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--train-only"]
    update_section("window-choice", "Window and network of the any-size prior per CPU-hour",
                   "python benchmarks/bench_window.py " + shlex.join(given), body)  # fmt: skip


if __name__ == "__main__":
    main()
