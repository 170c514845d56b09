"""The ``geodiff`` command line: parses arguments and calls the library.

A user's error (a bad config, an invalid grid, an unwritable path, ...) prints one line
and exits with status 2; an interrupted run exits with 130 and resumes when rerun.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


#: the checkpoint shipped in the repository, used by the demo
_SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "data" / "nonstationary-anisotropy-32"


def _parser() -> argparse.ArgumentParser:
    from geodiff.posterior.methods import POSTERIOR_SAMPLERS as POSTERIOR_METHODS
    from geodiff.posterior.predict import DEFAULT_METHOD as DEFAULT_POSTERIOR_METHOD

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
        type=_non_negative_int,
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
    _plot_argument(p, "draw fields beside their parameter maps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("priors", help="list the shipped prior configs")
    p.set_defaults(func=_cmd_priors)

    p = sub.add_parser(
        "krige",
        help="kriging predictions: ordinary (fitted covariance) or simple (known parameters)",
    )
    _prediction_arguments(p)
    p.add_argument(
        "--method",
        choices=("ordinary", "simple"),
        default="ordinary",
        help="ordinary: fit the prior's family to the data (default); simple: known --theta",
    )
    p.add_argument(
        "--fit",
        choices=("ml", "variogram"),
        default="ml",
        help="how ordinary kriging fits its covariance (default: restricted max. likelihood)",
    )
    p.add_argument("--isotropic", action="store_true", help="ordinary kriging: fit no anisotropy")
    p.add_argument(
        "--theta",
        type=Path,
        default=None,
        help="simple kriging: JSON file of parameter values (fixed ones may be left out)",
    )
    p.set_defaults(func=_cmd_krige)

    p = sub.add_parser(
        "mcmc", help="fully Bayesian predictions: Pyro NUTS over the prior's parameters"
    )
    _prediction_arguments(p)
    p.add_argument("--chains", type=_positive_int, default=2, help="chains (default 2)")
    p.add_argument(
        "--warmup", type=_positive_int, default=500, help="warm-up steps per chain (default 500)"
    )
    p.add_argument(
        "--samples", type=_positive_int, default=500, help="draws per chain (default 500)"
    )
    p.add_argument(
        "--predictive-draws",
        type=_positive_int,
        default=200,
        help="parameter draws (thinned) turned into field draws (default 200)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    p.add_argument("--no-jit", action="store_true", help="do not JIT-compile the potential")
    p.set_defaults(func=_cmd_mcmc)

    p = sub.add_parser(
        "demo",
        help="end to end on the shipped prior: a true field, sparse data, diffusion posterior, "
        "kriging and MCMC side by side, with a report",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=_SHIPPED_MODEL,
        help="trained model (default: data/nonstationary-anisotropy-32, non-stationary)",
    )
    p.add_argument("--obs", type=_positive_int, default=30, help="observations (default 30)")
    p.add_argument("--noise-sd", type=_non_negative, default=0.1, help="noise sd (default 0.1)")
    p.add_argument(
        "--draws", type=_positive_int, default=39, help="posterior draws per method (default 39)"
    )
    p.add_argument(
        "--method",
        choices=sorted(POSTERIOR_METHODS),
        default=DEFAULT_POSTERIOR_METHOD,
        help=f"diffusion posterior sampler (default {DEFAULT_POSTERIOR_METHOD})",
    )
    p.add_argument(
        "--steps", type=_positive_int, default=None, help="sampler steps (default: the method's)"
    )
    p.add_argument("--mcmc-warmup", type=_positive_int, default=100, help="NUTS warm-up (100)")
    p.add_argument("--mcmc-samples", type=_positive_int, default=100, help="NUTS draws (100)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="report folder")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)

    _validate_parser(sub, POSTERIOR_METHODS, DEFAULT_POSTERIOR_METHOD)

    p = sub.add_parser(
        "predict", help="posterior draws and predictions from a trained diffusion prior"
    )
    p.add_argument("--model", required=True, type=Path, help="trained model: a run directory")
    _observation_arguments(p)
    p.add_argument(
        "--at",
        default="grid",
        help="targets: 'grid' (the model's grid) or a CSV with x,y columns (physical coordinates)",
    )
    p.add_argument(
        "--method",
        choices=sorted(POSTERIOR_METHODS),
        default=DEFAULT_POSTERIOR_METHOD,
        help=f"posterior sampler (default {DEFAULT_POSTERIOR_METHOD}; see BENCHMARKS.md)",
    )
    p.add_argument(
        "--samples", type=_positive_int, default=100, help="posterior draws (default 100)"
    )
    p.add_argument(
        "--steps", type=_positive_int, default=None, help="sampler steps (default: the method's)"
    )
    p.add_argument(
        "--particles", type=_positive_int, default=None, help="mcgdiff: particles per draw"
    )
    p.add_argument("--step-size", type=_non_negative, default=None, help="dps: step size ζ'")
    p.add_argument(
        "--cg-iterations",
        type=_non_negative_int,
        default=None,
        help="mmps: conjugate-gradient iterations per step (default 1; 0: no Jacobian)",
    )
    p.add_argument("--eta", type=_non_negative, default=None, help="dps, pigdm, mcgdiff: DDIM's η")
    p.add_argument(
        "--domain",
        type=_domain,
        default="model",
        help="physical domain mapped onto the model's: 'model' (coordinates are the model's, "
        "default), 'auto' (the data's bounding box plus --margin) or x_min,x_max,y_min,y_max",
    )
    p.add_argument(
        "--margin",
        type=_non_negative,
        default=0.1,
        help="--domain auto: widening of the bounding box, fraction of its longer side",
    )
    p.add_argument(
        "--standardise",
        action="store_true",
        help="map values to the model's units by the observations' mean and sd (default: "
        "values are in the model's units)",
    )
    _summary_arguments(p)
    p.add_argument(
        "--draws",
        type=Path,
        default=None,
        help="NetCDF file of the posterior draws on the grid (default: OUT with .draws.nc)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    p.add_argument(
        "--batch-size", type=_positive_int, default=64, help="fields per network call (default 64)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("train", help="train a diffusion prior (resumes an interrupted run)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prior", help="simulate fresh training fields from this prior config")
    source.add_argument("--data", type=Path, help="train on the fields of this zarr store")
    p.add_argument("--grid", default="32", help="grid size N or HxW with --prior (default 32)")
    p.add_argument("--out", required=True, type=Path, help="run directory (resumed if it exists)")
    p.add_argument(
        "--network",
        default=None,
        help="backbone size: tiny, small (CPU, 32²) or base (GPU, 64²); default by grid size",
    )
    p.add_argument(
        "--prediction", choices=("eps", "v", "x0"), default="v", help="target (default v)"
    )
    p.add_argument(
        "--schedule", choices=("cosine", "linear"), default="cosine", help="(default cosine)"
    )
    p.add_argument("--timesteps", type=_positive_int, default=1000, help="T (default 1000)")
    p.add_argument("--steps", type=_positive_int, default=20000, help="optimiser steps")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="(default 64)")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    p.add_argument("--warmup", type=int, default=500, help="warm-up steps (default 500)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay (default 0.999)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=500, help="(default 500)")
    p.add_argument("--validate-every", type=_positive_int, default=2000, help="(default 2000)")
    p.add_argument(
        "--oracle-components",
        type=int,
        default=64,
        help="parameter draws in the exact oracle used for validation (0: no oracle)",
    )
    p.add_argument(
        "--fields-per-theta", type=_positive_int, default=1, help="with --prior (default 1)"
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 mixed precision on GPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="unconditional fields from a trained diffusion prior")
    p.add_argument("--model", required=True, type=Path, help="run directory or model .json")
    p.add_argument("--n", type=_positive_int, required=True, help="number of fields")
    p.add_argument(
        "--sampler",
        choices=("dpm2m", "ddim", "ddpm"),
        default="dpm2m",
        help="DPM-Solver++(2M) (default), DDIM, or DDPM ancestral (all steps)",
    )
    p.add_argument("--steps", type=_positive_int, default=50, help="sampling steps (default 50)")
    p.add_argument("--eta", type=_non_negative, default=0.0, help="DDIM eta (0: deterministic)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output NetCDF file (.nc)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="(default 256)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    _plot_argument(p, "draw samples beside exactly simulated fields")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sample)
    return parser


def _plot_argument(p, what: str) -> None:
    p.add_argument(
        "--plot",
        nargs="?",
        const=True,
        default=None,
        metavar="PNG",
        help=f"{what} (default file: OUT.png)",
    )


def _probabilities(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not 0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected levels in (0, 1) like 0.05,0.5,0.95, got {text!r}"
        )
    return values


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _prediction_arguments(p) -> None:
    """Arguments shared by the commands that predict from observations with a prior."""
    _observation_arguments(p)
    p.add_argument("--prior", required=True, help="prior config: a .toml file or a shipped name")
    p.add_argument(
        "--at",
        default="grid",
        help="targets: 'grid' (the prior's domain, see --grid) or a CSV with x,y columns",
    )
    p.add_argument("--grid", default="64", help="grid size N or HxW for --at grid (default 64)")
    _summary_arguments(p)


#: settings of ``geodiff validate``: the full report, and ``--quick`` (a few minutes)
_VALIDATE_PRESETS = {
    "full": {
        "fields": 500,
        "oracle_components": 64,
        "mse_fields": 256,
        "classifier_epochs": 10,
        "datasets": 20,
        "mcmc_warmup": 200,
        "mcmc_samples": 200,
    },
    "quick": {
        "fields": 100,
        "oracle_components": 16,
        "mse_fields": 64,
        "classifier_epochs": 5,
        "datasets": 3,
        "mcmc_warmup": 100,
        "mcmc_samples": 100,
    },
}


def _validate_parser(sub, methods, default_method) -> None:
    p = sub.add_parser(
        "validate",
        help="check a trained prior and its posteriors against exact references; write a report",
    )
    p.add_argument("--model", required=True, type=Path, help="trained model: a run directory")
    p.add_argument(
        "--out", type=Path, default=None, help="report folder (default runs/validate/MODEL)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sets for a first look in a few minutes (warnings are then less reliable)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--prior-only", action="store_true", help="skip the posterior checks")
    which.add_argument("--posterior-only", action="store_true", help="skip the prior checks")
    full, quick = _VALIDATE_PRESETS["full"], _VALIDATE_PRESETS["quick"]

    def preset(name, text):
        return f"{text} (default {full[name]}; --quick {quick[name]})"

    p.add_argument(
        "--fields", type=_positive_int, help=preset("fields", "network samples and simulations")
    )
    p.add_argument("--sampler", choices=("dpm2m", "ddim"), default="dpm2m", help="prior sampler")
    p.add_argument("--sample-steps", type=_positive_int, default=50, help="its steps (50)")
    p.add_argument(
        "--oracle-components",
        type=_positive_int,
        help=preset("oracle_components", "θ draws in the exact oracle"),
    )
    p.add_argument(
        "--mse-fields", type=_positive_int, help=preset("mse_fields", "fields for denoising error")
    )
    p.add_argument(
        "--classifier-epochs",
        type=_positive_int,
        help=preset("classifier_epochs", "two-sample classifier epochs"),
    )
    p.add_argument(
        "--datasets", type=_positive_int, help=preset("datasets", "posterior test datasets")
    )
    p.add_argument("--obs", type=_positive_int, default=30, help="observations per dataset (30)")
    p.add_argument("--noise-sd", type=_non_negative, default=0.1, help="their noise sd (0.1)")
    p.add_argument(
        "--draws", type=_positive_int, default=19, help="posterior draws; +1 a multiple of 20 (19)"
    )
    p.add_argument(
        "--method", choices=sorted(methods), default=default_method, help="posterior sampler"
    )
    p.add_argument(
        "--steps", type=_positive_int, default=None, help="its steps (default: the method's)"
    )
    p.add_argument(
        "--mcmc-warmup", type=_positive_int, help=preset("mcmc_warmup", "NUTS warm-up per chain")
    )
    p.add_argument(
        "--mcmc-samples", type=_positive_int, help=preset("mcmc_samples", "NUTS draws per chain")
    )
    p.add_argument("--strict", action="store_true", help="exit with status 1 if a check warns")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed (default 0)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_validate)


def _observation_arguments(p) -> None:
    p.add_argument(
        "--obs",
        required=True,
        type=Path,
        help="observations CSV: x,y,value[,noise_sd] or x_min,x_max,y_min,y_max,value[,noise_sd]",
    )
    p.add_argument(
        "--noise-sd",
        type=_non_negative,
        default=None,
        help="measurement noise sd for every observation (else the CSV's noise_sd column)",
    )
    p.add_argument(
        "--merge-duplicates",
        action="store_true",
        help="average observations at the same location (default: refuse them)",
    )


def _summary_arguments(p) -> None:
    p.add_argument("--out", required=True, type=Path, help="predictions: .csv or .nc (NetCDF)")
    p.add_argument(
        "--quantiles",
        type=_probabilities,
        default=(0.05, 0.5, 0.95),
        help="predictive quantile levels (default 0.05,0.5,0.95)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        action="append",
        default=[],
        help="also write P(field > T); repeat for several",
    )
    _plot_argument(p, "draw mean and sd maps with the observations")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _domain(text: str):
    if text in ("model", "auto"):
        return text
    try:
        x0, x1, y0, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'model', 'auto' or x_min,x_max,y_min,y_max, got {text!r}"
        ) from None
    return ((x0, x1), (y0, y1))


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
    if args.device is not None:
        _device(args.device)  # a clear error for an unknown or unavailable device
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


def _load_problem(args):
    """Prior, observations and targets from the shared prediction arguments."""
    from geodiff.fields.config import load_prior
    from geodiff.grid import Grid
    from geodiff.observe import Observations, read_points_csv

    prior = load_prior(args.prior)
    duplicates = "merge" if args.merge_duplicates else "reject"
    obs = Observations.from_csv(args.obs, noise_sd=args.noise_sd, duplicates=duplicates)
    obs.check_inside(prior.domain, f"the prior's domain (set domain in {args.prior})")
    targets = Grid.parse(args.grid, prior.domain) if args.at == "grid" else read_points_csv(args.at)
    return prior, obs, targets


def _finish_prediction(args, pred, obs, extra: dict) -> None:
    """Write the prediction, its JSON sidecar (fit, diagnostics) and the plot."""
    import json

    out = pred.write(args.out, args.quantiles, args.threshold)
    sidecar = out.with_name(out.name + ".json")
    info = {k: v for k, v in pred.info.items() if k != "cov"}
    sidecar.write_text(
        json.dumps({"method": pred.method, **info, **extra}, indent=2, default=float)
    )
    print(f"wrote {len(pred)} predictions to {out} (details: {sidecar})")
    if args.plot is not None:
        from geodiff.plot import plot_prediction

        png = out.with_suffix(".png") if args.plot is True else Path(args.plot)
        print(f"plot: {plot_prediction(pred, obs, png)}")


def _cmd_krige(args) -> None:
    import json

    from geodiff.baselines.fit import ordinary_kriging, plug_in_settings
    from geodiff.baselines.kriging import simple_kriging

    prior, obs, targets = _load_problem(args)
    if args.method == "simple":
        if args.theta is None:
            values = {}
        else:
            try:
                values = json.loads(Path(args.theta).read_text())
            except (OSError, ValueError) as err:
                raise GeodiffError(f"{args.theta}: cannot read parameters as JSON: {err}") from None
            if not isinstance(values, dict):
                raise GeodiffError(f"{args.theta}: expected a JSON object of parameter values")
        pred = simple_kriging(prior, values, obs, targets)
        print(f"simple kriging ({pred.info['engine']}) with theta = {pred.info['theta']}")
    else:
        # a random shape parameter is held at its prior median for the plug-in fit
        pred = ordinary_kriging(
            obs,
            targets,
            method=args.fit,
            anisotropic=not args.isotropic,
            **plug_in_settings(prior),
        )
        fitted = ", ".join(f"{k}={v:.4g}" for k, v in pred.info["fit"].items())
        print(f"ordinary kriging, {args.fit} fit: {fitted}")
    _finish_prediction(args, pred, obs, {})


def _cmd_mcmc(args) -> None:
    from geodiff.baselines.mcmc import mcmc_posterior

    prior, obs, targets = _load_problem(args)
    result = mcmc_posterior(
        prior,
        obs,
        num_samples=args.samples,
        warmup_steps=args.warmup,
        num_chains=args.chains,
        seed=args.seed,
        jit=not args.no_jit,
        progress=not args.quiet,
    )
    summary = result.summary()
    print(f"NUTS: {args.chains} chains x {args.samples} draws in {result.wall_time:.1f} s")
    columns = ("mean", "sd", "q05", "q95")
    print(f"{'parameter':24s} " + " ".join(f"{c:>9s}" for c in columns) + "  R-hat    ESS")
    for key, row in summary.items():
        print(
            f"{key:24s} {row['mean']:9.4g} {row['sd']:9.4g} {row['q05']:9.4g} {row['q95']:9.4g} "
            f"{row['rhat']:6.3f} {row['ess']:6.0f}"
        )
    print(f"divergences per chain: {result.divergences}")
    pred = result.predict(
        targets, n_draws=args.predictive_draws, seed=args.seed, progress=not args.quiet
    )
    _finish_prediction(args, pred, obs, {"parameters": summary})


def _device(name):
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise GeodiffError(f"--device must be cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GeodiffError(f"--device {name}: torch sees no GPU")
    return name


def _cmd_train(args) -> None:
    from geodiff.diffusion.data import FreshFields, StoredFields
    from geodiff.diffusion.network import network_config
    from geodiff.diffusion.schedule import NoiseSchedule
    from geodiff.diffusion.training import TrainingConfig, train
    from geodiff.fields.config import load_prior
    from geodiff.fields.store import open_store
    from geodiff.grid import Grid

    device = _device(args.device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: this process's GPU
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    if args.data is not None:
        store = open_store(args.data)
        prior, grid = store.prior, store.grid
        data = StoredFields(store, args.batch_size, args.seed)
    else:
        prior = load_prior(args.prior)
        grid = Grid.parse(args.grid, prior.domain)
        data = FreshFields(
            prior,
            grid,
            args.batch_size,
            args.seed,
            fields_per_theta=args.fields_per_theta,
            device=device,
        )
    if grid.shape[0] != grid.shape[1]:
        raise GeodiffError(f"the denoiser needs a square grid, got {grid.shape}")
    name = args.network or ("small" if grid.shape[0] <= 32 else "base")
    config = TrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup,
        ema_decay=args.ema,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every,
        seed=args.seed,
        mixed_precision=not args.no_amp,
        oracle_components=args.oracle_components,
    )
    started = time.perf_counter()
    model = train(
        args.out,
        prior=prior,
        grid=grid,
        data=data,
        network=network_config(name, grid.shape[0]),
        schedule=NoiseSchedule(args.schedule, args.timesteps),
        prediction=args.prediction,
        config=config,
        device=device,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - started
    ratio = model.info.get("validation", {}).get("ratio")
    worst = f"; network/oracle MSE at most {max(ratio):.3f}" if ratio else ""
    print(f"trained {args.out} to step {args.steps} in {elapsed:.0f} s{worst}")


def _cmd_demo(args) -> None:
    from geodiff.diffusion.model import load_model
    from geodiff.evaluate.demo import run_demo

    started = time.perf_counter()
    model = load_model(args.model, _device(args.device))
    report = run_demo(
        model,
        args.out,
        n_obs=args.obs,
        noise_sd=args.noise_sd,
        draws=args.draws,
        method=args.method,
        steps=args.steps,
        mcmc_warmup=args.mcmc_warmup,
        mcmc_samples=args.mcmc_samples,
        seed=args.seed,
        progress=not args.quiet,
    )
    table = [line for line in report.read_text().splitlines() if line.startswith("|")]
    print("\n".join(table))
    print(f"demo done in {time.perf_counter() - started:.0f} s: {report} (figure beside it)")


def _cmd_validate(args) -> int:
    from geodiff.diffusion.model import load_model
    from geodiff.evaluate.validate import run_validation

    settings = dict(_VALIDATE_PRESETS["quick" if args.quick else "full"])
    settings.update({k: getattr(args, k) for k in settings if getattr(args, k) is not None})
    model = load_model(args.model, _device(args.device))
    out = args.out or Path("runs") / "validate" / Path(args.model).resolve().name
    report = run_validation(
        model,
        out,
        prior_checks=not args.posterior_only,
        posterior_checks=not args.prior_only,
        prior_options={
            "n": settings["fields"],
            "sampler": args.sampler,
            "steps": args.sample_steps,
            "oracle_components": settings["oracle_components"],
            "n_mse": settings["mse_fields"],
            "classifier_epochs": settings["classifier_epochs"],
        },
        posterior_options={
            "datasets": settings["datasets"],
            "n_obs": args.obs,
            "noise_sd": args.noise_sd,
            "draws": args.draws,
            "method": args.method,
            "steps": args.steps,
            "mcmc_warmup": settings["mcmc_warmup"],
            "mcmc_samples": settings["mcmc_samples"],
        },
        seed=args.seed,
        command="geodiff " + shlex.join(args.argv),
        progress=not args.quiet,
    )
    print(report.summary())
    n_warn = sum(not c.passed for c in report.checks)
    print(f"{len(report.checks) - n_warn} checks pass, {n_warn} warn: {report.path}")
    return 1 if args.strict and n_warn else 0


def _cmd_predict(args) -> None:
    from geodiff.diffusion.model import load_model
    from geodiff.observe import Observations, read_points_csv
    from geodiff.posterior import diffusion_posterior
    from geodiff.transform import DomainMap

    model = load_model(args.model, _device(args.device))
    duplicates = "merge" if args.merge_duplicates else "reject"
    obs = Observations.from_csv(args.obs, noise_sd=args.noise_sd, duplicates=duplicates)
    targets = "grid" if args.at == "grid" else read_points_csv(args.at)
    domain = {"model": model.grid.extent, "auto": None}.get(args.domain, args.domain)
    dmap = DomainMap.fit(
        obs,
        model.grid.extent,
        targets=None if args.at == "grid" else targets,
        domain=domain,
        margin=args.margin,
        standardise=args.standardise,
        data_scale=model.data_scale,
    )
    options = {
        key: value
        for key, value in (
            ("steps", args.steps),
            ("particles", args.particles),
            ("step_size", args.step_size),
            ("eta", args.eta),
            ("cg_iterations", args.cg_iterations),
        )
        if value is not None
    }
    draws = diffusion_posterior(
        model,
        obs,
        method=args.method,
        samples=args.samples,
        seed=args.seed,
        domain_map=dmap,
        batch_size=args.batch_size,
        progress=not args.quiet,
        **options,
    )
    pred = draws.at(targets)
    seconds = draws.info["wall_time_s"]
    print(
        f"{args.method}: {args.samples} posterior draws in {seconds:.1f} s "
        f"({100 * seconds / args.samples:.1f} s per 100 draws)"
    )
    out_draws = args.draws or args.out.with_name(args.out.stem + ".draws.nc")
    draws.write(out_draws, {"model": str(args.model), "observations": str(args.obs)})
    print(f"posterior draws: {out_draws}")
    _finish_prediction(args, pred, obs, {"model": str(args.model)})


def _cmd_sample(args) -> None:
    from geodiff.diffusion.model import load_model
    from geodiff.netcdf import write_fields_netcdf

    model = load_model(args.model, _device(args.device))
    started = time.perf_counter()
    fields = model.sample(
        args.n,
        steps=args.steps,
        sampler=args.sampler,
        eta=args.eta,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    elapsed = time.perf_counter() - started
    attrs = {
        "model": str(args.model),
        "sampler": args.sampler,
        "steps": args.steps,
        "eta": args.eta,
        "seed": args.seed,
    }
    out = write_fields_netcdf(args.out, fields.numpy(), model.grid, attrs)
    print(f"wrote {args.n} samples to {out} ({elapsed:.1f} s, {args.n / elapsed:.1f} fields/s)")
    if args.plot is not None:
        from geodiff.fields.simulate import simulate
        from geodiff.plot import plot_samples

        reference = simulate(model.prior, model.grid, min(8, args.n), seed=args.seed).fields
        png = out.with_suffix(".png") if args.plot is True else Path(args.plot)
        name = {"dpm2m": "DPM-Solver++(2M)", "ddim": "DDIM", "ddpm": "DDPM"}[args.sampler]
        title = f"{name}, {args.steps} steps (top); exact simulations of the prior (bottom)"
        print(
            f"plot: {plot_samples(fields, png, grid=model.grid, reference=reference, title=title)}"
        )


def main(argv=None) -> int:
    """Entry point of the ``geodiff`` command."""
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # geodiff's own warnings (poor fits, unconverged chains) as one plain line each
        if category.__module__.startswith("geodiff") or "geodiff" in filename:
            print(f"geodiff {args.command}: warning: {message}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    try:
        with warnings.catch_warnings():
            default_show = warnings.showwarning
            warnings.showwarning = show_warning
            status = args.func(args)
    except GeodiffError as err:
        print(f"geodiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"geodiff {args.command}: interrupted; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
