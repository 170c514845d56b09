"""Tukey's g-and-h transform: a Gaussian body with a skewed, heavy tail.

Legend of symbols:

* ``z`` — a standard normal value (the latent Gaussian field, standardised),
* ``g`` — skewness (``g > 0`` lengthens the upper tail, ``g = 0`` is symmetric),
* ``h >= 0`` — tail weight: ``X = tau(Z)`` has regularly varying tails of index ``1 / h``,
  so ``E|X|^k`` is finite exactly when ``k < 1 / h`` (``h = 0``: Gaussian-like tails),
* ``rho`` — the correlation of two standard normals ``(Z1, Z2)``.

The transform is::

    tau(z) = expm1(g z) / g * exp(h z^2 / 2)        (z exp(h z^2 / 2) at g = 0)

It is strictly increasing for ``h >= 0`` (its derivative is
``exp(h z^2 / 2) (exp(g z) + h z expm1(g z) / g) > 0``), so quantiles carry over:
the ``p``-quantile of ``tau(Z)`` is ``tau(Phi^-1(p))``.

Moments are closed-form Gaussian integrals. With ``Sigma = [[1, rho], [rho, 1]]`` and
``D = (1 - h)^2 - h^2 rho^2 > 0``::

    M(a1, a2) = E exp(a1 Z1 + a2 Z2 + h (Z1^2 + Z2^2) / 2)
              = D^-1/2 exp((S11 (a1^2 + a2^2) + 2 S12 a1 a2) / 2),
    S11 = (1 - h + h rho^2) / D,   S12 = rho / D,

so ``E tau(Z1) tau(Z2) = (M(g, g) - M(g, 0) - M(0, g) + M(0, 0)) / g^2``, whose limit at
``g = 0`` is ``rho D^-3/2``. The variance (``rho = 1``) is finite for ``h < 1/2``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "gh_covariance",
    "gh_inverse",
    "gh_mean",
    "gh_quantile",
    "gh_transform",
    "gh_variance",
]

#: below this |g| the symmetric limit is used (the difference is O(g) relative, 1e-8)
_G_ZERO = 1e-8
#: the largest tail weight with a finite variance is 1/2; the priors stay well below it
H_MAX = 0.5


def _as_tensor(value, like: torch.Tensor | None = None) -> torch.Tensor:
    dtype = like.dtype if like is not None and like.is_floating_point() else torch.float64
    device = like.device if like is not None else None
    return torch.as_tensor(value, dtype=dtype, device=device)


def _expm1_over(g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``expm1(g a) / g``, and ``a`` where ``g`` is (almost) zero; safe for gradients."""
    small = g.abs() < _G_ZERO
    safe = torch.where(small, torch.ones_like(g), g)
    return torch.where(small, a, torch.expm1(safe * a) / safe)


def gh_transform(z, g, h) -> torch.Tensor:
    """``tau_{g,h}(z)``, elementwise with broadcasting, differentiable in all three.

    Parameters
    ----------
    z : torch.Tensor, any shape
    g, h : float or torch.Tensor, broadcastable to ``z``

    Returns
    -------
    torch.Tensor, the broadcast shape
    """
    z = _as_tensor(z)
    g, h = _as_tensor(g, z), _as_tensor(h, z)
    return _expm1_over(g, z) * torch.exp(0.5 * h * z * z)


def gh_inverse(x, g, h, *, iterations: int = 100, bound: float = 40.0) -> torch.Tensor:
    """The ``z`` with ``tau_{g,h}(z) = x``, by bisection (``tau`` is increasing).

    Values beyond ``tau(±bound)`` are returned as ``±bound``.

    Parameters
    ----------
    x : torch.Tensor, any shape
    g, h : float or torch.Tensor, broadcastable to ``x``; ``h >= 0``
    iterations : int
        Halvings of ``[-bound, bound]`` (100 reach float64's resolution).

    Returns
    -------
    torch.Tensor, float64, the broadcast shape
    """
    x = _as_tensor(x).double()
    g, h = _as_tensor(g, x), _as_tensor(h, x)
    shape = torch.broadcast_shapes(x.shape, g.shape, h.shape)
    x, g, h = x.expand(shape), g.expand(shape), h.expand(shape)
    lo = torch.full(shape, -bound, dtype=torch.float64, device=x.device)
    hi = torch.full(shape, bound, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            above = gh_transform(mid, g, h) > x
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


def gh_quantile(p, g, h) -> torch.Tensor:
    """The ``p``-quantile of ``tau_{g,h}(Z)``, ``Z ~ N(0, 1)``: ``tau(Phi^-1(p))``."""
    p = _as_tensor(p).double()
    z = math.sqrt(2.0) * torch.special.erfinv(2 * p - 1)
    return gh_transform(z, g, h)


def gh_mean(g, h) -> torch.Tensor:
    """``E tau_{g,h}(Z)``, ``Z ~ N(0, 1)`` (needs ``h < 1``)."""
    g, h = torch.broadcast_tensors(_as_tensor(g), _as_tensor(h))
    small = g.abs() < _G_ZERO
    safe = torch.where(small, torch.ones_like(g), g)
    mean = torch.expm1(safe * safe / (2 * (1 - h))) / (safe * torch.sqrt(1 - h))
    return torch.where(small, torch.zeros_like(mean), mean)


def _pair_moment(rho, g, h) -> torch.Tensor:
    """``E tau(Z1) tau(Z2)`` for standard normals of correlation ``rho``."""
    d = (1 - h) ** 2 - (h * rho) ** 2
    s11 = (1 - h + h * rho * rho) / d
    s12 = rho / d
    small = g.abs() < _G_ZERO
    safe = torch.where(small, torch.ones_like(g), g)
    g2 = safe * safe
    general = (torch.expm1(g2 * (s11 + s12)) - 2 * torch.expm1(0.5 * g2 * s11)) / g2
    return torch.where(small, s12, general) / torch.sqrt(d)


def gh_variance(g, h) -> torch.Tensor:
    """``Var tau_{g,h}(Z)``, ``Z ~ N(0, 1)`` (finite for ``h < 1/2``)."""
    g, h = torch.broadcast_tensors(_as_tensor(g), _as_tensor(h))
    return _pair_moment(torch.ones_like(g), g, h) - gh_mean(g, h) ** 2


def gh_covariance(rho, g, h) -> torch.Tensor:
    """``Cov(tau(Z1), tau(Z2))`` for standard normals of correlation ``rho``.

    Parameters
    ----------
    rho : torch.Tensor, values in [-1, 1]
    g, h : float or torch.Tensor, broadcastable to ``rho``; ``0 <= h < 1/2``

    Returns
    -------
    torch.Tensor, float64, the broadcast shape
    """
    rho = _as_tensor(rho).double()
    g, h = _as_tensor(g, rho), _as_tensor(h, rho)
    shape = torch.broadcast_shapes(rho.shape, g.shape, h.shape)
    # the mean depends on (g, h) only: computed before broadcasting over the pairs
    return (_pair_moment(rho, g, h) - gh_mean(g, h) ** 2).expand(shape)
