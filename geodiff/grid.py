"""Regular grids over a rectangular domain and the linear map from points to grid values.

Conventions
-----------
A field on a grid of shape ``(H, W)`` is an array ``field[..., i, j]`` holding the value
at the node ``(x[j], y[i])``: rows run along y (increasing with ``i``), columns along x.
Nodes include the domain's edges (``x[0] == x_min``, ``x[-1] == x_max``), so every point
of the closed domain lies inside the node hull and bilinear interpolation needs no
extrapolation. Point sets are arrays of shape ``(n, 2)`` holding ``(x, y)`` pairs, and
flattened fields use row-major order, matching :meth:`Grid.points`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geodiff.errors import GeodiffError

__all__ = ["Grid"]

Extent = tuple[tuple[float, float], tuple[float, float]]
_METHODS = ("bilinear", "nearest")


def _as_extent(extent) -> Extent:
    try:
        (x0, x1), (y0, y1) = extent
        x0, x1, y0, y1 = (float(v) for v in (x0, x1, y0, y1))
    except (TypeError, ValueError) as err:
        raise GeodiffError(
            f"extent must be ((x_min, x_max), (y_min, y_max)), got {extent!r}"
        ) from err
    if not all(np.isfinite([x0, x1, y0, y1])) or not (x0 < x1 and y0 < y1):
        raise GeodiffError(f"extent must be finite with min < max on both axes, got {extent!r}")
    return ((x0, x1), (y0, y1))


@dataclass(frozen=True)
class Grid:
    """A regular grid of ``shape = (H, W)`` nodes spanning ``extent``.

    Parameters
    ----------
    shape : tuple of int
        Number of nodes along y and x, ``(H, W)``; each at least 2.
    extent : ((float, float), (float, float)), optional
        ``((x_min, x_max), (y_min, y_max))`` in physical units; the unit square by default.
    """

    shape: tuple[int, int]
    extent: Extent = ((0.0, 1.0), (0.0, 1.0))

    def __post_init__(self):
        try:
            h, w = (int(s) for s in self.shape)
            ok = all(int(s) == s for s in self.shape)
        except (TypeError, ValueError):
            ok = False
        if not ok or h < 2 or w < 2:
            raise GeodiffError(f"grid shape must be two integers >= 2, got {self.shape!r}")
        object.__setattr__(self, "shape", (h, w))
        object.__setattr__(self, "extent", _as_extent(self.extent))

    @classmethod
    def square(cls, n: int, extent: Extent = ((0.0, 1.0), (0.0, 1.0))) -> Grid:
        """An ``n x n`` grid over ``extent``."""
        return cls((n, n), extent)

    @classmethod
    def parse(cls, text: str, extent: Extent = ((0.0, 1.0), (0.0, 1.0))) -> Grid:
        """Parse ``"64"`` or ``"64x48"`` (H x W) as given on the command line."""
        parts = str(text).lower().split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            sizes = []
        if len(sizes) not in (1, 2):
            raise GeodiffError(f"grid must look like 64 or 64x48, got {text!r}")
        return cls((sizes[0], sizes[-1]), extent)

    # ----------------------------------------------------------------- coordinates
    @property
    def n_nodes(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def x(self) -> np.ndarray:
        """Node x coordinates, shape ``(W,)``."""
        return np.linspace(*self.extent[0], self.shape[1])

    @property
    def y(self) -> np.ndarray:
        """Node y coordinates, shape ``(H,)``."""
        return np.linspace(*self.extent[1], self.shape[0])

    @property
    def spacing(self) -> tuple[float, float]:
        """Node spacing ``(dy, dx)``."""
        (x0, x1), (y0, y1) = self.extent
        return ((y1 - y0) / (self.shape[0] - 1), (x1 - x0) / (self.shape[1] - 1))

    def points(self) -> np.ndarray:
        """All node coordinates in row-major order, shape ``(H * W, 2)`` as ``(x, y)``."""
        xx, yy = np.meshgrid(self.x, self.y)
        return np.stack([xx.ravel(), yy.ravel()], axis=1)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "extent": [list(e) for e in self.extent]}

    @classmethod
    def from_dict(cls, data: dict) -> Grid:
        return cls(tuple(data["shape"]), tuple(tuple(e) for e in data["extent"]))

    # ------------------------------------------------------------ points -> grid
    def contains(self, points, atol: float = 1e-9) -> np.ndarray:
        """Whether each point lies in the closed domain, shape ``(n,)``."""
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        (x0, x1), (y0, y1) = self.extent
        tol_x, tol_y = atol * (x1 - x0), atol * (y1 - y0)
        return (
            (pts[:, 0] >= x0 - tol_x)
            & (pts[:, 0] <= x1 + tol_x)
            & (pts[:, 1] >= y0 - tol_y)
            & (pts[:, 1] <= y1 + tol_y)
        )

    def _check_points(self, points) -> np.ndarray:
        pts = np.asarray(points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise GeodiffError(f"points must have shape (n, 2), got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise GeodiffError("points contain NaN or infinite coordinates")
        outside = ~self.contains(pts)
        if outside.any():
            first = pts[np.argmax(outside)]
            raise GeodiffError(
                f"{int(outside.sum())} point(s) lie outside the grid's domain {self.extent}, "
                f"first at ({first[0]:.6g}, {first[1]:.6g})"
            )
        return pts

    def interpolation_weights(self, points, method: str = "bilinear"):
        """Sparse weights mapping a flattened field to values at ``points``.

        Parameters
        ----------
        points : array_like, shape (n, 2)
            ``(x, y)`` coordinates inside the domain.
        method : {"bilinear", "nearest"}

        Returns
        -------
        rows, cols : numpy.ndarray of int, shape (n * k,)
            Point index and flattened node index of each weight (``k`` = 4 or 1).
        weights : numpy.ndarray, shape (n * k,)
            Non-negative weights summing to one for each point.
        """
        if method not in _METHODS:
            raise GeodiffError(f"unknown interpolation method {method!r}; choose from {_METHODS}")
        pts = self._check_points(points)
        h, w = self.shape
        (x0, _), (y0, _) = self.extent
        dy, dx = self.spacing
        # fractional node index of each point, clipped to the closed domain
        fj = np.clip((pts[:, 0] - x0) / dx, 0.0, w - 1)
        fi = np.clip((pts[:, 1] - y0) / dy, 0.0, h - 1)
        n = len(pts)
        if method == "nearest":
            i, j = np.rint(fi).astype(int), np.rint(fj).astype(int)
            return np.arange(n), i * w + j, np.ones(n)
        i0 = np.minimum(np.floor(fi).astype(int), h - 2)
        j0 = np.minimum(np.floor(fj).astype(int), w - 2)
        ty, tx = fi - i0, fj - j0
        rows = np.repeat(np.arange(n), 4)
        cols = np.stack([i0 * w + j0, i0 * w + j0 + 1, (i0 + 1) * w + j0, (i0 + 1) * w + j0 + 1], 1)
        weights = np.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], 1)
        return rows, cols.ravel(), weights.ravel()

    def interpolation_matrix(
        self, points, method: str = "bilinear", *, dtype=torch.float64, device=None
    ) -> torch.Tensor:
        """The linear operator ``A`` with ``A @ field.reshape(-1) == values at points``.

        Returns
        -------
        torch.Tensor, sparse COO, shape (n, H * W)
        """
        rows, cols, weights = self.interpolation_weights(points, method)
        index = torch.as_tensor(np.stack([rows, cols]), dtype=torch.long)
        values = torch.as_tensor(weights, dtype=dtype)
        matrix = torch.sparse_coo_tensor(
            index, values, (len(points), self.n_nodes), device=device, check_invariants=True
        )
        return matrix.coalesce()

    def interpolate(self, fields: torch.Tensor, points, method: str = "bilinear") -> torch.Tensor:
        """Values of fields at points.

        Parameters
        ----------
        fields : torch.Tensor, shape (..., H, W)
        points : array_like, shape (n, 2)

        Returns
        -------
        torch.Tensor, shape (..., n)
        """
        fields = torch.as_tensor(fields)
        if tuple(fields.shape[-2:]) != self.shape:
            raise GeodiffError(
                f"fields of shape {tuple(fields.shape)} do not match grid {self.shape}"
            )
        matrix = self.interpolation_matrix(points, method, dtype=fields.dtype, device=fields.device)
        flat = fields.reshape(-1, self.n_nodes)
        values = torch.sparse.mm(matrix, flat.T).T
        return values.reshape(*fields.shape[:-2], matrix.shape[0])
