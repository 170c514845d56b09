"""Real data: Meuse log-zinc, predicted and cross-validated with the shipped diffusion prior.

Loads the 155 Meuse topsoil zinc samples (from the installed scikit-gstat, see
:mod:`geodiff.realdata`; ``pip install -e ".[meuse]"``), takes logs, and compares by
K-fold cross-validation (:func:`geodiff.evaluate.crossval.cross_validate`)

* the diffusion posterior (DAPS) with the shipped prior ``data/stationary-matern-32``,
* ordinary kriging with a Matérn (ν = 1.5) covariance fitted by REML on each fold,
* the MCMC reference under the diffusion model's own training prior, with a continuous
  field (``mcmc``) and with the field on the model's 32x32 grid (``mcmc-grid``, the exact
  answer for the diffusion model's representation),
* and, for reference only, kriging of the residuals of a linear trend in √dist (the
  distance to the river): a covariate the stationary methods do not see.

It writes ``OUT/report.md`` (scores, facts about the data, the ways the learned prior
is misspecified for Meuse and what would fix each) and ``OUT/meuse.png`` (data, the
diffusion and kriging maps from all data, held-out predictions), and, unless
``--smoke`` or ``--no-report``, the "meuse" section of BENCHMARKS.md.

Each method's cross-validation is saved under ``OUT/cv/`` as it finishes; a rerun with
the same settings reuses it (so ``--methods`` can split a long run in parts).

Usage::

    python examples/meuse.py [--folds 5] [--draws 39] [--out runs/meuse] [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

import geodiff
from geodiff.evaluate.crossval import CV_METHODS, CrossValidation, cross_validate, point_summaries
from geodiff.fields.fit import plug_in_settings
from geodiff.realdata import meuse, meuse_table

ROOT = Path(__file__).resolve().parents[1]
LABELS = {
    "diffusion": "diffusion posterior (DAPS)",
    "kriging-ok": "ordinary kriging (REML)",
    "mcmc": "MCMC, same prior (continuous field)",
    "mcmc-grid": "MCMC, same prior (field on the 32x32 grid)",
    "trend-kriging": "kriging + √dist trend (covariate; reference)",
}
_ARRAYS = ("mean", "sd", "lower", "upper", "crps")


# --------------------------------------------------------------------------- cache
def _cv_methods(args, method: str) -> dict:
    """``{method: options}`` of one cross-validated method from this script's flags."""
    mcmc = {"warmup": args.mcmc_warmup, "samples": args.mcmc_samples}
    given = {"diffusion": {"method": args.sampler, "steps": args.steps}, "mcmc": mcmc,
             "mcmc-grid": mcmc}  # fmt: skip
    return {method: given.get(method, {})}


def _settings(args, model_path: Path, obs) -> dict:
    digest = hashlib.sha256((model_path / "model.safetensors").read_bytes()).hexdigest()[:16]
    return {
        "model": digest,
        "folds": args.folds,
        "draws": args.draws,
        "steps": args.steps,
        "sampler": args.sampler,
        "mcmc_warmup": args.mcmc_warmup,
        "mcmc_samples": args.mcmc_samples,
        "seed": args.seed,
        "margin": args.margin,
        "noise_sd": float(obs.noise_sd[0]),
        "n": len(obs),
    }


def _save(cv: CrossValidation, method: str, folder: Path, settings: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: getattr(cv, k)[method] for k in _ARRAYS}
    arrays["seconds"] = cv.seconds[method]
    if cv.draws[method] is not None:
        arrays["draws"] = cv.draws[method]
    np.savez(folder / f"{method}.npz", fold=cv.fold, truth=cv.truth, **arrays)
    meta = {"settings": settings, "info": cv.info[method]}
    (folder / f"{method}.json").write_text(json.dumps(meta, indent=1, default=float))


def _load(method: str, folder: Path, settings: dict, obs) -> CrossValidation | None:
    meta_path, data_path = folder / f"{method}.json", folder / f"{method}.npz"
    if not (meta_path.exists() and data_path.exists()):
        return None
    try:  # a file cut short by a kill, or of another version, is recomputed
        meta = json.loads(meta_path.read_text())
        if meta["settings"] != settings:
            return None
        with np.load(data_path) as data:  # allow_pickle stays False
            if not np.array_equal(data["truth"], obs.values):
                return None
            cv = CrossValidation(obs.locations, obs.values, obs.noise_sd, data["fold"], (method,))
            for k in _ARRAYS:
                getattr(cv, k)[method] = data[k]
            cv.draws[method] = data["draws"] if "draws" in data else None
            cv.seconds[method] = data["seconds"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    cv.info[method] = meta["info"]
    return cv


# ----------------------------------------------------------------- trend reference
def trend_kriging(cv: CrossValidation, obs, covariate, prior) -> None:
    """Add held-out predictions of kriging with a linear trend in ``covariate`` to ``cv``.

    On each training fold: least squares of the values on ``(1, covariate)``, then
    ordinary kriging (REML, the prior's family) of the residuals. The trend's own
    estimation uncertainty is ignored (two coefficients from ~124 points).
    """
    from geodiff.baselines.kriging import ordinary_kriging
    from geodiff.fields.fit import plug_in_settings

    n = len(obs)
    out = {k: np.full(n, np.nan) for k in _ARRAYS}
    seconds, info = np.zeros(cv.n_folds), []
    design = np.column_stack([np.ones(n), covariate])
    for f in range(cv.n_folds):
        started = time.perf_counter()
        test, train = np.flatnonzero(cv.fold == f), np.flatnonzero(cv.fold != f)
        beta = np.linalg.lstsq(design[train], obs.values[train], rcond=None)[0]
        residual = geodiff.Observations.at_points(
            obs.locations[train], obs.values[train] - design[train] @ beta, obs.noise_sd[train]
        )
        pred = ordinary_kriging(residual, obs.locations[test], **plug_in_settings(prior))
        tau2 = obs.noise_sd[test] ** 2 if cv.include_noise else 0.0
        nugget = pred.info["fit"]["nugget"] if cv.include_noise else 0.0
        summary = point_summaries(
            obs.values[test],
            mean=design[test] @ beta + pred.mean,
            sd=np.sqrt(pred.sd**2 + tau2 + nugget),
        )
        for k in _ARRAYS:
            out[k][test] = summary[k]
        seconds[f] = time.perf_counter() - started
        info.append({"beta": beta.tolist(), "fit": pred.info["fit"]})
    cv.methods = (*cv.methods, "trend-kriging")
    for k in _ARRAYS:
        getattr(cv, k)["trend-kriging"] = out[k]
    cv.draws["trend-kriging"], cv.seconds["trend-kriging"] = None, seconds
    cv.info["trend-kriging"] = info


# ---------------------------------------------------------------------- the facts
def data_facts(obs, table, model, dmap) -> dict:
    """Numbers about Meuse and about the shipped prior in Meuse's units, all computed."""
    import gstools
    from scipy import stats
    from scipy.spatial import cKDTree

    from geodiff.fields.fit import FitWarning

    z = obs.values
    zinc = table["zinc"]
    dist = table["dist"]
    sqrt_dist = np.sqrt(dist)
    design = np.column_stack([np.ones_like(z), sqrt_dist])
    residual = z - design @ np.linalg.lstsq(design, z, rcond=None)[0]
    noiseless = geodiff.Observations.at_points(obs.locations, z, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        reml = geodiff.fit_covariance(noiseless, "matern", shape={"nu": 1.5}).params
        reml_iso = geodiff.fit_covariance(
            noiseless, "matern", anisotropic=False, shape={"nu": 1.5}
        ).params
        sph = geodiff.fit_covariance(noiseless, "spherical", method="variogram", shape={}).params
        res_obs = geodiff.Observations.at_points(obs.locations, residual, 0.0)
        reml_res = geodiff.fit_covariance(res_obs, "matern", shape={"nu": 1.5}).params

    def practical_range(length_scale):  # distance where the variogram reaches 95% of its sill
        return float(gstools.Matern(dim=2, nu=1.5, len_scale=length_scale).percentile_scale(0.95))

    nn = cKDTree(obs.locations).query(obs.locations, k=2)[0][:, 1]
    per_metre = dmap.coordinate_scale
    side = (dmap.physical_extent[0][1] - dmap.physical_extent[0][0]) / 1000.0
    spacing = (dmap.physical_extent[0][1] - dmap.physical_extent[0][0]) / (model.grid.shape[1] - 1)
    ell_lo, ell_hi = model.prior.parameters["length_scale"].support
    model_pts = dmap.to_model_points(obs.locations)
    nodes = np.round(model_pts * (np.array(model.grid.shape[::-1]) - 1)).astype(int)
    _, counts = np.unique(nodes, axis=0, return_counts=True)
    return {
        "n": len(z),
        "near_river": table["dist.m"] < 100.0,
        "skew_raw": float(stats.skew(zinc)),
        "skew_log": float(stats.skew(z)),
        "sample_var": float(np.var(z, ddof=1)),
        "corr_dist": float(np.corrcoef(z, dist)[0, 1]),
        "corr_sqrt_dist": float(np.corrcoef(z, sqrt_dist)[0, 1]),
        "r2_sqrt_dist": float(1 - residual.var() / z.var()),
        "reml": reml,
        "reml_range": practical_range(reml["length_scale"]),
        "reml_iso": reml_iso,
        "reml_iso_range": practical_range(reml_iso["length_scale"]),
        "reml_residual": reml_res,
        "reml_residual_range": practical_range(reml_res["length_scale"]),
        "sph_range": sph["length_scale"],
        "sph_nugget_share": sph["nugget"] / (sph["nugget"] + sph["variance"]),
        "noise_sd": float(obs.noise_sd[0]),
        "nn_median": float(np.median(nn)),
        "nn_min": float(nn.min()),
        "domain_km": side,
        "spacing": spacing,
        "shared_nodes": int((counts > 1).sum()),
        "obs_sharing": int(counts[counts > 1].sum()),
        "prior_ell_m": (ell_lo / per_metre, ell_hi / per_metre),
        "prior_range_m": (practical_range(ell_lo) / per_metre, practical_range(ell_hi) / per_metre),
        "prior_ratio": model.prior.parameters["anis_ratio"].support,
    }


# ------------------------------------------------------------------------- figure
def plot_meuse(obs, table, maps: dict, cv: CrossValidation, path: Path) -> Path:
    """Observations, diffusion and kriging maps from all data, held-out predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = maps["diffusion"].grid
    (x0, x1), (y0, y1) = grid.extent
    extent = (x0 / 1000, x1 / 1000, y0 / 1000, y1 / 1000)
    xy = obs.locations / 1000
    vmin, vmax = float(obs.values.min()), float(obs.values.max())
    sd_max = max(float(p.sd.max()) for p in maps.values())
    fig, axes = plt.subplots(2, 4, figsize=(15.5, 7.4), layout="constrained")
    value = {"cmap": "viridis", "vmin": vmin, "vmax": vmax}
    im = axes[0, 0].scatter(*xy.T, c=obs.values, s=14, ec="k", lw=0.3, **value)
    axes[0, 0].set(xlim=extent[:2], ylim=extent[2:], aspect="equal")
    axes[0, 0].set_title(f"{len(obs)} observations: log zinc (log ppm)", fontsize=9)
    fig.colorbar(im, ax=axes[0, 0], fraction=0.046)
    for col, (name, pred) in enumerate(maps.items(), start=1):
        im = axes[0, col].imshow(
            pred.mean.reshape(grid.shape), origin="lower", extent=extent, **value
        )
        axes[0, col].set_title(f"{LABELS[name]}: mean, all data", fontsize=9)
        fig.colorbar(im, ax=axes[0, col], fraction=0.046)
        im = axes[1, col].imshow(
            pred.sd.reshape(grid.shape),
            origin="lower",
            extent=extent,
            cmap="magma",
            vmin=0.0,
            vmax=sd_max,
        )
        axes[1, col].scatter(*xy.T, s=3, c="w")
        axes[1, col].set_title(f"{LABELS[name]}: sd of the field", fontsize=9)
        fig.colorbar(im, ax=axes[1, col], fraction=0.046)
    for ax in (*axes[0, :3], *axes[1, 1:3]):
        ax.set_xlabel("x (km, RD New)", fontsize=8)
        ax.set_ylabel("y (km)", fontsize=8)
        ax.tick_params(labelsize=7)
    # zinc against distance to the river
    ax = axes[1, 0]
    ax.scatter(table["dist.m"], obs.values, s=10, c="0.3")
    ax.set_xlabel("distance to the river Meuse (m)", fontsize=8)
    ax.set_ylabel("log zinc", fontsize=8)
    r = np.corrcoef(np.sqrt(table["dist"]), obs.values)[0, 1]
    ax.set_title(f"the trend stationary priors miss (r with √dist = {r:.2f})", fontsize=9)
    # held-out predictions
    ax = axes[0, 3]
    shown = [m for m in ("kriging-ok", "mcmc", "diffusion") if m in cv.methods]
    colours = {"diffusion": "C3", "kriging-ok": "C0", "mcmc": "C2"}
    for m in shown:
        ax.scatter(obs.values, cv.mean[m], s=8, c=colours[m], alpha=0.7, label=LABELS[m])
    ax.plot([vmin, vmax], [vmin, vmax], "k", lw=0.8)
    ax.set(xlabel="held-out log zinc", ylabel="predictive mean")
    ax.set_title(f"{cv.n_folds}-fold cross-validation", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1, 3]
    for m in shown:
        ax.scatter(table["dist.m"], obs.values - cv.mean[m], s=8, c=colours[m], alpha=0.7)
    ax.axhline(0.0, c="k", lw=0.8)
    ax.set(xlabel="distance to the river (m)", ylabel="held-out error (observed - mean)")
    ax.set_title("held-out errors against distance to the river", fontsize=9)
    for a in axes[:, 3]:
        a.xaxis.label.set_size(8)
        a.yaxis.label.set_size(8)
        a.tick_params(labelsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------- report
def _verdict(diff: float, se: float) -> str:
    if abs(diff) < 2 * se:
        return "indistinguishable from"
    return "worse than" if diff > 0 else "better than"


def _zero(diff: float, se: float) -> str:
    if abs(diff) < 2 * se:
        return "within two standard errors of zero"
    return f"more than two standard errors {'above' if diff > 0 else 'below'} zero"


def write_report(out: Path, args, cv, facts, maps_info, total_seconds, figure) -> str:
    f = facts
    s = cv.scores()
    reml = f["reml"]
    lo, hi = f["prior_ell_m"]
    inside = "inside" if lo <= reml["length_scale"] <= hi else "outside"
    res_ell = f["reml_residual"]["length_scale"]
    residual_where = "below" if res_ell < lo else ("above" if res_ell > hi else "inside")
    lines = [
        "# Meuse zinc: the shipped diffusion prior on real data",
        "",
        f"{f['n']} topsoil samples of zinc (ppm) in the flood plain of the river Meuse "
        "(Pebesma & Bivand 2005; read from the installed scikit-gstat), values "
        f"log(ppm), coordinates in metres (RD New). Model `{args.model}` (stationary "
        "anisotropic Matérn ν = 1.5 prior, 32x32 grid). "
        f"{cv.n_folds}-fold cross-validation (seeded random folds, every point held out "
        f"once); {args.draws} predictive draws per point; DAPS with {args.steps} steps; "
        f"MCMC 2 chains x ({args.mcmc_warmup} warm-up + {args.mcmc_samples}). Observation "
        f"noise sd τ = {f['noise_sd']:.3f} log units for every method: the square root of "
        f"the nugget of a REML Matérn fit to all {f['n']} points (τ² = "
        f"{100 * f['noise_sd'] ** 2 / f['sample_var']:.0f}% of the sample variance; one "
        "number estimated from all points, a small leak into the held-out folds; ordinary "
        "kriging refits its own nugget on each fold on top of it). Each fold's map to the "
        "model's domain and units is fitted on the training values only (mean and sd of "
        "log zinc), over the box of all locations widened by 10% and squared: "
        f"{f['domain_km']:.2f} km a side, grid nodes {f['spacing']:.0f} m apart.",
        "",
        "Scores over the held-out points, of the predictive distribution of a new "
        "measurement (field + τ noise; kriging adds its nugget): CRPS (lower is better), "
        "RMSE of the predictive mean, coverage of central 90% intervals (0.90 when "
        "calibrated); ± one standard error over points (points treated as independent, "
        "which nearby points are not). Wall time: all folds, on this machine.",
        "",
        cv.table(LABELS),
        "",
    ]
    crps_vs = {}
    for ref in ("kriging-ok", "mcmc", "mcmc-grid"):
        if ref in cv.methods and "diffusion" in cv.methods:
            crps_vs[ref] = cv.compare(ref)["diffusion"]
    if crps_vs:
        parts = [
            f"{LABELS[r]}: {d:+.4f} ± {e:.4f} ({_zero(d, e)})" for r, (d, e) in crps_vs.items()
        ]
        lines += [
            "Paired CRPS differences, diffusion minus each reference (mean ± se over points): "
            + "; ".join(parts)
            + ".",
            "",
        ]
    trend_text = ""
    if "trend-kriging" in cv.methods and "kriging-ok" in cv.methods:
        d, e = cv.compare("kriging-ok")["trend-kriging"]
        lines += [
            f"Kriging with a √dist trend minus ordinary kriging: CRPS {d:+.4f} ± {e:.4f} "
            f"({_zero(d, e)}).",
            "",
        ]
        trend_text = (
            f"How much this costs here: at the held-out samples, kriging with a √dist trend "
            f"changes the CRPS of ordinary kriging by {d:+.4f} ± {e:.4f} ({_zero(d, e)}). "
            f"With samples a median {f['nn_median']:.0f} m apart, a held-out point's "
            "neighbours already carry the local level, so random K-fold cross-validation, "
            "which tests interpolation, sees little of the trend; it matters where data thin "
            "out (the maps' margins, other parts of the flood plain), which spatially "
            "blocked folds would test."
        )
    summary_text = ""
    if {"diffusion", "mcmc", "kriging-ok"} <= set(cv.methods):
        dm, em = cv.compare("mcmc")["diffusion"]
        dk, ek = cv.compare("kriging-ok")["diffusion"]
        sd_ratio = s["diffusion"]["mean_sd"] / s["mcmc"]["mean_sd"]
        width = (
            "about as large as"
            if abs(sd_ratio - 1) < 0.03
            else ("smaller than" if sd_ratio < 1 else "larger than")
        )
        summary_text = (
            "On random folds the diffusion posterior is "
            f"{_verdict(dm, em)} the MCMC posterior under the prior it was trained on "
            f"(CRPS {dm:+.4f} ± {em:.4f}) and {_verdict(dk, ek)} ordinary kriging "
            f"({dk:+.4f} ± {ek:.4f}), at {s['diffusion']['seconds'] / s['mcmc']['seconds']:.2f}"
            f"x the time of MCMC (and {s['diffusion']['seconds']:.0f} s against kriging's "
            f"{s['kriging-ok']['seconds']:.0f} s). Its predictive sd is {width} "
            f"MCMC's (mean sd ratio {sd_ratio:.3f}) and its 90% intervals hold "
            f"{s['diffusion']['cover90']:.3f} ± {s['diffusion']['cover90_se']:.3f} of the "
            f"held-out values against MCMC's {s['mcmc']['cover90']:.3f} (nominal 0.90). "
            "Every stationary method shares the same misspecification, so agreeing with "
            "MCMC means the diffusion model reproduces its prior's answer, not that the "
            "prior is right for Meuse: the bias at the river below shows where it is not. "
            "The standard errors treat the 155 points as independent; they are not, and "
            "with one data set of 155 points differences of a few 0.001 in CRPS are noise."
        )
    grid_text = ""
    if "mcmc-grid" in cv.methods and "mcmc" in cv.methods:
        d, e = cv.compare("mcmc")["mcmc-grid"]
        sd_grid, sd_cont = s["mcmc-grid"]["mean_sd"], s["mcmc"]["mean_sd"]
        grid_text = (
            "The `mcmc-grid` row is the exact posterior of that grid representation and "
            "`mcmc` the same prior on a continuous field, so their difference is the cost "
            f"of the resolution: CRPS {d:+.4f} ± {e:.4f} ({_zero(d, e)}), mean predictive "
            f"sd {sd_grid:.3f} against {sd_cont:.3f}. "
        )
        if abs(d) < 2 * e:
            grid_text += (
                f"With τ = {f['noise_sd']:.2f} absorbing the sub-grid variation, the coarse "
                "grid costs little at these held-out points; it would cost more with less "
                "noise or denser data. "
            )
    near = f["near_river"]
    errors = []
    for m in ("diffusion", "kriging-ok", "mcmc", "trend-kriging"):
        if m in cv.methods:
            err = (cv.truth - cv.mean[m])[near]
            se = err.std(ddof=1) / math.sqrt(len(err))
            errors.append(f"{LABELS[m]} {err.mean():+.3f} ± {se:.3f}")
    trend_text += (
        f" Bias at the river: over the {int(near.sum())} samples within 100 m of it, the mean "
        "held-out error (observed − predicted, log units) is " + "; ".join(errors) + "."
    )
    for m in ("mcmc", "mcmc-grid"):
        if m in cv.methods:
            info = cv.info[m]
            rhat = max(i["max_rhat"] for i in info)
            ess = min(i["min_ess"] for i in info)
            div = sum(i["divergences"] for i in info)
            ells = [
                i["summary"]["length_scale"]["mean"]
                * (
                    i["domain_map"]["physical_extent"][0][1]
                    - i["domain_map"]["physical_extent"][0][0]
                )
                for i in info
            ]
            lines.append(
                f"{LABELS[m]}: largest R-hat over folds {rhat:.3f}, smallest bulk ESS "
                f"{ess:.0f}, {div} divergent transitions; posterior mean length scale "
                f"{min(ells):.0f}–{max(ells):.0f} m across folds."
            )
    lines += [
        "",
        f"![data, maps and held-out predictions]({figure})",
        "",
        "*Top: the observations; the diffusion posterior mean and ordinary kriging mean "
        f"from all {f['n']} points on the model's grid ({maps_info}); held-out predictive "
        "means against the data. Bottom: log zinc against distance to the river; the sd "
        "maps (of the field, without τ); held-out errors against distance to the river.*",
        "",
        "## What this shows",
        "",
        summary_text,
        "",
        "## Where the learned prior is misspecified for Meuse, and what would fix it",
        "",
        f"- **A trend the prior cannot represent.** Log zinc falls with distance to the river: "
        f"correlation {f['corr_dist']:.2f} with `dist` and {f['corr_sqrt_dist']:.2f} with "
        f"√dist; a straight line in √dist explains {100 * f['r2_sqrt_dist']:.0f}% of the "
        "variance. The shipped prior is stationary with zero mean after standardisation, so "
        "it treats that trend as a long-range random field: the REML Matérn fit with a "
        f"constant mean needs a sill of {reml['variance'] + reml['nugget']:.2f} against a "
        f"sample variance of {f['sample_var']:.2f} (the standardisation sets the prior's "
        "sill to the sample variance), and predictions far from data revert to the overall "
        "mean rather than to the level expected at that distance from the river. *Fix:* a "
        "prior with a covariate channel (train the diffusion model on fields *and* a "
        "distance-to-river map, conditioning the denoiser on it, or on a mean surface "
        "plus a stationary residual), or a non-stationary prior whose mean and variance "
        f"depend on the distance. {trend_text}",
        f"- **Skew.** Zinc's skewness is {f['skew_raw']:.2f} in ppm and {f['skew_log']:.2f} "
        "after the log; the prior is Gaussian, so it is applied to the logs. Predictions in ppm "
        "need the back-transform of each draw (exp of draws; the mean of exp is not exp of "
        "the mean). *Fix:* already the log; a Box–Cox or normal-score transform fitted per "
        "variable for the other metals.",
        f"- **Grid resolution.** The 32x32 grid over the {f['domain_km']:.2f} km square puts "
        f"nodes {f['spacing']:.0f} m apart, while the median distance between a sample and "
        f"its nearest neighbour is {f['nn_median']:.0f} m (smallest {f['nn_min']:.0f} m): "
        f"{f['obs_sharing']} of the {f['n']} samples share their nearest grid node with "
        "another sample. The diffusion field is bilinear between nodes, so variation "
        "below ~150 m is not in the prior and goes into the noise. "
        f"{grid_text}*Fix:* a finer grid (64² or "
        "128², GPU training; GPU_WORK.md) or a grid over the sampled region only, not the "
        "squared box.",
        f"- **Correlation lengths.** Mapped onto Meuse, the prior's main-axis length scale "
        f"runs from {f['prior_ell_m'][0]:.0f} to {f['prior_ell_m'][1]:.0f} m (practical "
        f"range, 95% of the sill, {f['prior_range_m'][0]:.0f}–{f['prior_range_m'][1]:.0f} m) "
        f"with anisotropy ratio {f['prior_ratio'][0]:g}–{f['prior_ratio'][1]:g}. REML on all "
        f"data (Matérn ν = 1.5, constant mean) gives a main-axis length scale of "
        f"{reml['length_scale']:.0f} m (practical range {f['reml_range']:.0f} m), ratio "
        f"{reml['anis_ratio']:.2f} at {math.degrees(reml['angle']):.0f}° from east; "
        f"isotropic, {f['reml_iso']['length_scale']:.0f} m (practical range "
        f"{f['reml_iso_range']:.0f} m); an isotropic spherical variogram fit reaches its "
        f"sill at {f['sph_range']:.0f} m. After removing the √dist trend the residuals "
        f"have length scale {f['reml_residual']['length_scale']:.0f} m (practical range "
        f"{f['reml_residual_range']:.0f} m) and sill "
        f"{f['reml_residual']['variance'] + f['reml_residual']['nugget']:.2f}, "
        f"{residual_where} the prior's range: a prior for what is left after a trend "
        "needs shorter correlations than one for the raw field. Meuse's raw main-axis "
        f"length scale falls {inside} the prior's support, and only "
        f"because the domain map scales a {f['domain_km']:.1f} km box onto the unit square: "
        "the prior's lengths are fractions of the box, not metres, so the same model on a "
        "larger survey area "
        "would assume longer correlations. *Fix:* choose the prior's length-scale range "
        "from the region's variograms (or a broad prior in metres) and train for it; map "
        "data with a fixed metres-per-unit scale rather than the bounding box.",
        f"- **Noise and variance.** The prior has no nugget and a fixed unit variance, so "
        f"the measurement and micro-scale noise (τ = {f['noise_sd']:.2f}) must be given, "
        "here from one REML fit to all data, and the field's variance is set by the "
        "sample sd of each training fold rather than inferred. *Fix:* a prior with random "
        "variance and nugget (MCMC and the diffusion prior then marginalise over them), or "
        "estimate τ within each fold.",
        "",
        "Wall time: the cross-validations "
        f"{sum(float(np.sum(v)) for v in cv.seconds.values()):.0f} s in all (per method in "
        f"the table); this invocation {total_seconds:.0f} s (a cross-validation saved in "
        "`cv/` by an earlier invocation with the same settings is reused, not rerun).",
        "",
    ]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


# ------------------------------------------------------------- the user's workflow
USER_LABELS = {
    "diffusion": "diffusion posterior (MMPS, τ sampled)",
    "kriging-ok": "ordinary kriging (REML, nugget plug-in)",
    "mcmc": "MCMC, same prior (τ sampled)",
    "mcmc-grid": "MCMC on the 32x32 grid (τ sampled)",
}


def user_workflow(args, model, model_path: Path, methods, progress) -> str:
    """Meuse zinc as a new user brings it: ppm, no noise, blocked folds, log transform.

    Every method sees the raw concentrations (ppm) and no noise: the log transform, the
    standardisation and the noise (REML for kriging; a sampled τ for MCMC and the
    diffusion posterior) are fitted on each training fold. Folds are spatial blocks held
    out whole. Scores are of new measurements, back-transformed to ppm.
    """
    from geodiff.evaluate.crossval import crossval_report, fold_noise_sd
    from geodiff.evaluate.folds import assign_folds, default_block_size

    obs = meuse("zinc", log=False, noise_sd=0.0)
    settings = {**_settings(args, model_path, obs), "workflow": "user", "scheme": "blocked",
                "transform": "log", "noise": "bayes"}  # fmt: skip
    cache, parts = args.out / "cv-user", []
    for m in methods:
        part = _load(m, cache, settings, obs)
        if part is None:
            print(f"== cross-validating {m} (blocked folds, noise and transform inferred)")
            part = cross_validate(
                model, obs, folds=args.folds, methods=_cv_methods(args, m), draws=args.draws,
                noise="bayes", transform="log",
                scheme="blocked", margin=args.margin, seed=args.seed, progress=progress,
            )  # fmt: skip
            _save(part, m, cache, settings)
        parts.append(part)
    cv = CrossValidation.combine(parts)
    block = default_block_size(obs.locations, args.folds)
    np.testing.assert_array_equal(cv.fold, assign_folds(obs.locations, args.folds, args.seed,
                                                        scheme="blocked"))  # fmt: skip
    scores = cv.scores()
    lines = [
        f"{len(obs)} topsoil zinc samples (ppm), coordinates in metres, nothing given by "
        f"hand: {args.folds}-fold cross-validation with spatially blocked folds (square "
        f"blocks of {block:.0f} m held out whole, seed {args.seed}); on each training fold a "
        "log transform, the value standardisation and the noise are fitted (ordinary "
        "kriging: REML nugget; MCMC and the diffusion posterior: τ² ~ IG(1, 0.02 var) "
        "sampled with the field); predictive distributions of new measurements, "
        f"back-transformed to ppm. {args.draws} draws per point; the diffusion sampler "
        f"{args.sampler} ({args.steps or 'default'} steps); MCMC 2 chains x "
        f"({args.mcmc_warmup} + {args.mcmc_samples}).",
        "",
        crossval_report(cv, labels=USER_LABELS).split("\n", 2)[2],
    ]
    if {"diffusion", "kriging-ok"} <= set(cv.methods):
        d, se = cv.compare("kriging-ok")["diffusion"]
        verdict = "no worse than" if d <= 2 * se else "worse than"
        lines += [f"Diffusion minus ordinary kriging, CRPS: {d:+.2f} ± {se:.2f} ppm: "
                  f"{verdict} kriging at two paired standard errors.", ""]  # fmt: skip
    covered = [f"{USER_LABELS[m]} {scores[m]['cover90']:.3f}" for m in cv.methods]
    inside = all(0.85 <= scores[m]["cover90"] <= 0.95 for m in cv.methods)
    lines += [f"90% coverage of new measurements: {'; '.join(covered)} "
              f"({'all' if inside else 'not all'} within 0.85–0.95).", ""]  # fmt: skip
    for m in cv.methods:
        tau = fold_noise_sd(cv.info[m])
        if m.startswith("mcmc"):
            rhat = max(i["max_rhat"] for i in cv.info[m])
            lines.append(f"{USER_LABELS[m]}: largest R-hat over folds {rhat:.3f}.")
        if tau is not None:
            lines.append(f"{USER_LABELS[m]}: inferred noise sd {tau:.3f} log(ppm) (fold mean).")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text)
    return text


# --------------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="data/stationary-matern-32")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=39, help="predictive draws (S+1: k*20)")
    parser.add_argument("--steps", type=int, help="diffusion sampler steps (default: "
                        "the sampler's; fixed-noise: 50)")  # fmt: skip
    parser.add_argument("--sampler", help="diffusion posterior sampler (default: mmps; "
                        "fixed-noise: daps)")  # fmt: skip
    parser.add_argument("--mcmc-warmup", type=int, default=300)
    parser.add_argument("--mcmc-samples", type=int, default=300)
    parser.add_argument(
        "--methods", help=f"comma-separated, from {CV_METHODS} (default: user: diffusion, "
        "kriging-ok, mcmc; fixed-noise: all)"
    )  # fmt: skip
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/meuse"))
    parser.add_argument("--smoke", action="store_true", help="2 folds, 19 draws, short MCMC")
    parser.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--workflow", default="user", choices=("user", "fixed-noise"),
        help="user: ppm, noise and log transform inferred per fold, blocked folds; "
        "fixed-noise: log zinc with one REML noise, random folds (the earlier study)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    user = args.workflow == "user"
    args.sampler = args.sampler or ("mmps" if user else "daps")
    args.steps = args.steps if args.steps is not None or user else 50
    args.methods = args.methods or ("diffusion,kriging-ok,mcmc" if user else ",".join(CV_METHODS))
    started = time.perf_counter()
    if args.smoke:
        args.folds, args.draws, args.steps = 2, 19, 10
        args.mcmc_warmup, args.mcmc_samples = 20, 20
    progress = not args.quiet
    methods = [m for m in args.methods.split(",") if m]
    model_path = Path(args.model)
    if not model_path.is_absolute() and not model_path.exists():
        model_path = ROOT / model_path
    model = geodiff.load_model(model_path)
    if args.workflow == "user":
        text = user_workflow(args, model, model_path, methods, progress)
        print(text)
        if not (args.smoke or args.no_report):
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from _report import update_section

            given = list(sys.argv[1:] if argv is None else argv)
            command = "python examples/meuse.py " + " ".join(shlex.quote(a) for a in given)
            update_section("meuse-user", "Real data: Meuse zinc as a user brings it (ppm, "
                           "no noise, blocked folds)", command, text)  # fmt: skip
        return
    obs = meuse("zinc", log=True)
    table = meuse_table()
    settings = _settings(args, model_path, obs)
    cache = args.out / "cv"
    parts = []
    for m in methods:
        part = _load(m, cache, settings, obs)
        if part is None:
            print(f"== cross-validating {m}", flush=True)
            part = cross_validate(
                model,
                obs,
                folds=args.folds,
                methods=_cv_methods(args, m),
                draws=args.draws,
                margin=args.margin,
                seed=args.seed,
                progress=progress,
            )
            _save(part, m, cache, settings)
        else:
            print(f"== {m}: reusing {cache / (m + '.npz')}", flush=True)
        parts.append(part)
    cv = CrossValidation.combine(parts)
    trend_kriging(cv, obs, np.sqrt(table["dist"]), model.prior)

    # maps from all data
    dmap = geodiff.DomainMap.fit(
        obs, model.grid.extent, margin=args.margin, standardise=True, data_scale=model.data_scale
    )
    print("== maps from all data", flush=True)
    t0 = time.perf_counter()
    post = geodiff.diffusion_posterior(
        model,
        obs,
        method=args.sampler,
        draws=args.draws,
        steps=args.steps,
        seed=args.seed,
        domain_map=dmap,
        progress=progress,
    )
    maps = {
        "diffusion": post.at("grid"),
        "kriging-ok": geodiff.ordinary_kriging(
            obs, dmap.physical_grid(model.grid), **plug_in_settings(model.prior)
        ),
    }
    maps_info = f"{args.draws} DAPS draws, {time.perf_counter() - t0:.0f} s for both"
    facts = data_facts(obs, table, model, dmap)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = plot_meuse(obs, table, maps, cv, args.out / "meuse.png")
    total = time.perf_counter() - started
    text = write_report(args.out, args, cv, facts, maps_info, total, figure.name)
    print(text)
    print(f"report: {args.out / 'report.md'}; figure: {figure}; {total:.0f} s")
    if not (args.smoke or args.no_report):
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _report import update_section

        given = list(sys.argv[1:] if argv is None else argv)
        command = "python examples/meuse.py " + " ".join(shlex.quote(a) for a in given)
        body = text.split("\n", 2)[2].replace(f"]({figure.name})", "](docs/meuse.png)")
        update_section("meuse", "Real data: Meuse log-zinc, cross-validated", command, body)


if __name__ == "__main__":
    main()
