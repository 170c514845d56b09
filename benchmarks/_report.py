"""Write one benchmark's section of BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

import datetime
import re
import subprocess
from pathlib import Path

from geodiff.io import write_text

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the command it names; rerun that command to refresh it.\n"
    "Timings on shared machines are noisy: compare the ratios measured within one run.\n"
)


def machine() -> str:
    """One line describing the machine this ran on."""
    from geodiff.machine import describe_machine

    return describe_machine()


def revision() -> str:
    """Short commit hash, marked ``+dirty`` when the code measured differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "geodiff", "benchmarks"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if status else "")


def update_section(name: str, title: str, command: str, body: str) -> Path:
    """Replace (or append) the section ``name`` of BENCHMARKS.md."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- begin {name} -->\n## {title}\n\n"
        f"- command: `{command}`\n- date: {stamp}, revision {revision()}\n"
        f"- machine: {machine()}\n\n{body.strip()}\n<!-- end {name} -->\n"
    )
    text = REPORT.read_text() if REPORT.exists() else HEADER
    pattern = re.compile(
        rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->\n", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    write_text(REPORT, text)  # atomic: an interrupted run never leaves half a report
    return REPORT
