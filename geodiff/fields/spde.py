"""The SPDE prior: a non-stationary Matérn field with a sparse precision, at any size.

The field is ``x(s) = S(s) u(s)`` with

    (kappa(s)^2 - div H(s) grad)^(alpha/2) u = W,   alpha = nu + 1,
    kappa(s)^2 = nu / l(s)^2,   H(s) = R(angle(s)) diag(1, r(s)^2) R(angle(s))^T,

``W`` white noise and ``S(s) = sigma(s) / sigma_u(s)``, where ``sigma_u`` is the sd
that the stationary SPDE with the local ``kappa, H`` would have. With constant maps,
``x`` is GSTools' Matérn ``CovModel(var, len_scale=[l, r l], angles=angle, nu)``
(GSTools' ``sqrt(nu) r / l`` convention: ``kappa = sqrt(nu) / l``), up to the
discretisation. ``nu`` is 1 or 3 (``alpha`` 2 or 4: solves only, no matrix square root).

**Discretisation.** A field on a :class:`~geodiff.grid.Grid` is the crop of the
discretised SPDE (:mod:`geodiff.fields.sparse`) on the grid extended by a margin of
``margin * sqrt(8) * max l`` on every side (``sqrt(8) l`` is the Matérn's practical
range: correlation about 0.1), which keeps the Neumann boundary's effect small inside
the grid. ``benchmarks/bench_spde.py`` measures how small. The law of the grid values is
*exactly* that of the discretised prior, ``N(0, E Q_x^-1 E^T)`` with ``E`` the crop.

**Points.** Between arbitrary points the prior is the bilinear interpolant of the
discretised field on the lattice of spacing ``cell_size`` anchored at the origin (nodes
at integer multiples of ``cell_size``) that covers the prior's domain (and any point
outside it); on the grid of that lattice the two agree exactly.

**Translation invariance.** Parameter maps are :class:`~geodiff.fields.maps.SpectralMapPrior`
(stationary in physical coordinates, no knots tied to a domain), so a window of a large
grid has the prior of a grid of the window's size, up to the boundary effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from geodiff.errors import ConfigError, GeodiffError
from geodiff.fields.maps import SpectralMapPrior
from geodiff.fields.parameters import Fixed
from geodiff.fields.prior import LOCAL_PARAMETERS, GRFPrior, _anisotropy, _points
from geodiff.fields.sparse import SPDEOperator, assemble, matern_variance
from geodiff.grid import Grid

__all__ = ["SPDEGridOperator", "SPDEPrior", "lattice_bytes", "spde_operator"]

SPDE_NU = (1.0, 3.0)
PRACTICAL_RANGE = math.sqrt(8.0)  # practical range / length scale (kappa = sqrt(nu) / l)
_MIN_RATIO = 1e-6  # anisotropy ratios below this make H(s) numerically singular
_MARGIN_PROBES = 512  # grid lines per axis read for the margin's longest length scale
_BYTES_PER_FILL = 12.0 * 6.0  # bytes per (node * log2 nodes) of LU fill, measured at 300^2


def lattice_bytes(n_nodes: int, alpha: int = 2) -> float:
    """Estimated memory of one factorisation of a lattice matrix of ``n_nodes`` nodes.

    The precision of order ``alpha`` (``K (C^-1 K)^(alpha-1)``) has a stencil of radius
    ``alpha``; the LU fill of a nested-dissection order grows like ``radius^2 N log2 N``
    (calibrated on ``K``, radius 1; at radius 2 it overestimates the measured fill by 1.5x).
    """
    radius = max(1, alpha)
    return _BYTES_PER_FILL * radius**2 * n_nodes * math.log2(max(n_nodes, 2)) + 200.0 * n_nodes


@dataclass
class SPDEGridOperator:
    """The discretised prior of one parameter set for one grid.

    Attributes
    ----------
    operator : SPDEOperator
        On the extended lattice.
    lattice : Grid
        The grid extended by the margin (same spacing).
    crop : numpy.ndarray, int64, shape (H * W,)
        Lattice index of each grid node (row-major).
    grid : Grid
    """

    operator: SPDEOperator
    lattice: Grid
    crop: np.ndarray
    grid: Grid

    def sample(self, noise: np.ndarray) -> np.ndarray:
        """Grid fields from standard normals on the lattice: (N,) or (N, n) -> (H*W[, n])."""
        return self.operator.sample(noise)[self.crop]

    def crop_matrix(self) -> sp.csr_matrix:
        """``E``, shape (H * W, N): grid values from lattice values."""
        n = len(self.crop)
        return sp.csr_matrix((np.ones(n), (np.arange(n), self.crop)), shape=(n, self.operator.size))

    def covariance(self) -> np.ndarray:
        """The dense grid covariance ``E Q_x^-1 E^T`` (small grids only), shape (d, d)."""
        unit = self.crop_matrix().T.toarray()
        return self.operator.covariance_apply(unit)[self.crop]


class SPDEPrior(GRFPrior):
    """A non-stationary Matérn prior with a sparse precision (see the module docstring).

    Parameters
    ----------
    family : str
        ``"matern"``.
    cell_size : float, keyword-only
        The resolution of the prior between arbitrary points (physical units).
    margin : float, keyword-only
        The lattice margin, in practical ranges of the longest local length scale.
    **kwargs
        As :class:`~geodiff.fields.prior.GRFPrior`; maps are
        :class:`~geodiff.fields.maps.SpectralMapPrior`; ``nu`` is fixed to 1 or 3.
    """

    kind = "spde"

    def __init__(self, family: str = "matern", *, cell_size: float = 1.0, margin=1.0, **kwargs):
        super().__init__(family, **kwargs)
        if self.family.name != "matern":
            raise ConfigError(f"an SPDE prior is a Matérn field, got family {self.family.name!r}")
        nu = self.parameters["nu"]
        if not isinstance(nu, Fixed) or float(nu.value) not in SPDE_NU:
            raise ConfigError(f"an SPDE prior needs a fixed nu in {SPDE_NU}, got {nu.to_config()}")
        for key in self.map_parameters:
            if not isinstance(self.parameters[key], SpectralMapPrior):
                raise ConfigError(
                    f"the {key} map of an SPDE prior must be spectral (map = {{ modes = 64, "
                    "len_scale = ... }}): knots tie a map to one domain"
                )
        if self._has_nugget:
            raise ConfigError("an SPDE prior has no nugget; add measurement noise instead")
        for name, value in (("cell_size", cell_size), ("margin", margin)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        self.cell_size, self.margin = float(cell_size), float(margin)
        self.nu = float(nu.value)
        self.alpha = round(self.nu) + 1

    extends_beyond_domain = True

    @property
    def translation_invariant(self) -> bool:
        return True

    # ------------------------------------------------------------------ lattices
    def grid_maps(self, theta: dict, grid: Grid) -> dict:
        """Spatially varying parameters on a grid's nodes, each (B, H, W) (separably)."""
        xs = torch.as_tensor(grid.x, dtype=torch.float64)
        ys = torch.as_tensor(grid.y, dtype=torch.float64)
        out = {}
        for key in self.map_parameters:
            ck, sk, lk = self._map_keys(key)
            out[key] = self.parameters[key].lattice_values(xs, ys, theta[ck], theta[sk], theta[lk])
        return out

    def lattice_parameters(self, theta: dict, xs, ys, keys=LOCAL_PARAMETERS) -> dict:
        """Local parameters (the four by default) on the lattice ``xs x ys`` (one set).

        Returns
        -------
        dict of str to numpy.ndarray, each (H, W)
        """
        out = {}
        xs = torch.as_tensor(np.asarray(xs), dtype=torch.float64)
        ys = torch.as_tensor(np.asarray(ys), dtype=torch.float64)
        for key in keys:
            prior = self.parameters[key]
            if isinstance(prior, SpectralMapPrior):
                ck, sk, lk = self._map_keys(key)
                value = prior.lattice_values(xs, ys, theta[ck], theta[sk], theta[lk])[0]
            else:
                value = theta[key][0].expand(len(ys), len(xs))
            out[key] = value.detach().cpu().numpy()
        return out

    def _check_local(self, local: dict, spacing: tuple[float, float]) -> None:
        ratio, ell = local["anis_ratio"], local["length_scale"]
        for key, values in local.items():
            if not np.all(np.isfinite(values)):
                raise GeodiffError(f"the {key} map of prior {self.name!r} is not finite")
        if np.any(ratio < _MIN_RATIO):
            raise GeodiffError(
                f"the anisotropy ratio reaches {ratio.min():.3g}: H(s) = R diag(1, r^2) R^T is "
                "singular there; keep anis_ratio well above 0"
            )
        minor = PRACTICAL_RANGE * ell * np.minimum(ratio, 1.0)
        cell = max(spacing)
        if minor.min() < cell:
            raise GeodiffError(
                f"the practical range of the minor axis (sqrt(8) r l) reaches {minor.min():.3g}, "
                f"below the cell size {cell:.3g}: the lattice cannot resolve it; choose a finer "
                "grid or longer length scales"
            )

    def grid_operator(self, grid: Grid, theta: dict) -> SPDEGridOperator:
        """The discretised prior of one parameter set on ``grid`` (a batch of 1).

        Raises
        ------
        GeodiffError
            A map that makes ``H(s)`` singular, a range below the cell size, or a lattice
            too large for memory (estimated before anything is allocated).
        """
        from geodiff.machine import check_memory

        if next(iter(theta.values())).shape[0] != 1:
            raise GeodiffError("an SPDE operator takes one parameter set (a batch of 1)")
        spacing = grid.spacing  # (dy, dx)
        hint = "choose a smaller --grid, or shorter length scales"
        size = f"{grid.shape[0]}x{grid.shape[1]}"
        check_memory(lattice_bytes(grid.n_nodes, self.alpha), f"the SPDE lattice of a {size} grid",
                     hint)  # fmt: skip
        # the margin follows the longest length scale on the grid (read every `stride`
        # nodes on large grids: the maps vary over many cells)
        stride = max(1, math.ceil(max(grid.shape) / _MARGIN_PROBES))
        ell = self.lattice_parameters(theta, grid.x[::stride], grid.y[::stride],
                                      keys=("length_scale",))["length_scale"]  # fmt: skip
        reach = self.margin * PRACTICAL_RANGE * float(ell.max())
        my, mx = (math.ceil(reach / s) for s in spacing)
        h, w = grid.shape[0] + 2 * my, grid.shape[1] + 2 * mx
        check_memory(
            lattice_bytes(h * w, self.alpha),
            f"the SPDE lattice of {h}x{w} nodes ({grid.shape[0]}x{grid.shape[1]} grid with "
            f"its margin)",
            hint,
        )
        (x0, x1), (y0, y1) = grid.extent
        lattice = Grid(
            (h, w), ((x0 - mx * spacing[1], x1 + mx * spacing[1]),
                     (y0 - my * spacing[0], y1 + my * spacing[0])),
        )  # fmt: skip
        rows = np.arange(my, my + grid.shape[0])[:, None] * w
        crop = (rows + np.arange(mx, mx + grid.shape[1])[None, :]).ravel()
        operator = self._operator(theta, lattice)
        return SPDEGridOperator(operator, lattice, crop, grid)

    def _operator(self, theta: dict, lattice: Grid) -> SPDEOperator:
        at_nodes = self.lattice_parameters(theta, lattice.x, lattice.y)
        self._check_local(at_nodes, lattice.spacing)
        return spde_operator(lattice, self.nu, at_nodes)

    def window(self, shape) -> Grid:
        """A grid of ``shape = (H, W)`` nodes at the prior's ``cell_size``, from the
        domain's lower-left corner: a larger shape is a larger window, not finer cells."""
        (x0, _), (y0, _) = self.domain
        h, w = (int(s) for s in shape)
        return Grid((h, w), ((x0, x0 + (w - 1) * self.cell_size),
                             (y0, y0 + (h - 1) * self.cell_size)))  # fmt: skip

    def point_lattice(self, points) -> Grid:
        """The grid of spacing ``cell_size``, anchored at the origin, that covers the
        prior's domain and ``points``: the same for any points inside the domain, so that
        the covariance between two points does not depend on which others are asked.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        (dx0, dx1), (dy0, dy1) = self.domain
        h = self.cell_size
        lo = np.floor(np.minimum(pts.min(0, initial=np.inf), [dx0, dy0]) / h + 1e-9) * h
        hi = np.ceil(np.maximum(pts.max(0, initial=-np.inf), [dx1, dy1]) / h - 1e-9) * h
        hi = np.maximum(hi, lo + h)
        shape = (round((hi[1] - lo[1]) / h) + 1, round((hi[0] - lo[0]) / h) + 1)
        return Grid(shape, ((lo[0], hi[0]), (lo[1], hi[1])))

    # ---------------------------------------------------------------- covariance
    def covariance(self, x, y, theta: dict, *, nugget: bool = True) -> torch.Tensor:
        """Covariance of the discretised prior between two point sets (see module docs).

        One sparse factorisation per parameter set and one pair of solves per point of
        ``y``; not differentiable in ``theta``.

        Returns
        -------
        torch.Tensor, float64, shape (B, n, m)
        """
        x, y = _points(x), _points(y)
        device = next(iter(theta.values())).device
        both = torch.cat([x, y]).cpu().numpy()
        core = self.point_lattice(both)
        batch = next(iter(theta.values())).shape[0]
        out = torch.empty(batch, len(x), len(y), dtype=torch.float64)
        for b in range(batch):
            one = {k: v[b : b + 1] for k, v in theta.items()}
            grid_op = self.grid_operator(core, one)
            wx = _weights(grid_op, x.cpu().numpy())
            wy = _weights(grid_op, y.cpu().numpy())
            out[b] = torch.as_tensor(wx @ grid_op.operator.covariance_apply(wy.T.toarray()))
        return out.to(device)

    def to_config(self) -> dict:
        config = super().to_config()
        config["cell_size"] = self.cell_size
        config["margin"] = self.margin
        return config


def spde_operator(lattice: Grid, nu: float, local: dict) -> SPDEOperator:
    """The discretised SPDE of the module docstring for maps given at the lattice nodes.

    Parameters
    ----------
    lattice : Grid
    nu : float
        1 or 3.
    local : dict of str to numpy.ndarray, each (H, W)
        ``variance, length_scale, anis_ratio, angle`` at the lattice nodes; a square
        takes the mean of its four corners' values.

    Returns
    -------
    SPDEOperator
    """
    at_squares = {
        k: 0.25 * (v[:-1, :-1] + v[:-1, 1:] + v[1:, :-1] + v[1:, 1:]) for k, v in local.items()
    }
    ratio, angle = (torch.as_tensor(at_squares[k]) for k in ("anis_ratio", "angle"))
    h11, h12, h22, _ = (t.numpy() for t in _anisotropy(torch.ones_like(ratio), ratio, angle))
    kappa2 = nu / at_squares["length_scale"] ** 2
    stiffness, mass = assemble(lattice.shape, lattice.spacing, kappa2, h11, h12, h22)
    node_var = matern_variance(nu, nu / local["length_scale"] ** 2, local["anis_ratio"] ** 2)
    scale = np.sqrt(local["variance"] / node_var).ravel()
    return SPDEOperator(stiffness, mass, scale, round(nu) + 1, lattice.shape)


def _weights(grid_op: SPDEGridOperator, points: np.ndarray) -> sp.csr_matrix:
    """Bilinear weights of points on the lattice, shape (n, N)."""
    rows, cols, weights = grid_op.lattice.interpolation_weights(points)
    return sp.csr_matrix((weights, (rows, cols)), shape=(len(points), grid_op.operator.size))
