"""A training run's validation history as a BENCHMARKS.md section.

Reads ``RUN/metrics.jsonl`` (written by ``geodiff train``): every validation record
(the EMA network's denoising MSE over the oracle's, per noise level) and the learning
rate in force at that step, and writes the section "training-RUN".

Usage::

    python benchmarks/report_training.py --run runs/nonstationary-anisotropy-32 [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section

from geodiff.tables import markdown_table


def history(run: Path) -> tuple[list[dict], dict, list[dict]]:
    """(validation records, learning rate by step, training-loss records) of a run's log."""
    validations, lr, losses = [], {}, []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if record.get("kind") == "validation":
            validations.append(record)
        elif "lr" in record:
            lr[record["step"]] = record["lr"]
            losses.append(record)
    return validations, lr, losses


def loss_curve(losses: list[dict], rows: int = 10) -> str:
    """The training loss in about ``rows`` spans of steps: mean loss, fields/s, hours."""
    if not losses:
        return ""
    start, out = losses[0]["time"], []
    size = max(1, -(-len(losses) // rows))
    for lo in range(0, len(losses), size):
        span = losses[lo : lo + size]
        out.append((span[-1]["step"], f"{sum(r['loss'] for r in span) / len(span):.4f}",
                    f"{sum(r['fields_per_s'] for r in span) / len(span):.1f}",
                    f"{(span[-1]['time'] - start) / 3600:.2f}"))  # fmt: skip
    header = ("step", "training loss (mean of the span)", "fields/s", "hours since first log")
    return "\n\nTraining loss:\n\n" + markdown_table(header, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    validations, lr, losses = history(args.run)
    if not validations and not losses:
        raise SystemExit(f"{args.run}: no records yet")
    sigmas = validations[-1]["sigma"] if validations else []
    rows = []
    for v in validations:
        before = [s for s in lr if s <= v["step"]]
        rate = lr[max(before)] if before else float("nan")
        rows.append((v["step"], f"{rate:.2g}", f"{max(v['ratio']):.3f}",
                     *(f"{r:.3f}" for r in v["ratio"])))  # fmt: skip
    header = ("step", "lr", "worst", *(f"σ={s:.3g}" for s in sigmas))
    body = (
        f"Validation records of `{args.run}`: the EMA network's denoising MSE divided by "
        "the exact mixture oracle's, at each validation noise level σ (1.00 is the Bayes "
        "risk; the aim is ≤ 1.10 everywhere), with the learning rate then in force. "
        f"{args.note}\n\n"
        + (markdown_table(header, rows) if rows else "(none yet)")
        + loss_curve(losses)
    )
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python benchmarks/report_training.py " + " ".join(given)
    path = update_section(f"training-{args.run.name}", f"Training progress: {args.run.name}",
                          command, body)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
