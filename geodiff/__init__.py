"""geodiff: Bayesian spatial prediction with learned diffusion priors.

Public API
----------
Grid
    Regular grid over a rectangular domain; points <-> grid interpolation.
StationaryPrior, NonStationaryPrior, MapPrior
    Priors over Gaussian random fields (GSTools conventions).
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

Example
-------
>>> import geodiff
>>> prior = geodiff.load_prior("nonstationary-anisotropy")
>>> sim = geodiff.simulate(prior, geodiff.Grid.square(32), n=4, seed=0)
"""

from geodiff.errors import ConfigError, GeodiffError, StoreError
from geodiff.fields.config import builtin_priors, load_prior, prior_from_config
from geodiff.fields.datasets import SimulatedFieldDataset, StoreFieldDataset
from geodiff.fields.maps import MapPrior
from geodiff.fields.parameters import Fixed, HalfNormal, LogNormal, LogUniform, Normal, Uniform
from geodiff.fields.prior import GRFPrior, NonStationaryPrior, StationaryPrior
from geodiff.fields.simulate import Simulation, simulate
from geodiff.fields.store import FieldStore, open_store, write_store
from geodiff.grid import Grid

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "FieldStore",
    "Fixed",
    "GRFPrior",
    "GeodiffError",
    "Grid",
    "HalfNormal",
    "LogNormal",
    "LogUniform",
    "MapPrior",
    "NonStationaryPrior",
    "Normal",
    "SimulatedFieldDataset",
    "Simulation",
    "StationaryPrior",
    "StoreError",
    "StoreFieldDataset",
    "Uniform",
    "__version__",
    "builtin_priors",
    "load_prior",
    "open_store",
    "prior_from_config",
    "simulate",
    "write_store",
]
