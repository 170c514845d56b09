"""The SPDE reference posterior (elliptical slice sampling) against exact quadrature.

With one random parameter (the length scale, log-uniform) the posterior
``p(l | y) ∝ p(y | l) p(l)`` is computed on a fine grid of ``l`` by quadrature, with the
likelihood from a dense Gaussian density (scipy) — independent of the sampler and of the
sparse likelihood it uses. The sampler's posterior mean of ``l`` must match within four
Monte Carlo standard errors (``sd / sqrt(ESS)``, ESS from the chains); the same statistic
rejects the exact posterior under a noise sd x 3 (power check).
"""

import math

import numpy as np
import pytest
from scipy import stats

from geodiff.baselines.spde_mcmc import spde_log_likelihood, spde_mcmc
from geodiff.fields.parameters import LogUniform
from geodiff.fields.spde import SPDEPrior
from geodiff.observe import Observations

PRIOR = SPDEPrior(
    "matern", nu=1.0, length_scale=LogUniform(1.5, 8.0), anis_ratio=0.6, angle=0.4,
    variance=1.0, cell_size=1.0, domain=((0.0, 11.0), (0.0, 11.0)),
)  # fmt: skip
GRID = PRIOR.window((12, 12))
TAU = 0.2


def _data():
    theta = PRIOR.complete_theta({"length_scale": 4.0})
    rng = np.random.default_rng(3)
    pts = rng.uniform(0.0, 11.0, (40, 2))
    op = PRIOR.grid_operator(GRID, theta)
    a = GRID.interpolation_matrix(pts).to_dense().numpy()
    cov = a @ op.covariance() @ a.T + TAU**2 * np.eye(40)
    y = rng.multivariate_normal(np.zeros(40), cov)
    return pts, y, a


def _exact_posterior_mean(pts, y, a, tau):
    """Quadrature over log l of the dense Gaussian likelihood times the prior."""
    logs = np.linspace(math.log(1.5), math.log(8.0), 121)
    logpost = []
    for log_ell in logs:
        theta = PRIOR.complete_theta({"length_scale": math.exp(log_ell)})
        cov = a @ PRIOR.grid_operator(GRID, theta).covariance() @ a.T + tau**2 * np.eye(len(y))
        logpost.append(stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y))
    w = np.exp(np.array(logpost) - max(logpost))  # log-uniform prior: flat in log l
    return float(np.sum(w * np.exp(logs)) / np.sum(w))


@pytest.fixture(scope="module")
def chains():
    pts, y, a = _data()
    obs = Observations.at_points(pts, y, TAU)
    result = spde_mcmc(PRIOR, obs, GRID, chains=2, warmup=50, samples=400, seed=1)
    ells = result.theta()["length_scale"].numpy()
    return pts, y, a, result, ells


def test_sparse_likelihood_is_the_dense_gaussian_density():
    pts, y, a = _data()
    theta = PRIOR.complete_theta({"length_scale": 3.0})
    cov = a @ PRIOR.grid_operator(GRID, theta).covariance() @ a.T + TAU**2 * np.eye(len(y))
    dense = stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y)
    sparse = spde_log_likelihood(PRIOR, theta, Observations.at_points(pts, y, TAU), GRID)
    assert sparse == pytest.approx(dense, abs=1e-8)


def _z(chains, tau):
    pts, y, a, result, ells = chains
    exact = _exact_posterior_mean(pts, y, a, tau)
    ess = result.diagnostics["length_scale"]["ess"]
    return (ells.mean() - exact) / (ells.std(ddof=1) / math.sqrt(ess))


def test_slice_sampler_matches_the_exact_posterior(chains):
    result = chains[3]
    assert result.max_rhat < 1.05
    assert abs(_z(chains, TAU)) < 4.0


def test_slice_sampler_rejects_the_posterior_under_wrong_noise(chains):
    assert abs(_z(chains, 3 * TAU)) > 4.0  # power: noise sd x 3


def test_posterior_predictive_draws(chains):
    result = chains[3]
    pred = result.predict(GRID, draws=5, seed=0)
    assert pred.draws.shape == (5, GRID.n_nodes)
    with pytest.warns(DeprecationWarning, match="n_draws= is now draws="):
        again = result.predict(GRID, n_draws=5, seed=0)  # the former name, one release
    np.testing.assert_array_equal(pred.draws, again.draws)
    assert "length_scale" in result.summary_text()
