"""What each ``geodiff`` command does with its parsed arguments (``_cmd_<name>``)."""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.io import check_outputs

logger = logging.getLogger(__name__)


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
    obs, noise = read_observations(args.obs, args.noise_sd, noise=args.noise,
                                   duplicates=duplicates)  # fmt: skip
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
    if pred.noise_sd_draws is not None:
        sd = pred.noise_sd_draws
        lo, hi = np.quantile(sd, [0.05, 0.95])
        return f"noise sd (inferred, posterior): {np.mean(sd):.4g}, 90% interval {lo:.4g}-{hi:.4g}"
    if pred.noise_sd is not None:
        return f"noise sd (inferred, REML plug-in): {pred.noise_sd:.4g}"
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
            path = figure_path(args.plot, out)
            print(f"plot: {plot_prediction(pred, obs, path, thresholds=args.threshold)}")
        except (GeodiffError, OSError) as err:
            raise GeodiffError(f"wrote {out}, but not its plot: {err}") from None


def _run(args, name, task, **options):
    """``run_predictor`` with the shared arguments; prints the noise line."""
    from geodiff.evaluate.predictors import run_predictor

    pred = run_predictor(name, task, **_run_arguments(args), **options)
    print(_noise_line(pred))
    return pred


def _run_arguments(args) -> dict:
    """:func:`~geodiff.evaluate.predictors.run_predictor`'s arguments from the flags."""
    return {"draws": getattr(args, "draws", 19), "seed": getattr(args, "seed", 0),
            "progress": not args.quiet, "quantity": args.predict}  # fmt: skip


def _method_options(args, names) -> dict:
    """``{method: options}`` of the harness commands (crossval, demo, validate) from the
    flags: the diffusion sampler and its steps, MCMC's warm-up and kept draws."""
    mcmc = {"warmup": args.mcmc_warmup, "samples": args.mcmc_samples}
    given = {"diffusion": {"method": args.method, "steps": args.steps}, "mcmc": mcmc,
             "mcmc-grid": mcmc}  # fmt: skip
    return {name: given.get(name, {}) for name in names}


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
        methods=_method_options(args, ("diffusion", "mcmc")), seed=args.seed,
        progress=not args.quiet,
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
    from geodiff.cli.flags import SAMPLER_OPTIONS, sampler_option
    from geodiff.evaluate.predictors import run_diffusion

    names = [*map(sampler_option, SAMPLER_OPTIONS), "batch_size"]
    options = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    post, pred = run_diffusion(task, method=args.method, **_run_arguments(args), **options)
    print(_noise_line(pred))
    print(f"{args.method}: {args.draws} posterior draws in {post.seconds:.1f} s "
          f"({100 * post.seconds / args.draws:.1f} s per 100 draws)")  # fmt: skip
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
        _model(args), args.obs, args.out, noise_sd=args.noise_sd, noise=args.noise,
        duplicates=duplicates,
        methods=_method_options(args, [m.strip() for m in args.predictors.split(",")
                                       if m.strip()]),
        folds=args.folds, scheme=args.fold_scheme, block_size=args.block_size,
        transform=args.transform, domain=args.domain, margin=args.margin, draws=args.draws,
        quantity=args.predict, seed=args.seed,
        progress=not args.quiet, command="geodiff " + shlex.join(args.argv),
    )  # fmt: skip
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")


def _cmd_prior(args) -> None:
    from geodiff.evaluate.tasks import read_observations
    from geodiff.fields.from_data import write_prior_from_data

    duplicates = "merge" if args.merge_duplicates else "reject"
    obs, _ = read_observations(args.from_data, args.noise_sd, noise=args.noise,
                               duplicates=duplicates)  # fmt: skip
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


#: what each command runs, by its name
COMMANDS = {
    "priors": _cmd_priors, "simulate": _cmd_simulate, "krige": _cmd_krige, "mcmc": _cmd_mcmc,
    "prior": _cmd_prior, "predict": _cmd_predict, "crossval": _cmd_crossval, "demo": _cmd_demo,
    "validate": _cmd_validate, "train": _cmd_train, "sample": _cmd_sample,
}  # fmt: skip
