"""Denoiser forward passes on the CPU: eager, channels_last, torch.compile, bfloat16, threads.

Times one batch of the shipped non-stationary network (the cost unit of every diffusion
sampler) in each variant, interleaved over several rounds so that the shared machine's
load hits them alike, and reports each variant's median time and its ratio to eager on
one thread measured in the same round. torch.compile's one-off compile time is reported
apart.

Usage::

    python benchmarks/bench_denoiser_cpu.py [--batch 19] [--rounds 5] [--reps 10]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import update_section

from geodiff.diffusion.model import load_model
from geodiff.tables import markdown_table


def _time(f, x, t, reps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    with torch.no_grad():
        f(x, t)
        started = time.perf_counter()
        for _ in range(reps):
            f(x, t)
    return (time.perf_counter() - started) / reps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="data/nonstationary-anisotropy-32")
    parser.add_argument("--batch", type=int, default=19)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    eager = model.denoiser.eval()
    h, w = model.grid.shape
    x = torch.randn(args.batch, 1, h, w, generator=torch.Generator().manual_seed(0))
    t = torch.full((args.batch,), 500)
    last = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    low = copy.deepcopy(eager).set_precision("bfloat16")
    errors = {}
    with torch.no_grad():
        for step in (999, 900, 500, 100, 20):
            exact = eager(x, torch.full_like(t, step))
            errors[step] = float((low(x, torch.full_like(t, step)) - exact).norm() / exact.norm())
    x_last = x.contiguous(memory_format=torch.channels_last)
    torch.set_num_threads(1)
    started = time.perf_counter()
    compiled = torch.compile(eager)
    with torch.no_grad():
        compiled(x, t)
    compile_s = time.perf_counter() - started
    variants = {
        "eager, 1 thread": (eager, x, 1),
        "eager, 2 threads": (eager, x, 2),
        "channels_last, 1 thread": (last, x_last, 1),
        "torch.compile, 1 thread": (compiled, x, 1),
        "bfloat16 autocast, 1 thread": (low, x, 1),
    }
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (f, inp, threads) in variants.items():
            times[name].append(_time(f, inp, t, args.reps, threads))
    base = times["eager, 1 thread"]
    rows = [
        (name, f"{1000 * statistics.median(ts):.1f}",
         f"{statistics.median(b / s for b, s in zip(base, ts, strict=True)):.2f}")
        for name, ts in times.items()
    ]  # fmt: skip
    body = (
        f"One forward pass of `{args.model}`'s network on a batch of {args.batch} fields "
        f"({h}x{w}), median over {args.rounds} interleaved rounds of {args.reps} passes; "
        "speed-up = eager-on-1-thread time / variant time within the same round (median "
        f"over rounds). torch.compile (inductor) took {compile_s:.0f} s to compile before "
        "its first pass. bfloat16 autocast (`--precision bfloat16`) changes x̂_0 by "
        + ", ".join(f"{e:.1e} at t = {s}" for s, e in errors.items())
        + f" of its norm (t = 999: pure noise). {args.note}\n\n"
        + markdown_table(("variant", "ms per pass", "speed-up vs eager, 1 thread"), rows)
    )
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python benchmarks/bench_denoiser_cpu.py " + " ".join(given)
    print(body)
    update_section("denoiser-cpu", "Denoiser forward passes on the CPU", command, body)


if __name__ == "__main__":
    main()
