"""Priors, configs and statistics used by several test modules."""

import math

import numpy as np

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


def moment_z_scores(draws, mean, cov):
    """z-scores of the sample mean, variances and some covariances of draws against exact ones.

    Parameters
    ----------
    draws : numpy.ndarray, shape (n, m)
        Independent draws.
    mean : numpy.ndarray, shape (m,)
    cov : numpy.ndarray, shape (m, m)

    Each statistic is divided by its Monte Carlo standard error under the exact Gaussian
    (variance ``2 var^2 / n`` for a variance, ``(c^2 + var_i var_j) / n`` for a
    covariance), so it is approximately standard normal when the draws are right.
    """
    n = len(draws)
    var = np.diag(cov)
    keep = var > 1e-6 * var.max()  # noiselessly observed nodes have no spread
    z_mean = (draws.mean(0) - mean)[keep] / np.sqrt(var[keep] / n)
    centred = draws - mean  # the mean is known exactly
    z_var = (np.mean(centred**2, 0) - var)[keep] / (var[keep] * math.sqrt(2.0 / n))
    idx = np.flatnonzero(keep)[:: max(1, keep.sum() // 12)]
    pairs = [(i, j) for i in idx for j in idx if i < j]
    z_cov = [
        (np.mean(centred[:, i] * centred[:, j]) - cov[i, j])
        / math.sqrt((cov[i, j] ** 2 + var[i] * var[j]) / n)
        for i, j in pairs
    ]
    return np.concatenate([z_mean, z_var, z_cov])
