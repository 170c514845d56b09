"""The ``geodiff`` command line: every flag has one meaning (:data:`FLAGS`) in every command.

A user's error (a bad config, an invalid grid, an unwritable path, ...) prints one line
and exits with status 2; an interrupted run exits with 130 and resumes when rerun.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.io import check_outputs

__all__ = ["FLAGS", "main"]


def _typed(parse, what: str, ok=lambda value: True):
    """An argparse type: ``parse(text)`` if ``ok`` of it, or one line saying what was expected."""

    def typed(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return typed


def _domain(text: str):
    if text in ("model", "auto"):
        return text
    x0, x1, y0, y1 = (float(v) for v in text.split(","))
    return ((x0, x1), (y0, y1))


_count = _typed(int, "an integer > 0", lambda v: v > 0)
_index = _typed(int, "an integer >= 0", lambda v: v >= 0)
_size = _typed(float, "a number >= 0", lambda v: v >= 0)
_rate = _typed(float, "a number > 0", lambda v: v > 0)
_finite = _typed(float, "a finite number", lambda v: abs(v) < float("inf"))
_probabilities = _typed(lambda s: tuple(float(v) for v in s.split(",")),
                        "levels in (0, 1) like 0.05,0.5,0.95",
                        lambda v: all(0 < p < 1 for p in v))  # fmt: skip
_domain_box = _typed(_domain, "model, auto or x_min,x_max,y_min,y_max")
_noise = _typed(lambda s: s if s in ("reml", "bayes") else float(s),
                "a number >= 0, reml or bayes", lambda v: isinstance(v, str) or v >= 0)  # fmt: skip


def _fit_name(text: str) -> str:
    """``--fit``'s value; ``ml``, its former name, still works and says so."""
    if text == "ml":
        print("geodiff: warning: --fit ml is now --fit reml", file=sys.stderr)
        return "reml"
    return text


def _flag(help: str, type=None, default=None, **more) -> dict:
    return {"help": help, "default": default, **({"type": type} if type else {}), **more}


def _switch(help: str) -> dict:
    return {"action": "store_true", "help": help}


#: every flag of the command line with its one meaning; a command may change its default
FLAGS = {
    "--prior": _flag("prior config: a .toml file or a shipped name (see `geodiff priors`)"),
    "--model": _flag("trained model: a run folder or a shipped name", Path, required=True),
    "--obs": _flag("observations CSV: x,y,value[,noise_sd] or a box per row", Path, required=True),
    "--noise-sd": _flag("measurement noise sd of every observation, or infer it: reml (plug-in "
                        "nugget) or bayes (sampled with the field); default: the file's "
                        "noise_sd column, else bayes", _noise),
    "--transform": _flag("model transformed values; predictions are back-transformed",
                         default="none", choices=("none", "log", "boxcox", "normal-score")),
    "--predict": _flag("predict a new measurement (field + noise) or the smooth field",
                       default="measurement", choices=("measurement", "field")),
    "--merge-duplicates": _switch("average observations at one location (default: refuse)"),
    "--theta": _flag("JSON file of known parameter values (simple kriging)", Path),
    "--grid": _flag("grid size N or HxW over the prior's domain", default="64"),
    "--at": _flag("targets: 'grid' or a CSV with x,y columns", default="grid"),
    "--cell-size": _flag("with --domain: physical size of a grid cell; the grid is as many "
                         "cells as cover the box (models of any size)", _rate),
    "--domain": _flag("physical domain mapped onto the model's: model, auto (the data's box "
                      "plus --margin) or x_min,x_max,y_min,y_max", _domain_box, "model"),
    "--margin": _flag("--domain auto: widening, fraction of the box's longer side", _size, 0.1),
    "--standardise": {
        "action": argparse.BooleanOptionalAction, "default": None,
        "help": "map values to the model's units by their mean and sd (default: when "
        "--domain is mapped and they sit far from the prior's scale, with a warning)",
    },
    "--n": _flag("number of fields", _count, required=True),
    "--n-obs": _flag("observations per synthetic dataset", _count, 30),
    "--draws": _flag("posterior draws", _count, 100),
    "--datasets": _flag("synthetic datasets of the posterior checks", _count),
    "--fields": _flag("network samples and simulations compared", _count),
    "--chunk-size": _flag("fields per chunk", _count, 256),
    "--fields-per-theta": _flag("fields sharing one parameter draw", _count, 1),
    "--batch-size": _flag("fields per batch", _count, 64),
    "--workers": _flag("CPU processes (default: all cores)", _count),
    "--method": _flag("diffusion posterior sampler", choices=None),
    "--steps": _flag("diffusion sampler steps (default: the sampler's)", _count),
    "--sampler": _flag("unconditional sampler (ddpm: every step)", default="dpm2m",
                       choices=("dpm2m", "ddim", "ddpm")),
    "--eta": _flag("DDIM's η (0: deterministic)", _size),
    "--particles": _flag("mcgdiff: particles per draw", _count),
    "--step-size": _flag("dps: step size ζ'", _size),
    "--cg-iterations": _flag("mmps: most CG iterations per step (default 30; 0: no Jacobian)",
                             _index),
    "--cg-tolerance": _flag("mmps: stop CG at this residual relative to its start "
                            "(default 0.03)", _rate),
    "--start-sigma": _flag("mmps: start at this noise level from the prior's Gaussian "
                           "(skips the steps above it)", _rate),
    "--precision": _flag("the network's arithmetic; bfloat16 ran 1.7x faster on a CPU with "
                         "AVX-512 BF16 (BENCHMARKS.md)", default="float32",
                         choices=("float32", "bfloat16")),  # geodiff.diffusion.network.PRECISIONS
    "--kriging": _flag("ordinary (fitted covariance) or simple (known --theta)",
                       default="ordinary", choices=("ordinary", "simple")),
    "--fit": _flag("ordinary kriging's covariance fit", _fit_name, "reml",
                   choices=("reml", "variogram")),
    "--isotropic": _switch("ordinary kriging: fit no anisotropy"),
    "--mcmc-chains": _flag("MCMC chains (NUTS; slice sampling for SPDE priors)", _count, 2),
    "--mcmc-warmup": _flag("MCMC warm-up steps per chain", _count, 500),
    "--mcmc-samples": _flag("MCMC draws per chain", _count, 500),
    "--no-jit": _switch("do not JIT-compile the NUTS potential"),
    "--network": _flag("backbone: tiny, small (CPU, 32²), base (GPU, 64²) or conv (any grid "
                       "size); default conv for a translation-invariant prior, else by grid"),
    "--target": _flag("the network's training target", default="v", choices=("eps", "v", "x0")),
    "--schedule": _flag("noise schedule", default="cosine", choices=("cosine", "linear")),
    "--timesteps": _flag("diffusion steps T", _count, 1000),
    "--train-steps": _flag("optimiser steps", _count, 20000),
    "--lr": _flag("learning rate", _rate, 2e-4),
    "--lr-warmup": _flag("learning-rate warm-up, optimiser steps", _index, 500),
    "--ema": _flag("EMA decay of the weights", _size, 0.999),
    "--checkpoint-every": _flag("optimiser steps between checkpoints", _count, 500),
    "--validate-every": _flag("optimiser steps between validations", _count, 2000),
    "--oracle-components": _flag("θ draws in the exact oracle (0: none)", _index),
    "--no-amp": _switch("no bfloat16 mixed precision on GPU"),
    "--quick": _switch("small sets for a first look in a few minutes"),
    "--prior-sampler": _flag("the prior checks' sampler", default="dpm2m",
                             choices=("dpm2m", "ddim")),
    "--prior-steps": _flag("the prior checks' sampler steps", _count, 50),
    "--mse-fields": _flag("fields for the denoising error", _count),
    "--classifier-epochs": _flag("two-sample classifier epochs", _count),
    "--strict": _switch("exit with status 1 if a check warns"),
    "--folds": _flag("cross-validation folds", _count, 5),
    "--fold-scheme": _flag("random folds, or spatial blocks held out whole", default="random",
                           choices=("random", "blocked")),
    "--block-size": _flag("side of the spatial blocks (default: see geodiff.evaluate.folds)",
                          _rate),
    "--predictors": _flag("comma-separated predictors", default="diffusion,kriging-ok,mcmc"),
    "--from-data": _flag("observations CSV the prior is fitted to", Path, required=True),
    "--out": _flag("output path", Path, required=True),
    "--draws-out": _flag("NetCDF file of the draws (default: OUT with .draws.nc)", Path),
    "--quantiles": _flag("predictive quantile levels", _probabilities, (0.05, 0.5, 0.95)),
    "--threshold": _flag("also write P(field > T); repeat for several", _finite, action="append"),
    "--plot": _flag("draw a figure (default file: OUT.png)", nargs="?", const=True, metavar="PNG"),
    "--overwrite": _switch("replace existing outputs"),
    "--seed": _flag("the same seed gives the same result", _index, 0),
    "--device": _flag("cpu or cuda (default: cuda when available)"),
    "--quiet": _switch("no progress messages or bars"),
}  # fmt: skip

#: renamed flags: the old name still works for one release and prints one line
DEPRECATED = {"--prediction": "--target", "--methods": "--predictors"}

_OBSERVATIONS = ("--obs", "--noise-sd", "--merge-duplicates", "--transform", "--domain",
                 "--margin", "--standardise")  # fmt: skip
_SUMMARY = ("--out", "--quantiles", "--threshold", "--plot", "--overwrite")
#: --grid for a trained model: a window of any size at its resolution (conv networks)
_MODEL_GRID = {"default": None, "help": "grid HxW at the model's resolution: a larger grid is "
               "a larger area (conv models of a translation-invariant prior; default: the "
               "training window)"}  # fmt: skip
_RUN = ("--seed", "--device", "--quiet")


class _Deprecated(argparse.Action):
    """An old flag name: stores into the new flag's destination and says so, once."""

    def __call__(self, parser, namespace, values, option_string=None):
        new = DEPRECATED[option_string]
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as for every other mistake
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(sub, name, func, text, flags, changes=None) -> argparse.ArgumentParser:
    """A subcommand taking ``flags``; ``changes`` maps a flag to its changed settings."""
    p = sub.add_parser(name, help=text, description=text)
    for flag in flags:
        kwargs = {**FLAGS[flag], **(changes or {}).get(flag, {})}
        if kwargs.get("default") not in (None, False, []) and "default" not in kwargs["help"]:
            kwargs["help"] += " (default %(default)s)"
        action = p.add_argument(flag, **kwargs)
        for old in (o for o, n in DEPRECATED.items() if n == flag):
            p.add_argument(old, dest=action.dest, action=_Deprecated, help=argparse.SUPPRESS,
                           type=kwargs.get("type"), choices=kwargs.get("choices"))  # fmt: skip
    p.set_defaults(func=func)
    return p


def _parser() -> argparse.ArgumentParser:
    from geodiff.evaluate.validate.presets import PRESETS
    from geodiff.models import DEMO_MODEL
    from geodiff.posterior.methods import POSTERIOR_SAMPLERS
    from geodiff.posterior.predict import DEFAULT_METHOD

    parser = _Parser(prog="geodiff", description="Bayesian prediction with learned priors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    method = {"--method": {**FLAGS["--method"], "default": DEFAULT_METHOD,
                           "choices": sorted(POSTERIOR_SAMPLERS)}}  # fmt: skip
    required_prior, optional_out = {"required": True}, {"required": False}
    _command(sub, "priors", _cmd_priors, "list the shipped prior configs", ())
    _command(sub, "simulate", _cmd_simulate, "simulate prior fields and parameters into a store",
             ("--prior", "--grid", "--n", "--out", "--chunk-size", "--fields-per-theta",
              "--workers", "--plot", *_RUN), {"--prior": required_prior})  # fmt: skip
    _command(sub, "krige", _cmd_krige, "kriging: ordinary (fitted) or simple (known parameters)",
             (*_OBSERVATIONS, "--prior", "--at", "--grid", "--kriging", "--fit", "--isotropic",
              "--theta", "--predict", *_SUMMARY, "--quiet"),
             {"--prior": {"default": "stationary-matern", "help": FLAGS["--prior"]["help"]
                          + "; ordinary kriging takes its family and shape"}})  # fmt: skip
    _command(sub, "mcmc", _cmd_mcmc, "fully Bayesian predictions: MCMC over the parameters "
             "(NUTS; slice sampling for SPDE priors)",
             (*_OBSERVATIONS, "--prior", "--at", "--grid", "--mcmc-chains", "--mcmc-warmup",
              "--mcmc-samples", "--draws", "--no-jit", "--predict", *_SUMMARY, *_RUN),
             {"--prior": required_prior, "--draws": {"default": 200}})  # fmt: skip
    _command(sub, "predict", _cmd_predict, "posterior draws and predictions from a trained model "
             "(MMPS's memory: about 24 n² bytes for n observations, 1 GB of kept factors, and "
             "10 KB per grid node per draw of a batch, batches cut to 2 GB; checked first)",
             ("--model", "--precision", *_OBSERVATIONS, "--grid", "--cell-size", "--at", "--method",
              "--draws",
              "--steps", "--particles", "--step-size", "--cg-iterations", "--cg-tolerance",
              "--start-sigma", "--eta", "--batch-size", "--predict", *_SUMMARY, "--draws-out",
              *_RUN), {**method, "--grid": _MODEL_GRID})  # fmt: skip
    _command(sub, "crossval", _cmd_crossval, "K-fold cross-validation of every method on "
             "observations in physical units; print and write the table",
             ("--model", "--precision", "--obs", "--noise-sd", "--merge-duplicates", "--transform",
              "--domain",
              "--margin", "--predictors", "--folds", "--fold-scheme", "--block-size",
              "--method", "--steps", "--draws", "--mcmc-warmup", "--mcmc-samples", "--predict",
              "--out", "--overwrite", *_RUN),
             {**method, "--draws": {"default": 39}, "--mcmc-warmup": {"default": 300},
              "--mcmc-samples": {"default": 300}, "--domain": {"default": "auto"},
              "--out": {"help": "table (.md); per-point table beside it (.csv)"}})  # fmt: skip
    _command(sub, "prior", _cmd_prior, "write a prior config (TOML) fitted to observations: "
             "domain, length-scale and variance ranges from the data",
             ("--from-data", "--noise-sd", "--merge-duplicates", "--margin", "--out",
              "--overwrite"), {"--out": {"help": "the prior config to write (.toml)"}})  # fmt: skip
    _command(sub, "demo", _cmd_demo, "a true field, sparse data and every method side by side",
             ("--model", "--precision", "--grid", "--n-obs", "--noise-sd", "--draws", "--method",
              "--steps", "--mcmc-warmup", "--mcmc-samples", "--out", *_RUN),
             {**method, "--model": {"required": False, "default": DEMO_MODEL},
              "--grid": _MODEL_GRID,
              "--noise-sd": {"default": 0.1}, "--draws": {"default": 39},
              "--mcmc-warmup": {"default": 100}, "--mcmc-samples": {"default": 100},
              "--out": {**optional_out, "default": Path("runs/demo")}})  # fmt: skip
    preset = {f"--{k.replace('_', '-')}": {"default": None, "help": FLAGS[
        f"--{k.replace('_', '-')}"]["help"].split(" (")[0] + f" (default {v}; --quick "
        f"{PRESETS['quick'][k]})"} for k, v in PRESETS["full"].items()}  # fmt: skip
    p = _command(sub, "validate", _cmd_validate, "check a trained prior and its posteriors "
                 "against exact references; write a report",
                 ("--model", "--precision", "--out", "--quick", "--fields", "--prior-sampler",
                  "--prior-steps", "--oracle-components", "--mse-fields", "--classifier-epochs",
                  "--datasets",
                  "--n-obs", "--noise-sd", "--draws", "--method", "--steps", "--mcmc-warmup",
                  "--mcmc-samples", "--strict", *_RUN),
                 {**preset, **method, "--out": {**optional_out, "help": "report folder "
                  "(default runs/validate/MODEL)"}, "--noise-sd": {"default": 0.1},
                  "--draws": {"default": 19}})  # fmt: skip
    which = p.add_mutually_exclusive_group()
    which.add_argument("--prior-only", action="store_true", help="skip the posterior checks")
    which.add_argument("--posterior-only", action="store_true", help="skip the prior checks")
    p = _command(sub, "train", _cmd_train, "train a diffusion prior (resumes an interrupted run)",
                 ("--grid", "--out", "--network", "--target", "--schedule", "--timesteps",
                  "--train-steps", "--batch-size", "--lr", "--lr-warmup", "--ema",
                  "--checkpoint-every", "--validate-every", "--oracle-components",
                  "--fields-per-theta", "--no-amp", *_RUN),
                 {"--grid": {"default": None, "help": "with --prior: grid N or HxW (default 32)"},
                  "--oracle-components": {"default": 64}})  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prior", help=FLAGS["--prior"]["help"] + "; fresh simulations")
    source.add_argument("--data", type=Path, help="a zarr store of simulated fields")
    _command(sub, "sample", _cmd_sample, "unconditional fields from a trained diffusion prior",
             ("--model", "--precision", "--grid", "--n", "--sampler", "--steps", "--eta",
              "--batch-size", "--out", "--plot", "--overwrite", *_RUN),
             {"--steps": {"default": 50}, "--eta": {"default": 0.0},
              "--batch-size": {"default": 256}, "--grid": _MODEL_GRID})  # fmt: skip
    return parser


def _cmd_priors(args) -> None:
    from geodiff.fields.config import builtin_priors, load_prior

    for name, path in sorted(builtin_priors().items()):
        print(f"{name:28s} {load_prior(name).kind:15s} {path}")


def _cmd_simulate(args) -> None:
    from geodiff.fields.config import load_prior
    from geodiff.fields.store import open_store, write_store
    from geodiff.grid import Grid
    from geodiff.machine import resolve_device

    prior, device = load_prior(args.prior), args.device and resolve_device(args.device)
    grid, started = prior.window(Grid.parse(args.grid).shape), time.perf_counter()
    path = write_store(
        args.out, prior, grid, args.n, args.seed, chunk_size=args.chunk_size,
        fields_per_theta=args.fields_per_theta, workers=args.workers, device=device,
        progress=not args.quiet,
    )  # fmt: skip
    size, elapsed = f"{grid.shape[0]}x{grid.shape[1]}", time.perf_counter() - started
    print(f"wrote {args.n} fields of {prior.name} on a {size} grid to {path} ({elapsed:.1f} s)")
    if args.plot is not None:
        from geodiff.plot import figure_path, plot_store

        print(f"plot: {plot_store(open_store(path), prior, figure_path(args.plot, args.out))}")


def _task(args, model=None, theta=None):
    """The prediction task of the shared arguments (see :mod:`geodiff.evaluate.tasks`)."""
    from geodiff.evaluate.tasks import build_task, read_observations
    from geodiff.fields.config import load_prior
    from geodiff.observe import read_points_csv

    duplicates = "merge" if args.merge_duplicates else "reject"
    obs, noise = read_observations(args.obs, args.noise_sd, duplicates=duplicates)
    targets = "grid" if args.at == "grid" else read_points_csv(args.at)
    prior = load_prior(args.prior) if model is None else None
    domain = args.domain
    if getattr(args, "cell_size", None) is not None:
        from geodiff.evaluate.tasks import grid_for_cell_size

        if args.grid is not None or domain == "model":
            raise GeodiffError("--cell-size goes with --domain auto or a box, without --grid")
        model, domain = grid_for_cell_size(model, obs, targets, args.cell_size, domain=domain,
                                           margin=args.margin)  # fmt: skip
    return build_task(
        obs, targets, prior=prior, model=model, noise=noise, transform=args.transform,
        domain=domain, margin=args.margin,
        standardise="auto" if args.standardise is None else args.standardise,
        grid=getattr(args, "grid", "64"), theta=theta,
    )  # fmt: skip


def _noise_line(pred) -> str:
    """One line on the noise the prediction used."""
    info = pred.info
    if info.get("noise_sd_draws") is not None:
        sd = info["noise_sd_draws"]
        lo, hi = np.quantile(sd, [0.05, 0.95])
        return f"noise sd (inferred, posterior): {np.mean(sd):.4g}, 90% interval {lo:.4g}-{hi:.4g}"
    if "noise_sd" in info:
        return f"noise sd (inferred, REML plug-in): {info['noise_sd']:.4g}"
    return "noise sd: as given"


def _model(args):
    from geodiff.diffusion.model import load_model
    from geodiff.grid import Grid
    from geodiff.machine import resolve_device

    model = load_model(args.model, resolve_device(args.device), precision=args.precision)
    if getattr(args, "grid", None) is not None:
        model = model.on_grid(Grid.parse(args.grid).shape)
    return model


def _finish_prediction(args, pred, obs, details: dict) -> None:
    """Write the prediction, its JSON sidecar (fit, diagnostics) and the plot."""
    out, sidecar = pred.write_with_details(
        args.out, args.quantiles, args.threshold, details=details, overwrite=args.overwrite
    )
    print(f"wrote {len(pred)} predictions to {out} (details: {sidecar})")
    if args.plot is not None:
        from geodiff.plot import figure_path, plot_prediction

        try:
            print(f"plot: {plot_prediction(pred, obs, figure_path(args.plot, out))}")
        except (GeodiffError, OSError) as err:
            raise GeodiffError(f"wrote {out}, but not its plot: {err}") from None


def _run(args, name, task, **options):
    """``run_predictor`` with the shared arguments; prints the noise line."""
    from geodiff.evaluate.predictors import run_predictor

    draws, seed = getattr(args, "draws", 19), getattr(args, "seed", 0)
    pred = run_predictor(name, task, draws=draws, seed=seed, progress=not args.quiet,
                         quantity=args.predict, **options)  # fmt: skip
    print(_noise_line(pred))
    return pred


def _cmd_krige(args) -> None:
    from geodiff.fields.config import load_theta

    check_outputs(args.out, overwrite=args.overwrite)
    if args.kriging == "simple":
        task = _task(args, theta=load_theta(args.theta))
        pred = _run(args, "kriging-oracle", task)
        pred.method = "simple kriging"
        shown = {k: (f"<{len(v)} values>" if isinstance(v, list) else v)
                 for k, v in task.theta.items()}  # fmt: skip
        print(f"simple kriging with theta = {shown}")
    else:
        task = _task(args)
        pred = _run(args, "kriging-ok", task, fit=args.fit, anisotropic=not args.isotropic)
        fitted = ", ".join(f"{k}={v:.4g}" for k, v in pred.info["fit"].items())
        print(f"ordinary kriging, {args.fit} fit: {fitted}")
    _finish_prediction(args, pred, task.obs, {"quantity": args.predict})


def _cmd_mcmc(args) -> None:
    check_outputs(args.out, overwrite=args.overwrite)
    task = _task(args)
    options = {"warmup": args.mcmc_warmup, "samples": args.mcmc_samples,
               "chains": args.mcmc_chains, "on_grid": False, "jit": not args.no_jit}  # fmt: skip
    pred = _run(args, "mcmc", task, **options)
    summary = pred.info["summary"]
    print(pred.info.pop("summary_text"))
    _finish_prediction(args, pred, task.obs, {"parameters": summary, "quantity": args.predict})


def _cmd_train(args) -> None:
    from geodiff.diffusion.training import TrainingConfig, train_command

    config = TrainingConfig(
        steps=args.train_steps, batch_size=args.batch_size, learning_rate=args.lr,
        warmup_steps=args.lr_warmup, ema_decay=args.ema, checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every, seed=args.seed, mixed_precision=not args.no_amp,
        oracle_components=args.oracle_components,
    )  # fmt: skip
    started = time.perf_counter()
    model = train_command(
        args.out, config, prior=args.prior, data=args.data, grid=args.grid,
        network=args.network, prediction=args.target, schedule=args.schedule,
        timesteps=args.timesteps, fields_per_theta=args.fields_per_theta, device=args.device,
        progress=not args.quiet,
    )  # fmt: skip
    ratio, seconds = model.info.get("validation", {}).get("ratio"), time.perf_counter() - started
    worst = f"; network/oracle MSE at most {max(ratio):.3f}" if ratio else ""
    print(f"trained {args.out} to step {args.train_steps} in {seconds:.0f} s{worst}")


def _cmd_demo(args) -> None:
    from geodiff.evaluate.demo import run_demo

    started = time.perf_counter()
    model = _model(args)
    report = run_demo(
        model, args.out, n_obs=args.n_obs, noise_sd=args.noise_sd, draws=args.draws,
        method=args.method, steps=args.steps, mcmc_warmup=args.mcmc_warmup,
        mcmc_samples=args.mcmc_samples, seed=args.seed, progress=not args.quiet,
    )  # fmt: skip
    print("\n".join(line for line in report.read_text().splitlines() if line.startswith("|")))
    print(f"demo done in {time.perf_counter() - started:.0f} s: {report} (figure beside it)")


def _cmd_validate(args) -> int:
    from geodiff.evaluate.validate import run_validation
    from geodiff.evaluate.validate.presets import validation_options

    preset = "quick" if args.quick else "full"
    prior_options, posterior_options = validation_options(preset, **vars(args))
    model = _model(args)
    report = run_validation(
        model, args.out or Path("runs") / "validate" / Path(args.model).resolve().name,
        prior_checks=not args.posterior_only, posterior_checks=not args.prior_only,
        prior_options=prior_options, posterior_options=posterior_options, seed=args.seed,
        command="geodiff " + shlex.join(args.argv), progress=not args.quiet,
    )  # fmt: skip
    print(report.summary())
    n_warn = sum(not c.passed for c in report.checks)
    print(f"{len(report.checks) - n_warn} checks pass, {n_warn} warn: {report.path}")
    return 1 if args.strict and n_warn else 0


def _cmd_predict(args) -> None:
    from geodiff.fields.from_data import check_prior_coverage

    out_draws = args.draws_out or args.out.with_name(args.out.stem + ".draws.nc")
    check_outputs(args.out, out_draws, overwrite=args.overwrite)
    task = _task(args, model=_model(args))
    model = task.model
    if task.domain_map is not None:
        check_prior_coverage(model.prior, task.domain_map, task.obs)  # logged, or a warning
        cell = model.resolution / task.domain_map.coordinate_scale
        h, w = model.grid.shape
        print(f"grid {h}x{w} at the model's resolution: cells of {cell:.4g} physical units")
    names = ("steps", "particles", "step_size", "eta", "cg_iterations", "cg_tolerance",
             "start_sigma", "batch_size")  # fmt: skip
    options = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    pred = _run(args, "diffusion", task, method=args.method, keep_posterior=True, **options)
    post, seconds = pred.info.pop("posterior"), pred.info["wall_time_s"]
    print(f"{args.method}: {args.draws} posterior draws in {seconds:.1f} s "
          f"({100 * seconds / args.draws:.1f} s per 100 draws)")  # fmt: skip
    if task.transform is not None:
        post.fields = task.transform.inverse(post.fields).astype(np.float32)
    post.write(out_draws, {"model": str(args.model), "observations": str(args.obs),
                           "content": "posterior draws of the field"})  # fmt: skip
    print(f"posterior draws: {out_draws}")
    details = {"model": str(args.model), "precision": args.precision, "quantity": args.predict}
    _finish_prediction(args, pred, task.obs, details)


def _cmd_crossval(args) -> None:
    from geodiff.evaluate.crossval import run_crossval_command

    check_outputs(args.out, args.out.with_suffix(".csv"), overwrite=args.overwrite)
    duplicates = "merge" if args.merge_duplicates else "reject"
    table = run_crossval_command(
        _model(args), args.obs, args.out, noise_sd=args.noise_sd, duplicates=duplicates,
        methods=tuple(m.strip() for m in args.predictors.split(",") if m.strip()),
        folds=args.folds, scheme=args.fold_scheme, block_size=args.block_size,
        transform=args.transform, domain=args.domain, margin=args.margin, draws=args.draws,
        diffusion_method=args.method, steps=args.steps, mcmc_warmup=args.mcmc_warmup,
        mcmc_samples=args.mcmc_samples, quantity=args.predict, seed=args.seed,
        progress=not args.quiet, command="geodiff " + shlex.join(args.argv),
    )  # fmt: skip
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")


def _cmd_prior(args) -> None:
    from geodiff.evaluate.tasks import read_observations
    from geodiff.fields.from_data import write_prior_from_data

    duplicates = "merge" if args.merge_duplicates else "reject"
    obs, _ = read_observations(args.from_data, args.noise_sd, duplicates=duplicates)
    path = write_prior_from_data(obs, args.out, margin=args.margin, overwrite=args.overwrite)
    print(f"wrote {path}: use it with --prior {path} (geodiff krige, mcmc, train)")


def _cmd_sample(args) -> None:
    from geodiff.netcdf import write_fields_netcdf

    check_outputs(args.out, overwrite=args.overwrite)
    model = _model(args)
    started = time.perf_counter()
    fields = model.sample(
        args.n, steps=args.steps, sampler=args.sampler, eta=args.eta, seed=args.seed,
        batch_size=args.batch_size, progress=not args.quiet,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    attrs = {"model": str(args.model), "sampler": args.sampler, "steps": args.steps,
             "eta": args.eta, "seed": args.seed}  # fmt: skip
    out = write_fields_netcdf(args.out, fields.numpy(), model.grid, attrs)
    print(f"wrote {args.n} samples to {out} ({elapsed:.1f} s, {args.n / elapsed:.1f} fields/s)")
    if args.plot is not None:
        from geodiff.plot import figure_path, plot_model_samples

        png = plot_model_samples(model, fields, figure_path(args.plot, out), sampler=args.sampler,
                                 steps=args.steps, seed=args.seed)  # fmt: skip
        print(f"plot: {png}")


def main(argv=None) -> int:
    """Entry point of the ``geodiff`` command."""
    from geodiff.logs import configure_logging, plain_warnings

    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)

    try:
        with plain_warnings(f"geodiff {args.command}"):
            status = args.func(args)
    except GeodiffError as err:
        print(f"geodiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"geodiff {args.command}: interrupted; rerun it to resume", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
