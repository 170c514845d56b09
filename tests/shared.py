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


def gaussian_law_pvalue(draws, mean, cov, rel_tol=1e-9):
    """A p-value for "the rows of ``draws`` are independent draws of ``N(mean, cov)``".

    The draws are whitened along the eigenvectors of ``cov`` with eigenvalues above
    ``rel_tol`` of the largest, ``w = Λ^{-1/2} Uᵀ (x - mean)``, which are then i.i.d.
    ``N(0, I_r)``. Three exact tests: the mean (``n |w̄|² ~ χ²_r``), the total scale
    (``Σ |w_i|² ~ χ²_{n r}``, two-sided) and each direction's variance
    (``Σ_i w_ik² ~ χ²_n``, two-sided, Bonferroni over ``r``), combined by Bonferroni, so
    that under the null ``P(p < α) <= α``. Directions of (near) zero variance must hold
    the draws at the mean: a draw off by more than ``10 √(rel_tol λ_max)`` gives ``p = 0``.

    Parameters
    ----------
    draws : numpy.ndarray, shape (n, d)
    mean : array, shape (d,)
    cov : array, shape (d, d)

    Returns
    -------
    float
    """
    from scipy import stats

    draws = np.asarray(draws, dtype=float)
    mean, cov = np.asarray(mean, dtype=float), np.asarray(cov, dtype=float)
    n = len(draws)
    eigval, eigvec = np.linalg.eigh(0.5 * (cov + cov.T))
    keep = eigval > rel_tol * eigval.max()
    centred = draws - mean
    if (~keep).any():
        off = np.abs(centred @ eigvec[:, ~keep]).max()
        if off > 10 * math.sqrt(rel_tol * eigval.max()):
            return 0.0
    w = centred @ eigvec[:, keep] / np.sqrt(eigval[keep])  # (n, r)
    r = w.shape[1]
    p_mean = stats.chi2.sf(n * np.sum(w.mean(0) ** 2), r)
    total = stats.chi2(n * r)
    s = np.sum(w**2)
    p_scale = 2 * min(total.cdf(s), total.sf(s))
    per_dir = np.sum(w**2, axis=0)
    p_dir = r * np.min(2 * np.minimum(stats.chi2.cdf(per_dir, n), stats.chi2.sf(per_dir, n)))
    return float(min(1.0, 3 * min(p_mean, p_scale, p_dir)))
