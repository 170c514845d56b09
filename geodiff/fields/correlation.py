"""Isotropic correlation functions in torch, in GSTools' own conventions.

Each family is evaluated at the *scaled* distance ``h = r / len_scale`` (for anisotropic
and non-stationary models, ``h = sqrt(Q)`` with ``Q`` the Mahalanobis form) and returns
``gstools.<Model>(len_scale=1).correlation(h)``, including GSTools' ``rescale`` factor
(``sqrt(pi)/2`` for the Gaussian model) and its Matérn convention ``sqrt(nu) * h``
(not ``sqrt(2 nu) * h``). Every function is differentiable in ``h`` and in its shape
parameter, with a finite gradient at ``h = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gstools
import numpy as np
import scipy.special as sps
import torch

__all__ = ["FAMILIES", "CorrelationFamily", "get_family", "matern_correlation"]

_HALF_INTEGER_MATERN = {
    0.5: lambda x: torch.exp(-x),
    1.5: lambda x: (1.0 + x) * torch.exp(-x),
    2.5: lambda x: (1.0 + x + x * x / 3.0) * torch.exp(-x),
}
MAX_NU = 20.0  # above this GSTools itself switches to the Gaussian limit


def _safe_sqrt(q: torch.Tensor) -> torch.Tensor:
    """``sqrt(q)`` for ``q >= 0`` whose gradient is 0, not inf, at ``q = 0``."""
    positive = q > 0
    return torch.where(positive, q.clamp_min(1e-300).sqrt(), torch.zeros_like(q))


def _matern_numpy(h: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """GSTools' Matérn correlation ``2^(1-nu)/Gamma(nu) x^nu K_nu(x)``, ``x = sqrt(nu) h``."""
    x = np.sqrt(nu) * h
    out = np.ones(np.broadcast(x, nu).shape)
    x, nu = np.broadcast_arrays(x, nu)
    far = x > 1e-12  # below this 1 - rho < 1e-12 for every nu >= 0.5
    xf, nf = x[far], nu[far]
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        log_rho = (1 - nf) * math.log(2) - sps.gammaln(nf) + nf * np.log(xf)
        log_rho += np.log(sps.kve(nf, xf)) - xf
        out[far] = np.exp(log_rho)
    out[~np.isfinite(out)] = 0.0
    return out


def _kv_term(h: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """``d rho / d h`` of the Matérn correlation: ``-c sqrt(nu) x^nu K_(nu-1)(x)``."""
    x = np.sqrt(nu) * h
    x, nu = np.broadcast_arrays(x, nu)
    out = np.zeros(x.shape)
    pos = x > 0
    xp, npos = x[pos], nu[pos]
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        log_term = (1 - npos) * math.log(2) - sps.gammaln(npos) + npos * np.log(xp)
        log_term += np.log(sps.kve(npos - 1, xp)) - xp
        out[pos] = -np.sqrt(npos) * np.exp(log_term)
    out[~np.isfinite(out)] = 0.0
    return out


class _MaternAnyNu(torch.autograd.Function):
    """Matérn correlation for any smoothness, through scipy's Bessel functions.

    The gradient in ``h`` is exact (``d/dx [x^nu K_nu(x)] = -x^nu K_(nu-1)(x)``); the
    gradient in ``nu`` is a central difference with step ``1e-6 nu``, accurate to about
    1e-9 relative, which is ample for Hamiltonian Monte Carlo.
    """

    @staticmethod
    def forward(ctx, h, nu):
        ctx.save_for_backward(h, nu)
        value = _matern_numpy(h.detach().cpu().double().numpy(), nu.detach().cpu().double().numpy())
        return torch.as_tensor(value, dtype=h.dtype, device=h.device)

    @staticmethod
    def backward(ctx, grad):
        h, nu = ctx.saved_tensors
        hn, nn = h.detach().cpu().double().numpy(), nu.detach().cpu().double().numpy()
        grad_h = grad_nu = None
        if ctx.needs_input_grad[0]:
            dh = torch.as_tensor(_kv_term(hn, nn), dtype=h.dtype, device=h.device)
            grad_h = (grad * dh).sum_to_size(h.shape)
        if ctx.needs_input_grad[1]:
            step = 1e-6 * nn
            dnu = (_matern_numpy(hn, nn + step) - _matern_numpy(hn, nn - step)) / (2 * step)
            dnu = torch.as_tensor(dnu, dtype=nu.dtype, device=nu.device)
            grad_nu = (grad * dnu).sum_to_size(nu.shape)
        return grad_h, grad_nu


def matern_correlation(h: torch.Tensor, nu) -> torch.Tensor:
    """GSTools' Matérn correlation at scaled distance ``h``.

    Parameters
    ----------
    h : torch.Tensor, shape (...)
        Scaled distances, ``h >= 0``.
    nu : float or torch.Tensor broadcastable to ``h``
        Smoothness, ``0 < nu <= 20``. Fixed ``nu`` in {0.5, 1.5, 2.5} uses the closed
        form (pure torch, any device); other values go through scipy on the CPU.
    """
    if not torch.is_tensor(nu) and float(nu) in _HALF_INTEGER_MATERN:
        return _HALF_INTEGER_MATERN[float(nu)](math.sqrt(float(nu)) * h)
    nu = torch.as_tensor(nu, dtype=h.dtype, device=h.device)
    return _MaternAnyNu.apply(h, nu)


@dataclass(frozen=True)
class CorrelationFamily:
    """A named isotropic correlation family.

    Attributes
    ----------
    name : str
        Key used in configuration files.
    gstools_model : type
        The matching ``gstools.CovModel`` subclass (used for references and knot maps).
    shape_parameters : tuple of str
        Extra parameters the family needs (``nu`` for Matérn, ``alpha`` for stable).
    valid_in_all_dimensions : bool
        Whether the correlation is positive definite in every dimension, which the
        Paciorek–Schervish non-stationary construction requires (spherical is not).
    """

    name: str
    gstools_model: type
    shape_parameters: tuple[str, ...]
    valid_in_all_dimensions: bool

    def __call__(self, q: torch.Tensor, **shape) -> torch.Tensor:
        """Correlation at squared scaled distance ``q = h**2``, shape (...)."""
        if self.name == "gaussian":
            return torch.exp(-(math.pi / 4.0) * q)
        h = _safe_sqrt(q)
        if self.name == "exponential":
            return torch.exp(-h)
        if self.name == "matern":
            return matern_correlation(h, shape["nu"])
        if self.name == "stable":
            alpha = shape["alpha"]
            # h**alpha == q**(alpha/2); the latter has a finite gradient at 0 for alpha <= 2
            return torch.exp(-torch.where(q > 0, q.clamp_min(1e-300) ** (alpha / 2), 0.0 * q))
        if self.name == "spherical":
            hc = h.clamp(max=1.0)
            return 1.0 - 1.5 * hc + 0.5 * hc**3
        raise KeyError(self.name)

    def gstools(self, **kwargs) -> gstools.CovModel:
        """The equivalent GSTools model in 2D."""
        return self.gstools_model(dim=2, **kwargs)


FAMILIES = {
    f.name: f
    for f in (
        CorrelationFamily("matern", gstools.Matern, ("nu",), True),
        CorrelationFamily("exponential", gstools.Exponential, (), True),
        CorrelationFamily("gaussian", gstools.Gaussian, (), True),
        CorrelationFamily("stable", gstools.Stable, ("alpha",), True),
        CorrelationFamily("spherical", gstools.Spherical, (), False),
    )
}


def get_family(name: str) -> CorrelationFamily:
    """Look a family up by name (case-insensitive)."""
    key = str(name).lower()
    if key not in FAMILIES:
        from geodiff.errors import ConfigError

        raise ConfigError(f"unknown covariance family {name!r}; choose from {sorted(FAMILIES)}")
    return FAMILIES[key]
