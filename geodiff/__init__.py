"""geodiff: Bayesian spatial prediction with learned diffusion priors.

Public API
----------
Grid
    Regular grid over a rectangular domain; points <-> grid interpolation.
StationaryPrior, NonStationaryPrior, MapPrior
    Priors over Gaussian random fields (GSTools conventions).
SPDEPrior, SpectralMapPrior, spde_condition, SPDEMixtureOracle
    The sparse-precision (SPDE) prior for any grid size, its translation-invariant maps,
    its exact sparse kriging and its exact sparse denoiser (docs/spde.md).
Fixed, Uniform, LogUniform, Normal, LogNormal, HalfNormal
    Priors over scalar parameters.
load_prior, prior_from_config, builtin_priors
    Read priors from TOML files or the shipped configurations.
simulate, Simulation
    Exact simulation of fields with their parameters.
write_store, open_store, FieldStore
    Resumable chunked zarr stores of simulated fields with their parameters.
StoreFieldDataset, SimulatedFieldDataset
    torch datasets: fields read from a store, or simulated on the fly.
Observations, point_operator, block_mean_operator
    Observed values (points or block means, with noise) and their linear operators.
Prediction
    A predictive distribution at targets: mean, sd, quantiles, exceedances, files.
simple_kriging, conditional_simulation
    Exact Gaussian conditioning given the parameters (the oracle), and joint draws.
fit_covariance, ordinary_kriging
    The practitioner's plug-in: REML or variogram fit, then GSTools ordinary kriging.
mcmc_posterior
    The fully Bayesian reference: Pyro NUTS over the prior's parameters.
load_model, DiffusionModel, train, TrainingConfig, NoiseSchedule, GaussianMixtureOracle
    The learned prior (see :mod:`geodiff.diffusion` for samplers and the rest).
diffusion_posterior, predict, PosteriorDraws, DomainMap
    Posterior draws and predictions with a trained prior, from data in physical units
    (see :mod:`geodiff.posterior` for the samplers: MCGdiff, DAPS, ΠGDM, DPS).
run_predictor, PredictionTask, PREDICTORS
    Every prediction method (oracle and ordinary kriging, MCMC, each diffusion sampler)
    under one name, called one way (see :mod:`geodiff.evaluate.predictors`).
run_validation
    ``geodiff validate``: prior and posterior checks against exact references, one report
    (see :mod:`geodiff.evaluate.validate`).
build_task, read_observations
    A user's data (physical coordinates, unknown noise, skewed values) as one prediction
    task for every method (:mod:`geodiff.evaluate.tasks`).
reml_noise, NoisePrior, fit_transform, back_transform, prior_from_data
    Inferred noise (:mod:`geodiff.noise`), value transforms (:mod:`geodiff.anamorphosis`)
    and a prior fitted to the data (:mod:`geodiff.fields.from_data`).
cross_validate, CrossValidation
    K-fold (random or spatially blocked) cross-validation of the diffusion posterior,
    kriging and MCMC on point data in physical units (:mod:`geodiff.evaluate.crossval`;
    the Meuse data: :mod:`geodiff.realdata`).

Example
-------
>>> import geodiff
>>> prior = geodiff.load_prior("nonstationary-anisotropy")
>>> sim = geodiff.simulate(prior, geodiff.Grid.square(32), n=4, seed=0)
>>> obs = geodiff.Observations.at_points([[0.2, 0.3], [0.7, 0.6]], [0.5, -1.0], noise_sd=0.1)
>>> theta = {k: v[:1] for k, v in sim.theta.items()}  # the first field's parameters
>>> pred = geodiff.simple_kriging(prior, theta, obs, geodiff.Grid.square(32))
"""

from geodiff._version import __version__
from geodiff.anamorphosis import back_transform, fit_transform
from geodiff.baselines.kriging import conditional_simulation, ordinary_kriging, simple_kriging
from geodiff.baselines.mcmc import mcmc_posterior
from geodiff.baselines.spde_kriging import spde_condition
from geodiff.diffusion import (
    DiffusionModel,
    GaussianMixtureOracle,
    NoiseSchedule,
    TrainingConfig,
    load_model,
    train,
)
from geodiff.diffusion.spde_oracle import SPDEMixtureOracle
from geodiff.errors import CheckpointError, ConfigError, GeodiffError, StoreError
from geodiff.evaluate.crossval import CrossValidation, cross_validate
from geodiff.evaluate.predictors import PREDICTORS, PredictionTask, run_predictor
from geodiff.evaluate.tasks import build_task, read_observations
from geodiff.evaluate.validate import run_validation
from geodiff.fields.config import builtin_priors, load_prior, prior_from_config
from geodiff.fields.datasets import SimulatedFieldDataset, StoreFieldDataset
from geodiff.fields.fit import fit_covariance, reml_noise
from geodiff.fields.from_data import prior_from_data
from geodiff.fields.maps import MapPrior, SpectralMapPrior
from geodiff.fields.parameters import Fixed, HalfNormal, LogNormal, LogUniform, Normal, Uniform
from geodiff.fields.prior import GRFPrior, NonStationaryPrior, StationaryPrior
from geodiff.fields.simulate import Simulation, simulate
from geodiff.fields.spde import SPDEPrior
from geodiff.fields.store import FieldStore, open_store, write_store
from geodiff.grid import Grid
from geodiff.noise import NoisePrior
from geodiff.observe import Observations, block_mean_operator, point_operator
from geodiff.posterior import PosteriorDraws, diffusion_posterior, predict
from geodiff.prediction import Prediction
from geodiff.transform import DomainMap

__all__ = [
    "PREDICTORS",
    "CheckpointError",
    "ConfigError",
    "CrossValidation",
    "DiffusionModel",
    "DomainMap",
    "FieldStore",
    "Fixed",
    "GRFPrior",
    "GaussianMixtureOracle",
    "GeodiffError",
    "Grid",
    "HalfNormal",
    "LogNormal",
    "LogUniform",
    "MapPrior",
    "NoisePrior",
    "NoiseSchedule",
    "NonStationaryPrior",
    "Normal",
    "Observations",
    "PosteriorDraws",
    "Prediction",
    "PredictionTask",
    "SPDEMixtureOracle",
    "SPDEPrior",
    "SimulatedFieldDataset",
    "Simulation",
    "SpectralMapPrior",
    "StationaryPrior",
    "StoreError",
    "StoreFieldDataset",
    "TrainingConfig",
    "Uniform",
    "__version__",
    "back_transform",
    "block_mean_operator",
    "build_task",
    "builtin_priors",
    "conditional_simulation",
    "cross_validate",
    "diffusion_posterior",
    "fit_covariance",
    "fit_transform",
    "load_model",
    "load_prior",
    "mcmc_posterior",
    "open_store",
    "ordinary_kriging",
    "point_operator",
    "predict",
    "prior_from_config",
    "prior_from_data",
    "read_observations",
    "reml_noise",
    "run_predictor",
    "run_validation",
    "simple_kriging",
    "simulate",
    "spde_condition",
    "train",
    "write_store",
]
