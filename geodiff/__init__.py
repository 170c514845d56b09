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

Example
-------
>>> import geodiff
>>> prior = geodiff.load_prior("nonstationary-anisotropy")
>>> sim = geodiff.simulate(prior, geodiff.Grid.square(32), n=4, seed=0)
"""

from geodiff.errors import ConfigError, GeodiffError, StoreError
from geodiff.fields.maps import MapPrior
from geodiff.fields.parameters import Fixed, HalfNormal, LogNormal, LogUniform, Normal, Uniform
from geodiff.fields.prior import GRFPrior, NonStationaryPrior, StationaryPrior
from geodiff.fields.simulate import Simulation, simulate
from geodiff.grid import Grid

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
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
    "Simulation",
    "StationaryPrior",
    "StoreError",
    "Uniform",
    "__version__",
    "simulate",
]
