"""One learned prior for any map size: checks against exact references at 128² and above.

Sections (each writes its own part of BENCHMARKS.md; run them one at a time)::

    python benchmarks/bench_any_size.py cg          # MMPS's CG tolerance at fixed θ, 24²
    python benchmarks/bench_any_size.py exact128    # MMPS = exact SPDE kriging at 128²
    python benchmarks/bench_any_size.py mse --model spde-anisotropy
    python benchmarks/bench_any_size.py graph --model spde-anisotropy
    python benchmarks/bench_any_size.py prior --model spde-anisotropy
    python benchmarks/bench_any_size.py draws --draws-file runs/post128.npz
    python benchmarks/bench_any_size.py posterior --draws-file runs/post128.npz
    python benchmarks/bench_any_size.py timing --model spde-anisotropy
    python benchmarks/bench_any_size.py many-obs --model spde-anisotropy
    python benchmarks/bench_any_size.py gpu-report --timings FILES/timings.json

* ``cg`` — the exact oracle of one θ of ``spde-anisotropy`` (a Gaussian prior) drives
  MMPS, preconditioned as a trained model is (the prior's stationary Gaussian, not this
  θ's), on a 24² window with 40 observations, noiseless and with τ = 0.1, three datasets
  each. Each CG setting's draws are compared with the exact posterior: the error of their
  mean at each node in units of its Monte Carlo sd (``z``; exact draws give ``z_rms`` ≈ 1)
  and their sd over the exact one. Exact draws of the right posterior give the statistic's
  noise floor; exact draws of a wrong one (prior variance × 1.1, noise sd × 3) its power.
* ``exact128`` — the same at 128² with the sparse oracle and exact SPDE kriging
  (:func:`~geodiff.baselines.spde_kriging.spde_condition`, exact sds at 260 nodes), 100 and
  1,000 observations with τ = 0.1, MMPS's default settings.
* ``prior`` — :func:`~geodiff.evaluate.validate.validate_prior` of the model on its
  window, at 128² and at 256²: the denoiser's MSE against the exact mixture oracle, and
  network samples against exact simulations of the same size (variograms, spectra, local
  anisotropy, marginal quantiles, max-sliced Wasserstein, classifier AUC), each with the
  noise floor of a second set of exact simulations.
* ``posterior`` — the network's MMPS posterior on synthetic datasets at 128² (100 and
  1,000 observations, τ = 0.1), against simple kriging with the true θ (exact, sparse) and
  ordinary kriging (REML fit on at most 300 of the observations): CRPS, 90 % coverage, rank
  histogram χ² and seconds per 100 draws. ``--draws-file`` scores draws made elsewhere (the
  GPU run, ``benchmarks/gpu.sh``) instead of sampling here.
* ``many-obs`` — MMPS at 128² with 1,000 and 5,000 observations: seconds per draw, the
  memory estimated before allocating and the peak.
* ``timing`` — seconds per 100 MMPS draws at 128² and 256² (fast and default settings) and
  peak memory at 256² with 1,000 observations, against the model's own 64² window in the
  same run (a ratio).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.diffusion.spde_oracle import SPDEMixtureOracle
from geodiff.evaluate.datasets import synthetic_dataset
from geodiff.fields.config import load_prior
from geodiff.posterior import gaussian_posterior, posterior_sample
from geodiff.posterior.gaussian import StationaryGaussian
from geodiff.posterior.problem import LinearGaussianProblem
from geodiff.rng import generators_for

PRIOR = "spde-anisotropy"
SCHEDULE = NoiseSchedule("cosine", 1000)
#: MMPS's settings as ``geodiff predict`` runs them (the sampler's defaults), and the fast ones
DEFAULT = {}
FAST = {"steps": 10, "cg_iterations": 3, "start_sigma": 3.0}


def _publish(args, key: str, title: str, command: str, body: str) -> None:
    """Print a section's text and, unless ``--print-only``, write it into BENCHMARKS.md."""
    print(body)
    if not args.print_only:
        update_section(key, title, command, body)


def _z_stats(draws: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> dict:
    """``z_rms`` of the draws' mean and their mean sd ratio where the exact sd is not ~0."""
    keep = sd > 1e-3 * sd.max()
    n = len(draws)
    z = (draws.mean(0) - mean)[keep] / (sd[keep] / np.sqrt(n))
    ratio = draws.std(0, ddof=1)[keep] / sd[keep]
    return {"z_rms": float(np.sqrt(np.mean(z**2))), "sd_ratio": float(np.mean(ratio))}


def _gaussian_draws(mean, cov, n, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    half = v * np.sqrt(np.clip(w, 0, None))
    return mean + rng.standard_normal((n, len(mean))) @ half.T


# ------------------------------------------------------------------------------ cg
CG_SETTINGS = {
    "1 iteration (the old default)": {"cg_iterations": 1},
    "tolerance 0.1, at most 30": {"cg_iterations": 30, "cg_tolerance": 0.1},
    "tolerance 0.03, at most 30": {"cg_iterations": 30, "cg_tolerance": 0.03},
    "tolerance 0.01, at most 30": {"cg_iterations": 30, "cg_tolerance": 0.01},
    "30 iterations (tolerance 1e-10)": {"cg_iterations": 30},
    "tolerance 0.03, Jacobian at every level": {
        "cg_iterations": 30,
        "cg_tolerance": 0.03,
        "jacobian_sigma_max": float("inf"),
    },
    "tolerance 0.03, 50 steps": {"cg_iterations": 30, "cg_tolerance": 0.03, "steps": 50},
}


def bench_cg(args) -> str:
    prior = load_prior(PRIOR)
    grid = prior.window((24, 24))
    lags = prior.lag_covariance(1.0, 23, n_theta=64)
    rows = {name: [] for name in [*CG_SETTINGS, "exact draws", "exact, variance x 1.1",
                                  "exact, noise sd x 3"]}  # fmt: skip
    for noise in (0.0, 0.1):
        for k in range(args.datasets):
            theta, _, obs = synthetic_dataset(prior, grid, 40, noise, args.seed, k, int(noise > 0))
            cov = prior.grid_operator(grid, theta).covariance()
            oracle = GaussianMixtureOracle(cov, SCHEDULE, grid.shape)
            problem = LinearGaussianProblem.from_observations(obs, grid, sparse=True)
            mean, post = (t.numpy() for t in gaussian_posterior(torch.as_tensor(cov), problem))
            sd = np.sqrt(np.clip(np.diag(post), 0, None))
            for name, options in CG_SETTINGS.items():
                started = time.perf_counter()
                gens = generators_for(args.seed, 9, range(args.draws))
                result = posterior_sample("mmps", oracle, SCHEDULE, problem, gens,
                                          preconditioner=StationaryGaussian(lags, grid.shape),
                                          **options)  # fmt: skip
                wall = time.perf_counter() - started
                draws = result.draws.reshape(args.draws, -1).numpy()
                stats = _z_stats(draws, mean, sd)
                stats.update(vjps=result.info["vjps"] / args.draws, s100=100 * wall / args.draws,
                             case=noise)  # fmt: skip
                rows[name].append(stats)
            rows["exact draws"].append(
                {**_z_stats(_gaussian_draws(mean, post, args.draws, k), mean, sd), "case": noise}
            )
            wide = gaussian_posterior(torch.as_tensor(1.1 * cov), problem)
            wide_draws = _gaussian_draws(*(t.numpy() for t in wide), args.draws, k)
            rows["exact, variance x 1.1"].append({**_z_stats(wide_draws, mean, sd), "case": noise})
            if noise > 0:
                noisy = LinearGaussianProblem(problem.matrix, problem.values, 3 * problem.noise_sd,
                                              problem.shape)  # fmt: skip
                wrong = gaussian_posterior(torch.as_tensor(cov), noisy)
                wrong_draws = _gaussian_draws(*(t.numpy() for t in wrong), args.draws, k)
                rows["exact, noise sd x 3"].append({**_z_stats(wrong_draws, mean, sd),
                                                    "case": noise})  # fmt: skip
            print(f"dataset τ={noise} #{k} done", flush=True)
    lines = [
        f"{args.datasets} datasets × (noiseless, τ = 0.1), 40 observations, {args.draws} draws "
        "each; 25 DPM-Solver++ steps unless stated; preconditioner: the prior's stationary "
        "Gaussian (lag covariance over 64 θ draws). Aim (issue 24): z_rms ≤ 1.5 and the sd ratio "
        f"within Monte Carlo error of 1 (per node ±{1 / np.sqrt(2 * args.draws):.3f}).",
        "",
        "| setting | z_rms noiseless (max) | z_rms τ=0.1 (max) | sd ratio (range) | "
        "VJPs per draw | s per 100 draws |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, stats in rows.items():
        if not stats:
            continue
        z0 = [s["z_rms"] for s in stats if s["case"] == 0.0]
        z1 = [s["z_rms"] for s in stats if s["case"] > 0.0]
        ratio = [s["sd_ratio"] for s in stats]
        vjps = np.mean([s.get("vjps", np.nan) for s in stats])
        s100 = np.mean([s.get("s100", np.nan) for s in stats])
        fmt = lambda v: "–" if not v else f"{max(v):.2f}"  # noqa: E731
        lines.append(f"| {name} | {fmt(z0)} | {fmt(z1)} | {min(ratio):.3f}–{max(ratio):.3f} | "
                     f"{'–' if np.isnan(vjps) else f'{vjps:.0f}'} | "
                     f"{'–' if np.isnan(s100) else f'{s100:.2f}'} |")  # fmt: skip
    body = "\n".join(lines)
    _publish(args, "any-size-cg", "MMPS's conjugate gradients: a tolerance instead of a count",
                       "python benchmarks/bench_any_size.py cg", body)  # fmt: skip
    return body


# ------------------------------------------------------------------------ exact128
def bench_exact128(args) -> str:
    from geodiff.baselines.spde_kriging import spde_condition

    prior = load_prior(PRIOR)
    grid = prior.window((128, 128))
    lags = prior.lag_covariance(1.0, 32, n_theta=64)
    rng = np.random.default_rng(args.seed)
    nodes = grid.points()[rng.choice(grid.n_nodes, 256, replace=False)]
    corners = np.array([[0.0, 0.0], [127.0, 0.0], [0.0, 127.0], [127.0, 127.0]])
    targets = np.concatenate([nodes, corners])
    index = np.rint(targets[:, 1]).astype(int) * 128 + np.rint(targets[:, 0]).astype(int)
    lines = [
        "One θ of the prior per case; MMPS with the sparse oracle of that θ and the prior's "
        f"stationary Gaussian, the sampler's default settings, {args.draws} draws; exact SPDE "
        "kriging of the same θ at 260 nodes (exact sds). Floor: as many exact draws of the "
        "same posterior; power: exact draws of the posterior with the variance map × 1.1.",
        "",
        "| observations | sampler | z_rms | sd ratio | VJPs per draw | s per 100 draws |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n_obs in (100, 1000):
        theta, _, obs = synthetic_dataset(prior, grid, n_obs, 0.1, args.seed, n_obs)
        oracle = SPDEMixtureOracle.from_prior(prior, grid, SCHEDULE, theta=theta)
        problem = LinearGaussianProblem.from_observations(obs, grid, sparse=True)
        exact = spde_condition(prior, theta, obs, targets, exact_sd_limit=260)
        started = time.perf_counter()
        result = posterior_sample("mmps", oracle, SCHEDULE, problem,
                                  generators_for(args.seed, 9, range(args.draws)),
                                  preconditioner=StationaryGaussian(lags, grid.shape))  # fmt: skip
        wall = time.perf_counter() - started
        draws = result.draws.reshape(args.draws, -1).numpy()[:, index]
        stats = _z_stats(draws, exact["mean"], exact["sd"])
        lines.append(
            f"| {n_obs} | MMPS | {stats['z_rms']:.2f} | {stats['sd_ratio']:.3f} | "
            f"{result.info['vjps'] / args.draws:.0f} | {100 * wall / args.draws:.1f} |"
        )
        floor = spde_condition(prior, theta, obs, targets, draws=args.draws, with_sd=False,
                               seed=args.seed + 1)["draws"]  # fmt: skip
        wide = dict(theta, **{"variance.median": 1.1 * theta["variance.median"]})
        power = spde_condition(prior, wide, obs, targets, draws=args.draws, with_sd=False,
                               seed=args.seed + 2)["draws"]  # fmt: skip
        for name, sample in (("exact draws (floor)", floor), ("exact, variance × 1.1 (power)",
                                                              power)):  # fmt: skip
            stats = _z_stats(sample, exact["mean"], exact["sd"])
            lines.append(f"| {n_obs} | {name} | {stats['z_rms']:.2f} | "
                         f"{stats['sd_ratio']:.3f} | – | – |")  # fmt: skip
        print(*lines[-3:], sep="\n", flush=True)
    body = "\n".join(lines)
    if not args.print_only:
        update_section("any-size-exact128", "MMPS against exact SPDE kriging at 128²",
                       "python benchmarks/bench_any_size.py exact128", body)  # fmt: skip
    return body


# --------------------------------------------------------------------------- prior
def bench_prior(args) -> str:
    from geodiff.diffusion.model import load_model
    from geodiff.evaluate.validate import validate_prior

    model = load_model(args.model, args.device)
    sizes = [model.window_shape[0], *args.sizes]
    lines = [
        "Network samples (DPM-Solver++, 50 steps) against exact simulations of the same size; "
        "each statistic beside its noise floor (a second exact set). MSE: the network's "
        "denoising error over the exact mixture oracle's at σ ≈ 0.1, 1.7 and 10 (an oracle of "
        "16 θ draws, 4 at 256²: fewer θ make its floor lower, the ratio larger).",
        "",
        "| grid | fields | MSE ratio σ≈0.1 / 1.7 / 10 | checks passed | classifier AUC | "
        "max-sliced W (floor) | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines_checks = []
    command = f"python benchmarks/bench_any_size.py prior --model {args.model}"
    if args.device != "cpu":
        command += f" --device {args.device}"
    for size in sizes:
        n = args.fields if size <= model.window_shape[0] else max(20, args.fields // (size // 64))
        components = 16 if size <= 128 else 4  # the oracle's factorisations grow with size
        report = validate_prior(model.on_grid((size, size)), fields=n, oracle_components=components,
                                mse_fields=min(64, n), classifier_epochs=5, seed=args.seed,
                                progress=False)  # fmt: skip
        ratio = report.network_mse / report.oracle_mse
        pick = [int(np.argmin(abs(report.sigma - s))) for s in (0.1, 1.7, 10.0)]
        passed = sum(c.passed for c in report.checks)
        lines.append(
            f"| {size}² | {n} | {' / '.join(f'{ratio[i]:.3f}' for i in pick)} ({components} θ) | "
            f"{passed}/{len(report.checks)} | {report.classifier.auc:.3f} ± "
            f"{report.classifier.auc_se:.3f} | {report.msw:.3f} ({report.msw_floor:.3f}) | "
            f"{sum(report.seconds.values()):.0f} |"
        )
        print(lines[-1], flush=True)
        for check in report.checks:
            print(f"    {size}²: {check}", flush=True)
            cells = [c.replace("|", "\\|") for c in (check.name, check.value, check.floor,
                                                       check.criterion)]  # fmt: skip
            cells.append("yes" if check.passed else "no")
            lines_checks.append(f"| {size}² | {' | '.join(cells)} |")
        body = "\n".join([*lines, "", "Checks (each against its noise floor):", "",
                          "| grid | check | value | floor | criterion | passed |",
                          "|---|---|---|---|---|---|", *lines_checks])  # fmt: skip
        if not args.print_only:  # after each size: a run stopped later keeps what it made
            update_section("any-size-prior", "The window-trained prior at 128² and 256²",
                           command, body)  # fmt: skip
    return body


# --------------------------------------------------------------------------- graph
def _graph_peak(model_path: str, size: int, batch: int, threads: int) -> float:
    """In a fresh process: bytes per node per field of one forward pass with its graph and
    one vector-Jacobian product (the growth of the peak resident size)."""
    from geodiff.diffusion.model import load_model

    torch.set_num_threads(threads)
    model = load_model(model_path, "cpu")
    before = _peak_mb()
    x = torch.randn(batch, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = model.denoiser(x, torch.tensor(500))
    torch.autograd.grad(out, x, torch.randn_like(out), retain_graph=True)
    return (_peak_mb() - before) * 2**20 / (batch * size * size)


def bench_graph(args) -> str:
    """Bytes per node a field holds for MMPS, each size measured in its own process, beside
    ``geodiff.diffusion.network.graph_bytes``'s estimate."""
    import multiprocessing

    from geodiff.diffusion.model import load_model
    from geodiff.diffusion.network import graph_bytes

    estimate = graph_bytes(load_model(args.model, "cpu").denoiser.config, 1)
    lines = ["| grid | fields | measured bytes per node per field | graph_bytes estimate |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for size, batch in ((128, 4), (256, 2)):
            measured = pool.apply(_graph_peak, (args.model, size, batch, args.threads))
            lines.append(f"| {size}² | {batch} | {measured:.0f} | {estimate:.0f} |")
    body = "\n".join(lines)
    _publish(
        args,
        "any-size-graph",
        "Memory of the network's graph per grid node",
        f"python benchmarks/bench_any_size.py graph --model {args.model}",
        body,
    )
    return body


# ----------------------------------------------------------------------------- mse
#: the noise levels of the MSE checks (nearest schedule steps)
MSE_SIGMAS = (0.03, 0.2, 0.6, 1.7, 4.6, 13.0)


def denoising_errors(model, size: int, n_fields: int, components: int, seed: int) -> tuple:
    """Per-field denoising MSE of the network and of the exact mixture oracle, ``size²``.

    Parameters
    ----------
    model : DiffusionModel
        A model of a translation-invariant prior (any grid size).
    size : int
        Grid side.
    n_fields, components : int
        Fields drawn from a mixture of ``components`` θ draws of the prior; the oracle knows
        those θ.
    seed : int
        The same seed gives the same fields and noise for every model of the same prior,
        so models can be compared field by field.

    Returns
    -------
    network, oracle : ndarray, shape (n_fields, len(MSE_SIGMAS))
        Per-pixel MSE at the schedule's steps nearest :data:`MSE_SIGMAS` (:func:`mse_sigmas`).
    """
    from geodiff.diffusion.validation import denoising_mse

    big = model.on_grid((size, size))
    steps = _mse_steps(model)
    oracle = SPDEMixtureOracle.from_prior(big.prior, big.grid, big.schedule,
                                          n_components=components, seed=seed,
                                          scale=big.data_scale)  # fmt: skip
    clean = oracle.sample(n_fields, seed=seed).float()
    floor = denoising_mse(oracle, clean, big.schedule, steps, seed=seed, batch_size=8,
                          per_field=True)  # fmt: skip
    network = denoising_mse(big.denoiser, clean, big.schedule, steps, seed=seed, batch_size=8,
                            device=big.device, per_field=True)  # fmt: skip
    return network.numpy(), floor.numpy()


def mse_ratios(model, size: int, n_fields: int, components: int, seed: int) -> np.ndarray:
    """The network's denoising MSE over the oracle's (:func:`denoising_errors`), shape
    (len(MSE_SIGMAS),)."""
    network, floor = denoising_errors(model, size, n_fields, components, seed)
    return network.sum(0) / floor.sum(0)


def _mse_steps(model) -> torch.Tensor:
    sigmas = torch.tensor(MSE_SIGMAS, dtype=torch.float64)
    return torch.unique(model.schedule.nearest_step(sigmas))


def mse_sigmas(model) -> np.ndarray:
    """The noise levels :func:`denoising_errors` reports, shape (len(MSE_SIGMAS),)."""
    return model.schedule.sigma(_mse_steps(model)).numpy()


def bench_mse(args) -> str:
    """The denoiser's MSE over the exact mixture oracle's at the window and larger grids."""
    from geodiff.diffusion.model import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device)
    shown = mse_sigmas(model)
    lines = [
        f"The shipped network's denoising MSE over the exact oracle's, on {args.fields} fields "
        f"drawn from a mixture of {args.components} θ draws of the prior (the oracle knows "
        "those θ, so its floor sits a little below the prior's Bayes risk: compare sizes "
        "with each other, not with 1). Nothing in the network is tied to the window but "
        "GroupNorm's statistics over the whole field; equal ratios across sizes say they "
        "do not matter.",
        "",
        "| grid | " + " | ".join(f"σ={s:.2g}" for s in shown) + " | seconds |",
        "|" + " --- |" * (len(shown) + 2),
    ]
    for size in [model.window_shape[0], *args.sizes]:
        started = time.perf_counter()
        ratio = mse_ratios(model, size, args.fields, args.components, args.seed)
        lines.append(f"| {size}² | " + " | ".join(f"{r:.3f}" for r in ratio)
                     + f" | {time.perf_counter() - started:.0f} |")  # fmt: skip
        print(lines[-1], flush=True)
    body = "\n".join(lines)
    if not args.print_only:
        update_section(
            "any-size-mse",
            "The window-trained denoiser at larger grids",
            f"python benchmarks/bench_any_size.py mse --model {args.model}",
            body,
        )
    return body


# ----------------------------------------------------------------------- posterior
def _posterior_draws(model, obs, draws: int, seed: int, options: dict):
    from geodiff.posterior.predict import diffusion_posterior

    post = diffusion_posterior(model, obs, draws=draws, seed=seed, **options)
    return post.fields.reshape(draws, -1).astype(np.float64), post.seconds


def scored_nodes(grid, seed: int) -> np.ndarray:
    """The 200 grid nodes the posterior benchmark scores (the same for every dataset)."""
    return np.random.default_rng(seed).choice(grid.n_nodes, 200, replace=False)


def make_posterior_draws(model, datasets: int, draws: int, seed: int, options: dict,
                         save: Path | None = None) -> dict:  # fmt: skip
    """The network's draws at the scored nodes of the benchmark's datasets (what the GPU run
    returns: whole fields would exceed its 16 MB per file), dataset by dataset for 100 and
    1,000 observations in turn; with ``save``, written after each and resumed from."""
    prior, grid = model.prior, model.grid
    keep = scored_nodes(grid, seed)
    out = dict(np.load(save)) if save is not None and Path(save).exists() else {}
    for k in range(datasets):
        for n_obs in (100, 1000):
            if f"{n_obs}_{k}" in out and len(out[f"{n_obs}_{k}"]) == draws:
                continue  # made by an earlier, interrupted run
            _, _, obs = synthetic_dataset(prior, grid, n_obs, 0.1, seed, n_obs, k)
            fields, wall = _posterior_draws(model, obs, draws, seed + k, options)
            out[f"{n_obs}_{k}"] = fields[:, keep].astype(np.float32)
            out[f"{n_obs}_{k}_seconds"] = np.array(wall)
            print(f"{n_obs} obs, dataset {k}: {wall:.1f} s", flush=True)
        if save is not None:
            partial = Path(f"{save}.part.npz")
            np.savez_compressed(partial, **out)
            partial.replace(save)
    return out


def central_interval(draws: np.ndarray, level: float) -> tuple:
    """The interval between order statistics ``k`` and ``n + 1 - k`` of ``n`` draws, whose
    coverage of the truth is exactly ``(n + 1 - 2k) / (n + 1)`` when the draws and the truth
    are exchangeable (a calibrated posterior), with ``k`` putting it nearest ``level``.
    Empirical quantiles of a few draws would cover less than ``level`` even then.

    Returns ``(lower, upper, nominal)``; ``draws`` is ``(n, nodes)``.
    """
    n = len(draws)
    k = max(1, round((1 - level) / 2 * (n + 1)))
    ordered = np.sort(draws, axis=0)
    return ordered[k - 1], ordered[n - k], (n + 1 - 2 * k) / (n + 1)


def bench_draws(args) -> None:
    """The posterior benchmark's draws on this machine, resumable, into ``--draws-file``."""
    from geodiff.diffusion.model import load_model

    if args.draws_file is None:
        raise SystemExit("draws: give --draws-file, where the draws are kept")
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device).on_grid((args.size, args.size))
    make_posterior_draws(model, args.datasets, args.draws, args.seed, json.loads(args.options),
                         save=args.draws_file)  # fmt: skip


def bench_posterior(args) -> str:
    from geodiff.baselines.kriging import ordinary_kriging
    from geodiff.baselines.spde_kriging import spde_condition
    from geodiff.diffusion.model import load_model
    from geodiff.fields.fit import fit_covariance, plug_in_settings
    from geodiff.metrics.scores import crps, rank_histogram, truth_ranks

    model = load_model(args.model, args.device).on_grid((args.size, args.size))
    prior, grid = model.prior, model.grid
    options = json.loads(args.options)
    made = dict(np.load(args.draws_file)) if args.draws_file else None
    targets = scored_nodes(grid, args.seed)
    scores = {}
    for n_obs in (100, 1000):
        for k in range(args.datasets):
            key = f"{n_obs}_{k}"
            if made is not None and key not in made:
                continue  # the GPU run stopped before this dataset
            theta, truth, obs = synthetic_dataset(prior, grid, n_obs, 0.1, args.seed, n_obs, k)
            if made is not None:
                d, wall = made[key].astype(np.float64), float(made[key + "_seconds"])
            else:
                fields, wall = _posterior_draws(model, obs, args.draws, args.seed + k, options)
                d = fields[:, targets]
            t = truth.reshape(-1)[targets]
            exact = spde_condition(prior, theta, obs, grid.points()[targets],
                                   exact_sd_limit=len(targets))  # fmt: skip
            settings = plug_in_settings(prior)
            first = obs.subset(np.arange(min(n_obs, 300)))
            fit = fit_covariance(first, settings["family"], method="reml", anisotropic=True,
                                 shape=settings["shape"])  # fmt: skip
            ok = ordinary_kriging(obs, grid.points()[targets], fit=fit)
            lo, hi, nominal = central_interval(d, 0.9)
            entries = scores.setdefault(n_obs, {"mmps": [], "oracle kriging": [],
                                                "ordinary kriging": []})  # fmt: skip
            entries["mmps"].append({
                "crps": float(np.mean(crps(t, d))),
                "cover90": float(np.mean((t >= lo) & (t <= hi))),
                "ranks": truth_ranks(t, d), "s100": 100 * wall / len(d), "draws": len(d),
                "nominal": nominal,
            })  # fmt: skip
            m, s = exact["mean"], exact["sd"]
            entries["oracle kriging"].append({
                "crps": float(np.mean(crps(t, mean=m, sd=s))),
                "cover90": float(np.mean(np.abs(t - m) <= 1.6449 * s)),
            })  # fmt: skip
            entries["ordinary kriging"].append({
                "crps": float(np.mean(crps(t, mean=ok.mean, sd=ok.sd))),
                "cover90": float(np.mean(np.abs(t - ok.mean) <= 1.6449 * ok.sd)),
            })  # fmt: skip
            print(f"{n_obs} obs #{k}: mmps {entries['mmps'][-1]['crps']:.4f}, oracle "
                  f"{entries['oracle kriging'][-1]['crps']:.4f}, OK "
                  f"{entries['ordinary kriging'][-1]['crps']:.4f}", flush=True)  # fmt: skip
    lines = [
        f"{args.datasets} datasets per case on a {args.size}² window of the prior, τ = 0.1, "
        "200 scored nodes each (the true field there); MMPS options "
        f"`{json.dumps(options)}`{' (draws read from the --draws-file)' if made else ''}. "
        "Oracle kriging: exact SPDE kriging with the true θ. Ordinary kriging: REML fit of an "
        "anisotropic Matérn on the first 300 observations. MMPS's 90 % interval: between "
        "order statistics k and n + 1 − k of its n draws, whose coverage is exactly the nominal "
        "value in brackets for a calibrated posterior; kriging's: mean ± 1.645 sd.",
        "",
        "| observations | method | CRPS | CRPS / oracle | 90 % coverage | rank χ² p | "
        "s per 100 draws |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n_obs, entries in scores.items():
        oracle_crps = np.mean([e["crps"] for e in entries["oracle kriging"]])
        for name, rows in entries.items():
            c = np.mean([e["crps"] for e in rows])
            cov = np.mean([e["cover90"] for e in rows])
            cov_text = f"{cov:.3f}"
            if name == "mmps":
                ranks = np.concatenate([e["ranks"] for e in rows])
                n = rows[0]["draws"]
                _, p = rank_histogram(ranks, n, bins=10 if (n + 1) % 10 == 0 else n + 1)
                p_text, s100 = f"{p:.3f}", f"{np.mean([e['s100'] for e in rows]):.1f}"
                cov_text += f" (nominal {rows[0]['nominal']:.3f})"
            else:
                p_text, s100 = "–", "–"
            lines.append(f"| {n_obs} | {name} | {c:.4f} | {c / oracle_crps:.3f} | {cov_text} | "
                         f"{p_text} | {s100} |")  # fmt: skip
    body = "\n".join([*lines, *(["", args.note] if args.note else [])])
    command = f"python benchmarks/bench_any_size.py posterior --model {args.model}"
    if made:
        draws = f"python benchmarks/bench_any_size.py draws --draws-file {args.draws_file}"
        command = f"{draws} && {command} --draws-file {args.draws_file}"
    _publish(args, "any-size-posterior", f"Posterior with the learned prior at {args.size}²",
             command, body)  # fmt: skip
    return body


# -------------------------------------------------------------------------- timing
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def network_seconds(model, batch: int = 4, repeats: int = 3) -> tuple[float, float]:
    """Seconds per field of one denoiser evaluation with its graph, and of one
    vector-Jacobian product through it, on ``model``'s grid (best of ``repeats``)."""
    shape = (batch, 1, *model.grid.shape)
    t = torch.full((batch,), 500, device=model.device)
    forward, vjp = [], []
    for _ in range(repeats):
        x = torch.randn(shape, device=model.device, requires_grad=True)
        started = time.perf_counter()
        out = model.denoiser(x, t)
        forward.append(time.perf_counter() - started)
        started = time.perf_counter()
        torch.autograd.grad(out, x, torch.ones_like(out))
        vjp.append(time.perf_counter() - started)
    return min(forward) / batch, min(vjp) / batch


def time_posteriors(model, sizes, n_obs_list, draws: int, settings: dict, seed: int = 0) -> list:
    """Seconds per 100 MMPS draws for each grid size, observation count and setting, with
    the sampler's network evaluations and vector-Jacobian products per draw."""
    from geodiff.posterior.mmps import mmps_cost

    rows = []
    for size in sizes:
        big = model.on_grid((size, size))
        for n_obs in n_obs_list:
            _, _, obs = synthetic_dataset(big.prior, big.grid, n_obs, 0.1, seed, size, n_obs)
            for name, options in settings.items():
                started = time.perf_counter()
                _posterior_draws(big, obs, draws, seed, options)
                wall = time.perf_counter() - started
                rows.append({"size": size, "n_obs": n_obs, "setting": name, "draws": draws,
                             "s_per_100": 100 * wall / draws, "peak_mb": _peak_mb(),
                             **mmps_cost(big.schedule, n_obs, **options),
                             "device": str(big.device)})  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def bench_timing(args) -> str:
    from geodiff.diffusion.model import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device)
    settings = {"fast": FAST, "default": DEFAULT}
    window = model.window_shape[0]
    rows = time_posteriors(model, [window, *args.sizes], [100], args.draws, settings)
    rows += time_posteriors(model, [256], [1000], max(2, args.draws // 4), {"fast": FAST})
    # after every row's peak memory is recorded: these batches hold graphs of their own
    network = {size: network_seconds(model.on_grid((size, size)))
               for size in sorted({r["size"] for r in rows})}  # fmt: skip
    for r in rows:
        r["forward_s"], r["vjp_s"] = network[r["size"]]
    base = {r["setting"]: r["s_per_100"] for r in rows if r["size"] == window}
    lines = [
        f"{args.threads} CPU thread(s); {args.draws} draws per row (1,000-observation row: "
        f"{max(2, args.draws // 4)}); fast = `{json.dumps(FAST)}`, default = the sampler's "
        "defaults. Ratio: against the same setting on the model's own window in this run. "
        "Peak memory: the process's maximum resident size so far (it only grows). "
        "Evaluations + VJPs: the sampler's denoiser evaluations and vector-Jacobian products "
        "per draw (the VJPs an upper bound: CG stops at its tolerance). Network s per field: "
        "one evaluation with its graph and one VJP, measured at that size in a batch of 4. "
        "Evaluations alone: their cost per 100 draws, a floor for that number of steps "
        "whatever the rest costs.",
        "",
        "| grid | observations | setting | s per 100 draws | × window | peak memory (MB) | "
        "evaluations + VJPs per draw | network s per field (evaluation / VJP) | "
        "evaluations alone, s per 100 draws |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}² | {r['n_obs']} | {r['setting']} | {r['s_per_100']:.1f} | "
            f"{r['s_per_100'] / base[r['setting']]:.1f} | {r['peak_mb']:.0f} | "
            f"{r['denoiser_evaluations']} + {r['vjps']} | "
            f"{r['forward_s']:.3f} / {r['vjp_s']:.3f} | "
            f"{100 * r['denoiser_evaluations'] * r['forward_s']:.0f} |"
        )
    body = "\n".join(lines)
    _publish(
        args,
        "any-size-timing",
        "Posterior cost at 128² and 256² on this CPU",
        f"python benchmarks/bench_any_size.py timing --model {args.model}",
        body,
    )
    return body


def bench_many_obs(args) -> str:
    """Seconds and memory of MMPS at 128² with 1,000 and 5,000 observations (fast settings),
    beside :func:`~geodiff.posterior.predict.posterior_memory`'s estimate made beforehand."""
    from geodiff.diffusion.model import load_model
    from geodiff.posterior.predict import posterior_memory

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device)
    big = model.on_grid((args.size, args.size))
    lines = [
        f"{args.threads} CPU thread(s); {args.draws} draws per row, fast settings "
        f"`{json.dumps(FAST)}`, τ = 0.1, a {args.size}² grid. Estimate: `posterior_memory`, "
        "computed before anything is allocated (the run refuses when it exceeds the "
        "machine's free memory); peak: the process's maximum resident size so far.",
        "",
        "| observations | s per draw | s per 100 draws | estimate (MB) | peak memory (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n_obs in (1000, 5000):
        _, _, obs = synthetic_dataset(big.prior, big.grid, n_obs, 0.1, args.seed, 7, n_obs)
        estimate = posterior_memory(big, n_obs, args.draws) / 2**20
        started = time.perf_counter()
        _posterior_draws(big, obs, args.draws, args.seed, FAST)
        wall = time.perf_counter() - started
        lines.append(f"| {n_obs} | {wall / args.draws:.1f} | {100 * wall / args.draws:.0f} | "
                     f"{estimate:.0f} | {_peak_mb():.0f} |")  # fmt: skip
        print(lines[-1], flush=True)
    body = "\n".join(lines)
    command = f"python benchmarks/bench_any_size.py many-obs --model {args.model}"
    title = f"MMPS with thousands of observations at {args.size}²"
    _publish(args, "any-size-many-obs", title, command, body)
    return body


def bench_gpu_report(args) -> str:
    """The GPU run's timings (``benchmarks/gpu.sh``, ``timings.json``) as a table."""
    rows = json.loads(Path(args.timings).read_text())
    cpu = {(r["size"], r["setting"]): r["s_per_100"] for r in rows if r["device"] == "cpu"}
    lines = [
        "From `bash benchmarks/gpu.sh` on the lent machine (one NVIDIA H200, 16 CPU cores): "
        "seconds per 100 MMPS draws with the window-trained `conv` network, after a warm-up, "
        "batches of 100 draws (fewer where the graphs' memory budget, half the GPU's memory, "
        "says so); the CPU row is the same machine's 16 cores (10 draws). Fast = "
        f"`{json.dumps(FAST)}`; default = the sampler's defaults. Ratio: against that CPU row. "
        f"{args.note}",
        "",
        "| device | grid | observations | setting | s per 100 draws | × faster than its CPU |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["draws"] < 10:
            continue  # the warm-up
        base = cpu.get((r["size"], r["setting"]))
        ratio = "–" if base is None or r["device"] == "cpu" else f"{base / r['s_per_100']:.0f}"
        lines.append(f"| {r['device']} | {r['size']}² | {r['n_obs']} | {r['setting']} | "
                     f"{r['s_per_100']:.2f} | {ratio} |")  # fmt: skip
    body = "\n".join(lines)
    _publish(args, "any-size-gpu", "Posterior cost on a GPU at 128²–512²",
                       f"python benchmarks/bench_any_size.py gpu-report --timings {args.timings}",
                       body)  # fmt: skip
    return body


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "section",
        choices=(
            "cg",
            "exact128",
            "graph",
            "mse",
            "prior",
            "draws",
            "posterior",
            "timing",
            "many-obs",
            "gpu-report",
        ),
    )
    parser.add_argument("--timings", default="runs/gpu-2026-12-04/timings.json")
    parser.add_argument("--components", type=int, default=4, help="mse: oracle θ draws")
    parser.add_argument("--note", default="", help="gpu-report, posterior: a sentence added")
    parser.add_argument("--model", default="spde-anisotropy")
    parser.add_argument("--draws", type=int, default=None, help="posterior draws per case")
    parser.add_argument("--datasets", type=int, default=None)
    parser.add_argument("--fields", type=int, default=200, help="prior: fields at the window")
    parser.add_argument("--sizes", type=int, nargs="*", default=[128, 256])
    parser.add_argument("--size", type=int, default=128, help="posterior: grid side")
    parser.add_argument("--options", default=json.dumps(FAST), help="posterior: MMPS options")
    parser.add_argument("--draws-file", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-only", action="store_true")
    args = parser.parse_args(argv)
    defaults = {
        "cg": (200, 3),
        "exact128": (100, 1),
        "draws": (19, 50),
        "posterior": (19, 50),
        "timing": (4, 1),
        "many-obs": (2, 1),
    }
    draws, datasets = defaults.get(args.section, (20, 1))
    args.draws = args.draws or draws
    args.datasets = args.datasets or datasets
    {"cg": bench_cg, "exact128": bench_exact128, "graph": bench_graph, "mse": bench_mse,
     "prior": bench_prior, "draws": bench_draws, "many-obs": bench_many_obs,
     "posterior": bench_posterior, "timing": bench_timing,
     "gpu-report": bench_gpu_report}[args.section](args)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
