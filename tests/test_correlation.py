import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from geodiff.errors import ConfigError
from geodiff.fields.correlation import FAMILIES, get_family, matern_correlation

H = np.concatenate([[0.0, 1e-9, 1e-4], np.linspace(0.01, 6.0, 200)])
SHAPES = {"matern": {"nu": 1.5}, "stable": {"alpha": 1.3}}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_matches_gstools(name):
    family = FAMILIES[name]
    shape = SHAPES.get(name, {})
    expected = family.gstools(len_scale=1.0, **shape).correlation(H)
    got = family(torch.tensor(H**2), **shape).numpy()
    assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nu", [0.5, 0.7, 1.5, 2.5, 3.3, 12.0])
def test_matern_any_nu_matches_gstools(nu):
    import gstools

    expected = gstools.Matern(dim=2, len_scale=1.0, nu=nu).correlation(H)
    for value in (nu, torch.tensor(nu, dtype=torch.float64)):  # closed form and scipy path
        got = matern_correlation(torch.tensor(H), value).numpy()
        assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_matern_gradients_pass_gradcheck():
    h = torch.tensor([0.05, 0.3, 1.0, 2.5], dtype=torch.float64, requires_grad=True)
    nu = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: matern_correlation(a, b), (h, nu))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_gradient_is_finite_at_zero_distance(name):
    q = torch.tensor([0.0, 0.5], dtype=torch.float64, requires_grad=True)
    FAMILIES[name](q, **SHAPES.get(name, {})).sum().backward()
    assert torch.isfinite(q.grad).all()


def test_unknown_family():
    with pytest.raises(ConfigError, match="unknown covariance family"):
        get_family("bessel")
