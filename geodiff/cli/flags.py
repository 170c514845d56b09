"""The command line's vocabulary: every flag with its one meaning (:data:`FLAGS`), the
renamed flags' old names (:data:`DEPRECATED`), and the parser of every command
(:func:`build_parser`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geodiff.noise import NOISE_MODES

__all__ = ["DEPRECATED", "FLAGS", "SAMPLER_OPTIONS", "build_parser", "sampler_option"]


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


def _noise_sd(text: str):
    """``--noise-sd``'s value, a number; ``reml`` and ``bayes``, its former modes, still
    work (as ``--noise``) and say so."""
    if text in ("reml", "bayes"):
        print(f"geodiff: warning: --noise-sd {text} is now --noise {text}", file=sys.stderr)
        return text
    return _typed(float, "a number >= 0", lambda v: v >= 0)(text)


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
    "--noise-sd": _flag("measurement noise sd of every observation (default: the file's "
                        "noise_sd column)", _noise_sd),
    "--noise": _flag("how the noise is learned: given (--noise-sd or the column), reml (a "
                     "plug-in nugget on top) or bayes (a nugget sampled with the field); "
                     "default: given when known, else bayes", choices=NOISE_MODES),
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
    "--steps": _flag("diffusion sampler steps", _count),
    "--sampler": _flag("unconditional sampler (ddpm: every step)", default="dpm2m",
                       choices=("dpm2m", "ddim", "ddpm")),
    "--eta": _flag("DDIM's η (0: deterministic)", _size),
    "--particles": _flag("mcgdiff: particles per draw", _count),
    "--step-size": _flag("dps: step size ζ'", _size),
    "--cg-iterations": _flag("mmps: most CG iterations per step (0: no Jacobian)", _index),
    "--cg-tolerance": _flag("mmps: stop CG at this residual relative to its start", _rate),
    "--start-sigma": _flag("mmps: start at this noise level from the prior's Gaussian "
                           "(skips the steps above it)", _rate),
    "--precision": _flag("the network's arithmetic (bfloat16 is faster on CPUs with AVX-512 "
                         "BF16; see BENCHMARKS.md)", default="float32",
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
    "--network": _flag("backbone: tiny, small (CPU, 32²), base (GPU, 64²), conv or conv-wide "
                       "(any grid size); default conv for a translation-invariant prior, else "
                       "by grid"),
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

_OBSERVATIONS = ("--obs", "--noise-sd", "--noise", "--merge-duplicates", "--transform", "--domain",
                 "--margin", "--standardise")  # fmt: skip
_SUMMARY = ("--out", "--quantiles", "--threshold", "--plot", "--overwrite")
#: --grid for a trained model: a window of any size at its resolution (conv networks)
_MODEL_GRID = {"default": None, "help": "grid HxW at the model's resolution: a larger grid is "
               "a larger area (conv models of a translation-invariant prior; default: the "
               "training window)"}  # fmt: skip
_RUN = ("--seed", "--device", "--quiet")
#: the diffusion posterior samplers' own options (their defaults: the samplers' signatures)
SAMPLER_OPTIONS = ("--steps", "--particles", "--step-size", "--cg-iterations", "--cg-tolerance",
                    "--start-sigma", "--eta")  # fmt: skip


class _Deprecated(argparse.Action):
    """An old flag name: stores into the new flag's destination and says so, once."""

    def __call__(self, parser, namespace, values, option_string=None):
        new = DEPRECATED[option_string]
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as for every other mistake
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(sub, name, text, flags, changes=None) -> argparse.ArgumentParser:
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
    return p


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``geodiff`` command (``args.command`` names the one given)."""
    parser = _Parser(prog="geodiff", description="Bayesian prediction with learned priors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _data_commands(sub)
    _model_commands(sub)
    return parser


def _sampler_flag() -> dict:
    """``--method`` (the diffusion posterior samplers) and the samplers' options, each
    help ending with the defaults that the samplers' own signatures declare."""
    from geodiff.posterior.methods import POSTERIOR_SAMPLERS
    from geodiff.posterior.predict import DEFAULT_METHOD

    out = {"--method": {**FLAGS["--method"], "default": DEFAULT_METHOD,
                        "choices": sorted(POSTERIOR_SAMPLERS)}}  # fmt: skip
    for flag in SAMPLER_OPTIONS:
        key = sampler_option(flag)
        defaults = [
            f"{name} {'none' if spec.defaults[key] is None else spec.defaults[key]}"
            for name, spec in POSTERIOR_SAMPLERS.items()
            if key in spec.defaults
        ]
        out[flag] = {"help": f"{FLAGS[flag]['help']} (default: {', '.join(defaults)}, unless "
                             "the model stores its own, which is logged)"}  # fmt: skip
    return out


def sampler_option(flag: str) -> str:
    """The sampler option a flag sets: ``--cg-tolerance`` → ``cg_tolerance``."""
    return flag[2:].replace("-", "_")


def _data_commands(sub) -> None:
    """The commands that need no trained model: priors, simulate, krige, mcmc, prior."""
    required_prior = {"required": True}
    _command(sub, "priors", "list the shipped prior configs", ())
    _command(sub, "simulate", "simulate prior fields and parameters into a store",
             ("--prior", "--grid", "--n", "--out", "--chunk-size", "--fields-per-theta",
              "--workers", "--plot", *_RUN), {"--prior": required_prior})  # fmt: skip
    _command(sub, "krige", "kriging: ordinary (fitted) or simple (known parameters)",
             (*_OBSERVATIONS, "--prior", "--at", "--grid", "--kriging", "--fit", "--isotropic",
              "--theta", "--predict", *_SUMMARY, "--quiet"),
             {"--prior": {"default": "stationary-matern", "help": FLAGS["--prior"]["help"]
                          + "; ordinary kriging takes its family and shape"}})  # fmt: skip
    _command(sub, "mcmc", "fully Bayesian predictions: MCMC over the parameters "
             "(NUTS; slice sampling for SPDE priors)",
             (*_OBSERVATIONS, "--prior", "--at", "--grid", "--mcmc-chains", "--mcmc-warmup",
              "--mcmc-samples", "--draws", "--no-jit", "--predict", *_SUMMARY, *_RUN),
             {"--prior": required_prior, "--draws": {"default": 200}})  # fmt: skip
    _command(sub, "prior", "write a prior config (TOML) fitted to observations: "
             "domain, length-scale and variance ranges from the data",
             ("--from-data", "--noise-sd", "--noise", "--merge-duplicates", "--margin", "--out",
              "--overwrite"), {"--out": {"help": "the prior config to write (.toml)"}})  # fmt: skip


def _model_commands(sub) -> None:
    """The commands of a trained model: predict, crossval, demo, validate, train, sample."""
    from geodiff.models import DEMO_MODEL

    method, optional_out = _sampler_flag(), {"required": False}
    _command(sub, "predict", "posterior draws and predictions from a trained model "
             "(MMPS's memory: about 24 n² bytes for n observations, 1 GB of kept factors, and "
             "10 KB per grid node per draw of a batch, batches cut to 2 GB; checked first)",
             ("--model", "--precision", *_OBSERVATIONS, "--grid", "--cell-size", "--at", "--method",
              "--draws", *SAMPLER_OPTIONS, "--batch-size", "--predict", *_SUMMARY, "--draws-out",
              *_RUN), {**method, "--grid": _MODEL_GRID})  # fmt: skip
    _command(sub, "crossval", "K-fold cross-validation of every method on "
             "observations in physical units; print and write the table",
             ("--model", "--precision", "--obs", "--noise-sd", "--noise", "--merge-duplicates",
              "--transform", "--domain", "--margin", "--predictors", "--folds", "--fold-scheme",
              "--block-size", "--method", "--steps", "--draws", "--mcmc-warmup",
              "--mcmc-samples", "--predict", "--out", "--overwrite", *_RUN),
             {**method, "--draws": {"default": 39}, "--mcmc-warmup": {"default": 300},
              "--mcmc-samples": {"default": 300}, "--domain": {"default": "auto"},
              "--out": {"help": "table (.md); per-point table beside it (.csv)"}})  # fmt: skip
    synthetic_noise = {"help": "measurement noise sd of the synthetic data", "default": 0.1}
    _command(sub, "demo", "a true field, sparse data and every method side by side",
             ("--model", "--precision", "--grid", "--n-obs", "--noise-sd", "--draws", "--method",
              "--steps", "--mcmc-warmup", "--mcmc-samples", "--out", *_RUN),
             {**method, "--model": {"required": False, "default": DEMO_MODEL},
              "--grid": _MODEL_GRID, "--noise-sd": synthetic_noise, "--draws": {"default": 39},
              "--mcmc-warmup": {"default": 100}, "--mcmc-samples": {"default": 100},
              "--out": {**optional_out, "default": Path("runs/demo")}})  # fmt: skip
    p = _command(sub, "validate", "check a trained prior and its posteriors "
                 "against exact references; write a report",
                 ("--model", "--precision", "--out", "--quick", "--fields", "--prior-sampler",
                  "--prior-steps", "--oracle-components", "--mse-fields", "--classifier-epochs",
                  "--datasets", "--n-obs", "--noise-sd", "--draws", "--method", "--steps",
                  "--mcmc-warmup", "--mcmc-samples", "--strict", *_RUN),
                 {**_preset_flags(), **method, "--out": {**optional_out, "help": "report folder "
                  "(default runs/validate/MODEL)"}, "--noise-sd": synthetic_noise,
                  "--draws": {"default": 19}})  # fmt: skip
    which = p.add_mutually_exclusive_group()
    which.add_argument("--prior-only", action="store_true", help="skip the posterior checks")
    which.add_argument("--posterior-only", action="store_true", help="skip the prior checks")
    p = _command(sub, "train", "train a diffusion prior (resumes an interrupted run)",
                 ("--grid", "--out", "--network", "--target", "--schedule", "--timesteps",
                  "--train-steps", "--batch-size", "--lr", "--lr-warmup", "--ema",
                  "--checkpoint-every", "--validate-every", "--oracle-components",
                  "--fields-per-theta", "--no-amp", *_RUN),
                 {"--grid": {"default": None, "help": "with --prior: grid N or HxW (default 32)"},
                  "--oracle-components": {"default": 64}})  # fmt: skip
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prior", help=FLAGS["--prior"]["help"] + "; fresh simulations")
    source.add_argument("--data", type=Path, help="a zarr store of simulated fields")
    _command(sub, "sample", "unconditional fields from a trained diffusion prior",
             ("--model", "--precision", "--grid", "--n", "--sampler", "--steps", "--eta",
              "--batch-size", "--out", "--plot", "--overwrite", *_RUN),
             {"--steps": {"default": 50}, "--eta": {"default": 0.0},
              "--batch-size": {"default": 256}, "--grid": _MODEL_GRID})  # fmt: skip


def _preset_flags() -> dict:
    """``validate``'s sizes: no default of their own, the preset's in their help."""
    from geodiff.evaluate.validate.presets import PRESETS

    out = {}
    for key, value in PRESETS["full"].items():
        flag = f"--{key.replace('_', '-')}"
        out[flag] = {"default": None, "help": FLAGS[flag]["help"].split(" (")[0]
                     + f" (default {value}; --quick {PRESETS['quick'][key]})"}  # fmt: skip
    return out
