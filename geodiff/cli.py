"""The ``geodiff`` command line: parses arguments and calls the library.

A user's error (a bad config, an invalid grid, an unwritable path, ...) prints one line
and exits with status 2; an interrupted run exits with 130 and resumes when rerun.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from geodiff.errors import GeodiffError

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geodiff", description="Bayesian spatial prediction with learned diffusion priors."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "simulate", help="simulate prior fields (and their parameters) into a zarr store"
    )
    p.add_argument(
        "--prior",
        required=True,
        help="prior config: a .toml file or a shipped name (see `geodiff priors`)",
    )
    p.add_argument(
        "--grid", default="64", help="grid size, N or HxW, over the prior's domain (default 64)"
    )
    p.add_argument("--n", type=_positive_int, required=True, help="number of fields")
    p.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed; the same seed gives the same fields (default 0)",
    )
    p.add_argument("--out", required=True, type=Path, help="output store directory (zarr)")
    p.add_argument(
        "--chunk-size", type=_positive_int, default=256, help="fields per chunk (default 256)"
    )
    p.add_argument(
        "--fields-per-theta",
        type=_positive_int,
        default=1,
        help="fields sharing one parameter draw",
    )
    p.add_argument(
        "--workers", type=_positive_int, default=None, help="CPU processes (default: all cores)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument(
        "--plot",
        nargs="?",
        const=True,
        default=None,
        metavar="PNG",
        help="draw fields beside their parameter maps (default file: OUT.png)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("priors", help="list the shipped prior configs")
    p.set_defaults(func=_cmd_priors)
    return parser


def _cmd_priors(args) -> None:
    from geodiff.fields.config import builtin_priors, load_prior

    for name, path in sorted(builtin_priors().items()):
        prior = load_prior(name)
        kind = "stationary" if prior.is_stationary else "non-stationary"
        print(f"{name:28s} {kind:15s} {path}")


def _cmd_simulate(args) -> None:
    import torch

    from geodiff.fields.config import load_prior
    from geodiff.fields.simulate import Simulation
    from geodiff.fields.store import open_store, write_store
    from geodiff.grid import Grid

    prior = load_prior(args.prior)
    grid = Grid.parse(args.grid, prior.domain)
    if args.device is not None and args.device not in ("cpu", "cuda"):
        raise GeodiffError(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise GeodiffError("--device cuda: torch sees no GPU")
    started = time.perf_counter()
    path = write_store(
        args.out,
        prior,
        grid,
        args.n,
        args.seed,
        chunk_size=args.chunk_size,
        fields_per_theta=args.fields_per_theta,
        workers=args.workers,
        device=args.device,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - started
    size = f"{grid.shape[0]}x{grid.shape[1]}"
    print(f"wrote {args.n} fields of {prior.name} on a {size} grid to {path} ({elapsed:.1f} s)")
    if args.plot is not None:
        from geodiff.plot import plot_simulation

        store = open_store(path)
        k = min(4, len(store))
        sim = Simulation(
            torch.from_numpy(store.fields[:k]),
            store.theta(slice(0, k)),
            store.maps(slice(0, k)),
            torch.arange(k),
            grid,
        )
        png = Path(args.out).with_suffix(".png") if args.plot is True else Path(args.plot)
        print(f"plot: {plot_simulation(sim, prior, png)}")


def main(argv=None) -> int:
    """Entry point of the ``geodiff`` command."""
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except GeodiffError as err:
        print(f"geodiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"geodiff {args.command}: interrupted; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
