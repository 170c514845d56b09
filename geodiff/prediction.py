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
from geodiff.io import atomic_write

__all__ = ["Prediction", "check_finite"]


def check_finite(
    values,
    what: str = "predictions",
    observed=None,
    hint: str | None = None,
    *,
    advice: str = "rescale them or use --standardise",
):
    """Refuse NaN or infinite results before they are used or written.

    Parameters
    ----------
    values : array_like
    what : str
        What the values are, e.g. ``"means"`` or ``"posterior draws"``.
    observed : array_like, optional
        The observed values, named in the message (their size is the usual cause).
    hint : str, optional
        The whole advice, replacing the one about the observed values.
    advice : str
        What to do about too large observed values.

    Raises
    ------
    GeodiffError
        ``non-finite predictions (NaN or inf): 12 of 1024 means; the observed values may
        be too large (max |value| = 1e+140); rescale them or use --standardise``.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc":
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    if hint is None:
        size = ""
        if observed is not None and np.size(observed):
            size = f" (max |value| = {float(np.max(np.abs(observed))):.3g})"
        hint = f"the observed values may be too large{size}; {advice}"
    raise GeodiffError(
        f"non-finite predictions (NaN or inf): {int((~finite).sum())} of {arr.size} {what}; {hint}"
    )


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

    def __post_init__(self):
        for name in ("mean", "sd", "draws"):
            value = getattr(self, name)
            if value is not None:
                check_finite(value, "means" if name == "mean" else name)

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
        threshold = _check_threshold(threshold)
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
        thresholds = [_check_threshold(t) for t in thresholds or ()]
        table = {"x": self.targets[:, 0], "y": self.targets[:, 1], "mean": self.mean, "sd": self.sd}
        for p, q in zip(quantiles, self.quantiles(quantiles), strict=True):
            table[_quantile_name(p)] = q
        for t in thresholds or ():
            table[f"p_gt_{t:g}"] = self.exceedance(t)
        return table

    def to_xarray(self, quantiles=(0.05, 0.5, 0.95), thresholds=()):
        """The summaries (and draws) as an :class:`xarray.Dataset`.

        On a grid, ``mean``, ``sd``, the quantiles ``q05, ...`` and exceedances
        ``p_gt_<t>`` are ``(y, x)`` variables with ``x`` and ``y`` coordinates (the
        node centres); at points they are ``(target,)`` variables with ``x`` and ``y``
        as ``(target,)`` coordinates. Draws, when present, are ``draws`` of dimensions
        ``(draw, y, x)`` or ``(draw, target)`` (float32). ``method`` and the plain
        entries of ``info`` (strings and numbers) are global attributes.
        """
        import xarray as xr

        from geodiff.netcdf import netcdf_attrs

        table = self.summary_table(quantiles, thresholds)
        if self.grid is not None:
            h, w = self.grid.shape
            dims, shape = ("y", "x"), (h, w)
            coords = {
                "x": ("x", np.asarray(self.grid.x, float)),
                "y": ("y", np.asarray(self.grid.y, float)),
            }
        else:
            dims, shape = ("target",), (len(self),)
            coords = {"x": ("target", table["x"]), "y": ("target", table["y"])}
        data = {
            name: (dims, np.asarray(values, dtype=float).reshape(shape))
            for name, values in table.items()
            if name not in ("x", "y")
        }
        if self.draws is not None:
            draws = np.asarray(self.draws, dtype=np.float32).reshape(len(self.draws), *shape)
            data["draws"] = (("draw", *dims), draws)
        attrs = {**netcdf_attrs(self.info, plain_only=True), "method": self.method or "prediction"}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def write(
        self, path, quantiles=(0.05, 0.5, 0.95), thresholds=(), *, overwrite: bool = True
    ) -> Path:
        """Write the summaries as CSV (``.csv``) or NetCDF (``.nc``, see :meth:`to_xarray`).

        The file is written beside its destination and renamed into place
        (:func:`geodiff.io.atomic_write`), so a failed write never leaves a partial
        file under ``path``; with ``overwrite=False`` an existing file is an error.
        """
        path = Path(path)
        if path.suffix not in (".csv", ".nc"):
            raise GeodiffError(f"{path}: output must end in .csv or .nc")
        if path.suffix == ".nc":
            from geodiff.netcdf import write_dataset

            return write_dataset(path, self.to_xarray(quantiles, thresholds), overwrite=overwrite)
        table = self.summary_table(quantiles, thresholds)
        with atomic_write(path, overwrite=overwrite) as tmp:
            _write_csv(tmp, table)
        return path

    def write_with_details(
        self, path, quantiles=(0.05, 0.5, 0.95), thresholds=(), *, details=None, overwrite=True
    ) -> tuple[Path, Path]:
        """:meth:`write`, then ``PATH.json``: the method, its ``info`` and ``details``.

        Both files are written atomically. If the summaries were written but the JSON
        could not be, the error says so (the summaries stay, complete).

        Returns
        -------
        path, sidecar : Path
        """
        import json

        from geodiff.io import write_text

        out = self.write(path, quantiles, thresholds, overwrite=overwrite)
        info = {k: v for k, v in self.info.items() if k != "cov"}
        try:
            text = json.dumps(
                {"method": self.method, **info, **(details or {})}, indent=2, default=float
            )
            sidecar = write_text(out.with_name(out.name + ".json"), text)
        except (GeodiffError, TypeError, ValueError) as err:
            raise GeodiffError(f"wrote {out}, but not its details: {err}") from None
        return out, sidecar


def _check_threshold(threshold) -> float:
    """``threshold`` as a float, or a clear error for NaN, infinity or a non-number."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise GeodiffError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(value):
        raise GeodiffError(f"threshold must be a finite number, got {value:g}")
    return value


def _quantile_name(p: float) -> str:
    return "q" + f"{100 * p:g}".replace(".", "_").zfill(2)


def _write_csv(path: Path, table: dict) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(table))
        for row in zip(*table.values(), strict=True):
            writer.writerow([f"{float(v):.10g}" for v in row])
