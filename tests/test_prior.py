import math

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from numpy.testing import assert_allclose
from shared import random_nu_prior

from geodiff import Fixed, Grid, MapPrior, NonStationaryPrior, StationaryPrior
from geodiff.fields.config import load_prior
from geodiff.fields.correlation import FAMILIES

RNG = np.random.default_rng(7)
POINTS_A = RNG.uniform(0, 1, (9, 2))
POINTS_B = np.vstack([RNG.uniform(0, 1, (6, 2)), POINTS_A[:2]])  # two shared points
SHAPES = {"matern": {"nu": 1.5}, "stable": {"alpha": 1.3}}
SHIPPED = ["stationary-matern", "nonstationary-anisotropy"]


def _fixed_theta(prior, **values):
    theta = prior.sample_theta(1, 0)
    for key, value in values.items():
        theta[key] = torch.tensor([value], dtype=torch.float64)
    return theta


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_stationary_covariance_matches_gstools(family):
    shape = SHAPES.get(family, {})
    prior = StationaryPrior(
        family, variance=1.7, length_scale=0.3, anis_ratio=0.4, angle=0.6, **shape
    )
    model = FAMILIES[family].gstools(var=1.7, len_scale=[0.3, 0.12], angles=0.6, **shape)
    got = prior.covariance(POINTS_A, POINTS_B, prior.sample_theta(1, 0))[0].numpy()
    lags = (POINTS_A[:, None, :] - POINTS_B[None]).reshape(-1, 2).T
    expected = model.cov_spatial(lags).reshape(got.shape)
    assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_nugget_only_at_coincident_points():
    prior = StationaryPrior("exponential", length_scale=0.2, nugget=0.3)
    base = StationaryPrior("exponential", length_scale=0.2)
    theta = prior.sample_theta(1, 0)
    diff = (
        prior.covariance(POINTS_A, POINTS_B, theta) - base.covariance(POINTS_A, POINTS_B, theta)
    )[0]
    same = (POINTS_A[:, None, :] == POINTS_B[None]).all(-1)
    assert_allclose(diff.numpy(), 0.3 * same, atol=1e-15)
    assert same.sum() == 2


def _constant_map(value, log_scale=True):
    return MapPrior(
        center=Fixed(value), spread=Fixed(0.0), log_scale=log_scale, knots=4, len_scale=0.3
    )


@pytest.mark.parametrize("family", ["matern", "exponential", "gaussian", "stable"])
def test_constant_maps_reduce_to_stationary_gstools_model(family):
    shape = SHAPES.get(family, {})
    prior = NonStationaryPrior(
        family,
        variance=_constant_map(1.3),
        length_scale=_constant_map(0.25),
        anis_ratio=_constant_map(0.5),
        angle=_constant_map(-0.4, log_scale=False),
        **shape,
    )
    assert not prior.is_stationary
    got = prior.covariance(POINTS_A, POINTS_B, prior.sample_theta(1, 3))[0].numpy()
    model = FAMILIES[family].gstools(var=1.3, len_scale=[0.25, 0.125], angles=-0.4, **shape)
    lags = (POINTS_A[:, None, :] - POINTS_B[None]).reshape(-1, 2).T
    assert_allclose(got, model.cov_spatial(lags).reshape(got.shape), rtol=1e-12, atol=1e-14)


def _paciorek_schervish_numpy(prior, theta, x, y):
    """The formula of DESIGN.md, one pair at a time, from the prior's local maps."""
    px = {k: v[0].numpy() for k, v in prior.local_parameters(theta, x).items()}
    py = {k: v[0].numpy() for k, v in prior.local_parameters(theta, y).items()}
    nu = float(theta["nu"][0])

    def sigma(p, i):
        c, s = math.cos(p["angle"][i]), math.sin(p["angle"][i])
        rot = np.array([[c, -s], [s, c]])
        ell = p["length_scale"][i]
        return rot @ np.diag([ell**2, (p["anis_ratio"][i] * ell) ** 2]) @ rot.T

    out = np.empty((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            si, sj = sigma(px, i), sigma(py, j)
            mean = (si + sj) / 2
            d = x[i] - y[j]
            q = d @ np.linalg.solve(mean, d)
            xs = math.sqrt(nu * q)
            rho = 1.0 if xs == 0 else (1 + xs) * math.exp(-xs)  # Matérn 3/2, GSTools form
            norm = (
                np.linalg.det(si) ** 0.25
                * np.linalg.det(sj) ** 0.25
                / math.sqrt(np.linalg.det(mean))
            )
            out[i, j] = math.sqrt(px["variance"][i] * py["variance"][j]) * norm * rho
    return out


def test_nonstationary_covariance_matches_explicit_formula():
    prior = load_prior("nonstationary-anisotropy")
    theta = prior.sample_theta(1, 11)
    got = prior.covariance(POINTS_A, POINTS_B, theta)[0].numpy()
    assert_allclose(got, _paciorek_schervish_numpy(prior, theta, POINTS_A, POINTS_B), rtol=1e-11)


@pytest.mark.parametrize("name", SHIPPED)
def test_grid_covariance_is_symmetric_positive_definite(name):
    prior = load_prior(name)
    pts = np.stack(np.meshgrid(np.linspace(0, 1, 12), np.linspace(0, 1, 12)), -1).reshape(-1, 2)
    cov = prior.covariance(pts, pts, prior.sample_theta(3, 5))
    assert_allclose(cov.numpy(), cov.transpose(1, 2).numpy(), atol=1e-14)
    assert torch.linalg.eigvalsh(cov).min() > -1e-10


@pytest.mark.parametrize(
    "make", [lambda: load_prior(SHIPPED[0]), lambda: load_prior(SHIPPED[1]), random_nu_prior]
)
def test_covariance_passes_gradcheck(make):
    prior = make()
    theta = prior.sample_theta(1, 2)
    keys = sorted(theta)
    x, y = POINTS_A[:4], POINTS_B[-4:]

    def cov(*values):
        return prior.covariance(x, y, dict(zip(keys, values, strict=True)))

    inputs = tuple(theta[k].clone().requires_grad_(True) for k in keys)
    assert torch.autograd.gradcheck(cov, inputs)


@pytest.mark.parametrize("name", SHIPPED)
def test_log_prob_equals_pyro_trace(name):
    prior = load_prior(name)
    theta = prior.sample_theta(1, 4)
    sites = {k: v[0] for k, v in theta.items() if not _is_fixed(prior, k)}
    trace = poutine.trace(poutine.condition(prior.pyro_theta, data=sites)).get_trace()
    assert_allclose(float(trace.log_prob_sum()), float(prior.log_prob(theta)[0]), rtol=1e-12)
    assert set(trace.nodes) - {"_INPUT", "_RETURN"} == set(sites)


def _is_fixed(prior, key):
    leaf = prior.leaves()[key]
    return not isinstance(leaf, int) and leaf.is_fixed


def test_pyro_theta_drives_covariance():
    prior = load_prior("nonstationary-anisotropy")
    pyro.set_rng_seed(0)
    theta = prior.pyro_theta()
    assert prior.covariance(POINTS_A, POINTS_A, theta).shape == (1, 9, 9)


def test_sample_theta_is_seeded_and_within_support():
    prior = load_prior("stationary-matern")
    a, b = prior.sample_theta(500, 1), prior.sample_theta(500, 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["length_scale"], prior.sample_theta(500, 2)["length_scale"])
    assert a["length_scale"].min() >= 0.05 and a["length_scale"].max() <= 0.3
    assert a["angle"].min() >= 0 and a["angle"].max() <= math.pi


def test_loguniform_draws_follow_their_distribution():
    from scipy import stats

    draws = load_prior("stationary-matern").sample_theta(2000, 3)["length_scale"].numpy()
    u = np.log(draws / 0.05) / np.log(0.3 / 0.05)
    assert stats.kstest(u, "uniform").pvalue > 0.01


def test_map_interpolates_its_knots_exactly():
    prior = load_prior("nonstationary-anisotropy")
    angle = prior.parameters["angle"]
    basis = angle.basis(angle.knot_points()).numpy()
    knots = angle.knot_points()
    cov = angle._gstools_model().correlation(np.linalg.norm(knots[:, None] - knots[None], axis=-1))
    chol = np.linalg.cholesky(cov + 1e-8 * np.eye(len(knots)))
    assert_allclose(basis, chol, atol=1e-6)  # z(knots) = L w up to the jitter


def test_a_map_over_another_domain_is_refused():
    from geodiff import ConfigError

    wide = MapPrior(center=Fixed(0.2), spread=Fixed(0.1), log_scale=True, domain=((0, 2), (0, 1)))
    with pytest.raises(ConfigError, match="map spans"):
        NonStationaryPrior("matern", nu=1.5, length_scale=wide)


def test_map_values_take_points_on_any_device_or_with_gradients():
    """The knot basis is built on the host from a detached copy of the points (the CUDA
    crash at ``pts.numpy()``); a tensor that requires grad exercises the same path here."""
    prior = load_prior("nonstationary-anisotropy")
    theta = prior.sample_theta(2, generator=0)
    points = torch.rand(5, 2, dtype=torch.float64)
    expected = prior.local_parameters(theta, points.numpy())
    got = prior.local_parameters(theta, points.clone().requires_grad_(True))
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


@pytest.mark.parametrize("name", ["stationary-matern", "nonstationary-anisotropy"])
def test_covariance_keeps_theta_on_its_device(name):
    """Parameters on the data-less ``meta`` device: any host transfer of a tensor that
    depends on theta (``.numpy()``, ``.cpu()``, ``.item()``) raises here, as it would
    crash on a GPU. The old ``prior.basis(pts.numpy())`` on device points fails it."""
    prior = load_prior(name)
    theta = {k: v.to("meta") for k, v in prior.sample_theta(2, generator=0).items()}
    points = Grid.square(6).points()
    cov = prior.covariance(points, points[:5], theta)
    assert cov.device.type == "meta" and cov.shape == (2, 36, 5)
    local = prior.local_parameters(theta, points)
    assert all(v.device.type == "meta" for v in local.values())
