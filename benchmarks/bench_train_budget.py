"""What trains the non-stationary prior best per CPU-minute: short runs side by side.

Each configuration runs ``geodiff train`` from scratch for the same wall-clock budget
(``--seconds``) on fresh simulations, one after the other on the same core, and is
scored by its training loss (the v-prediction MSE over random noise levels, an unbiased
estimate of the test loss since every field is new) averaged over the last third of
its logged windows, and by the fields it processed. The ratio to the baseline
configuration (the shipped model's recipe) in the same run is the figure to read.

Usage: ``python benchmarks/bench_train_budget.py --seconds 300 --threads 1``
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff.tables import markdown_table

#: the shipped model's recipe and one change at a time
BASE = {
    "--network": "small",
    "--batch-size": "64",
    "--lr": "5e-4",
    "--fields-per-theta": "8",
}
CONFIGS = {
    "shipped recipe": {},
    "fields-per-theta 1": {"--fields-per-theta": "1"},
    "lr 1e-3": {"--lr": "1e-3"},
    "batch 32": {"--batch-size": "32"},
    "tiny network": {"--network": "tiny"},
}


def run_config(name: str, flags: dict, args) -> dict:
    """Train one configuration for ``args.seconds``; its loss and throughput."""
    out = Path(args.runs) / name.replace(" ", "-")
    settings = {**BASE, **flags}
    if not (out / "metrics.jsonl").exists():
        # the library, not the command, to log every 10 steps (the command logs every 50)
        script = (
            "from geodiff.diffusion.training import TrainingConfig, train_command\n"
            f"config = TrainingConfig(steps=10**6, batch_size={settings['--batch-size']}, "
            f"learning_rate={settings['--lr']}, warmup_steps=50, ema_decay=0.998, "
            "checkpoint_every=10**6, validate_every=10**6, log_every=10, seed=0, "
            "oracle_components=0)\n"
            f"train_command({str(out)!r}, config, prior={args.prior!r}, grid='32', "
            f"network={settings['--network']!r}, "
            f"fields_per_theta={settings['--fields-per-theta']}, progress=False)\n"
        )
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        try:
            subprocess.run([sys.executable, "-c", script], env=env, timeout=args.seconds)
        except subprocess.TimeoutExpired:
            pass  # the budget is spent: the logged windows are the result
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]
    tail = records[-max(1, len(records) // 3) :]
    batch = int(settings["--batch-size"])
    return {
        "steps": records[-1]["step"] if records else 0,
        "fields": (records[-1]["step"] if records else 0) * batch,
        "loss": float(np.mean([r["loss"] for r in tail])) if tail else float("nan"),
        "loss_sd": float(np.std([r["loss"] for r in tail], ddof=1)) if len(tail) > 1 else 0.0,
        "windows": len(tail),
        "fields_per_s": float(np.mean([r["fields_per_s"] for r in records])) if records else 0,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default="nonstationary-anisotropy")
    parser.add_argument("--seconds", type=int, default=300, help="wall-clock budget per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="runs/train-budget", help="run folders (reused)")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    results = {name: run_config(name, flags, args) for name, flags in CONFIGS.items()}
    base = results["shipped recipe"]["loss"]
    rows = [
        (
            name,
            " ".join(f"{k} {v}" for k, v in CONFIGS[name].items()) or "—",
            r["steps"],
            r["fields"],
            f"{r['fields_per_s']:.1f}",
            f"{r['loss']:.4f} ± {r['loss_sd'] / np.sqrt(r['windows']):.4f}",
            f"{r['loss'] / base:.3f}",
        )
        for name, r in results.items()
    ]
    header = ("configuration", "change", "steps", "fields", "fields/s", "loss (± se)", "/ base")
    body = (
        f"Each configuration trained `{args.prior}` on a 32² grid from scratch for "
        f"{args.seconds} s of wall time, one after the other, torch on {args.threads} "
        "thread(s); base recipe: " + ", ".join(f"`{k} {v}`" for k, v in BASE.items()) +
        ", learning-rate warm-up 50 steps. Loss: the training v-prediction MSE (fresh "
        "fields, so an unbiased test loss) averaged over the last third of the logged "
        "10-step windows, with its standard error over windows. A short budget favours "
        "what learns fast early; it does not show where each configuration ends after "
        f"hours. {args.note}\n\n" + markdown_table(header, rows)
    )  # fmt: skip
    print(body)
    given = list(sys.argv[1:] if argv is None else argv)
    if "--note" in given:  # the note is in the body, not in the command
        del given[given.index("--note") : given.index("--note") + 2]
    command = "python benchmarks/bench_train_budget.py " + shlex.join(given)
    update_section(
        "train-budget", "Training the non-stationary prior per CPU-minute", command, body
    )


if __name__ == "__main__":
    main()
