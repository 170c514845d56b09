"""The validation report of every shipped checkpoint, and its summary in BENCHMARKS.md.

    python benchmarks/bench_validate.py [--models data/stationary-matern-32 ...] [--threads 1]

Runs ``geodiff validate`` with its full default settings on each model (every folder of
``data/`` holding a ``model.safetensors`` by default), writes each report with its figures
to ``docs/validation/<name>/`` and its summary table (checks, then posterior scores per
method) to the section ``validation-<name>`` of BENCHMARKS.md. The posterior results are
kept beside the report, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch
from _report import ROOT, update_section  # benchmarks/ is on sys.path when run as a script

from geodiff.cli import main as geodiff_main


def shipped_models() -> list[Path]:
    """Folders of ``data/`` holding a trained model."""
    return sorted(p.parent for p in (ROOT / "data").glob("*/model.safetensors"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--extra", default="", help="more `geodiff validate` options, e.g. '--datasets 50'"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.resolve() for m in args.models] if args.models else shipped_models()
    os.chdir(ROOT)  # the reports name paths relative to the repository
    if not models:
        parser.error("no trained models found in data/")
    for model in models:
        name = model.resolve().name
        out = ROOT / "docs" / "validation" / name
        shown = model.resolve().relative_to(ROOT) if model.resolve().is_relative_to(ROOT) else model
        options = ["validate", "--model", str(shown), "--out", str(out.relative_to(ROOT))]
        options += shlex.split(args.extra)
        status = geodiff_main(options)
        if status not in (0, 1):
            sys.exit(status)
        report = (out / "report.md").read_text()
        summary = report[report.index("## Summary") :].split("\n## ")[0]
        summary = summary.removeprefix("## Summary").strip()
        posterior = ""
        if "## Posterior checks" in report:
            table = [
                line
                for line in report[report.index("## Posterior checks") :].splitlines()
                if line.startswith("|")
            ]
            posterior = "\n\nPosterior scores per method (means over datasets):\n\n" + "\n".join(
                table
            )
        given = list(sys.argv[1:] if argv is None else argv)
        command = "python benchmarks/bench_validate.py " + shlex.join(given)
        body = (
            f"Full report with figures: [docs/validation/{name}/report.md]"
            f"(docs/validation/{name}/report.md).\n\n{summary}{posterior}\n"
        )
        update_section(f"validation-{name}", f"Validation report: {name}", command, body)
        print(f"wrote the summary of {name} to BENCHMARKS.md")


if __name__ == "__main__":
    main()
