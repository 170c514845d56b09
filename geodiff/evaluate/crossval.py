"""K-fold cross-validation of spatial prediction methods on point data in physical units.

:func:`cross_validate` splits the observations into ``folds`` seeded folds — random, or
spatial blocks held out whole (:mod:`geodiff.evaluate.folds`); every point is held out
exactly once — predicts each held-out fold from the others with every
method, and returns a :class:`CrossValidation`: per point the predictive mean, sd,
central 90% interval and CRPS of each method, with :meth:`CrossValidation.scores`
(CRPS, RMSE, 90% coverage, with standard errors over points) and paired comparisons.

Methods
-------
``"diffusion"``
    :func:`~geodiff.posterior.diffusion_posterior` with the trained model, read at the
    held-out points (bilinear reads of each posterior draw on the model's grid).
``"kriging-ok"``
    :func:`~geodiff.baselines.kriging.ordinary_kriging` in physical coordinates: a
    stationary anisotropic covariance of the model's family (shape parameter at its
    prior median), refitted by REML with a nugget on every training fold.
``"mcmc"``
    The fully Bayesian reference under the model's own training prior (not the
    network): NUTS over the prior's parameters given the training fold mapped to the
    model's domain and units, then exact conditional draws at the held-out points. The
    field is continuous (covariances at the points themselves).
``"mcmc-grid"``
    The same with the field living on the model's grid and observed and predicted by
    bilinear interpolation: the exact Bayesian answer for the diffusion model's own
    representation, so its gap to ``"mcmc"`` is the cost of the grid's resolution, and
    the gap of ``"diffusion"`` to it is the cost of the network and the sampler.

Each fold is one :func:`~geodiff.evaluate.tasks.build_task` of its *training* points:
the value transform, the standardisation (their mean and sd) and an inferred noise are
fitted to them only, so no held-out value leaks in; with ``domain="auto"`` the
coordinate box is the bounding box of training *and* held-out locations (locations are
known when predicting), widened by ``margin``.

What is scored
--------------
The held-out values are measurements, so by default (``quantity="measurement"``) every
predictive distribution is that of a new measurement
(:func:`~geodiff.evaluate.predictors.run_predictor`): the held-out point's given noise
and the inferred nugget are added (independent normal noise on each draw, one nugget
per draw when it was sampled). With ``quantity="field"`` the predictive is of the
noise-free field, as when the held-out values are exact. Draw-based methods use the
fair ensemble CRPS and the empirical 90% interval from the k-th to the (S+1-k)-th
smallest of S draws, k = 0.05 (S+1) (it holds a calibrated truth with probability
exactly 0.9 since S+1 must be a multiple of 20); Gaussian predictions (kriging) the
closed-form CRPS and mean ± 1.645 sd, back-transformed Gaussians their own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from geodiff.errors import GeodiffError
from geodiff.evaluate.folds import assign_folds
from geodiff.evaluate.predictors import method_options, run_predictor
from geodiff.evaluate.tasks import build_task
from geodiff.metrics.scores import crps, interval_coverage, prediction_crps
from geodiff.noise import NoiseModel
from geodiff.observe import Observations
from geodiff.posterior.predict import DEFAULT_METHOD
from geodiff.tables import markdown_table

logger = logging.getLogger(__name__)

__all__ = [
    "CV_DEFAULTS",
    "CV_METHODS",
    "CrossValidation",
    "assign_folds",
    "cross_validate",
    "crossval_report",
    "point_summaries",
    "prediction_summaries",
    "run_crossval_command",
]

#: the methods :func:`cross_validate` knows
CV_METHODS = ("diffusion", "kriging-ok", "mcmc", "mcmc-grid")
_MCMC = {"warmup": 300, "samples": 300, "chains": 2}
#: each method's options unless told otherwise
CV_DEFAULTS = {"diffusion": {"method": DEFAULT_METHOD}, "mcmc": _MCMC, "mcmc-grid": _MCMC}
_MIN_TRAIN_KRIGING = 7  # mean, variance, length scale, nugget, ratio, angle: more than 6
_Z90 = float(stats.norm.ppf(0.95))


def point_summaries(truth, draws=None, *, mean=None, sd=None) -> dict:
    """Predictive summaries and scores at each target, from draws or a Gaussian.

    Parameters
    ----------
    truth : array_like, shape (m,)
    draws : array_like, shape (S, m), optional
        S + 1 must be a multiple of 20 (exact 90% intervals).
    mean, sd : array_like, shape (m,), optional
        A Gaussian prediction instead.

    Returns
    -------
    dict of numpy.ndarray, shape (m,)
        ``mean, sd, lower, upper`` (central 90% interval), ``crps``, ``covered`` (0/1).
    """
    truth = np.asarray(truth, dtype=float).reshape(-1)
    if draws is not None:
        draws = np.asarray(draws, dtype=float).reshape(-1, truth.size)
        s = len(draws)
        if s < 19 or (s + 1) % 20:
            raise GeodiffError(f"need S draws with S + 1 a multiple of 20 (19, 39, ...), got {s}")
        k = round(0.05 * (s + 1))
        ordered = np.sort(draws, axis=0)
        lower, upper = ordered[k - 1], ordered[s - k]
        mean, sd = draws.mean(0), draws.std(0, ddof=1)
        score = crps(truth, draws)
    else:
        if mean is None or sd is None:
            raise GeodiffError("give draws, or a mean and an sd")
        mean = np.asarray(mean, dtype=float).reshape(-1)
        sd = np.asarray(sd, dtype=float).reshape(-1)
        lower, upper = mean - _Z90 * sd, mean + _Z90 * sd
        score = crps(truth, mean=mean, sd=sd)
    out = {"mean": mean, "sd": sd, "lower": lower, "upper": upper, "crps": score}
    out["covered"] = interval_coverage(truth, lower, upper)
    for key, value in out.items():
        if value.shape != truth.shape or not np.isfinite(value).all():
            raise GeodiffError(f"a prediction's {key} is not finite at every target")
    return out


@dataclass
class CrossValidation:
    """Held-out predictions of every method at every point.

    Attributes
    ----------
    locations : numpy.ndarray, shape (n, 2)
        Physical coordinates.
    truth : numpy.ndarray, shape (n,)
        The observed (held-out) values.
    noise_sd : numpy.ndarray, shape (n,)
    fold : numpy.ndarray of int, shape (n,)
        The fold in which each point was held out.
    methods : tuple of str
    mean, sd, lower, upper, crps : dict of str to numpy.ndarray, shape (n,)
        Per method: predictive mean and sd, central 90% interval, CRPS.
    draws : dict of str to numpy.ndarray of shape (S, n) or None
        Predictive draws (None for Gaussian predictions).
    seconds : dict of str to numpy.ndarray, shape (folds,)
        Wall time of each method on each fold.
    info : dict of str to list of dict
        Per method, per fold: what the method reported (fitted parameters, R-hat, ...).
    include_noise : bool
        Whether the predictive distributions are of measurements (True) or the field.
    """

    locations: np.ndarray
    truth: np.ndarray
    noise_sd: np.ndarray
    fold: np.ndarray
    methods: tuple
    mean: dict = field(default_factory=dict)
    sd: dict = field(default_factory=dict)
    lower: dict = field(default_factory=dict)
    upper: dict = field(default_factory=dict)
    crps: dict = field(default_factory=dict)
    draws: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    include_noise: bool = True

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1

    @classmethod
    def combine(cls, parts) -> CrossValidation:
        """One cross-validation from runs of different methods on the same folds.

        :func:`cross_validate` seeds each method's streams by fold and method only, so
        running methods one at a time (e.g. to resume an interrupted run) and combining
        them gives the same result as running them together.

        Raises
        ------
        GeodiffError
            Parts with other points, values, noise or folds, or a method in two parts.
        """
        parts = list(parts)
        if not parts:
            raise GeodiffError("nothing to combine")
        first = parts[0]
        out = cls(
            first.locations,
            first.truth,
            first.noise_sd,
            first.fold,
            (),
            include_noise=first.include_noise,
        )
        for part in parts:
            same = (
                part.include_noise == first.include_noise
                and part.fold.shape == first.fold.shape
                and np.array_equal(part.fold, first.fold)
                and np.array_equal(part.locations, first.locations)
                and np.array_equal(part.truth, first.truth)
                and np.array_equal(part.noise_sd, first.noise_sd)
            )
            if not same:
                raise GeodiffError("cannot combine cross-validations of other data or folds")
            for m in part.methods:
                if m in out.methods:
                    raise GeodiffError(f"method {m!r} is in two of the parts")
                out.methods = (*out.methods, m)
                for name in ("mean", "sd", "lower", "upper", "crps", "draws", "seconds", "info"):
                    getattr(out, name)[m] = getattr(part, name)[m]
        return out

    def covered(self, method: str) -> np.ndarray:
        """Whether each held-out value lies in the method's 90% interval (0/1), shape (n,)."""
        return interval_coverage(self.truth, self.lower[method], self.upper[method])

    def scores(self) -> dict:
        """Per method: ``crps, rmse, cover90`` with standard errors, and wall time.

        Standard errors treat the n held-out points as independent (``sd / sqrt(n)``;
        the RMSE's by the delta method, ``se(MSE) / (2 RMSE)``; the coverage's
        ``sqrt(p (1 - p) / n)``). Nearby points are correlated, so read them as a
        lower bound on the uncertainty; :meth:`compare` gives paired differences,
        which cancel much of it.

        Returns
        -------
        dict of str to dict of float
            ``crps, crps_se, rmse, rmse_se, cover90, cover90_se, mean_sd, seconds``.
        """
        n = len(self.truth)
        out = {}
        for m in self.methods:
            sq = (self.mean[m] - self.truth) ** 2
            rmse = math.sqrt(sq.mean())
            cover = float(self.covered(m).mean())
            out[m] = {
                "crps": float(self.crps[m].mean()),
                "crps_se": float(self.crps[m].std(ddof=1) / math.sqrt(n)),
                "rmse": rmse,
                "rmse_se": float(sq.std(ddof=1) / math.sqrt(n) / (2 * rmse)) if rmse > 0 else 0.0,
                "cover90": cover,
                "cover90_se": math.sqrt(cover * (1 - cover) / n),
                "mean_sd": float(self.sd[m].mean()),
                "seconds": float(np.sum(self.seconds[m])),
            }
        return out

    def compare(self, reference: str, metric: str = "crps") -> dict:
        """Paired per-point differences ``method - reference`` of CRPS or squared error.

        Returns
        -------
        dict of str to (float, float)
            Per other method: mean difference and its standard error over points
            (negative: better than ``reference``).
        """
        if reference not in self.methods:
            raise GeodiffError(f"no method {reference!r} in this cross-validation {self.methods}")
        if metric not in ("crps", "squared_error"):
            raise GeodiffError(f"metric must be 'crps' or 'squared_error', got {metric!r}")

        def per_point(m):
            if metric == "crps":
                return self.crps[m]
            return (self.mean[m] - self.truth) ** 2

        out = {}
        for m in self.methods:
            if m == reference:
                continue
            d = per_point(m) - per_point(reference)
            out[m] = (float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))))
        return out

    def table(self, labels: dict | None = None) -> str:
        """The scores as a Markdown table (method, CRPS, RMSE, 90% coverage, sd, time)."""
        labels = labels or {}
        rows = [
            (
                labels.get(m, m),
                f"{s['crps']:.4f} ± {s['crps_se']:.4f}",
                f"{s['rmse']:.4f} ± {s['rmse_se']:.4f}",
                f"{s['cover90']:.3f} ± {s['cover90_se']:.3f}",
                f"{s['mean_sd']:.4f}",
                f"{s['seconds']:.1f}",
            )
            for m, s in self.scores().items()
        ]
        header = ("method", "CRPS", "RMSE", "90% coverage", "mean predictive sd", "wall time (s)")
        return markdown_table(header, rows)


def _plain_info(info: dict) -> dict:
    """A method's diagnostics without its bulky or non-JSON entries (arrays as lists)."""
    return {
        k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in info.items() if k != "cov"
    }


def fold_noise_sd(info: list) -> float | None:
    """The mean over folds of a method's inferred noise sd (None: not inferred); ``info``
    holds each fold's record (its ``noise_sd`` or ``noise_sd_draws``)."""
    values = []
    for fold in info:
        if fold.get("noise_sd_draws") is not None:
            values.append(float(np.mean(fold["noise_sd_draws"])))
        elif "noise_sd" in fold:
            values.append(float(fold["noise_sd"]))
    return float(np.mean(values)) if values else None


def crossval_report(cv: CrossValidation, *, command: str = "", labels=None) -> str:
    """Markdown: the scores table, paired CRPS differences and the inferred noise."""
    labels = labels or {}
    reference = "kriging-ok" if "kriging-ok" in cv.methods else cv.methods[0]
    lines = [f"# Cross-validation: {len(cv.truth)} points, {cv.n_folds} folds", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    what = "new measurements" if cv.include_noise else "the field"
    lines += [f"Predictive distributions of {what}; ± one standard error over points.", ""]
    lines += [cv.table(labels), ""]
    rows = [
        (
            labels.get(m, m),
            f"{d:+.4f} ± {se:.4f}",
            f"{cv.compare(reference, 'squared_error')[m][0]:+.4g}",
        )
        for m, (d, se) in cv.compare(reference).items()
    ]
    if rows:
        lines += [f"Paired differences against {labels.get(reference, reference)} "
                  "(negative: better):", ""]  # fmt: skip
        lines += [markdown_table(("method", "CRPS difference", "MSE difference"), rows), ""]
    noise = [(labels.get(m, m), f"{fold_noise_sd(cv.info[m]):.4g}") for m in cv.methods
             if fold_noise_sd(cv.info[m]) is not None]  # fmt: skip
    if noise:
        lines += ["Inferred noise sd (mean over folds, in the modelled values' units):", ""]
        lines += [markdown_table(("method", "noise sd"), noise), ""]
    return "\n".join(lines)


def write_point_table(cv: CrossValidation, path) -> None:
    """Per point: location, fold, value and each method's mean, sd, 90% interval, CRPS (CSV)."""
    import csv

    from geodiff.io import atomic_write

    columns = {"x": cv.locations[:, 0], "y": cv.locations[:, 1], "fold": cv.fold,
               "value": cv.truth}  # fmt: skip
    for m in cv.methods:
        for key in ("mean", "sd", "lower", "upper", "crps"):
            columns[f"{m}_{key}"] = getattr(cv, key)[m]
    with atomic_write(path, overwrite=True) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        for row in zip(*columns.values(), strict=True):
            writer.writerow([f"{float(v):.10g}" for v in row])


def run_crossval_command(model, obs_path, out, *, noise_sd=None, noise=None, duplicates="reject",
                         command="", **options) -> str:  # fmt: skip
    """``geodiff crossval``: read, cross-validate, write ``out`` (.md) and ``out.csv``.

    Returns
    -------
    str
        The scores table.
    """
    from geodiff.evaluate.tasks import read_observations
    from geodiff.io import write_text

    obs, noise = read_observations(obs_path, noise_sd, noise=noise, duplicates=duplicates)
    cv = cross_validate(model, obs, noise=noise, **options)
    write_point_table(cv, Path(out).with_suffix(".csv"))
    write_text(out, crossval_report(cv, command=command))
    return cv.table()


def _check(model, obs, fold, options: dict, draws) -> tuple:
    if not isinstance(obs, Observations):
        raise GeodiffError(f"expected Observations, got {type(obs).__name__}")
    if obs.operator.kind != "points":
        raise GeodiffError(
            f"cross-validation needs point observations off any grid, got {obs.operator.kind}"
        )
    if not (np.isfinite(obs.values).all() and np.isfinite(obs.locations).all()):
        raise GeodiffError("observations with NaN or infinite values or coordinates")
    if not np.isfinite(obs.noise_sd).all():
        raise GeodiffError("observations with NaN or infinite noise sd")
    methods = tuple(options)
    unknown = [m for m in methods if m not in CV_METHODS]
    if unknown:
        raise GeodiffError(f"unknown method(s) {unknown}; choose from {CV_METHODS}")
    if not isinstance(draws, int) or draws < 19 or (draws + 1) % 20:
        raise GeodiffError(
            f"draws must be an integer with draws + 1 a multiple of 20 (19, 39, 99, ...) so "
            f"that the 90% interval is exact, got {draws!r}"
        )
    n, folds = len(obs), int(fold.max()) + 1
    smallest_train = n - int(np.bincount(fold).max())
    need = 2  # the value standardisation needs two values
    if "kriging-ok" in methods:
        need = max(need, _MIN_TRAIN_KRIGING)
    if any(m.startswith("mcmc") for m in methods):
        from geodiff.baselines.mcmc import n_hyperparameters

        need = max(need, n_hyperparameters(model.prior))
        for m in (m for m in methods if m.startswith("mcmc")):
            chains, samples = options[m]["chains"], options[m]["samples"]
            if samples * chains < draws:
                raise GeodiffError(
                    f"MCMC keeps {chains} x {samples} parameter draws, fewer than the {draws} "
                    "predictive draws asked for; raise its samples"
                )
    if smallest_train < need:
        raise GeodiffError(
            f"too few points per fold: {n} points in {folds} folds leave {smallest_train} to "
            f"train on, and {', '.join(methods)} need at least {need}; use fewer folds"
        )
    return methods


def cross_validate(
    model,
    obs: Observations,
    *,
    folds: int = 5,
    methods=("diffusion", "kriging-ok", "mcmc"),
    draws: int = 39,
    noise: str = "given",
    transform: str = "none",
    scheme: str = "random",
    block_size: float | None = None,
    quantity: str = "measurement",
    domain="auto",
    margin: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> CrossValidation:
    """K-fold cross-validation of prediction methods on point data in physical units.

    Parameters
    ----------
    model : DiffusionModel
        The trained prior; its prior (family, parameters) also defines kriging's family
        and the MCMC reference.
    obs : Observations
        Point observations in physical coordinates and units, with their noise.
    folds : int
        Number of folds, 2 to n (:func:`~geodiff.evaluate.folds.assign_folds`).
    methods : sequence of str or dict of str to dict
        From :data:`CV_METHODS`; a mapping gives a method's options over
        :data:`CV_DEFAULTS` (:func:`~geodiff.evaluate.predictors.method_options`):
        ``"diffusion"``'s ``method`` (the sampler), ``steps`` and the sampler's own;
        ``"mcmc"``'s ``warmup``, ``samples`` (kept draws per chain) and ``chains``.
    draws : int
        Predictive draws per point of the draw-based methods; ``draws + 1`` a multiple
        of 20.
    noise : NoiseModel or {"given", "reml", "bayes"}
        How the noise is known (:mod:`geodiff.noise`); inferred on each training fold.
    transform : {"none", "log", "boxcox", "normal-score"}
        Fitted on each training fold (:mod:`geodiff.evaluate.tasks`).
    scheme : {"random", "blocked"}
        Random folds, or spatial blocks of side ``block_size`` held out whole.
    quantity : {"measurement", "field"}
        Score predictive distributions of new measurements (the held-out values are
        measurements) or of the field.
    domain, margin :
        The physical domain (see :func:`~geodiff.evaluate.tasks.build_task`).
    seed : int
        Folds, samplers and added noise.
    progress : bool
        Log each step.

    Returns
    -------
    CrossValidation

    Raises
    ------
    GeodiffError
        Fewer than 2 or more than n folds, too few training points per fold for a
        method, an unknown method, NaNs, a draw count that does not give exact 90%
        intervals.
    """
    noise = NoiseModel.parse(noise)
    if not isinstance(obs, Observations) or obs.operator.kind != "points":
        raise GeodiffError("cross-validation needs point observations off any grid")
    fold = assign_folds(obs.locations, folds, seed, scheme=scheme, block_size=block_size)
    options = method_options(methods, CV_DEFAULTS)
    methods = _check(model, obs, fold, options, draws)
    n, truth = len(obs), obs.values.copy()
    cv = CrossValidation(obs.locations.copy(), truth, obs.noise_sd.copy(), fold, methods,
                         include_noise=quantity == "measurement")  # fmt: skip
    keys = ("mean", "sd", "lower", "upper", "crps")
    stats_of = {m: {k: np.full(n, np.nan) for k in keys} for m in methods}
    draws_of = {m: None if m == "kriging-ok" else np.full((draws, n), np.nan) for m in methods}
    seconds = {m: np.zeros(folds) for m in methods}
    info = {m: [] for m in methods}
    log = logger.info if progress else logger.debug
    for f in range(folds):
        test = np.flatnonzero(fold == f)
        train = obs.subset(np.flatnonzero(fold != f))
        task = build_task(
            train, obs.locations[test], model=model, noise=noise, transform=transform,
            domain=domain, margin=margin, standardise=True,
            target_noise_sd=None if noise.inferred else obs.noise_sd[test],
        )  # fmt: skip
        log(f"fold {f + 1}/{folds}: {len(train)} training points, {len(test)} held out")
        for m in methods:
            pred = run_predictor(m, task, draws=draws, seed=seed, key=(f,), progress=progress,
                                 quantity=quantity, **options[m])  # fmt: skip
            seconds[m][f] = pred.seconds
            summary = prediction_summaries(truth[test], pred)
            if pred.draws is not None:
                draws_of[m][:, test] = pred.draws
            for key, value in stats_of[m].items():
                value[test] = summary[key]
            dmap = {} if task.domain_map is None else {"domain_map": task.domain_map.to_dict()}
            info[m].append({**dmap, **_plain_info({**pred.info, **pred.method_record})})
            log(
                f"  {m}: CRPS {summary['crps'].mean():.4f}, "
                f"coverage {summary['covered'].mean():.2f}, {seconds[m][f]:.1f} s"
            )
    for key in keys:
        setattr(cv, key, {m: stats_of[m][key] for m in methods})
    cv.draws, cv.seconds, cv.info = draws_of, seconds, info
    return cv


def prediction_summaries(truth, pred) -> dict:
    """:func:`point_summaries` of a :class:`~geodiff.prediction.Prediction` of any kind.

    Draws and plain Gaussians as in :func:`point_summaries`; a back-transformed
    Gaussian (kriging with a value transform) by its own CRPS and central interval.
    """
    if pred.draws is not None:
        return point_summaries(truth, pred.draws)
    if getattr(pred, "transform", None) is None:
        return point_summaries(truth, mean=pred.mean, sd=pred.sd)
    truth = np.asarray(truth, dtype=float).reshape(-1)
    lower, upper = pred.interval(0.9)
    out = {"mean": pred.mean, "sd": pred.sd, "lower": lower, "upper": upper}
    out["crps"] = prediction_crps(pred, truth)
    out["covered"] = interval_coverage(truth, lower, upper)
    return out
