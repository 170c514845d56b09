"""The end-to-end demonstration: a true field, sparse observations, every method, a report.

:func:`run_demo` draws parameters and a true field from a trained model's prior, observes
it at random points with noise, predicts the whole grid with the diffusion posterior,
oracle kriging (the true parameters), ordinary kriging (fitted parameters) and the MCMC
reference, scores each against the truth and writes a Markdown report with its figure.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.evaluate.datasets import synthetic_dataset
from geodiff.evaluate.predictors import PredictionTask, method_options, run_predictor
from geodiff.io import write_text
from geodiff.metrics.scores import score_prediction
from geodiff.posterior.predict import DEFAULT_METHOD
from geodiff.tables import markdown_table

__all__ = ["DEMO_DEFAULTS", "run_demo", "synthetic_dataset"]

logger = logging.getLogger(__name__)


#: grids above this many nodes leave out the MCMC reference (its SPDE likelihood takes
#: 0.33 s at 128², 3.8 per slice-sampling transition: BENCHMARKS.md "SPDE prior engine")
MCMC_MAX_NODES = 64 * 64
#: the options of the demo's methods unless told otherwise
DEMO_DEFAULTS = {"diffusion": {"method": DEFAULT_METHOD}, "kriging-oracle": {}, "kriging-ok": {},
                 "mcmc": {"warmup": 100, "samples": 100, "chains": 2}}  # fmt: skip


def run_demo(
    model,
    out,
    *,
    n_obs: int = 30,
    noise_sd: float = 0.1,
    draws: int = 39,
    methods=None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Run the demonstration and write ``out/report.md`` and ``out/maps.png``.

    Parameters
    ----------
    model : DiffusionModel
    out : str or Path
        Output directory.
    n_obs : int
        Observed points, uniform over the domain.
    noise_sd : float
        Measurement noise of the observations.
    draws : int
        Posterior draws of the diffusion sampler and MCMC.
    methods : dict of str to dict, optional
        Options of ``"diffusion"`` (``method``: the sampler, ``steps``, the sampler's own)
        and ``"mcmc"`` (``warmup``, ``samples`` per chain, ``chains``) over
        :data:`DEMO_DEFAULTS`; every method of the demo runs.
    seed : int
    progress : bool
        Log each stage and show progress bars.

    Returns
    -------
    Path
        The report.
    """
    if n_obs < 3:
        raise GeodiffError(f"the demo needs at least 3 observations, got {n_obs}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GeodiffError(f"--out {out} is a file; the demo writes a folder")
    out.mkdir(parents=True, exist_ok=True)
    prior, grid = model.prior, model.grid
    theta, truth, obs = synthetic_dataset(prior, grid, n_obs, noise_sd, seed)
    task = PredictionTask(prior, obs, grid, model=model, theta=theta)
    log = logger.info if progress else logger.debug
    log(f"true field drawn from {prior.name}; {n_obs} observations, noise sd {noise_sd}")
    options = method_options(methods, DEMO_DEFAULTS, fixed=True)
    mcmc = options["mcmc"]
    runs = (
        ("diffusion", options["diffusion"],
         f"diffusion posterior ({options['diffusion']['method']}, {draws} draws)"),
        ("kriging-oracle", {}, "oracle kriging (the true parameters)"),
        ("kriging-ok", {}, "ordinary kriging (parameters fitted by REML)"),
        ("mcmc", mcmc, f"MCMC reference (NUTS, {mcmc['chains']} chains x "
         f"{mcmc['warmup']}+{mcmc['samples']})"),
    )  # fmt: skip
    if grid.n_nodes > MCMC_MAX_NODES:  # the reference's likelihood is too slow beyond 64²
        log(f"MCMC skipped: a {grid.shape[0]}x{grid.shape[1]} grid is above its "
            f"{MCMC_MAX_NODES}-node limit (64²)")  # fmt: skip
        runs = runs[:-1]
    predictions = {}
    for i, (name, options, text) in enumerate(runs):
        log(f"[{i + 1}/{len(runs)}] {text}")
        pred = run_predictor(name, task, draws=draws, seed=seed, progress=progress, **options)
        predictions[pred.method] = pred
    truth_flat = truth.reshape(-1)
    scores = {name: score_prediction(p, truth_flat, seed) for name, p in predictions.items()}
    from geodiff.plot import plot_demo

    figure = plot_demo(
        truth, obs, predictions, out / "maps.png", grid=grid, ellipses=_ellipses(prior, theta, grid)
    )
    report = write_text(
        out / "report.md", _report(model, obs, predictions, scores, draws, figure.name)
    )
    log(f"report: {report}")
    return report


def _ellipses(prior, theta: dict, grid, per_side: int = 5) -> dict:
    """The field's local length scale, anisotropy ratio and angle at a coarse lattice."""
    (x0, x1), (y0, y1) = grid.extent
    xs = x0 + (np.arange(per_side) + 0.5) * (x1 - x0) / per_side
    ys = y0 + (np.arange(per_side) + 0.5) * (y1 - y0) / per_side
    points = np.array([(x, y) for y in ys for x in xs])
    local = prior.local_parameters(theta, points)
    return {"points": points, **{k: v[0].numpy() for k, v in local.items()}}


def _report(model, obs, predictions, scores, draws, figure) -> str:
    rows = [
        (
            name,
            f"{s['rmse']:.3f}",
            f"{s['crps']:.3f}",
            f"{s['cover90']:.2f}",
            f"{predictions[name].seconds:.1f}",
        )
        for name, s in scores.items()
    ]
    mcmc = predictions.get("MCMC")
    reference = (
        f"reference (its largest R-hat: {mcmc.info['max_rhat']:.3f})"
        if mcmc is not None
        else "reference, left out on this grid (above 64², its likelihood is too slow)"
    )
    lines = [
        "# geodiff demo",
        "",
        f"A true field drawn from the prior `{model.prior.name}` on a {model.grid.shape[0]}x"
        f"{model.grid.shape[1]} grid, observed at {len(obs)} random points with noise sd "
        f"{float(obs.noise_sd[0]):g}; each method predicts every grid node. Scores against "
        "the true field over all nodes: RMSE of the posterior mean, CRPS (lower is better), "
        "and the fraction of nodes whose true value lies in the central 90% interval "
        f"(0.90 when calibrated; draws: {draws} per method).",
        "",
        f"![truth, observations and each method's mean and sd]({figure})",
        "",
        markdown_table(("method", "RMSE", "CRPS", "90% coverage", "wall time (s)"), rows),
        "",
        "Oracle kriging knows the true parameters: it is the best any method can do on "
        "average. Ordinary kriging plugs in parameters fitted to these few observations. "
        "MCMC and the diffusion posterior both integrate over the parameters; MCMC is the "
        f"{reference}. One dataset is noisy evidence: "
        "BENCHMARKS.md scores each method over 100 of them.",
        "",
    ]
    return "\n".join(lines)
