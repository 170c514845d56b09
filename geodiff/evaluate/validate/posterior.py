"""Posterior checks: are predictions with the trained prior calibrated and as sharp as
the fully Bayesian reference?

Datasets are drawn from the model's own training prior (θ, a true field, noisy point
observations: :func:`geodiff.evaluate.datasets.synthetic_dataset`), so the exact Bayesian answer is
known in law: MCMC over θ with exact Gaussian conditioning. Each dataset's scores are
appended to a JSON-lines file as soon as they exist, so an interrupted run resumes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.evaluate.datasets import synthetic_dataset
from geodiff.evaluate.predictors import PredictionTask, method_options, run_predictor
from geodiff.evaluate.validate.checks import Check
from geodiff.metrics.scores import (
    RANK_BINS,
    energy_score,
    score_prediction,
    sliced_wasserstein,
)
from geodiff.posterior.predict import DEFAULT_METHOD
from geodiff.prediction import Prediction
from geodiff.tables import markdown_table

__all__ = [
    "COVERAGE_TOLERANCE",
    "DISTANCE_RATIO_LIMIT",
    "METHODS",
    "POSTERIOR_DEFAULTS",
    "RANK_SHARE_TOLERANCE",
    "RHAT_LIMIT",
    "SCORE_RATIO_LIMIT",
    "PosteriorValidation",
    "check_settings",
    "validate_posterior",
]

logger = logging.getLogger(__name__)

#: the methods scored on every dataset, in the report's order
METHODS = ("diffusion", "mcmc", "kriging-oracle", "kriging-ok")
#: the options of the sampled methods unless told otherwise
POSTERIOR_DEFAULTS = {"diffusion": {"method": DEFAULT_METHOD},
                      "mcmc": {"warmup": 200, "samples": 200}}  # fmt: skip
#: 90 % interval coverage within this of 0.90, with two standard errors over datasets
#: added to the distance (``|c - 0.90| + 2 se``), so that a noisy estimate cannot pass by luck
COVERAGE_TOLERANCE = 0.03
#: CRPS and energy score at most this times the MCMC reference's, with two paired
#: standard errors of the ratio added (``ratio + 2 se <= limit``)
SCORE_RATIO_LIMIT = 1.05
#: every bin of the rank histogram holds a share within this of 1/10
RANK_SHARE_TOLERANCE = 0.03
#: sliced Wasserstein distance to MCMC draws at most this times MCMC's own split distance
DISTANCE_RATIO_LIMIT = 1.5
#: the reference is trusted when every run's largest R-hat is below this
RHAT_LIMIT = 1.05


@dataclass
class PosteriorValidation:
    """Results of :func:`validate_posterior`.

    Attributes
    ----------
    records : list of dict
        One per dataset: ``{"dataset": k, METHOD: scores, ...}`` with ``crps``, ``rmse``,
        ``cover90``, ``ranks`` (counts in :data:`RANK_BINS` bins), ``seconds`` and, for
        the ensembles, ``energy``; ``diffusion`` also has ``sw`` (sliced Wasserstein
        distance to MCMC draws), ``sw_floor`` (between two halves of the MCMC draws)
        and ``sd_ratio`` (mean over nodes of its sd over MCMC's); ``mcmc`` has
        ``max_rhat``, and its ``seconds`` cover NUTS and all ``2 * draws`` conditional
        fields (half of which are scored).
    checks : list of Check
    settings : dict
    reused : int
        Datasets read back from the results file of an earlier run, not recomputed.
    """

    records: list
    checks: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    reused: int = 0

    def seconds(self) -> float:
        """Wall time of every method on every dataset, whichever run computed them."""
        return float(sum(r[m]["seconds"] for r in self.records for m in METHODS))

    def table(self) -> str:
        """Per-method means over datasets, as a Markdown table."""
        return method_table(self.records, self.settings["draws"])


def _read_records(path: Path, settings: dict) -> dict:
    """Records of an earlier run with the same settings, by dataset.

    The first line holds the settings; a last line cut short by a kill is ignored.
    """
    if not path.exists():
        return {}
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        header = json.loads(lines[0])["settings"]
    except (IndexError, json.JSONDecodeError, KeyError, TypeError):
        raise GeodiffError(f"{path} is not a validation results file; delete it") from None
    if header != settings:
        raise GeodiffError(
            f"{path} holds results made with other settings ({header}); "
            "use another output folder or delete the file"
        )
    records = {}
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        records[record["dataset"]] = record
    return records


def _score_dataset(model, k: int, s: dict, progress: bool) -> dict:
    prior, grid = model.prior, model.grid
    theta, truth, obs = synthetic_dataset(prior, grid, s["n_obs"], s["noise_sd"], s["seed"], k)
    truth = truth.reshape(-1)
    task = PredictionTask(prior, obs, grid, model=model, theta=theta)
    run = functools.partial(run_predictor, task=task, seed=s["seed"], key=(k,), progress=progress)
    diffusion = run("diffusion", draws=s["draws"], **s["methods"]["diffusion"])
    # twice the draws: one half is scored, the other gives the distance floor
    both = run("mcmc", draws=2 * s["draws"], **s["methods"]["mcmc"])
    half = Prediction.from_draws(grid.points(), both.draws[0::2], grid=grid, method="mcmc")
    oracle = run("kriging-oracle")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = run("kriging-ok")
    record = {
        "dataset": k,
        "diffusion": {"seconds": diffusion.seconds},
        "mcmc": {"seconds": both.seconds, "max_rhat": both.info["max_rhat"]},
        "kriging-oracle": {"seconds": oracle.seconds},
        "kriging-ok": {"seconds": ok.seconds, "warnings": len(caught)},
    }
    for name, pred in (
        ("diffusion", diffusion),
        ("mcmc", half),
        ("kriging-oracle", oracle),
        ("kriging-ok", ok),
    ):
        record[name].update(score_prediction(pred, truth, seed=k))
        if pred.draws is not None:
            record[name]["energy"] = energy_score(truth, pred.draws)
    record["diffusion"]["sw"] = sliced_wasserstein(diffusion.draws, half.draws, seed=k)
    record["diffusion"]["sw_floor"] = sliced_wasserstein(both.draws[1::2], half.draws, seed=k)
    record["diffusion"]["sd_ratio"] = float(np.mean(diffusion.sd / both.sd))
    return record


def check_settings(
    *, datasets: int = 20, draws: int = 19, n_obs: int = 30, methods: dict | None = None, **_
) -> None:
    """Raise :class:`GeodiffError` on settings :func:`validate_posterior` cannot use."""
    mcmc_samples = {**POSTERIOR_DEFAULTS["mcmc"], **(methods or {}).get("mcmc", {})}["samples"]
    if datasets < 2:
        raise GeodiffError(f"posterior checks need at least 2 datasets, got {datasets}")
    if (draws + 1) % 20:
        raise GeodiffError(f"draws + 1 must be a multiple of 20 (19, 39, ...), got {draws}")
    if n_obs < 3:
        raise GeodiffError(f"need at least 3 observations per dataset, got {n_obs}")
    if mcmc_samples < draws:
        raise GeodiffError(f"mcmc_samples must be at least draws ({draws}), got {mcmc_samples}")


def validate_posterior(
    model,
    *,
    datasets: int = 20,
    n_obs: int = 30,
    noise_sd: float = 0.1,
    draws: int = 19,
    methods: dict | None = None,
    seed: int = 0,
    results=None,
    progress: bool = True,
) -> PosteriorValidation:
    """Score posterior predictions with the trained prior on datasets drawn from its prior.

    Parameters
    ----------
    model : DiffusionModel
    datasets : int
        Number of (θ, field, observations) datasets.
    n_obs : int
        Uniformly placed point observations per dataset.
    noise_sd : float
        Their measurement noise.
    draws : int
        Posterior draws per method and dataset; ``draws + 1`` must be a multiple of 20
        (exact 90 % intervals and equally likely rank bins).
    methods : dict of str to dict, optional
        Options over :data:`POSTERIOR_DEFAULTS` of ``"diffusion"`` (``method``: the
        sampler, ``steps``, the sampler's own) and ``"mcmc"`` (``warmup``, ``samples`` per
        chain; 2 chains): ``2 * draws`` field draws are taken from MCMC, one half is
        scored, the other gives the distance floor. Kriging runs as it is.
    seed : int
    results : str or Path, optional
        JSON-lines file of per-dataset results, read to resume and appended to.
    progress : bool

    Returns
    -------
    PosteriorValidation
    """
    options = method_options(methods, POSTERIOR_DEFAULTS, fixed=True)
    check_settings(datasets=datasets, draws=draws, n_obs=n_obs, methods=options)
    settings = {
        "datasets": datasets,
        "n_obs": n_obs,
        "noise_sd": noise_sd,
        "draws": draws,
        "methods": options,
        "seed": seed,
    }
    key = {k: v for k, v in settings.items() if k != "datasets"}  # more datasets extend a run
    done = {}
    if results is not None:
        results = Path(results)
        done = _read_records(results, key)
        if not results.exists():
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps({"settings": key}) + "\n")
    reused = sum(k in done for k in range(datasets))
    for k in range(datasets):
        if k in done:
            continue
        (logger.info if progress else logger.debug)(
            f"[posterior] dataset {k + 1}/{datasets}: {options['diffusion']['method']}, MCMC, "
            "kriging"
        )
        done[k] = _score_dataset(model, k, settings, progress)
        if results is not None:
            with results.open("a") as f:
                f.write(json.dumps(done[k]) + "\n")
    records = [done[k] for k in range(datasets)]
    return PosteriorValidation(records, _checks(records, settings), settings, reused)


def _mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


def _shares(records, name) -> np.ndarray:
    counts = np.sum([r[name]["ranks"] for r in records], axis=0)
    return counts / counts.sum()


def _coverage_check(records, name: str, label: str) -> Check:
    cover, se = _mean_se([r[name]["cover90"] for r in records])
    return Check(
        "posterior",
        f"90 % interval coverage, {label}",
        f"{cover:.3f} ± {se:.3f}",
        "0.900",
        f"|coverage − 0.90| + 2 se ≤ {COVERAGE_TOLERANCE:g}",
        bool(abs(cover - 0.9) + 2 * se <= COVERAGE_TOLERANCE),
    )


def paired_ratio(mine, reference) -> tuple[float, float]:
    """``mean(mine) / mean(reference)`` and its standard error from the paired differences.

    By the delta method, ``se(ratio) = se(mean(mine - ratio · reference)) / mean(reference)``
    over the datasets (one pair each).
    """
    mine, reference = np.asarray(mine, dtype=float), np.asarray(reference, dtype=float)
    ratio = mine.mean() / reference.mean()
    _, se = _mean_se(mine - ratio * reference)
    return float(ratio), float(se / reference.mean())


def _ratio_check(records, score: str, label: str, method: str) -> Check:
    ratio, se = paired_ratio(
        [r["diffusion"][score] for r in records], [r["mcmc"][score] for r in records]
    )
    reference = np.mean([r["mcmc"][score] for r in records])
    return Check(
        "posterior",
        f"{label} of diffusion ({method}) / MCMC",
        f"{ratio:.3f} ± {se:.3f} (paired se)",
        f"1 (MCMC: {reference:.4f})",
        f"ratio + 2 se ≤ {SCORE_RATIO_LIMIT:g}",
        bool(ratio + 2 * se <= SCORE_RATIO_LIMIT),
    )


def _checks(records: list, settings: dict) -> list:
    method = settings["methods"]["diffusion"]["method"]
    shares = _shares(records, "diffusion")
    mcmc_shares = _shares(records, "mcmc")
    sw = np.mean([r["diffusion"]["sw"] for r in records])
    sw_floor = np.mean([r["diffusion"]["sw_floor"] for r in records])
    rhat = max(r["mcmc"]["max_rhat"] for r in records)
    return [
        Check(
            "posterior",
            "MCMC reference converged (largest R-hat over datasets)",
            f"{rhat:.3f}",
            "1",
            f"≤ {RHAT_LIMIT:g}",
            bool(rhat <= RHAT_LIMIT),
        ),
        _coverage_check(records, "mcmc", "MCMC reference"),
        _coverage_check(records, "diffusion", f"diffusion ({method})"),
        _ratio_check(records, "crps", "CRPS", method),
        _ratio_check(records, "energy", "energy score", method),
        Check(
            "posterior",
            f"rank histogram of the truth among diffusion draws ({RANK_BINS} bins)",
            f"largest |share − 0.1|: {np.abs(shares - 0.1).max():.3f}",
            f"{np.abs(mcmc_shares - 0.1).max():.3f} (MCMC)",
            f"≤ {RANK_SHARE_TOLERANCE:g}",
            bool(np.abs(shares - 0.1).max() <= RANK_SHARE_TOLERANCE),
        ),
        Check(
            "posterior",
            "sliced Wasserstein distance of diffusion draws to MCMC draws",
            f"{sw:.3f}",
            f"{sw_floor:.3f} (MCMC half to half)",
            f"≤ {DISTANCE_RATIO_LIMIT:g} × floor",
            bool(sw <= DISTANCE_RATIO_LIMIT * sw_floor),
        ),
    ]


def method_table(records: list, draws: int) -> str:
    """Markdown table: each method's mean scores over datasets (se of the CRPS)."""
    mcmc = np.mean([r["mcmc"]["crps"] for r in records])
    rows = []
    for name in METHODS:
        scored = [r[name] for r in records]
        crps, se = _mean_se([x["crps"] for x in scored])
        energy = f"{np.mean([x['energy'] for x in scored]):.3f}" if "energy" in scored[0] else "—"
        rows.append(
            (
                name,
                f"{crps:.4f} ± {se:.4f}",
                f"{crps / mcmc:.3f}",
                energy,
                f"{np.mean([x['rmse'] for x in scored]):.4f}",
                f"{np.mean([x['cover90'] for x in scored]):.3f}",
                " ".join(f"{v:.3f}" for v in _shares(records, name)),
                f"{np.mean([x['seconds'] for x in scored]):.1f}",
            )
        )
    header = ("method", "CRPS (± se)", "CRPS / MCMC", "energy score", "RMSE", "90 % coverage",
              f"rank shares ({RANK_BINS} bins)", "s per dataset")  # fmt: skip
    return markdown_table(header, rows)
