"""Exactness of simulation: empirical covariances against an independent formula.

For field ``i`` with parameters ``theta_i`` and a pair of nodes ``(a, b)``, the term
``t_i = x_i(a) x_i(b) - C(a, b; theta_i)`` has mean zero if and only if the simulator
draws from the prior (given ``theta_i``, and hence marginally). ``C`` is written here
from its definition — the Matérn ``2^(1-nu)/G(nu) (sqrt(nu) h)^nu K_nu(sqrt(nu) h)``
(GSTools' convention) of the anisotropic distance, and for the non-stationary prior the
Paciorek–Schervish formula with the local parameters — not taken from
``prior.covariance``, the code the simulator itself uses. The terms are i.i.d., so
``z = mean(t) / (std(t) / sqrt(n))`` is approximately standard normal for n = 2000.
With M pairs, P(max |z| > 4) <= M * 6.3e-5 (Bonferroni), about 1e-3 for M = 16: the
tolerance is four Monte Carlo standard errors, and a power check shows that a 20% error
in the length scale is caught.
"""

import math

import numpy as np
import pytest
import torch
from scipy import special
from shared import random_nu_prior

from geodiff import GeodiffError, Grid, simulate
from geodiff.fields.config import load_prior

N_FIELDS = 2000
Z_MAX = 4.0
GRID = Grid.square(16)


def _pairs(grid):
    """16 node pairs: variances, short and long lags in several directions."""
    h, w = grid.shape
    node = lambda i, j: i * w + j  # noqa: E731
    c = h // 2
    return np.array(
        [
            (node(c, c), node(c, c)),
            (node(0, 0), node(0, 0)),
            (node(h - 1, 3), node(h - 1, 3)),
            (node(c, c), node(c, c + 1)),
            (node(c, c), node(c + 1, c)),
            (node(c, c), node(c + 1, c + 1)),
            (node(c, c), node(c + 1, c - 1)),
            (node(c, c), node(c, c + 3)),
            (node(c, c), node(c + 3, c)),
            (node(c, c), node(c - 2, c + 2)),
            (node(2, 2), node(4, 5)),
            (node(0, 0), node(0, 1)),
            (node(h - 1, w - 1), node(h - 2, w - 1)),
            (node(1, w - 2), node(3, w - 4)),
            (node(c, 1), node(c, 6)),
            (node(3, c), node(9, c)),
        ]
    )


def _matern(h, nu):
    """GSTools' Matérn correlation of unit length scale, from scipy's Bessel function."""
    h = np.asarray(h, dtype=float)
    scaled = np.sqrt(nu) * np.where(h > 0, h, 1.0)
    value = 2 ** (1 - nu) / special.gamma(nu) * scaled**nu * special.kv(nu, scaled)
    return np.where(h > 0, value, 1.0)


def _sigma_matrix(ell, ratio, angle):
    """``R diag(l^2, (r l)^2) R^T``, shape (..., 2, 2)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    diag = np.zeros((*np.shape(ell), 2, 2))
    diag[..., 0, 0], diag[..., 1, 1] = ell**2, (ratio * ell) ** 2
    return rot @ diag @ np.swapaxes(rot, -1, -2)


def reference_covariance(prior, theta, pa, pb) -> np.ndarray:
    """``C(pa_k, pb_k; theta_i)`` from the definitions, shape (n, M)."""
    assert prior.family.name == "matern"
    t = {k: v.numpy() for k, v in theta.items()}
    nu = t["nu"][:, None]
    if prior.is_stationary:
        local_a = local_b = {k: t[k][:, None] for k in ("variance", "length_scale",
                                                        "anis_ratio", "angle")}  # fmt: skip
    else:  # the maps' values at the points (the maps are tested on their own)
        local_a = {k: v.numpy() for k, v in prior.local_parameters(theta, pa).items()}
        local_b = {k: v.numpy() for k, v in prior.local_parameters(theta, pb).items()}
    sa = _sigma_matrix(local_a["length_scale"], local_a["anis_ratio"], local_a["angle"])
    sb = _sigma_matrix(local_b["length_scale"], local_b["anis_ratio"], local_b["angle"])
    mean = 0.5 * (sa + sb)
    d = (pa - pb)[None, :, :, None]  # (1, M, 2, 1)
    q = (np.swapaxes(d, -1, -2) @ np.linalg.solve(mean, d))[..., 0, 0]
    norm = (np.linalg.det(sa) * np.linalg.det(sb)) ** 0.25 / np.sqrt(np.linalg.det(mean))
    cov = np.sqrt(local_a["variance"] * local_b["variance"]) * norm * _matern(np.sqrt(q), nu)
    same = np.all(pa == pb, axis=1)[None, :]
    return cov + t["nugget"][:, None] * same


def covariance_z_scores(prior, sim, theta=None):
    """z-score of the mean of ``x(a) x(b) - C(a, b)`` over fields, for each pair."""
    theta = sim.theta if theta is None else theta
    pairs = _pairs(sim.grid)
    pts = sim.grid.points()
    values = sim.fields.reshape(len(sim), -1).double()
    products = values[:, pairs[:, 0]] * values[:, pairs[:, 1]]  # (n, M)
    cov = reference_covariance(prior, theta, pts[pairs[:, 0]], pts[pairs[:, 1]])
    terms = products - torch.as_tensor(cov)
    return (terms.mean(0) / (terms.std(0) / math.sqrt(len(sim)))).numpy()


CASES = {
    "stationary-circulant": (lambda: load_prior("stationary-matern"), "auto"),
    "stationary-cholesky": (lambda: load_prior("stationary-matern"), "cholesky"),
    "nonstationary": (lambda: load_prior("nonstationary-anisotropy"), "auto"),
    "random-nu-nugget": (random_nu_prior, "auto"),
}


@pytest.fixture(scope="module")
def simulations():
    cache = {}

    def get(case):
        if case not in cache:
            make, method = CASES[case]
            prior = make()
            cache[case] = (prior, simulate(prior, GRID, N_FIELDS, seed=123, method=method))
        return cache[case]

    return get


@pytest.mark.parametrize("case", sorted(CASES))
def test_empirical_covariance_matches_prior(simulations, case):
    prior, sim = simulations(case)
    z = covariance_z_scores(prior, sim)
    assert np.abs(z).max() < Z_MAX, z


@pytest.mark.parametrize("case", ["stationary-circulant", "nonstationary"])
@pytest.mark.parametrize("change", ["length scale x 1.2", "variance x 1.1"])
def test_covariance_check_detects_a_wrong_parameter(simulations, case, change):
    prior, sim = simulations(case)
    if change == "variance x 1.1":
        key = "variance" if prior.is_stationary else "variance.median"
        factor = 1.1
    else:
        key = "length_scale" if prior.is_stationary else "length_scale.median"
        factor = 1.2
    wrong = dict(sim.theta, **{key: factor * sim.theta[key]})
    assert np.abs(covariance_z_scores(prior, sim, wrong)).max() > Z_MAX


def test_reference_covariance_is_gstools_for_a_stationary_prior():
    """The test's own formula against GSTools' model, at one parameter set."""
    import gstools

    prior = load_prior("stationary-matern")
    theta = prior.sample_theta(1, generator=3)
    pa = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.2], [0.3, 0.9]])
    pb = np.array([[0.5, 0.5], [0.6, 0.55], [0.3, 0.1], [0.35, 0.7]])
    one = {k: float(v[0]) for k, v in theta.items()}
    scales = [one["length_scale"], one["anis_ratio"] * one["length_scale"]]
    model = gstools.Matern(dim=2, var=one["variance"], nu=one["nu"], angles=one["angle"],
                           len_scale=scales)  # fmt: skip
    expected = model.cov_spatial((pa - pb).T)
    np.testing.assert_allclose(reference_covariance(prior, theta, pa, pb)[0], expected, atol=1e-10)


def test_fixed_theta_fields_have_that_thetas_covariance():
    prior = load_prior("nonstationary-anisotropy")
    sim = simulate(prior, GRID, N_FIELDS, seed=5, fields_per_theta=N_FIELDS)
    assert all(torch.all(v == v[0]) for v in sim.theta.values())
    z = covariance_z_scores(prior, sim)
    assert np.abs(z).max() < Z_MAX, z


@pytest.mark.parametrize("name", ["stationary-matern", "nonstationary-anisotropy"])
def test_seed_reproduces_fields_whatever_the_batching(name):
    prior = load_prior(name)
    full = simulate(prior, GRID, 12, seed=9)
    again = simulate(prior, GRID, 12, seed=9, batch_size=1)
    tail = simulate(prior, GRID, 5, seed=9, start=7)
    assert torch.equal(full.fields, again.fields)
    assert torch.equal(full.fields[7:], tail.fields)
    assert all(torch.equal(full.theta[k][7:], tail.theta[k]) for k in full.theta)
    assert not torch.equal(full.fields, simulate(prior, GRID, 12, seed=10).fields)


def test_fields_per_theta_shares_parameters_not_noise():
    prior = load_prior("stationary-matern")
    sim = simulate(prior, GRID, 6, seed=1, fields_per_theta=3)
    ell = sim.theta["length_scale"]
    assert ell[0] == ell[1] == ell[2] and ell[3] == ell[4] == ell[5] and ell[0] != ell[3]
    assert not torch.equal(sim.fields[0], sim.fields[1])


def test_maps_are_returned_on_the_grid():
    prior = load_prior("nonstationary-anisotropy")
    sim = simulate(prior, GRID, 3, seed=0)
    assert set(sim.maps) == {"length_scale", "angle", "variance"}
    assert sim.maps["length_scale"].shape == (3, *GRID.shape)
    assert (sim.maps["variance"] > 0).all()


def test_grid_outside_a_nonstationary_prior_domain_is_rejected():
    prior = load_prior("nonstationary-anisotropy")
    with pytest.raises(GeodiffError, match="domain"):
        simulate(prior, Grid((8, 8), ((0.0, 2.0), (0.0, 1.0))), 1)


def test_given_theta_is_used_for_every_field():
    prior = load_prior("nonstationary-anisotropy")
    theta = prior.sample_theta(1, 42)
    sim = simulate(prior, GRID, N_FIELDS, seed=6, theta=theta)
    assert all(torch.equal(sim.theta[k], theta[k].expand_as(sim.theta[k])) for k in theta)
    z = covariance_z_scores(prior, sim)
    assert np.abs(z).max() < Z_MAX, z
    per_field = prior.sample_theta(3, 1)
    sim3 = simulate(prior, GRID, 3, seed=6, theta=per_field)
    assert all(torch.equal(sim3.theta[k], per_field[k]) for k in per_field)
    with pytest.raises(GeodiffError, match="batch of 1 or n"):
        simulate(prior, GRID, 2, theta=per_field)
    with pytest.raises(GeodiffError, match="lacks"):
        simulate(prior, GRID, 2, theta={"nu": torch.tensor([1.5])})
