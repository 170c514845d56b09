"""The one registry of prediction methods, each run the same way.

Every method — oracle kriging, ordinary kriging, the MCMC reference and each diffusion
posterior sampler — is a function ``(task, *, draws, seed, key, progress, **options) ->
Prediction`` registered under one name in :data:`PREDICTORS`; :func:`run_predictor` is the
only way the demo, validation, cross-validation and the benchmarks call them. It resolves
the name, checks the options, times the call and logs one line, so that every caller
gets the same names, the same timing (:attr:`Prediction.seconds`) and the same seeds.

Names
-----
``"kriging-oracle"``
    Simple kriging with the task's true parameters ``theta``: the exact posterior when
    the data come from the prior (the best any method can do on average).
``"kriging-ok"``
    Ordinary kriging: one stationary covariance of the prior's family fitted by REML
    (with a nugget) to the observations, in physical units.
``"mcmc"``
    The fully Bayesian reference: NUTS over the prior's parameters, then one exact
    conditional field per kept parameter draw.
``"mcmc-grid"``
    The same with the field living on the model's grid, observed by bilinear reads.
``"diffusion"``
    :func:`~geodiff.posterior.diffusion_posterior` with the trained model; option
    ``method`` picks the sampler (default :data:`~geodiff.posterior.predict.DEFAULT_METHOD`).
    Each sampler's own name (``"mmps"``, ``"daps"``, ...) is an alias of ``"diffusion"``
    with that ``method``.

Seeds
-----
A predictor's randomness comes from ``derive_seed(seed, stream, *key)`` with its own
stream (:data:`STREAMS`) and the caller's ``key`` (a dataset's or a fold's index), so the
methods on one dataset never share a stream and a dataset's draws do not depend on which
other datasets or methods were run.

Noise and what is predicted
---------------------------
A task's ``noise`` (:class:`~geodiff.noise.NoiseModel`) says how the measurement noise is
known: given with the observations, estimated by REML (a plug-in nugget), or inferred
jointly with the field (``"bayes"``: MCMC samples it in NUTS, the diffusion posterior by
Gibbs sweeps; the kriging methods are plug-in methods and use REML). Methods predict the
smooth field; :func:`run_predictor` with ``quantity="measurement"`` (the default for
scoring against held-out data) turns that into a new measurement by adding the
noise: ``τ_target² + τ̂²``, with ``τ_target`` the task's ``target_noise_sd`` and ``τ̂``
the inferred nugget (per draw when it was sampled).

Transformed values
------------------
A task's ``transform`` (:mod:`geodiff.anamorphosis`) is the map from the data's values
to the values every method models; predictions, noise included, are made in those
values and back-transformed at the end.

Coordinates
-----------
A :class:`PredictionTask` holds observations and targets in one coordinate system and
unit: the model's, or — with a ``domain_map`` — physical ones. Methods that work in the
model's units (oracle kriging, MCMC, the diffusion posterior) map the observations in
and their predictions back; ordinary kriging fits in physical units directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.noise import NoiseModel, NoisePrior, plug_in_noise
from geodiff.observe import Observations
from geodiff.prediction import Prediction
from geodiff.rng import derive_seed

__all__ = [
    "PREDICTORS",
    "QUANTITIES",
    "STREAMS",
    "PredictionTask",
    "Predictor",
    "display_name",
    "measurement_noise_sd",
    "method_options",
    "resolve_predictor",
    "run_diffusion",
    "run_predictor",
]

logger = logging.getLogger(__name__)

#: seed streams of the predictors (see the module's docstring); fixed for reproducibility
STREAMS = {"mcmc": 4, "mcmc-draws": 5, "diffusion": 6, "measurement": 7, "kriging-oracle": 8}
#: what a prediction is of (see the module's docstring)
QUANTITIES = ("field", "measurement")


def measurement_noise_sd(pred: Prediction, target_noise_sd=0.0):
    """The sd of a new measurement's noise given a method's prediction.

    ``sqrt(target_noise_sd² + τ̂²)``, with ``τ̂`` the inferred nugget: per draw when the
    method sampled it (:attr:`Prediction.noise_sd_draws`), else the plug-in
    :attr:`Prediction.noise_sd`, else 0. Shape: a scalar, (1, m) per target, or (S, 1) /
    (S, m) per draw.
    """
    target = np.asarray(target_noise_sd, dtype=float)
    target = target if target.ndim == 0 else target.reshape(1, -1)
    if pred.noise_sd_draws is not None:
        nugget = np.asarray(pred.noise_sd_draws, dtype=float).reshape(-1, 1)
    else:
        nugget = np.asarray(pred.noise_sd or 0.0, dtype=float)
    return np.sqrt(target**2 + nugget**2)


@dataclass(frozen=True)
class PredictionTask:
    """One prediction problem: what is observed, where to predict and what is known.

    Attributes
    ----------
    prior : GRFPrior
        The prior over fields (its domain and units are the model's).
    obs : Observations
        The data, in the task's coordinates and units.
    targets : Grid or numpy.ndarray of shape (m, 2)
        Where to predict, in the task's coordinates.
    model : DiffusionModel, optional
        The trained prior (needed by ``"diffusion"`` and ``"mcmc-grid"``).
    theta : dict, optional
        The true parameters (needed by ``"kriging-oracle"``).
    domain_map : DomainMap, optional
        Physical coordinates and units to the model's; ``None``: the task is in the
        model's units already.
    noise : NoiseModel or {"given", "reml", "bayes"}
        How the measurement noise is known (see the module's docstring).
    target_noise_sd : float or numpy.ndarray of shape (m,)
        The known noise of a new measurement at the targets (added to an inferred one).
    transform : ValueTransform, optional
        The data's values are ``transform.inverse`` of the task's (see the module's
        docstring); None: the identity.
    grid_field : bool
        The field lives on the model's grid (synthetic data simulated there: oracle
        kriging and MCMC condition on the grid's bilinear reads); False for real data,
        whose field is continuous.
    """

    prior: object
    obs: Observations
    targets: Grid | np.ndarray
    model: object | None = None
    theta: dict | None = None
    domain_map: object | None = None
    noise: NoiseModel = NoiseModel.GIVEN
    target_noise_sd: object = 0.0
    transform: object | None = None
    grid_field: bool = True

    def __post_init__(self):
        object.__setattr__(self, "noise", NoiseModel.parse(self.noise))

    @cached_property
    def reml_noise(self):
        """The REML nugget of the observations in the task's units (:func:`plug_in_noise`)."""
        return plug_in_noise(self.obs, self.prior)

    def plug_in_obs(self) -> Observations:
        """The observations with the REML nugget added to their noise (noise not given)."""
        if not self.noise.inferred:
            return self.obs
        total = np.sqrt(self.obs.noise_variance + self.reml_noise.sd**2)
        return Observations(self.obs.operator, self.obs.values, total)

    @property
    def on_model_grid(self) -> bool:
        """True when the targets are the model's own grid (no domain map)."""
        return (
            self.grid_field
            and self.domain_map is None
            and isinstance(self.targets, Grid)
            and (self.model is None or self.targets == self.model.grid)
        )

    def model_obs(self, obs: Observations | None = None) -> Observations:
        """``obs`` (default: the task's) in the model's coordinates and units."""
        obs = self.obs if obs is None else obs
        return obs if self.domain_map is None else self.domain_map.to_model_observations(obs)

    def value_scale(self) -> float:
        """Task value units per model value unit."""
        return 1.0 if self.domain_map is None else self.domain_map.value_scale

    def model_targets(self):
        """The targets in the model's coordinates (a grid stays a grid without a map)."""
        if self.domain_map is None:
            return self.targets
        points = self.targets.points() if isinstance(self.targets, Grid) else self.targets
        return self.domain_map.to_model_points(points)

    def to_physical(self, pred: Prediction) -> Prediction:
        """A prediction made in the model's units, in the task's units."""
        dmap = self.domain_map
        if dmap is None:
            return pred
        draws = None if pred.draws is None else dmap.to_physical_values(pred.draws)
        grid = self.targets if isinstance(self.targets, Grid) else None
        points = grid.points() if grid is not None else np.asarray(self.targets, dtype=float)
        return replace(
            pred,
            targets=points,
            mean=dmap.to_physical_values(pred.mean),
            sd=dmap.to_physical_sd(pred.sd),
            draws=draws,
            grid=grid,
        )


@dataclass(frozen=True)
class Predictor:
    """A registered prediction method.

    Attributes
    ----------
    name : str
        Its one name (a key of :data:`PREDICTORS`).
    label : str
        How reports and plots call it.
    run : callable
        ``(task, *, draws, seed, key, progress, **options) -> Prediction``.
    options : tuple of str
        The options it accepts.
    needs : tuple of str
        Task attributes it needs (``"theta"``, ``"model"``).
    ensemble : bool
        True when it returns draws; False for a Gaussian mean and sd.
    """

    name: str
    label: str
    run: Callable
    options: tuple = ()
    needs: tuple = ()
    ensemble: bool = True
    defaults: dict = field(default_factory=dict)


def _oracle_kriging(task, *, draws, seed, key, progress):
    from geodiff.baselines.kriging import simple_kriging

    obs, targets = task.model_obs(task.plug_in_obs()), task.model_targets()
    if not getattr(task.prior, "is_gaussian", True):  # known θ and transform: trans-Gaussian
        from geodiff.baselines.transformed import trans_gaussian_kriging

        stream = derive_seed(seed, STREAMS["kriging-oracle"], *key)
        pred = trans_gaussian_kriging(task.prior, task.theta, obs, targets, draws, stream)
        pred.noise_sd = task.reml_noise.sd if task.noise.inferred else None
        return task.to_physical(pred)
    if task.on_model_grid:  # the synthetic truth lives on the grid: condition on its reads
        obs = obs.on_grid(task.targets)
    pred = simple_kriging(task.prior, task.theta, obs, targets, engine="torch")
    if task.noise.inferred:
        pred.noise_sd = task.reml_noise.sd
    return task.to_physical(pred)


def _spde_mcmc(task, obs, targets, noise_prior, *, draws, seed, key, progress, warmup, samples,
               chains):  # fmt: skip
    """The SPDE prior's reference posterior (:mod:`geodiff.baselines.spde_mcmc`)."""
    from geodiff.baselines.spde_mcmc import spde_mcmc
    from geodiff.grid import Grid

    if noise_prior is not None:
        raise GeodiffError("the SPDE reference posterior needs the noise: give --noise-sd "
                           "(a number) or --noise reml")  # fmt: skip
    if isinstance(targets, Grid):
        grid = targets
    else:
        grid = task.prior.point_lattice(np.concatenate([obs.operator.support, targets]))
    chain_seed = derive_seed(seed, STREAMS["mcmc"], *key)
    result = spde_mcmc(task.prior, obs, grid, chains=chains, warmup=warmup, samples=samples,
                       seed=chain_seed, progress=progress)  # fmt: skip
    pred = result.predict(targets, draws=draws,
                          seed=derive_seed(seed, STREAMS["mcmc-draws"], *key))  # fmt: skip
    pred.info.update(summary=result.summary(), summary_text=result.summary_text())
    if task.noise is NoiseModel.REML:
        pred.noise_sd = task.reml_noise.sd
    return task.to_physical(pred)


def _ordinary_kriging(task, *, draws, seed, key, progress, anisotropic=True, fit="reml"):
    from geodiff.baselines.kriging import ordinary_kriging
    from geodiff.fields.fit import plug_in_settings

    # a random shape parameter is held at its prior median for the plug-in fit
    settings = plug_in_settings(task.prior)
    pred = ordinary_kriging(task.obs, task.targets, method=fit, anisotropic=anisotropic, **settings)
    pred.noise_sd = float(np.sqrt(pred.info["fit"]["nugget"]))  # its nugget: REML
    return pred


def _mcmc(
    task, *, draws, seed, key, progress, warmup=200, samples=200, chains=2, on_grid=None, jit=True
):
    from geodiff.baselines.mcmc import mcmc_posterior

    obs = task.model_obs(task.plug_in_obs() if task.noise is NoiseModel.REML else task.obs)
    targets = task.model_targets()
    noise_prior = None
    if task.noise.sampled:
        noise_prior = NoisePrior.weak(task.obs.values).scaled(1 / task.value_scale())
    if on_grid is None:
        on_grid = task.on_model_grid
    if on_grid:
        grid = task.targets if task.on_model_grid else task.model.grid
        obs = obs.on_grid(grid)
    if task.prior.kind == "spde":
        options = {"warmup": warmup, "samples": samples, "chains": chains}
        return _spde_mcmc(task, obs, targets, noise_prior, draws=draws, seed=seed, key=key,
                          progress=progress, **options)  # fmt: skip
    result = mcmc_posterior(
        task.prior,
        obs,
        num_samples=samples,
        warmup_steps=warmup,
        num_chains=chains,
        seed=derive_seed(seed, STREAMS["mcmc"], *key),
        progress=progress,
        noise_prior=noise_prior,
        jit=jit,
    )
    pred = result.predict(targets, draws=draws, seed=derive_seed(seed, STREAMS["mcmc-draws"], *key))
    if len(pred.draws) < draws:
        raise GeodiffError(
            f"MCMC kept {len(pred.draws)} parameter draws, fewer than the {draws} asked for; "
            "raise its samples"
        )
    pred.info.update(summary=result.summary(), summary_text=result.summary_text())
    if task.noise is NoiseModel.REML:
        pred.noise_sd = task.reml_noise.sd
    elif task.noise.sampled:
        pred.noise_sd_draws = pred.noise_sd_draws * task.value_scale()
    return task.to_physical(pred)


def _diffusion(
    task, *, draws, seed, key, progress, method=None, batch_size=64, on_posterior=None, **options
):
    from geodiff.posterior.predict import DEFAULT_METHOD, diffusion_posterior

    method = method or DEFAULT_METHOD
    post = diffusion_posterior(
        task.model,
        task.obs,
        method=method,
        draws=draws,
        seed=derive_seed(seed, STREAMS["diffusion"], *key),
        domain_map=task.domain_map,
        batch_size=batch_size,
        progress=progress,
        noise=task.noise,
        **options,
    )
    on_grid = isinstance(task.targets, Grid) and task.targets == post.grid
    if task.on_model_grid or on_grid:
        pred = post.at("grid")
    elif isinstance(task.targets, Grid):
        pred = replace(post.at(task.targets.points()), grid=task.targets)
    else:
        pred = post.at(task.targets)
    pred.info.update(post.info, method=method)
    if on_posterior is not None:  # the caller keeps the draws of the whole field
        on_posterior(post)
    return pred


#: every prediction method, by its one name
PREDICTORS = {
    p.name: p
    for p in (
        Predictor("kriging-oracle", "oracle kriging", _oracle_kriging, (), ("theta",), False),
        Predictor(
            "kriging-ok", "ordinary kriging", _ordinary_kriging, ("anisotropic", "fit"), (), False
        ),
        Predictor("mcmc", "MCMC", _mcmc, ("warmup", "samples", "chains", "on_grid", "jit")),
        Predictor(
            "mcmc-grid",
            "MCMC on the grid",
            _mcmc,
            ("warmup", "samples", "chains", "jit"),
            ("model",),
            defaults={"on_grid": True},
        ),
        Predictor("diffusion", "diffusion", _diffusion, ("*",), ("model",)),
    )
}


def resolve_predictor(name: str) -> tuple[Predictor, dict]:
    """The predictor called ``name`` and the options its name implies.

    A diffusion sampler's name (``"mmps"``, ``"daps"``, ...) is ``"diffusion"`` with
    that ``method``.

    Raises
    ------
    GeodiffError
        An unknown name; the message lists the known ones.
    """
    from geodiff.posterior.methods import POSTERIOR_SAMPLERS

    if name in PREDICTORS:
        return PREDICTORS[name], dict(PREDICTORS[name].defaults)
    if name in POSTERIOR_SAMPLERS:
        return PREDICTORS["diffusion"], {"method": name}
    known = sorted(PREDICTORS) + sorted(POSTERIOR_SAMPLERS)
    raise GeodiffError(f"unknown method {name!r}; choose from {', '.join(known)}")


def display_name(name: str, options: dict | None = None) -> str:
    """How reports call the method ``name`` (with the sampler for diffusion)."""
    predictor, implied = resolve_predictor(name)
    if predictor.name != "diffusion":
        return predictor.label
    from geodiff.posterior.predict import DEFAULT_METHOD

    method = {**implied, **(options or {})}.get("method") or DEFAULT_METHOD
    return f"diffusion ({method})"


def run_predictor(
    name: str,
    task: PredictionTask,
    *,
    draws: int = 19,
    seed: int = 0,
    key: tuple = (),
    progress: bool = False,
    quantity: str = "field",
    **options,
) -> Prediction:
    """Run the method ``name`` on ``task``; time it and log one line.

    Parameters
    ----------
    name : str
        A key of :data:`PREDICTORS` or a diffusion sampler's name.
    task : PredictionTask
    draws : int
        Draws of the ensemble methods (ignored by kriging).
    seed : int
        The run's seed; the method's streams are derived from it and ``key``.
    key : tuple of int
        Which dataset or fold of the run this is.
    progress : bool
        Show the method's own progress bars.
    quantity : {"field", "measurement"}
        Predict the smooth field, or a new measurement of it (see the module's
        docstring).
    **options
        The method's options (see :attr:`Predictor.options`).

    Returns
    -------
    Prediction
        At ``task.targets`` in the task's units (back-transformed when the task has a
        ``transform``); ``seconds`` is the wall time, ``info["predictor"]`` the name,
        ``noise_sd`` or ``noise_sd_draws`` the inferred nugget.

    Raises
    ------
    GeodiffError
        An unknown name or option, or a task without what the method needs.
    """
    predictor, implied = resolve_predictor(name)
    options = {**implied, **options}
    if "*" not in predictor.options:
        unknown = sorted(set(options) - set(predictor.options) - set(predictor.defaults))
        if unknown:
            raise GeodiffError(
                f"{name} takes no option(s) {', '.join(unknown)}; "
                f"its options: {', '.join(predictor.options) or 'none'}"
            )
    missing = [need for need in predictor.needs if getattr(task, need) is None]
    if missing:
        raise GeodiffError(f"{name} needs the task's {' and '.join(missing)}")
    if quantity not in QUANTITIES:
        raise GeodiffError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    started = time.perf_counter()
    pred = predictor.run(task, draws=draws, seed=seed, key=tuple(key), progress=progress, **options)
    if quantity == "measurement":
        pred = pred.measurement(
            measurement_noise_sd(pred, task.target_noise_sd),
            seed=derive_seed(seed, STREAMS["measurement"], *key),
        )
    if task.transform is not None:
        from geodiff.anamorphosis import back_transform

        pred = back_transform(pred, task.transform)
    seconds = time.perf_counter() - started
    pred.seconds = seconds
    pred.info["predictor"] = predictor.name
    pred.method = display_name(name, options)
    logger.info("%s: %.1f s", pred.method, seconds)
    return pred


def run_diffusion(task: PredictionTask, **arguments) -> tuple:
    """:func:`run_predictor` of ``"diffusion"`` that also returns the whole field's draws.

    Returns
    -------
    posterior : PosteriorDraws
        The draws on the model's grid, in the task's units before any back-transform
        (what ``geodiff predict --draws-out`` writes).
    prediction : Prediction
        As :func:`run_predictor` returns it.
    """
    kept = []
    pred = run_predictor("diffusion", task, on_posterior=kept.append, **arguments)
    return kept[0], pred


def method_options(methods, defaults: dict | None = None, *, fixed: bool = False) -> dict:
    """``{method: options}`` for a harness (cross-validation, the demo, the posterior checks).

    Parameters
    ----------
    methods : str, sequence of str or dict of str to dict
        Method names (each with its ``defaults``), or a mapping from a name to options that
        update its defaults (:func:`run_predictor`'s ``**options``).
    defaults : dict of str to dict, optional
        Each method's options when not told otherwise.
    fixed : bool
        The methods are those of ``defaults``, all of them: ``methods`` (a mapping) only
        changes their options, and names another method at its peril.

    Returns
    -------
    dict of str to dict
        In the order given; ``None`` values dropped (the predictor's own default).

    Raises
    ------
    GeodiffError
        An empty selection, a name given twice, options that are not a mapping, or with
        ``fixed`` a method not among ``defaults``.
    """
    if fixed:
        other = sorted(set(methods or {}) - set(defaults))
        if other:
            raise GeodiffError(f"runs {', '.join(defaults)}; got options for {', '.join(other)}")
        methods = {name: (methods or {}).get(name, {}) for name in defaults}
    if isinstance(methods, str):
        methods = (methods,)
    pairs = list(methods.items()) if isinstance(methods, dict) else [(m, {}) for m in methods]
    names = [name for name, _ in pairs]
    if not names:
        raise GeodiffError("no method given")
    if len(set(names)) != len(names):
        raise GeodiffError(f"method(s) repeated in {tuple(names)}")
    out = {}
    for name, options in pairs:
        if not isinstance(options, dict):
            raise GeodiffError(f"the options of {name} must be a mapping, got {options!r}")
        merged = {**(defaults or {}).get(name, {}), **options}
        out[name] = {k: v for k, v in merged.items() if v is not None}
    return out
