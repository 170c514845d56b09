"""Observations of a field and the linear operators that link them to it.

Every observation is a linear functional of the field, written as a weighted sum of the
field's values at *support points*: ``y = W x(P) + eps``, ``eps ~ N(0, diag(tau^2))``,
with ``P`` of shape ``(m, 2)`` and ``W`` sparse of shape ``(n, m)``.

* Points observed exactly: ``P`` are the points, ``W = I`` (the continuous-field model a
  geostatistician uses; kriging and MCMC then need the covariance at the points only).
* Block means (the mean of the field over a rectangle): ``P`` is a Gauss–Legendre rule
  inside each rectangle, ``W`` its normalised weights.
* On a grid (:meth:`ObservationOperator.on_grid`): ``P`` are the grid nodes an
  observation touches and ``W`` the bilinear (or nearest-node) weights — for points,
  the interpolant's value; for blocks, the exact mean of the bilinear interpolant over
  the rectangle. This is the model of a field that lives on the grid, the one the
  diffusion prior learns: ``y = A x_grid + eps`` with ``A = grid_matrix(grid)``.

Kriging, MCMC and the posterior samplers all take an :class:`Observations` and work for
any of these operators.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from geodiff.errors import GeodiffError
from geodiff.grid import Grid

__all__ = [
    "MissingNoiseError",
    "ObservationOperator",
    "Observations",
    "block_mean_operator",
    "point_operator",
    "read_points_csv",
]

_DUPLICATE_POLICIES = ("reject", "merge")
#: observed values beyond this size are refused: their squares would overflow float64
MAX_ABS_VALUE = 1e150
#: points (or blocks) closer than this fraction of the data's bounding-box diagonal are
#: one location: their covariance rows are equal to rounding, and kriging breaks down
NEAR_DUPLICATE_FRACTION = 1e-6
_GRID_METHODS = ("bilinear", "nearest")
_POINT_COLUMNS = ("x", "y")
_BLOCK_COLUMNS = ("x_min", "x_max", "y_min", "y_max")


class MissingNoiseError(GeodiffError):
    """A file without a noise_sd column, read without a noise sd."""


@dataclass(frozen=True, eq=False)
class ObservationOperator:
    """Linear functionals ``W x(P)`` of a field.

    Attributes
    ----------
    support : numpy.ndarray, shape (m, 2)
        Points at which the field is evaluated.
    weights : scipy.sparse.csr_matrix, shape (n, m)
        Weight of each support point in each functional.
    locations : numpy.ndarray, shape (n, 2)
        Where each functional sits (the point, or the centre of the block), for plots,
        domain checks and duplicate detection.
    blocks : numpy.ndarray, shape (n, 4), optional
        ``(x_min, x_max, y_min, y_max)`` of each block, for block means.
    grid : Grid, optional
        The grid the operator lives on, when built by :meth:`on_grid`.
    method : str, optional
        The grid interpolation, ``"bilinear"`` or ``"nearest"``, when on a grid.
    """

    support: np.ndarray
    weights: sp.csr_matrix
    locations: np.ndarray
    blocks: np.ndarray | None = None
    grid: Grid | None = None
    method: str | None = None

    def __len__(self) -> int:
        return self.weights.shape[0]

    @property
    def is_identity(self) -> bool:
        """True when the functionals are the field's values at the support points."""
        return self.blocks is None and self.grid is None

    @property
    def kind(self) -> str:
        """``"points"`` or ``"blocks"``, with ``"@grid"`` appended on a grid."""
        base = "points" if self.blocks is None else "blocks"
        return base if self.grid is None else f"{base}@grid"

    def check_inside(self, extent, what: str = "the domain") -> None:
        """Raise a clear error when a point or block leaves ``extent``."""
        (x0, x1), (y0, y1) = extent
        tol = 1e-9 * max(x1 - x0, y1 - y0)
        if self.blocks is None:
            lo = hi = self.locations
        else:
            lo, hi = self.blocks[:, [0, 2]], self.blocks[:, [1, 3]]
        outside = (
            (lo[:, 0] < x0 - tol)
            | (hi[:, 0] > x1 + tol)
            | (lo[:, 1] < y0 - tol)
            | (hi[:, 1] > y1 + tol)
        )
        if outside.any():
            k = int(np.argmax(outside))
            x, y = self.locations[k]
            raise GeodiffError(
                f"{int(outside.sum())} observation(s) lie outside {what} "
                f"{_format_extent(extent)}, first #{k} at ({x:.6g}, {y:.6g})"
            )

    def apply(self, values_at_support) -> torch.Tensor:
        """The functionals of a field given by its values at the support points.

        Parameters
        ----------
        values_at_support : torch.Tensor, shape (..., m)

        Returns
        -------
        torch.Tensor, shape (..., n)
        """
        values = torch.as_tensor(values_at_support)
        w = torch.as_tensor(self.weights.toarray(), dtype=values.dtype, device=values.device)
        return values @ w.T

    def covariance(self, prior, theta: dict, other: ObservationOperator | None = None):
        """Covariance ``W C(P, P') W'^T`` between these functionals and ``other``'s.

        Parameters
        ----------
        prior : GRFPrior
        theta : dict
            Parameters with a leading batch dimension ``B``.
        other : ObservationOperator, optional
            Defaults to ``self``.

        Returns
        -------
        torch.Tensor, float64, shape (B, n, n_other)
        """
        other = self if other is None else other
        device = next(iter(theta.values())).device
        cov = prior.covariance(self.support, other.support, theta)
        if self.is_identity and other.is_identity:  # points off any grid: W = I
            return cov
        left = torch.as_tensor(self.weights.toarray(), dtype=cov.dtype, device=device)
        right = (
            left
            if other is self
            else torch.as_tensor(other.weights.toarray(), dtype=cov.dtype, device=device)
        )
        return left @ cov @ right.T

    def on_grid(self, grid: Grid, method: str = "bilinear") -> ObservationOperator:
        """The same observations of a field that lives on ``grid`` (see module docs).

        Parameters
        ----------
        grid : Grid
        method : {"bilinear", "nearest"}
            How a grid field is read at a point; block means always integrate the
            bilinear interpolant exactly.

        Returns
        -------
        ObservationOperator
            Support: the grid nodes the observations touch.
        """
        if method not in _GRID_METHODS:
            raise GeodiffError(f"unknown grid method {method!r}; choose from {_GRID_METHODS}")
        self.check_inside(grid.extent, "the grid")
        full = _grid_matrix(self, grid, method)
        used = np.unique(full.indices)
        return ObservationOperator(
            support=grid.points()[used],
            weights=full[:, used].tocsr(),
            locations=self.locations,
            blocks=self.blocks,
            grid=grid,
            method=method,
        )

    def grid_matrix(self, grid: Grid, method: str = "bilinear", *, dtype=torch.float64):
        """The operator ``A`` with ``A @ field.reshape(-1)`` giving the observations.

        Returns
        -------
        torch.Tensor, sparse COO, shape (n, H * W)
        """
        if self.grid is not None and self.grid != grid:
            raise GeodiffError("this operator lives on another grid")
        method = self.method or method
        if method not in _GRID_METHODS:
            raise GeodiffError(f"unknown grid method {method!r}; choose from {_GRID_METHODS}")
        self.check_inside(grid.extent, "the grid")
        coo = _grid_matrix(self, grid, method).tocoo()
        index = torch.as_tensor(np.stack([coo.row, coo.col]), dtype=torch.long)
        values = torch.as_tensor(coo.data, dtype=dtype)
        return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True).coalesce()

    def weights_on(self, grid: Grid) -> sp.csr_matrix:
        """The operator as scipy weights on any grid that contains its support, (n, H*W).

        Unlike :meth:`grid_matrix`, the grid may be a larger lattice around the one the
        operator lives on (the SPDE engine's extended lattice): grid-node supports map to
        their nearest lattice node, points and blocks as in :meth:`on_grid`.
        """
        return _grid_matrix(self, grid, self.method or "bilinear")

    def subset(self, keep) -> ObservationOperator:
        """The operator restricted to the functionals ``keep`` (indices or a mask)."""
        keep = np.arange(len(self))[keep]
        weights = self.weights[keep]
        used = np.unique(weights.indices)
        return ObservationOperator(
            support=self.support[used],
            weights=weights[:, used].tocsr(),
            locations=self.locations[keep],
            blocks=None if self.blocks is None else self.blocks[keep],
            grid=self.grid,
            method=self.method,
        )


def _format_extent(extent) -> str:
    (x0, x1), (y0, y1) = extent
    return f"[{x0:.6g}, {x1:.6g}] x [{y0:.6g}, {y1:.6g}]"


def _as_points(points, what: str = "coordinates") -> np.ndarray:
    try:
        pts = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as err:
        raise GeodiffError(f"{what} must be numbers: {err}") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise GeodiffError(f"{what} must have shape (n, 2), got {pts.shape}")
    bad = ~np.isfinite(pts).all(1)
    if bad.any():
        raise GeodiffError(f"{what} contain NaN or infinite values, first at row {np.argmax(bad)}")
    return pts


def point_operator(points) -> ObservationOperator:
    """The values of the field at points.

    Parameters
    ----------
    points : array_like, shape (n, 2)
        ``(x, y)`` coordinates.
    """
    pts = _as_points(points)
    return ObservationOperator(pts, sp.identity(len(pts), format="csr"), pts)


def block_mean_operator(blocks, order: int = 6) -> ObservationOperator:
    """The means of the field over rectangles.

    Parameters
    ----------
    blocks : array_like, shape (n, 4)
        ``(x_min, x_max, y_min, y_max)`` of each rectangle.
    order : int
        Gauss–Legendre points per axis of the quadrature of each mean (``order**2``
        support points per block) in the continuous model; the grid model
        (:meth:`ObservationOperator.on_grid`) integrates exactly.
    """
    try:
        b = np.asarray(blocks, dtype=float)
    except (TypeError, ValueError) as err:
        raise GeodiffError(f"blocks must be numbers: {err}") from None
    if b.ndim != 2 or b.shape[1] != 4:
        raise GeodiffError(
            f"blocks must have shape (n, 4) as (x_min, x_max, y_min, y_max), got {b.shape}"
        )
    if not np.isfinite(b).all():
        raise GeodiffError("blocks contain NaN or infinite bounds")
    flat = (b[:, 1] <= b[:, 0]) | (b[:, 3] <= b[:, 2])
    if flat.any():
        raise GeodiffError(
            f"block #{int(np.argmax(flat))} has x_max <= x_min or y_max <= y_min; "
            "observe a point instead of an empty rectangle"
        )
    if not isinstance(order, int) or order < 1:
        raise GeodiffError(f"quadrature order must be a positive integer, got {order!r}")
    nodes, w = np.polynomial.legendre.leggauss(order)
    u, v = (nodes + 1) / 2, w / 2  # rule on [0, 1]
    uu, vv = np.meshgrid(u, u, indexing="ij")
    ww = np.outer(v, v).ravel()
    xs = b[:, 0, None] + (b[:, 1] - b[:, 0])[:, None] * uu.ravel()[None]
    ys = b[:, 2, None] + (b[:, 3] - b[:, 2])[:, None] * vv.ravel()[None]
    support = np.stack([xs.ravel(), ys.ravel()], 1)
    q = order * order
    rows = np.repeat(np.arange(len(b)), q)
    weights = sp.csr_matrix(
        (np.tile(ww, len(b)), (rows, np.arange(len(b) * q))), (len(b), len(b) * q)
    )
    centres = np.stack([(b[:, 0] + b[:, 1]) / 2, (b[:, 2] + b[:, 3]) / 2], 1)
    return ObservationOperator(support, weights, centres, blocks=b)


def _grid_matrix(op: ObservationOperator, grid: Grid, method: str) -> sp.csr_matrix:
    """(n, H*W) weights of ``op`` on a grid field (see :meth:`ObservationOperator.on_grid`)."""
    if op.grid is not None:  # already on a grid: scatter the compact support back
        nodes = _node_index(op.support, grid)
        coo = op.weights.tocoo()
        return sp.csr_matrix((coo.data, (coo.row, nodes[coo.col])), (len(op), grid.n_nodes))
    if op.blocks is None:
        rows, cols, w = grid.interpolation_weights(op.locations, method)
        return sp.csr_matrix((w, (rows, cols)), (len(op), grid.n_nodes))
    wx = np.stack([_hat_means(grid.x, lo, hi) for lo, hi in op.blocks[:, :2]])  # (n, W)
    wy = np.stack([_hat_means(grid.y, lo, hi) for lo, hi in op.blocks[:, 2:]])  # (n, H)
    dense = (wy[:, :, None] * wx[:, None, :]).reshape(len(op), -1)  # row-major (i, j)
    dense[np.abs(dense) < 1e-15] = 0.0
    return sp.csr_matrix(dense)


def _node_index(points: np.ndarray, grid: Grid) -> np.ndarray:
    _, cols, _ = grid.interpolation_weights(points, "nearest")
    return cols


def _hat_means(nodes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Mean over ``[lo, hi]`` of each piecewise-linear hat function on ``nodes``.

    The interval is cut at the nodes; on each piece every hat function is linear, so the
    trapezoid rule is exact.
    """
    inner = nodes[(nodes > lo) & (nodes < hi)]
    cuts = np.concatenate([[lo], inner, [hi]])
    out = np.zeros(len(nodes))
    for a, b in itertools.pairwise(cuts):
        out += 0.5 * (b - a) * (_hats_at(nodes, a) + _hats_at(nodes, b))
    return out / (hi - lo)


def _hats_at(nodes: np.ndarray, x: float) -> np.ndarray:
    """Values of every hat function at ``x`` (linear interpolation weights)."""
    out = np.zeros(len(nodes))
    k = int(np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, len(nodes) - 2))
    t = (x - nodes[k]) / (nodes[k + 1] - nodes[k])
    out[k], out[k + 1] = 1.0 - t, t
    return out


@dataclass(frozen=True, eq=False)
class Observations:
    """Observed values of linear functionals of a field, with their noise.

    Build with :meth:`at_points`, :meth:`of_blocks` or :meth:`from_csv`; every
    constructor validates its input and raises :class:`GeodiffError` with the offending
    row.

    Attributes
    ----------
    operator : ObservationOperator
    values : numpy.ndarray, shape (n,)
    noise_sd : numpy.ndarray, shape (n,)
        Standard deviation ``tau`` of the Gaussian measurement error (0 is noiseless).
    """

    operator: ObservationOperator
    values: np.ndarray
    noise_sd: np.ndarray = field(default=None)

    def __post_init__(self):
        values = np.asarray(self.values, dtype=float)
        n = len(self.operator)
        if values.shape != (n,):
            raise GeodiffError(f"expected {n} values, one per location, got shape {values.shape}")
        bad = ~np.isfinite(values)
        if bad.any():
            raise GeodiffError(
                f"{int(bad.sum())} observed value(s) are NaN or infinite, "
                f"first at index {int(np.argmax(bad))}"
            )
        big = np.abs(values) > MAX_ABS_VALUE
        if big.any():
            k = int(np.argmax(big))
            raise GeodiffError(
                f"observed value {values[k]:g} at index {k} is too large (|value| > "
                f"{MAX_ABS_VALUE:g}); rescale the values"
            )
        try:
            noise = np.broadcast_to(
                np.asarray(0.0 if self.noise_sd is None else self.noise_sd, dtype=float), (n,)
            ).copy()
        except (TypeError, ValueError) as err:
            raise GeodiffError(f"noise standard deviation: {err}") from None
        if not np.isfinite(noise).all() or (noise < 0).any():
            k = int(np.argmax(~np.isfinite(noise) | (noise < 0)))
            raise GeodiffError(
                f"noise standard deviation must be finite and >= 0, got {noise[k]:g} at index {k}"
            )
        if n == 0:
            raise GeodiffError("no observations")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "noise_sd", noise)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def at_points(cls, coords, values, noise_sd=0.0, *, duplicates: str = "reject") -> Observations:
        """Observations of the field's value at points.

        Parameters
        ----------
        coords : array_like, shape (n, 2)
        values : array_like, shape (n,)
        noise_sd : float or array_like of shape (n,)
        duplicates : {"reject", "merge"}
            Repeated coordinates are an error by default; ``"merge"`` replaces them by
            one observation of their mean value, with the noise of a mean
            (``sqrt(sum tau_i^2) / k``). Noiseless repeats that disagree stay an error.
            Points closer than :data:`NEAR_DUPLICATE_FRACTION` of the data's bounding-box
            diagonal count as repeats (the first one's coordinates are kept).
        """
        obs = cls(point_operator(coords), values, noise_sd)
        return obs._deduplicated(duplicates)

    @classmethod
    def of_blocks(cls, blocks, values, noise_sd=0.0, *, order: int = 6, duplicates: str = "reject"):
        """Observations of the field's mean over rectangles ``(x_min, x_max, y_min, y_max)``."""
        obs = cls(block_mean_operator(blocks, order), values, noise_sd)
        return obs._deduplicated(duplicates)

    @classmethod
    def from_csv(cls, path, noise_sd=None, *, duplicates: str = "reject", order: int = 6):
        """Read observations from a CSV file with a header row.

        Columns: ``x, y, value`` for points, or ``x_min, x_max, y_min, y_max, value``
        for block means, and optionally ``noise_sd``. Other columns are ignored.

        Parameters
        ----------
        path : str or Path
        noise_sd : float, optional
            Noise for every row; required unless the file has a ``noise_sd`` column
            (when both are given, the argument wins, but a bad column is still an error).

        Errors name the line of the file (as a text editor counts them, the header
        being line 1).
        """
        header, rows, lines = _read_csv(path)
        is_blocks = all(c in header for c in _BLOCK_COLUMNS)
        location_columns = _BLOCK_COLUMNS if is_blocks else _POINT_COLUMNS
        needed = (*location_columns, "value")
        missing = [c for c in needed if c not in header]
        if missing:
            raise GeodiffError(
                f"{path}: missing column(s) {missing}; expected a header with x, y, value "
                "(or x_min, x_max, y_min, y_max, value) and optionally noise_sd"
            )
        table = _numeric_columns(path, header, rows, lines, (*needed, "noise_sd"))
        for name in (*location_columns, "value", "noise_sd"):
            if name in table:
                _check_column(path, name, table[name], lines)
        if noise_sd is None:
            if "noise_sd" not in table:
                raise MissingNoiseError(
                    f"{path}: give the measurement noise, as a noise_sd column or an argument "
                    "(0 for noiseless observations)"
                )
            noise_sd = table["noise_sd"]
        locations = np.stack([table[c] for c in location_columns], 1)
        if is_blocks:
            op = block_mean_operator(locations, order)
        else:
            op = point_operator(locations)
        return cls(op, table["value"], noise_sd)._deduplicated(duplicates, lines)

    def to_csv(self, path) -> Path:
        """Write the observations in the format :meth:`from_csv` reads."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.operator.blocks is None:
            columns = [*_POINT_COLUMNS, "value", "noise_sd"]
            table = np.column_stack([self.operator.locations, self.values, self.noise_sd])
        else:
            columns = [*_BLOCK_COLUMNS, "value", "noise_sd"]
            table = np.column_stack([self.operator.blocks, self.values, self.noise_sd])
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([[repr(float(v)) for v in row] for row in table])
        return path

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return len(self.values)

    @property
    def locations(self) -> np.ndarray:
        """(n, 2) points, or block centres."""
        return self.operator.locations

    @property
    def noise_variance(self) -> np.ndarray:
        return self.noise_sd**2

    def on_grid(self, grid: Grid, method: str = "bilinear") -> Observations:
        """The same observations of a field that lives on ``grid``."""
        return Observations(self.operator.on_grid(grid, method), self.values, self.noise_sd)

    def subset(self, keep) -> Observations:
        """Observations ``keep`` (indices or a boolean mask)."""
        keep = np.arange(len(self))[keep]
        return Observations(self.operator.subset(keep), self.values[keep], self.noise_sd[keep])

    def check_inside(self, extent, what: str = "the domain") -> None:
        self.operator.check_inside(extent, what)

    # ------------------------------------------------------------------ duplicates
    def _deduplicated(self, policy: str, lines=None) -> Observations:
        """Refuse or merge repeated locations; ``lines``: each row's line in a file."""
        if policy not in _DUPLICATE_POLICIES:
            raise GeodiffError(
                f"unknown duplicates policy {policy!r}; choose from {_DUPLICATE_POLICIES}"
            )
        keys = self.operator.locations if self.operator.blocks is None else self.operator.blocks
        inverse, tol = _location_groups(keys)
        _, first, counts = np.unique(inverse, return_index=True, return_counts=True)
        if (counts == 1).all():
            return self
        group = int(np.argmax(counts > 1))
        rows = np.flatnonzero(inverse == group)
        if policy == "reject":
            exact = (keys[rows] == keys[rows[0]]).all()
            where = f"at {tuple(float(v) for v in np.round(keys[rows[0]], 9))}"
            if not exact:
                gap = float(np.abs(keys[rows] - keys[rows[0]]).max())
                where = (
                    f"{gap:.3g} apart near {tuple(float(v) for v in np.round(keys[rows[0]], 9))} "
                    f"(closer than {NEAR_DUPLICATE_FRACTION:g} of the data's extent, {tol:.3g}, "
                    "counts as one location)"
                )
            which = (
                f"rows {rows.tolist()}"
                if lines is None
                else f"lines {[int(lines[r]) for r in rows]}"
            )
            raise GeodiffError(
                f"{int((counts > 1).sum())} location(s) are observed more than once, "
                f"first {which} {where}; "
                "pass duplicates='merge' (--merge-duplicates) to average them"
            )
        order = np.sort(first)  # keep the first occurrence's position
        values, noise = [], []
        for k in order:
            members = np.flatnonzero(inverse == inverse[k])
            v, s = self.values[members], self.noise_sd[members]
            if (s == 0).all() and np.ptp(v) > 1e-12 * max(1.0, np.abs(v).max()):
                which = (
                    f"rows {members.tolist()}"
                    if lines is None
                    else f"lines {[int(lines[r]) for r in members]}"
                )
                raise GeodiffError(
                    f"noiseless observations at {which} repeat a location with "
                    f"different values {v.tolist()}; give their noise_sd"
                )
            values.append(v.mean())
            noise.append(np.sqrt((s**2).sum()) / len(members))
        keys_kept = keys[order]
        if self.operator.blocks is None:
            op = point_operator(keys_kept)
        else:
            op = block_mean_operator(keys_kept, order=round(np.sqrt(self.operator.weights[0].nnz)))
        return Observations(op, np.array(values), np.array(noise))


def _location_groups(keys: np.ndarray) -> tuple[np.ndarray, float]:
    """A group label per row of ``keys``: rows equal or closer than the near-duplicate
    tolerance (:data:`NEAR_DUPLICATE_FRACTION` of the bounding box's diagonal) share one.

    Returns
    -------
    labels : numpy.ndarray of int, shape (n,)
    tol : float
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(keys)
    tol = NEAR_DUPLICATE_FRACTION * float(np.linalg.norm(keys.max(0) - keys.min(0)))
    pairs = cKDTree(keys).query_pairs(tol, output_type="ndarray")
    graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (n, n))
    _, labels = connected_components(graph, directed=False)
    return labels, tol


def read_points_csv(path) -> np.ndarray:
    """Target points from a CSV file with ``x`` and ``y`` columns (others ignored).

    Returns
    -------
    numpy.ndarray, shape (m, 2)
    """
    header, rows, lines = _read_csv(path)
    missing = [c for c in _POINT_COLUMNS if c not in header]
    if missing:
        raise GeodiffError(f"{path}: missing column(s) {missing}; expected a header with x, y")
    table = _numeric_columns(path, header, rows, lines, _POINT_COLUMNS)
    for name in _POINT_COLUMNS:
        _check_column(path, name, table[name], lines)
    return _as_points(np.stack([table["x"], table["y"]], 1), f"{path}: coordinates")


def _read_csv(path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each row's line number (1-based, as a text editor counts).

    Blank lines and lines starting with ``#`` are skipped; a UTF-8 byte-order mark is
    dropped; repeated column names are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise GeodiffError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            kept = [
                (number, line)
                for number, line in enumerate(f, start=1)
                if line.strip() and not line.startswith("#")
            ]
        rows = list(csv.reader(line for _, line in kept))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise GeodiffError(f"{path}: cannot read as CSV: {err}") from None
    if not rows:
        raise GeodiffError(f"{path}: empty file")
    # a quoted cell holding a newline joins lines: then count rows instead
    numbers = [n for n, _ in kept] if len(rows) == len(kept) else list(range(1, len(rows) + 1))
    header = [c.strip().lower() for c in rows[0]]
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    if repeated:
        raise GeodiffError(
            f"{path}, line {numbers[0]}: column name(s) {', '.join(repeated)} appear more than "
            "once in the header"
        )
    return header, rows[1:], numbers[1:]


def _check_column(path, name: str, values: np.ndarray, lines) -> None:
    """Refuse NaN or infinite cells, negative noise and overlarge values, by line."""
    none = np.zeros(len(values), bool)
    problems = [
        (~np.isfinite(values), "is NaN or infinite"),
        (
            (values < 0) if name == "noise_sd" else none,
            "is negative (a noise standard deviation must be >= 0)",
        ),
        (
            (np.abs(values) > MAX_ABS_VALUE) if name == "value" else none,
            f"is too large (|value| > {MAX_ABS_VALUE:g}); rescale the values",
        ),
    ]
    for bad, what in problems:
        if bad.any():
            k = int(np.argmax(bad))
            more = f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""
            raise GeodiffError(
                f"{path}: {name} column: {values[k]:g} at line {lines[k]}{more} {what}"
            )


def _numeric_columns(path, header, rows, lines, columns) -> dict[str, np.ndarray]:
    if not rows:
        raise GeodiffError(f"{path}: no observations below the header")
    out = {}
    for name in columns:
        if name not in header:
            continue
        col = header.index(name)
        values = []
        for line, row in zip(lines, rows, strict=True):
            try:
                values.append(float(row[col]))
            except (IndexError, ValueError):
                cell = row[col] if col < len(row) else "<missing>"
                raise GeodiffError(
                    f"{path}, line {line}: {name} = {cell!r} is not a number"
                ) from None
        out[name] = np.array(values)
    return out
