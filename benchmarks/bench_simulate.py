"""Simulation throughput: geodiff's default sampler against an exact dense-Cholesky reference.

For both shipped priors on 32x32 and 64x64 grids this measures fields per second of

* geodiff's default path, ``simulate(prior, grid, n, seed, method="auto")`` (circulant
  embedding for the stationary prior, dense Cholesky for the non-stationary one),
* for the non-stationary prior also ``fields_per_theta=8`` (8 fields share one parameter
  draw and so one factorisation: a different, cheaper workload),
* a plain dense-Cholesky reference written here, measured in the same run: per field, one
  parameter draw, the full grid covariance, its Cholesky factor and one matrix-vector
  product.

Every timing is preceded by a warm-up call that also sizes ``n`` so that one timing takes
a few seconds; the best of several repeats is kept.

Usage::

    python benchmarks/bench_simulate.py            # full run, writes BENCHMARKS.md
    python benchmarks/bench_simulate.py --quick    # smoke run, prints only
    python benchmarks/bench_simulate.py --device cpu
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass

import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff import Grid, simulate
from geodiff.fields.config import load_prior
from geodiff.tables import markdown_table

PRIORS = ("stationary-matern", "nonstationary-anisotropy")
GRIDS = (32, 64)
JITTER = 1e-10
SHARED = 8  # fields per parameter draw in the fields_per_theta row


@dataclass(frozen=True)
class Settings:
    """How long and how often to time.

    Attributes
    ----------
    target_s : float
        Wanted duration of one timed call.
    probe_s : float
        Duration the warm-up/sizing calls grow to before ``n`` is chosen.
    repeats : int
        Timed calls per row; the fastest counts.
    min_fields, max_fields : int
        Bounds on the fields per timed call.
    """

    target_s: float
    probe_s: float
    repeats: int
    min_fields: int
    max_fields: int


FULL = Settings(target_s=4.0, probe_s=0.5, repeats=3, min_fields=8, max_fields=20000)
QUICK = Settings(target_s=0.3, probe_s=0.1, repeats=1, min_fields=1, max_fields=2000)


@dataclass
class Timing:
    """Result of timing one sampler.

    Attributes
    ----------
    fields : int
        Fields produced by each timed call.
    seconds : float
        Best wall time over the repeats.
    """

    fields: int
    seconds: float

    @property
    def rate(self) -> float:
        """Fields per second."""
        return self.fields / self.seconds


# ------------------------------------------------------------------------- samplers
def reference_sample(prior, points: torch.Tensor, n: int, seed: int, device) -> torch.Tensor:
    """Exact dense-Cholesky sampling, one parameter draw and one factorisation per field.

    Parameters
    ----------
    prior : GRFPrior
    points : torch.Tensor, float64, shape (N, 2)
        Grid nodes.
    n : int
        Number of fields.
    seed : int
    device : torch.device

    Returns
    -------
    torch.Tensor, float32, shape (n, N), on the CPU like geodiff's output
    """
    gen = torch.Generator().manual_seed(seed)
    eye = torch.eye(len(points), dtype=torch.float64, device=device)
    out = torch.empty(n, len(points), dtype=torch.float32)
    for i in range(n):
        theta = {k: v.to(device) for k, v in prior.sample_theta(1, gen).items()}
        cov = prior.covariance(points, points, theta)[0]
        chol = torch.linalg.cholesky(cov + JITTER * eye)
        z = torch.randn(len(points), generator=gen, dtype=torch.float64).to(device)
        out[i] = (chol @ z).float().cpu()
    return out


def geodiff_sampler(prior, grid: Grid, device, fields_per_theta: int = 1):
    """``n -> simulate(prior, grid, n, seed, method="auto", ...)`` on ``device``."""

    def run(n: int, seed: int):
        return simulate(
            prior, grid, n, seed, method="auto", fields_per_theta=fields_per_theta, device=device
        )

    return run


def reference_sampler(prior, grid: Grid, device):
    """``n -> reference_sample(...)`` on ``device``."""
    points = torch.as_tensor(grid.points(), dtype=torch.float64)

    def run(n: int, seed: int):
        return reference_sample(prior, points, n, seed, device)

    return run


# -------------------------------------------------------------------------- timing
def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(run, n: int, seed: int, device) -> float:
    _sync(device)
    start = time.perf_counter()
    run(n, seed)
    _sync(device)
    return time.perf_counter() - start


def _round_up(n: float, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def measure(run, device, settings: Settings, multiple: int = 1, seed: int = 1) -> Timing:
    """Warm up, size ``n`` for about ``settings.target_s`` per call, keep the best repeat.

    Parameters
    ----------
    run : callable
        ``run(n, seed)`` produces ``n`` fields.
    device : torch.device
    settings : Settings
    multiple : int
        ``n`` is a multiple of this (whole parameter groups).
    seed : int
        Same seed in every repeat, so every repeat does the same work.

    Returns
    -------
    Timing
    """
    n = multiple
    elapsed = _timed(run, n, seed, device)  # the warm-up
    while elapsed < settings.probe_s and n < settings.max_fields:
        n *= 2
        elapsed = _timed(run, n, seed, device)
    wanted = settings.target_s * n / elapsed
    lo, hi = max(settings.min_fields, multiple), settings.max_fields
    n = _round_up(min(max(wanted, lo), hi), multiple)
    best = min(_timed(run, n, seed, device) for _ in range(settings.repeats))
    return Timing(n, best)


# -------------------------------------------------------------------- diagnostics
def embedding_sizes(prior, grid: Grid, n: int, seed: int = 1) -> Counter:
    """Circulant embedding factor (or Cholesky fallback) of the timed parameter draws.

    Uses geodiff's private ``_circulant_samplers``; returns an empty counter if it moved.
    """
    try:
        from geodiff.fields.simulate import _circulant_samplers
    except ImportError:  # pragma: no cover - private helper renamed
        return Counter()
    theta = simulate(prior, grid, n, seed, method="circulant", device="cpu").theta
    samplers = _circulant_samplers(prior, grid, theta)
    return Counter(
        "cholesky fallback" if s is None else f"{s.shape[0] // grid.shape[0]}x" for s in samplers
    )


# -------------------------------------------------------------------------- report
HEADER = [
    "prior",
    "grid",
    "device",
    "method",
    "fields/s",
    "reference fields/s",
    "ratio",
    "fields timed (geodiff / ref)",
]


def _row(prior_name, size, device, method, timing: Timing, reference: Timing) -> list:
    return [
        prior_name,
        f"{size}x{size}",
        str(device),
        method,
        f"{timing.rate:.2f}",
        f"{reference.rate:.2f}",
        f"{timing.rate / reference.rate:.2f}",
        f"{timing.fields} / {reference.fields}",
    ]


def bench_case(prior_name: str, size: int, device, settings: Settings) -> tuple[list, str]:
    """Rows of the table (and a note) for one prior, grid size and device."""
    prior, grid = load_prior(prior_name), Grid.square(size)
    reference = measure(reference_sampler(prior, grid, device), device, settings)
    default = measure(geodiff_sampler(prior, grid, device), device, settings)
    if prior.is_stationary:
        method = "auto = circulant embedding"
        sizes = embedding_sizes(prior, grid, default.fields)
        note = f"{prior_name} {size}x{size}: embedding of the timed draws " + ", ".join(
            f"{k}: {v}" for k, v in sorted(sizes.items())
        )
    else:
        method, note = "auto = dense Cholesky", ""
    rows = [_row(prior_name, size, device, method, default, reference)]
    if not prior.is_stationary:
        shared = measure(
            geodiff_sampler(prior, grid, device, SHARED), device, settings, multiple=SHARED
        )
        label = f"dense Cholesky, theta shared by {SHARED} fields (fields_per_theta={SHARED})"
        rows.append(_row(prior_name, size, device, label, shared, reference))
    print(f"done: {prior_name} {size}x{size} on {device}", file=sys.stderr, flush=True)
    return rows, note


def devices(requested: str | None) -> list[str]:
    """The requested device, else the CPU and, when torch sees one, CUDA."""
    if requested:
        return [requested]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def run_all(settings: Settings, device_names: list[str]) -> str:
    """Time every case and return the markdown body."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows, notes = [], []
    for device in device_names:
        for prior_name in PRIORS:
            for size in GRIDS:
                case_rows, note = bench_case(prior_name, size, torch.device(device), settings)
                rows += case_rows
                notes += [note] if note and device == device_names[0] else []
    total = time.perf_counter() - start
    load_after = os.getloadavg()
    lines = [
        'Fields per second of geodiff\'s `simulate(prior, grid, n, seed, method="auto")` '
        "and of a plain dense-Cholesky reference measured in the same run (per field: "
        "`prior.sample_theta`, `prior.covariance`, `torch.linalg.cholesky(C + 1e-10 I)`, "
        "`L @ z`, result copied to the CPU as float32). ratio = geodiff / reference. "
        f"Best of {settings.repeats} timed calls after a warm-up; `time.perf_counter`.",
        "",
        f"- torch threads: {torch.get_num_threads()}; load average (1 min) "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; total {total:.0f} s",
        *[f"- {note}" for note in notes],
        "- the fields_per_theta=8 row does a different workload (one factorisation per "
        "8 fields); its ratio is against the same one-draw-per-field reference",
        "",
        markdown_table(HEADER, rows),
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; print, do not write")
    parser.add_argument("--device", default=None, help="only this device (cpu, cuda, cuda:1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else FULL
    body = run_all(settings, devices(args.device))
    print(body)
    if args.quick:
        return
    command = " ".join(["python benchmarks/bench_simulate.py", *(argv or sys.argv[1:])])
    path = update_section("simulate", "Simulation throughput", command, body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
