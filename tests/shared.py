"""Priors and configs used by several test modules."""

import math

from geodiff import LogUniform, StationaryPrior, Uniform

#: the smallest hand-written prior config; tests edit it to make bad ones
MINIMAL_TOML = """
type = "stationary"
family = "matern"
[parameters]
nu = 1.5
length_scale = 0.2
"""


def random_nu_prior():
    """A stationary Matérn prior with random smoothness, variance and a nugget."""
    return StationaryPrior(
        "matern",
        nu=Uniform(0.7, 2.5),
        variance=LogUniform(0.5, 2.0),
        length_scale=LogUniform(0.08, 0.3),
        anis_ratio=Uniform(0.4, 1.0),
        angle=Uniform(0.0, math.pi),
        nugget=0.05,
    )
