"""Sparse SPDE operators on a regular lattice: assembly, factorisation, exact draws.

The SPDE ``(kappa^2 - div H grad)^(alpha/2) u = W`` (Lindgren, Rue & Lindström 2011;
a locally varying ``H`` as in Fuglstad et al. 2015) is discretised on a lattice of
``(H, W)`` nodes with spacings ``(hy, hx)``. Each lattice square carries its own
``kappa^2`` and ``H`` (evaluated at its centre) and adds to the quadratic form
``u^T K u ~ integral kappa^2 u^2 + grad u^T H grad u`` over the square:

* ``kappa^2 hx hy / 4`` on each of its four corners (lumped mass);
* ``hx hy [h11 (a^2 + b^2) / 2 + h22 (c^2 + d^2) / 2 + h12 (a + b)(c + d) / 2]`` where
  ``a, b`` are the x-differences along its bottom and top edges and ``c, d`` the
  y-differences along its left and right edges (each divided by the spacing).

Every edge difference appears with its own square, so there is no checkerboard null
space; the form is positive semi-definite whenever ``H`` is positive definite (write
``a, b = p +- q``: it is at least ``h11 p^2 + 2 h12 p r + h22 r^2``); the stencil has 9
points; the boundary condition is the natural (Neumann) one. The mass matrix ``C`` is
diagonal: ``hx hy / 4`` per square touching the node.

With ``alpha = 2k`` the precision is ``Q = K (C^-1 K)^(alpha - 1)``; ``Q = L L^T`` with
``L = (K C^-1)^(k - 1) K C^-1/2``, so an exact draw of ``N(0, Q^-1)`` is
``(K^-1 C)^(k - 1) K^-1 C^1/2 z``: ``k`` solves with one factorisation of ``K``. A
diagonal scale ``S`` (the variance map) makes the field ``x = S u``, of precision
``S^-1 Q S^-1``: applied exactly.

Factorisations use SuperLU (scipy) on a nested-dissection ordering of the lattice,
computed geometrically, with separators as wide as the matrix's stencil: at 294 x 294 it
factorises ``K`` at least as fast as SuperLU's minimum-degree order and twice as fast as
COLAMD, and the posterior precision (radius 2) 15x faster on two-line separators than on
one-line ones (``benchmarks/bench_spde.py``, section "The engine's choices").
"""

from __future__ import annotations

import math
from functools import cached_property, lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from geodiff.errors import GeodiffError

__all__ = ["SPDEOperator", "SparseFactor", "assemble", "matern_variance", "nested_dissection"]

_LEAF = 16  # nodes per leaf block of the nested dissection
# corner order of a square: (i, j), (i, j+1), (i+1, j), (i+1, j+1)
_DX_BOTTOM = np.array([-1.0, 1.0, 0.0, 0.0])
_DX_TOP = np.array([0.0, 0.0, -1.0, 1.0])
_DY_LEFT = np.array([-1.0, 0.0, 1.0, 0.0])
_DY_RIGHT = np.array([0.0, -1.0, 0.0, 1.0])


def nested_dissection(shape: tuple[int, int], width: int = 1) -> np.ndarray:
    """A fill-reducing elimination order of a lattice's nodes (row-major indices).

    Splits the longer side by a separator of ``width`` lines (the stencil's radius),
    orders both halves recursively, then the separator.

    Returns
    -------
    numpy.ndarray, int64, shape (H * W,)
    """
    h, w = shape
    out = _dissect(np.arange(h * w).reshape(h, w), int(width))
    return np.concatenate(out)


@lru_cache(maxsize=16)
def _order(shape: tuple[int, int], width: int) -> np.ndarray:
    """:func:`nested_dissection`, kept for the lattices in use (read-only)."""
    order = nested_dissection(shape, width)
    order.flags.writeable = False
    return order


def _dissect(block: np.ndarray, width: int) -> list[np.ndarray]:
    bh, bw = block.shape
    if bh * bw <= _LEAF or min(bh, bw) <= 2 * width + 1:
        return [block.ravel()]
    if bh >= bw:
        m = (bh - width) // 2
        first, sep, second = block[:m], block[m : m + width], block[m + width :]
    else:
        m = (bw - width) // 2
        first, sep, second = block[:, :m], block[:, m : m + width], block[:, m + width :]
    return [*_dissect(first, width), *_dissect(second, width), sep.ravel()]


class SparseFactor:
    """LU factors of a symmetric positive definite lattice matrix, in a fixed order.

    Parameters
    ----------
    matrix : scipy.sparse matrix, shape (N, N)
    order : numpy.ndarray, shape (N,)
        Elimination order (see :func:`nested_dissection`).
    what : str
        Named in the error when the matrix is singular.
    """

    def __init__(self, matrix, order: np.ndarray, what: str = "SPDE operator"):
        self.order = order
        self.inverse_order = np.empty_like(order)
        self.inverse_order[order] = np.arange(len(order))
        coo = sp.coo_matrix(matrix)
        inverse = self.inverse_order
        permuted = sp.csc_matrix((coo.data, (inverse[coo.row], inverse[coo.col])), shape=coo.shape)
        try:
            self._lu = spla.splu(
                permuted,
                permc_spec="NATURAL",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
        except RuntimeError as err:  # "Factor is exactly singular"
            raise GeodiffError(f"the {what} is singular: {err}") from None
        diagonal = self._lu.U.diagonal()
        if not np.all(np.isfinite(diagonal)) or np.any(diagonal <= 0):
            raise GeodiffError(f"the {what} is not positive definite")
        self._diagonal = diagonal

    @property
    def nnz(self) -> int:
        """Non-zeros of both factors (memory: about 12 bytes each)."""
        return int(self._lu.L.nnz + self._lu.U.nnz)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``matrix^-1 rhs`` for ``rhs`` of shape (N,) or (N, k)."""
        rhs = np.asarray(rhs, dtype=np.float64)
        return self._lu.solve(np.ascontiguousarray(rhs[self.order]))[self.inverse_order]

    def logdet(self) -> float:
        """``log det(matrix)`` (the unit lower factor contributes nothing)."""
        return float(np.log(self._diagonal).sum())


def assemble(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    kappa2: np.ndarray,
    h11: np.ndarray,
    h12: np.ndarray,
    h22: np.ndarray,
) -> tuple[sp.csc_matrix, np.ndarray]:
    """The stiffness-plus-mass matrix ``K`` and the lumped mass of a lattice.

    Parameters
    ----------
    shape : (int, int)
        Lattice nodes ``(H, W)``.
    spacing : (float, float)
        ``(hy, hx)``.
    kappa2, h11, h12, h22 : numpy.ndarray, shape (H - 1, W - 1)
        ``kappa^2`` and the entries of ``H`` at each square's centre.

    Returns
    -------
    K : scipy.sparse.csc_matrix, shape (H * W, H * W)
    mass : numpy.ndarray, shape (H * W,)
    """
    h, w = shape
    hy, hx = spacing
    area = hx * hy
    nodes = np.arange(h * w).reshape(h, w)
    corners = np.stack(
        [nodes[:-1, :-1], nodes[:-1, 1:], nodes[1:, :-1], nodes[1:, 1:]], axis=-1
    ).reshape(-1, 4)
    a, b = _DX_BOTTOM / hx, _DX_TOP / hx
    c, d = _DY_LEFT / hy, _DY_RIGHT / hy
    p, q = a + b, c + d
    xx = 0.5 * (np.outer(a, a) + np.outer(b, b))
    yy = 0.5 * (np.outer(c, c) + np.outer(d, d))
    xy = 0.25 * (np.outer(p, q) + np.outer(q, p))
    k2, e11, e12, e22 = (
        np.asarray(v, dtype=np.float64).reshape(-1) for v in (kappa2, h11, h12, h22)
    )
    local = area * (
        e11[:, None, None] * xx
        + e22[:, None, None] * yy
        + e12[:, None, None] * xy
        + (0.25 * k2)[:, None, None] * np.eye(4)
    )
    rows = np.repeat(corners, 4, axis=1).ravel()
    cols = np.tile(corners, (1, 4)).ravel()
    matrix = sp.coo_matrix((local.ravel(), (rows, cols)), shape=(h * w, h * w)).tocsc()
    mass = np.bincount(corners.ravel(), minlength=h * w) * (0.25 * area)
    return matrix, mass


class SPDEOperator:
    """The discretised SPDE prior of one parameter set on a lattice.

    Parameters
    ----------
    stiffness : scipy.sparse.csc_matrix, shape (N, N)
        ``K`` from :func:`assemble`.
    mass : numpy.ndarray, shape (N,)
        The lumped mass ``C``.
    scale : numpy.ndarray, shape (N,)
        The diagonal ``S`` of ``x = S u`` (the field's sd over the SPDE's sd).
    alpha : int
        An even SPDE order: 2 (Matérn nu = 1) or 4 (nu = 3).
    lattice_shape : (int, int)
        ``(H, W)`` of the lattice; node ``r * W + c`` is row ``r``, column ``c``.
    """

    def __init__(self, stiffness, mass, scale, alpha: int, lattice_shape):
        if alpha % 2 or alpha < 2:
            raise GeodiffError(f"the SPDE order alpha must be even and >= 2, got {alpha}")
        self.stiffness = sp.csc_matrix(stiffness)
        self.mass = np.asarray(mass, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.alpha = int(alpha)
        self.lattice_shape = tuple(int(s) for s in lattice_shape)

    @property
    def size(self) -> int:
        return self.stiffness.shape[0]

    @cached_property
    def order(self) -> np.ndarray:
        """Nested-dissection order wide enough for the precision's stencil (radius alpha).

        Separators one line wide would not separate a radius-2 stencil: the posterior
        precision's factorisation then takes 14x longer (``benchmarks/bench_spde.py``)."""
        return _order(self.lattice_shape, self.alpha)

    @cached_property
    def factor(self) -> SparseFactor:
        """Factors of ``K`` (computed once, on first use)."""
        return SparseFactor(self.stiffness, _order(self.lattice_shape, 1), "SPDE operator K")

    def _columns(self, values) -> tuple[np.ndarray, bool]:
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape[0] != self.size:
            raise GeodiffError(f"expected {self.size} lattice values, got {arr.shape[0]}")
        return (arr[:, None], True) if arr.ndim == 1 else (arr, False)

    def sample(self, noise) -> np.ndarray:
        """Exact draws ``x = S (K^-1 C)^(k-1) K^-1 C^1/2 z`` of ``N(0, Q_x^-1)``.

        Parameters
        ----------
        noise : numpy.ndarray, shape (N,) or (N, n)
            Standard normal ``z``.

        Returns
        -------
        numpy.ndarray, same shape as ``noise``
        """
        z, flat = self._columns(noise)
        x = self.factor.solve(np.sqrt(self.mass)[:, None] * z)
        for _ in range(self.alpha // 2 - 1):
            x = self.factor.solve(self.mass[:, None] * x)
        x = self.scale[:, None] * x
        return x[:, 0] if flat else x

    def precision_sqrt_apply(self, noise) -> np.ndarray:
        """``L_x z`` with ``L_x L_x^T = Q_x``: a draw of ``N(0, Q_x)`` from standard normals."""
        z, flat = self._columns(noise)
        v = self.stiffness @ (z / np.sqrt(self.mass)[:, None])
        for _ in range(self.alpha // 2 - 1):
            v = self.stiffness @ (v / self.mass[:, None])
        v = v / self.scale[:, None]
        return v[:, 0] if flat else v

    def covariance_apply(self, values) -> np.ndarray:
        """``Q_x^-1 v = S (K^-1 C)^(alpha-1) K^-1 S v``."""
        v, flat = self._columns(values)
        x = self.factor.solve(self.scale[:, None] * v)
        for _ in range(self.alpha - 1):
            x = self.factor.solve(self.mass[:, None] * x)
        x = self.scale[:, None] * x
        return x[:, 0] if flat else x

    def precision(self) -> sp.csc_matrix:
        """``Q_x = S^-1 K (C^-1 K)^(alpha-1) S^-1``, sparse."""
        q = self.stiffness
        inv_mass = sp.diags(1.0 / self.mass)
        for _ in range(self.alpha - 1):
            q = q @ inv_mass @ self.stiffness
        inv_scale = sp.diags(1.0 / self.scale)
        return (inv_scale @ q @ inv_scale).tocsc()

    def logdet_precision(self) -> float:
        """``log det Q_x = alpha log det K - (alpha-1) sum log C - 2 sum log S``."""
        return (
            self.alpha * self.factor.logdet()
            - (self.alpha - 1) * float(np.log(self.mass).sum())
            - 2.0 * float(np.log(self.scale).sum())
        )

    def factor_with(self, diagonal_or_matrix, what: str) -> SparseFactor:
        """Factors of ``Q_x + D`` for a sparse (or diagonal, given as (N,)) ``D``."""
        extra = diagonal_or_matrix
        if isinstance(extra, np.ndarray) and extra.ndim == 1:
            extra = sp.diags(extra)
        return SparseFactor(self.precision() + extra, self.order, what)


def matern_variance(nu: float, kappa2, det_h) -> np.ndarray:
    """Variance of the stationary solution, ``G(nu) / (G(nu+1) 4 pi kappa^2nu sqrt|H|)``."""
    return (
        math.gamma(nu)
        / (math.gamma(nu + 1) * 4 * math.pi)
        / (np.asarray(kappa2) ** nu * np.sqrt(det_h))
    )
