"""From physical coordinates and units to a trained model's domain and units, and back.

A trained prior lives on a fixed domain (its grid's extent) in the units of its prior
config. Data in physical coordinates (metres, degrees) and units (ppm, °C) are mapped onto
it by one documented rule, :meth:`DomainMap.fit`:

**Coordinates** — one affine map with the *same* scale on both axes (distances, hence
correlation lengths and anisotropy, keep their shape):

1. the physical domain is the one the user gives, or else the bounding box of the
   observations and targets, widened on every side by ``margin`` times its longer side
   (so that no datum sits on the edge, where the learned prior is least constrained);
2. its shorter side is widened symmetrically until its aspect ratio is the model's;
3. it is scaled and shifted onto the model's extent.

**Values** — ``physical = shift + scale * model``. By default the identity (data already
in the prior's units). With ``standardise=True``: ``shift`` is the mean of the observed
values and ``scale`` their standard deviation divided by the model's data scale (the
standard deviation of its training fields), so the observations have the prior's mean
(zero) and spread; noise standard deviations are divided by ``scale``. Either can be
given instead of estimated (``value_shift``, ``value_scale``).

Predictions come back in physical coordinates and units through the inverse map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.grid import Grid, _as_extent
from geodiff.observe import Observations, block_mean_operator, point_operator

__all__ = ["DomainMap", "padded_box"]


@dataclass(frozen=True)
class DomainMap:
    """An affine map from physical coordinates and values to a model's.

    Attributes
    ----------
    physical_extent, model_extent : ((float, float), (float, float))
        Corresponding rectangles (same aspect ratio).
    value_shift, value_scale : float
        ``physical value = value_shift + value_scale * model value``.
    """

    physical_extent: tuple
    model_extent: tuple
    value_shift: float = 0.0
    value_scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "physical_extent", _as_extent(self.physical_extent))
        object.__setattr__(self, "model_extent", _as_extent(self.model_extent))
        if not (np.isfinite(self.value_shift) and np.isfinite(self.value_scale)):
            raise GeodiffError("value shift and scale must be finite")
        if not self.value_scale > 0:
            raise GeodiffError(f"value scale must be positive, got {self.value_scale}")

    @classmethod
    def identity(cls, model_extent) -> DomainMap:
        """Data already in the model's coordinates and units."""
        return cls(model_extent, model_extent)

    @classmethod
    def fit(
        cls,
        obs: Observations,
        model_extent,
        *,
        targets=None,
        domain=None,
        margin: float = 0.1,
        standardise: bool = False,
        value_shift: float | None = None,
        value_scale: float | None = None,
        data_scale: float = 1.0,
    ) -> DomainMap:
        """The map of the module's rule.

        Parameters
        ----------
        obs : Observations
            In physical coordinates and units.
        model_extent : ((float, float), (float, float))
        targets : array_like of shape (m, 2), optional
            Physical prediction points, kept inside the inferred domain too.
        domain : ((float, float), (float, float)), optional
            The physical domain; inferred when not given.
        margin : float
            Widening of an inferred domain, as a fraction of its longer side.
        standardise : bool
            Estimate the value map from the observations (else the identity).
        value_shift, value_scale : float, optional
            Give the value map instead (physical = shift + scale * model).
        data_scale : float
            The model's data scale (see module docs).
        """
        model_extent = _as_extent(model_extent)
        if domain is None:
            lo, hi = _bounding_box(obs, targets)
            if max(hi - lo) == 0:
                raise GeodiffError("cannot infer a domain from a single location; give one")
            domain = padded_box(np.stack([lo, hi]), margin)
        physical = _match_aspect(_as_extent(domain), model_extent)
        shift, scale = 0.0, 1.0
        if standardise:
            if len(obs) < 2 or np.std(obs.values) == 0:
                raise GeodiffError("cannot standardise values from fewer than two distinct values")
            shift = float(np.mean(obs.values))
            scale = float(np.std(obs.values, ddof=1)) / data_scale
        shift = shift if value_shift is None else float(value_shift)
        scale = scale if value_scale is None else float(value_scale)
        return cls(physical, model_extent, shift, scale)

    # ---------------------------------------------------------------- coordinates
    @property
    def coordinate_scale(self) -> float:
        """Model length per physical length."""
        (p0, p1), _ = self.physical_extent
        (m0, m1), _ = self.model_extent
        return (m1 - m0) / (p1 - p0)

    def to_model_points(self, points) -> np.ndarray:
        """(m, 2) physical points in model coordinates."""
        pts = np.asarray(points, dtype=float)
        lo_p = np.array([self.physical_extent[0][0], self.physical_extent[1][0]])
        lo_m = np.array([self.model_extent[0][0], self.model_extent[1][0]])
        return lo_m + (pts - lo_p) * self.coordinate_scale

    def to_physical_points(self, points) -> np.ndarray:
        """(m, 2) model points in physical coordinates."""
        pts = np.asarray(points, dtype=float)
        lo_p = np.array([self.physical_extent[0][0], self.physical_extent[1][0]])
        lo_m = np.array([self.model_extent[0][0], self.model_extent[1][0]])
        return lo_p + (pts - lo_m) / self.coordinate_scale

    def physical_grid(self, grid: Grid) -> Grid:
        """``grid`` of the model with its extent in physical coordinates."""
        return Grid(grid.shape, self.physical_extent)

    # --------------------------------------------------------------------- values
    def to_physical_values(self, values) -> np.ndarray:
        return self.value_shift + self.value_scale * np.asarray(values, dtype=float)

    def to_physical_sd(self, sd) -> np.ndarray:
        return self.value_scale * np.asarray(sd, dtype=float)

    def to_model_observations(self, obs: Observations) -> Observations:
        """Observations in model coordinates and units (same kind, same order)."""
        values = (obs.values - self.value_shift) / self.value_scale
        noise = obs.noise_sd / self.value_scale
        op = obs.operator
        if op.grid is not None:
            raise GeodiffError("map observations before putting them on a grid")
        if op.blocks is None:
            return Observations(point_operator(self.to_model_points(op.locations)), values, noise)
        lo = self.to_model_points(op.blocks[:, [0, 2]])
        hi = self.to_model_points(op.blocks[:, [1, 3]])
        order = round(np.sqrt(op.weights[0].nnz))
        blocks = np.column_stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]])
        return Observations(block_mean_operator(blocks, order), values, noise)

    def to_dict(self) -> dict:
        return {
            "physical_extent": [list(e) for e in self.physical_extent],
            "model_extent": [list(e) for e in self.model_extent],
            "value_shift": self.value_shift,
            "value_scale": self.value_scale,
        }


def padded_box(points, margin: float) -> tuple:
    """The bounding box of (k, 2) ``points`` widened on every side by ``margin`` × its longer side.

    Returns
    -------
    ((float, float), (float, float))
        ``((x_min, x_max), (y_min, y_max))``.
    """
    if not (np.isfinite(margin) and margin >= 0):
        raise GeodiffError(f"margin must be a finite number >= 0, got {margin}")
    pts = np.asarray(points, dtype=float)
    lo, hi = pts.min(0), pts.max(0)
    pad = margin * float(max(hi - lo))
    return ((float(lo[0] - pad), float(hi[0] + pad)), (float(lo[1] - pad), float(hi[1] + pad)))


def _bounding_box(obs: Observations, targets) -> tuple[np.ndarray, np.ndarray]:
    op = obs.operator
    if op.blocks is None:
        corners = op.locations
    else:
        corners = np.concatenate([op.blocks[:, [0, 2]], op.blocks[:, [1, 3]]])
    if targets is not None:
        corners = np.concatenate([corners, np.asarray(targets, dtype=float).reshape(-1, 2)])
    return corners.min(0), corners.max(0)


def _match_aspect(extent, model_extent):
    """``extent`` with its shorter side widened symmetrically to ``model_extent``'s aspect."""
    (x0, x1), (y0, y1) = extent
    (a0, a1), (b0, b1) = model_extent
    want = (b1 - b0) / (a1 - a0)  # height / width
    width, height = x1 - x0, y1 - y0
    if height / width < want:  # too flat: widen y
        grow = (want * width - height) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = (height / want - width) / 2
        x0, x1 = x0 - grow, x1 + grow
    return ((x0, x1), (y0, y1))
