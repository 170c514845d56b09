"""The FFT Gaussian MMPS uses on large grids, against the dense Gaussian built from the formula.

The reference is the covariance matrix written out from ``c(h)`` node by node
(``Σ̄_ij = c(s_i - s_j)``), conditioned by explicit dense algebra; the stationary code
never forms it. The kernel is a Gaussian covariance whose torus spectrum is checked
non-negative, where the torus embedding is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from geodiff.observe import Observations, point_operator
from geodiff.posterior.gaussian import StationaryGaussian
from geodiff.posterior.problem import LinearGaussianProblem

SHAPE, RADIUS, LENGTH = (9, 11), 7, 1.6


def _lags(variance: float = 1.0) -> np.ndarray:
    d = np.arange(-RADIUS, RADIUS + 1)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    return variance * np.exp(-r2 / (2 * LENGTH**2))


def _dense(lags: np.ndarray, shape=SHAPE) -> torch.Tensor:
    """``Σ̄`` node by node from the formula (zero beyond the radius)."""
    h, w = shape
    rows, cols = np.divmod(np.arange(h * w), w)
    dr, dc = rows[:, None] - rows[None], cols[:, None] - cols[None]
    inside = (abs(dr) <= RADIUS) & (abs(dc) <= RADIUS)
    values = lags[np.clip(dr + RADIUS, 0, 2 * RADIUS), np.clip(dc + RADIUS, 0, 2 * RADIUS)]
    return torch.as_tensor(np.where(inside, values, 0.0))


def _problem(n=13, noise=0.1, sparse=True, seed=0) -> LinearGaussianProblem:
    from geodiff.grid import Grid

    rng = np.random.default_rng(seed)
    h, w = SHAPE
    points = rng.uniform([0, 0], [w - 1, h - 1], (n, 2))
    obs = Observations(point_operator(points), rng.normal(size=n), np.full(n, noise))
    grid = Grid(SHAPE, ((0.0, w - 1.0), (0.0, h - 1.0)))
    return LinearGaussianProblem.from_observations(obs, grid, sparse=sparse)


def test_torus_covariance_restricted_to_the_grid_is_the_formula():
    """The fields :meth:`StationaryGaussian.sample` draws have exactly ``Σ̄`` (no clipping)."""
    g = StationaryGaussian(_lags(), SHAPE)
    p, q = g.torus
    h, w = SHAPE
    # covariance of sample() from its linear map, column by column of the torus noise
    basis = torch.eye(p * q, dtype=torch.float64).reshape(p * q, p, q)
    columns = g.sample(basis).reshape(p * q, h * w)
    np.testing.assert_allclose((columns.T @ columns).numpy(), _dense(_lags()).numpy(), atol=1e-10)


def _torus_posterior_covariance(torus, ab: float) -> np.ndarray:
    """``V̄`` of the torus Gaussian (``x_t`` seen on the whole torus), dense, restricted to
    the grid: ``C - C (C + σ² I)⁻¹ C`` with ``C`` written node by node with wrapped lags."""
    p, q = torus
    rows, cols = np.divmod(np.arange(p * q), q)
    dr = (rows[:, None] - rows[None] + p // 2) % p - p // 2
    dc = (cols[:, None] - cols[None] + q // 2) % q - q // 2
    inside = (abs(dr) <= RADIUS) & (abs(dc) <= RADIUS)
    lags = _lags()
    c = np.where(inside, lags[np.clip(dr + RADIUS, 0, 2 * RADIUS),
                              np.clip(dc + RADIUS, 0, 2 * RADIUS)], 0.0)  # fmt: skip
    s2 = (1 - ab) / ab
    v = c - c @ np.linalg.solve(c + s2 * np.eye(p * q), c)
    h, w = SHAPE
    keep = ((rows < h) & (cols < w)).nonzero()[0]
    return v[np.ix_(keep, keep)]


@pytest.mark.parametrize("ab", [0.999, 0.5, 0.01])
@pytest.mark.parametrize("noise", [0.1, 0.0])
def test_guess_matches_dense_torus_conditioning(ab, noise):
    """``V̄ Aᵀ v`` and ``M⁻¹ r`` equal dense algebra on the torus covariance."""
    problem = _problem(noise=noise)
    gaussian = StationaryGaussian(_lags(), SHAPE)
    solve, v_times = gaussian.guess(problem)(ab)
    v_bar = _torus_posterior_covariance(gaussian.torus, ab)
    a = problem.dense_matrix().numpy()
    rng = np.random.default_rng(1)
    r = rng.normal(size=(3, len(problem)))
    np.testing.assert_allclose(v_times(torch.as_tensor(r)).numpy(), r @ a @ v_bar, atol=1e-9)
    m = a @ v_bar @ a.T + np.diag(problem.noise_sd.numpy() ** 2)
    if noise > 0:  # noiseless M is near-singular at ab near 1 (jitter): compare M instead
        want = np.linalg.solve(m, r.T).T
        np.testing.assert_allclose(solve(torch.as_tensor(r)).numpy(), want, rtol=1e-6, atol=1e-8)
    x = solve(torch.as_tensor(r @ m)).numpy()
    np.testing.assert_allclose(x @ m, r @ m, rtol=1e-5, atol=1e-6 * np.abs(r @ m).max())


def _start_statistic(gaussian, problem, ab: float, n: int, seed: int):
    """Two-sided p-values of the draws' mean and of their variance at every node against the
    exact law ``N(√ᾱ μ, ᾱ P + (1-ᾱ) I)`` of the dense formula (``μ, P``)."""
    from geodiff.posterior.exact import gaussian_posterior

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, *gaussian.start_noise_shape(len(problem), SHAPE), generator=gen,
                    dtype=torch.float64)  # fmt: skip
    draws = gaussian.start(problem, ab, z).numpy()
    mean, post = gaussian_posterior(_dense(_lags()), problem)
    want_mean = ab**0.5 * mean.numpy()
    want_var = ab * np.diag(post.numpy()) + (1 - ab)
    z_mean = (draws.mean(0) - want_mean) / np.sqrt(want_var / n)
    # variance: (n-1) s² / σ² ~ chi²(n-1), as a z-score per node
    chi = (n - 1) * draws.var(0, ddof=1) / want_var
    z_var = (chi - (n - 1)) / np.sqrt(2 * (n - 1))
    d = z_mean.size
    return stats.chi2.sf((z_mean**2).sum(), d), 2 * stats.norm.sf(abs(z_var.mean()) * np.sqrt(d))


def test_warm_start_draws_follow_the_exact_law_and_a_wrong_variance_is_rejected():
    problem, ab, n = _problem(), 0.3, 4000
    right = StationaryGaussian(_lags(), SHAPE)
    p_mean, p_var = _start_statistic(right, problem, ab, n, seed=4)
    assert p_mean > 1e-3 and p_var > 1e-3
    # power: a prior 10 % wider in variance gives draws the same statistic rejects
    wrong = StationaryGaussian(_lags(variance=1.1), SHAPE)
    _, p_wrong = _start_statistic(wrong, problem, ab, n, seed=4)
    assert p_wrong < 1e-3


def test_a_problem_on_another_grid_is_refused():
    from geodiff.errors import GeodiffError

    with pytest.raises(GeodiffError, match="grid"):
        StationaryGaussian(_lags(), (8, 8)).guess(_problem())
