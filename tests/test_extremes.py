"""Tail statistics against exact laws, each with a power check.

The fields here have a law known exactly: rows of a Gaussian AR(1) along x,
``X[:, j + 1] = r X[:, j] + sqrt(1 - r^2) e``, independent rows (so lag k along x has
correlation ``r^k`` and lag k along y has 0). Exact values: ``p(q) = 1 - Phi(q)``,
``p_max(q) = 1 - P(max of the field <= q)`` (by the rows' independence and an exact
Markov-chain recursion along each row), ``chi(u, k) = P(Z1 > q, Z2 > q) / (1 - u)`` for
standard normals of correlation ``r^k`` (scipy's bivariate normal CDF). Each statistic's
bootstrap standard error sets the tolerance (4 se), and the same statistic rejects a
wrong law (sd x 1.1, or the correlation r + 0.1).
"""

import math

import numpy as np
import pytest
from scipy import stats

from geodiff.errors import GeodiffError
from geodiff.metrics.extremes import (
    compare_exceedances,
    compare_extremal_dependence,
    extremal_dependence,
)

R = 0.8
SHAPE = (16, 16)


def _ar_fields(n, r=R, sd=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty((n, *SHAPE))
    x[:, :, 0] = rng.standard_normal((n, SHAPE[0]))
    for j in range(1, SHAPE[1]):
        x[:, :, j] = r * x[:, :, j - 1] + math.sqrt(1 - r * r) * rng.standard_normal((n, SHAPE[0]))
    return sd * x


def _exact_chi(u, rho):
    q = stats.norm.ppf(u)
    both = stats.multivariate_normal([0, 0], [[1, rho], [rho, 1]]).cdf([-q, -q])  # P(>q, >q)
    return both / (1 - u)


def _exact_row_max_cdf(q, r=R, nodes=2001):
    """P(max of one AR(1) row of length W <= q), by the exact Markov recursion on a fine grid."""
    z = np.linspace(-9, q, nodes)
    dz = z[1] - z[0]
    density = stats.norm.pdf(z)
    s = math.sqrt(1 - r * r)
    kernel = stats.norm.pdf((z[None, :] - r * z[:, None]) / s) / s * dz  # from z_i to z_j
    for _ in range(SHAPE[1] - 1):
        density = density @ kernel
    return density.sum() * dz


@pytest.fixture(scope="module")
def fields():
    return _ar_fields(4000)


def _exceedance_z(fields, sd_of_law=1.0):
    """z of p(q) and p_max(q) at the exact 99 % and 99.9 % quantiles, with bootstrap se."""
    levels = np.array([0.99, 0.999])
    q = sd_of_law * stats.norm.ppf(levels)
    flat = fields.reshape(len(fields), -1)
    p = (flat[:, :, None] > q).mean((0, 1))
    p_max = (flat.max(1)[:, None] > q).mean(0)
    exact_p = 1 - levels
    exact_max = np.array([1 - _exact_row_max_cdf(v / sd_of_law) ** SHAPE[0] for v in q])
    se_p, se_max = _bootstrap_se(flat, q)
    return np.concatenate([(p - exact_p) / se_p, (p_max - exact_max) / se_max])


def _bootstrap_se(flat, q, n_boot=200):
    rng = np.random.default_rng(5)
    p, m = [], []
    for _ in range(n_boot):
        rows = flat[rng.integers(0, len(flat), len(flat))]
        p.append((rows[:, :, None] > q).mean((0, 1)))
        m.append((rows.max(1)[:, None] > q).mean(0))
    return np.std(p, axis=0, ddof=1), np.std(m, axis=0, ddof=1)


def test_exceedances_of_a_known_law(fields):
    assert np.abs(_exceedance_z(fields)).max() <= 4.0


def test_exceedance_power_a_wider_law_is_rejected():
    assert np.abs(_exceedance_z(_ar_fields(4000, sd=1.1, seed=2))).max() > 4.0


def test_compare_exceedances_between_two_draws_of_one_law_is_within_its_noise(fields):
    other = _ar_fields(4000, seed=3)
    same = compare_exceedances(other, fields, seed=0)
    assert same.max_abs_z <= 4.0
    assert same.reference[:3] == pytest.approx([0.1, 0.01, 0.001], rel=0.02)
    wider = compare_exceedances(1.1 * other, fields, seed=0)
    assert wider.max_abs_z > 4.0


def _chi_z(fields, r):
    u = 0.95
    lags = (1, 2, 4)
    chi = extremal_dependence(fields, stats.norm.ppf(u), lags)
    exact = np.array([_exact_chi(u, r**k) for k in lags] + [_exact_chi(u, 0.0)] * len(lags))
    rng = np.random.default_rng(7)
    boot = np.std([extremal_dependence(fields[rng.integers(0, len(fields), len(fields))],
                                       stats.norm.ppf(u), lags) for _ in range(100)],
                  axis=0, ddof=1)  # fmt: skip
    return (chi - exact) / boot


def test_extremal_dependence_of_a_known_law(fields):
    assert np.abs(_chi_z(fields, R)).max() <= 4.0


def test_extremal_dependence_power_a_stronger_correlation_is_rejected(fields):
    assert np.abs(_chi_z(fields, R + 0.1)).max() > 4.0


def test_compare_extremal_dependence_sees_a_change_of_correlation(fields):
    assert compare_extremal_dependence(_ar_fields(4000, seed=4), fields).max_abs_z <= 4.0
    assert compare_extremal_dependence(_ar_fields(4000, r=0.9, seed=4), fields).max_abs_z > 4.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda f: compare_exceedances(f, f, (0.5, 1.0)), "levels must lie in"),
        (lambda f: compare_extremal_dependence(f, f, 1.5), "level must lie in"),
        (lambda f: extremal_dependence(f, 0.0, (0, 2)), "lags must lie in"),
        (lambda f: extremal_dependence(f, 0.0, (16,)), "lags must lie in"),
    ],
)
def test_bad_input_is_one_clear_error(fields, call, message):
    with pytest.raises(GeodiffError, match=message):
        call(fields[:10])
