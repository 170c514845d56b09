"""Predictive distributions at target points, and their summaries.

Every prediction method (kriging, MCMC, diffusion posterior sampling) returns a
:class:`Prediction`: Gaussian (a mean and a standard deviation at each target) or
represented by draws, summarised the same way (mean, sd, quantiles, exceedance
probabilities) and written the same way (CSV or NetCDF).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from geodiff.errors import GeodiffError
from geodiff.grid import Grid

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """The predictive distribution of the field at target points.

    Attributes
    ----------
    targets : numpy.ndarray, shape (m, 2)
        ``(x, y)`` of each target.
    mean, sd : numpy.ndarray, shape (m,)
    draws : numpy.ndarray, shape (S, m), optional
        Joint draws; when present, quantiles and exceedances come from them, else from
        the Gaussian ``N(mean, sd^2)``.
    grid : Grid, optional
        Set when the targets are a grid's nodes (row-major), for maps.
    method : str
    info : dict
        What the method wants to report (fitted parameters, diagnostics, wall time).
    """

    targets: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    draws: np.ndarray | None = None
    grid: Grid | None = None
    method: str = ""
    info: dict = field(default_factory=dict)

    @classmethod
    def from_draws(cls, targets, draws, *, grid=None, method="", info=None) -> Prediction:
        """A prediction represented by draws of shape (S, m) (or (S, H, W) on a grid)."""
        draws = np.asarray(draws, dtype=float).reshape(len(draws), -1)
        return cls(
            np.asarray(targets, dtype=float),
            draws.mean(0),
            draws.std(0, ddof=1) if len(draws) > 1 else np.zeros(draws.shape[1]),
            draws,
            grid,
            method,
            dict(info or {}),
        )

    def __len__(self) -> int:
        return len(self.mean)

    def quantiles(self, probs) -> np.ndarray:
        """Predictive quantiles.

        Parameters
        ----------
        probs : sequence of float in (0, 1), length q

        Returns
        -------
        numpy.ndarray, shape (q, m)
        """
        probs = np.atleast_1d(np.asarray(probs, dtype=float))
        if ((probs <= 0) | (probs >= 1)).any():
            raise GeodiffError(f"quantile levels must lie in (0, 1), got {probs.tolist()}")
        if self.draws is not None:
            return np.quantile(self.draws, probs, axis=0)
        return self.mean[None] + self.sd[None] * stats.norm.ppf(probs)[:, None]

    def exceedance(self, threshold: float) -> np.ndarray:
        """Probability that the field exceeds ``threshold`` at each target, shape (m,)."""
        if self.draws is not None:
            return (self.draws > threshold).mean(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (threshold - self.mean) / self.sd
        p = stats.norm.sf(z)
        return np.where(self.sd > 0, p, (self.mean > threshold).astype(float))

    def as_maps(self) -> dict[str, np.ndarray]:
        """Mean and sd as (H, W) maps (grid targets only)."""
        if self.grid is None:
            raise GeodiffError("this prediction is not on a grid")
        return {"mean": self.mean.reshape(self.grid.shape), "sd": self.sd.reshape(self.grid.shape)}

    def summary_table(self, quantiles=(0.05, 0.5, 0.95), thresholds=()) -> dict[str, np.ndarray]:
        """Columns ``x, y, mean, sd, q05, ..., p_gt_<t>`` of shape (m,) each."""
        table = {"x": self.targets[:, 0], "y": self.targets[:, 1], "mean": self.mean, "sd": self.sd}
        for p, q in zip(quantiles, self.quantiles(quantiles), strict=True):
            table[_quantile_name(p)] = q
        for t in thresholds:
            table[f"p_gt_{t:g}"] = self.exceedance(t)
        return table

    def write(self, path, quantiles=(0.05, 0.5, 0.95), thresholds=()) -> Path:
        """Write the summaries as CSV (``.csv``) or NetCDF (``.nc``, grid or points).

        The file is written beside its destination and renamed into place, so a
        failed write never leaves a partial file under ``path``.
        """
        path = Path(path)
        if path.suffix not in (".csv", ".nc"):
            raise GeodiffError(f"{path}: output must end in .csv or .nc")
        table = self.summary_table(quantiles, thresholds)
        tmp = path.with_name(path.name + ".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".csv":
                _write_csv(tmp, table)
            else:
                _write_netcdf(tmp, table, self)
            tmp.replace(path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise GeodiffError(f"{path}: cannot write: {err}") from None
        return path


def _quantile_name(p: float) -> str:
    return "q" + f"{100 * p:g}".replace(".", "_").zfill(2)


def _write_csv(path: Path, table: dict) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(table))
        for row in zip(*table.values(), strict=True):
            writer.writerow([f"{float(v):.10g}" for v in row])


def _write_netcdf(path: Path, table: dict, pred: Prediction) -> None:
    """NetCDF-3 through scipy: (y, x) variables on a grid, else (target,) columns."""
    from scipy.io import netcdf_file

    with netcdf_file(path, "w") as nc:
        nc.method = pred.method or "prediction"
        if pred.grid is not None:
            h, w = pred.grid.shape
            nc.createDimension("y", h)
            nc.createDimension("x", w)
            for name, values in (("x", pred.grid.x), ("y", pred.grid.y)):
                var = nc.createVariable(name, "f8", (name,))
                var[:] = values
            for name, values in table.items():
                if name in ("x", "y"):
                    continue
                var = nc.createVariable(name, "f8", ("y", "x"))
                var[:] = np.asarray(values).reshape(h, w)
        else:
            nc.createDimension("target", len(pred))
            for name, values in table.items():
                var = nc.createVariable(name, "f8", ("target",))
                var[:] = values
        if pred.draws is not None:
            nc.createDimension("draw", len(pred.draws))
            dims = ("draw", "y", "x") if pred.grid is not None else ("draw", "target")
            var = nc.createVariable("draws", "f4", dims)
            var[:] = pred.draws.reshape(len(pred.draws), *(pred.grid.shape if pred.grid else (-1,)))
