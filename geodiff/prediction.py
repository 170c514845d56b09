"""Predictive distributions at target points, and their summaries.

Every prediction method (kriging, MCMC, diffusion posterior sampling) returns a
:class:`Prediction`: Gaussian (a mean and a standard deviation at each target) or
represented by draws, summarised the same way (mean, sd, quantiles, exceedance
probabilities, central intervals; its CRPS is :func:`geodiff.metrics.scores.prediction_crps`)
and written the same way (CSV or NetCDF).

Two refinements, both recorded in ``info`` (so in the JSON sidecar):

* **Field or new measurement** (:attr:`Prediction.quantity`): a method predicts the
  smooth field; :meth:`Prediction.measurement` gives the predictive distribution of a
  new measurement, the field plus independent ``N(0, τ²)`` noise.
* **Back-transformed** (:attr:`Prediction.transform`): a prediction made in a value
  transform's latent units and mapped back to the original units by
  :func:`geodiff.anamorphosis.back_transform`. With draws, the draws are back-transformed;
  a Gaussian latent keeps ``latent_mean`` and ``latent_sd`` and its quantiles,
  exceedances, intervals and CRPS are those of ``T⁻¹(N(μ, σ²))``. Noise is added in
  the latent units, so the order is ``back_transform(pred.measurement(tau), T)``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import stats

from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.io import atomic_write
from geodiff.rng import derive_seed

__all__ = ["Prediction", "check_finite", "draw_moments"]

#: the derive_seed stream of the measurement noise of :meth:`Prediction.measurement`
_MEASUREMENT_STREAM = 41


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


def draw_moments(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and sd (``ddof=1``; zeros for one draw) of draws of shape (S, m), each (m,)."""
    sd = draws.std(0, ddof=1) if len(draws) > 1 else np.zeros(draws.shape[1])
    return draws.mean(0), sd


@dataclass
class Prediction:
    """The predictive distribution of the field (or a new measurement) at target points.

    Three representations: draws (``draws`` set), Gaussian ``N(mean, sd²)``, and
    back-transformed Gaussian ``T⁻¹(N(latent_mean, latent_sd²))`` (``transform`` set,
    no draws); see :attr:`representation`.

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
        ``info["quantity"]`` is ``"measurement"`` for a new measurement's prediction
        (default: the field), ``info["transform"]`` the transform's ``to_dict()``.
    latent_mean, latent_sd : numpy.ndarray, shape (m,), optional
        The Gaussian prediction in the transform's latent units (back-transformed
        Gaussian predictions only; ``mean`` and ``sd`` are then in the original units).
    transform : geodiff.anamorphosis.ValueTransform, optional
        Set when the prediction was back-transformed to the original units.
    noise_sd : float, optional
        The measurement-noise sd the method inferred and plugged in (a REML nugget); None
        when the noise was given or sampled.
    noise_sd_draws : numpy.ndarray, shape (S,), optional
        The noise sd each draw was made under, when the method sampled it with the field.
    seconds : float, optional
        Wall time of the method that made the prediction.
    """

    targets: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    draws: np.ndarray | None = None
    grid: Grid | None = None
    method: str = ""
    info: dict = field(default_factory=dict)
    latent_mean: np.ndarray | None = field(default=None, kw_only=True)
    latent_sd: np.ndarray | None = field(default=None, kw_only=True)
    transform: object | None = field(default=None, kw_only=True)
    noise_sd: float | None = field(default=None, kw_only=True)
    noise_sd_draws: np.ndarray | None = field(default=None, kw_only=True)
    seconds: float | None = field(default=None, kw_only=True)

    @classmethod
    def from_draws(cls, targets, draws, *, grid=None, method="", info=None, **fields) -> Prediction:
        """A prediction represented by draws of shape (S, m) (or (S, H, W) on a grid).

        ``fields``: the keyword-only attributes (``noise_sd``, ``noise_sd_draws``, ...).
        """
        draws = np.asarray(draws, dtype=float).reshape(len(draws), -1)
        mean, sd = draw_moments(draws)
        return cls(np.asarray(targets, dtype=float), mean, sd, draws, grid, method,
                   dict(info or {}), **fields)  # fmt: skip

    @property
    def method_record(self) -> dict:
        """What the method reported beyond the distribution: the noise it inferred and its
        wall time (the entries that are set), for the JSON sidecar and NetCDF attributes."""
        record = {"noise_sd": self.noise_sd, "seconds": self.seconds}
        if self.noise_sd_draws is not None:
            record["noise_sd_draws"] = np.asarray(self.noise_sd_draws, dtype=float)
        return {k: v for k, v in record.items() if v is not None}

    def __post_init__(self):
        for name in ("mean", "sd", "draws", "latent_mean", "latent_sd"):
            value = getattr(self, name)
            if value is not None:
                check_finite(value, "means" if name == "mean" else name.replace("_", " "))
        latent = (self.latent_mean is None, self.latent_sd is None)
        if latent[0] != latent[1]:
            raise GeodiffError("give both latent_mean and latent_sd, or neither")
        if self.transform is None and not latent[0]:
            raise GeodiffError("latent_mean and latent_sd need the transform they belong to")
        if self.transform is not None and self.draws is None and latent[0]:
            raise GeodiffError(
                "a back-transformed Gaussian prediction needs latent_mean and latent_sd"
            )

    def __len__(self) -> int:
        return len(self.mean)

    @property
    def representation(self) -> str:
        """``"draws"``, ``"gaussian"`` or ``"transformed-gaussian"``."""
        if self.draws is not None:
            return "draws"
        return "gaussian" if self.transform is None else "transformed-gaussian"

    @property
    def quantity(self) -> str:
        """What is predicted: ``"field"`` (the default) or ``"measurement"``."""
        return str(self.info.get("quantity", "field"))

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
        if self.transform is not None:  # T is increasing: quantiles map through T⁻¹
            return self._back(
                self.latent_mean[None] + self.latent_sd[None] * stats.norm.ppf(probs)[:, None],
                "quantiles",
            )
        return self.mean[None] + self.sd[None] * stats.norm.ppf(probs)[:, None]

    def exceedance(self, threshold: float) -> np.ndarray:
        """Probability that the field exceeds ``threshold`` at each target, shape (m,).

        Back-transformed Gaussian: ``P(Y > t) = Φ((μ - T(t)) / σ)``, which is 1 for
        ``t`` below the transform's domain (e.g. ``t <= 0`` under ``log``).
        """
        threshold = _check_threshold(threshold)
        if self.draws is not None:
            return (self.draws > threshold).mean(0)
        if self.transform is not None:
            latent = float(self.transform.forward_extended(threshold))
            return _gaussian_sf(self.latent_mean, self.latent_sd, latent)
        return _gaussian_sf(self.mean, self.sd, threshold)

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """The central predictive interval of probability ``level``.

        Draws: empirical quantiles ``(1 ± level) / 2`` (``numpy.quantile``); Gaussian:
        ``mean ∓ z sd`` with ``z = Φ⁻¹((1 + level) / 2)``; back-transformed Gaussian:
        ``T⁻¹(μ ∓ z σ)``.

        Returns
        -------
        lower, upper : numpy.ndarray, shape (m,)
        """
        try:
            level = float(level)
        except (TypeError, ValueError):
            raise GeodiffError(f"interval level must be a number, got {level!r}") from None
        if not 0 < level < 1:
            raise GeodiffError(f"interval level must lie in (0, 1), got {level:g}")
        alpha = (1 - level) / 2
        if self.draws is None and self.transform is None:
            z = stats.norm.ppf(1 - alpha)
            return self.mean - z * self.sd, self.mean + z * self.sd
        lower, upper = self.quantiles([alpha, 1 - alpha])
        return lower, upper

    def subset(self, index) -> Prediction:
        """The prediction at some of its targets (an index array or a slice), off any grid."""

        def pick(values):
            return None if values is None else np.asarray(values)[..., index]

        return replace(
            self, targets=self.targets[index], mean=self.mean[index], sd=self.sd[index],
            draws=pick(self.draws), grid=None, latent_mean=pick(self.latent_mean),
            latent_sd=pick(self.latent_sd),
        )  # fmt: skip

    def measurement(self, noise_sd, seed: int = 0) -> Prediction:
        """The predictive distribution of a new measurement: the field plus ``N(0, τ²)``.

        Parameters
        ----------
        noise_sd : float or array_like
            τ: a scalar; shape (m,), one per target; or, with draws only, shape (S,) or
            (S, 1), one per draw (when τ has a posterior). A 1-D array whose length is
            both S and m is ambiguous: pass (S, 1) or (1, m).
        seed : int
            Seeds the noise of a draw-based prediction (stream
            ``derive_seed(seed, 41)``; draw i's noise does not depend on S).

        Returns
        -------
        Prediction
            Gaussian: the same mean, ``sd = sqrt(sd² + τ²)``. Draws: ``draws + τ ε``,
            ε standard normal. ``info["quantity"] = "measurement"`` and
            ``info["measurement_noise_sd"]`` (τ, or its min, mean and max).

        Raises
        ------
        GeodiffError
            Already a measurement; back-transformed (add the noise in latent units:
            ``back_transform(pred.measurement(tau), T)``); τ negative, non-finite or of
            the wrong shape; one τ per draw for a Gaussian prediction.
        """
        if self.quantity == "measurement":
            raise GeodiffError(
                "this prediction is already of a new measurement; its noise is added once"
            )
        if self.transform is not None:
            raise GeodiffError(
                "measurement noise is added in the transformed (latent) units, before the "
                "back-transform: use back_transform(pred.measurement(tau), transform) on the "
                "latent prediction"
            )
        n_draws = None if self.draws is None else len(self.draws)
        tau, summary = _measurement_noise(noise_sd, n_draws, len(self))
        info = {**self.info, "quantity": "measurement", "measurement_noise_sd": summary}
        if self.draws is None:
            sd = np.sqrt(self.sd**2 + tau**2)
            return replace(self, mean=self.mean.copy(), sd=sd, info=info)
        rng = np.random.default_rng(derive_seed(seed, _MEASUREMENT_STREAM))
        noise = tau * rng.standard_normal(self.draws.shape)  # (S, m)
        info["measurement_seed"] = int(seed)
        draws = self.draws + noise
        mean, sd = draw_moments(draws)
        return replace(self, mean=mean, sd=sd, draws=draws, info=info)

    def _back(self, latent, what: str) -> np.ndarray:
        """``T⁻¹(latent)``, refusing an overflow (or Box-Cox beyond its range) clearly."""
        values = self.transform.inverse(latent)
        top = float(np.max(latent)) if np.size(latent) else float("nan")
        check_finite(
            values,
            what,
            hint=(
                f"the {self.transform.name} back-transform overflowed or left its range "
                f"(latent values up to {top:.4g})"
            ),
        )
        return values

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
        attrs = {**netcdf_attrs({**self.info, **self.method_record}, plain_only=True),
                 "method": self.method or "prediction"}  # fmt: skip
        if self.transform is not None:
            import json

            attrs["transform"] = json.dumps(self.transform.to_dict())
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
        info = {**{k: v for k, v in self.info.items() if k != "cov"}, **self.method_record}
        try:
            text = json.dumps(
                {"method": self.method, **info, **(details or {})}, indent=2, default=_json_value
            )
            sidecar = write_text(out.with_name(out.name + ".json"), text)
        except (GeodiffError, TypeError, ValueError) as err:
            raise GeodiffError(f"wrote {out}, but not its details: {err}") from None
        return out, sidecar


def _gaussian_sf(mean, sd, threshold: float) -> np.ndarray:
    """``P(N(mean, sd²) > threshold)``, shape (m,); a point mass where ``sd == 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (threshold - mean) / sd
    p = stats.norm.sf(z)
    return np.where(sd > 0, p, (mean > threshold).astype(float))


def _measurement_noise(noise_sd, n_draws: int | None, m: int):
    """τ broadcastable to (S, m) (draws) or (m,) (Gaussian), and its summary for ``info``."""
    try:
        tau = np.asarray(noise_sd, dtype=float)
    except (TypeError, ValueError):
        raise GeodiffError(f"noise sd must be a number or an array, got {noise_sd!r}") from None
    if not np.isfinite(tau).all() or (tau < 0).any():
        raise GeodiffError("measurement noise sd must be finite and >= 0")
    if tau.ndim == 0:
        return tau, float(tau)
    per_draw = tau.shape in ((n_draws, 1), (n_draws, m)) or (
        tau.ndim == 1 and len(tau) == n_draws != m
    )
    per_target = tau.shape in ((m,), (1, m))
    if tau.ndim == 1 and len(tau) == n_draws == m:
        raise GeodiffError(
            f"a noise sd of shape ({m},) is ambiguous with {m} draws of {m} targets: pass "
            "shape (S, 1) for one per draw or (1, m) for one per target"
        )
    if per_draw:
        tau = tau.reshape(n_draws, -1)
    elif not per_target:
        raise GeodiffError(
            f"noise sd of shape {tau.shape}: expected a scalar, one per target ({m},)"
            + (
                "; one per draw needs a prediction represented by draws"
                if n_draws is None
                else f", or one per draw ({n_draws},) or ({n_draws}, 1)"
            )
        )
    elif n_draws is None:
        tau = tau.reshape(-1)
    summary = {
        "per": "draw" if per_draw else "target",
        "min": float(tau.min()),
        "mean": float(tau.mean()),
        "max": float(tau.max()),
    }
    return tau, summary


def _json_value(value):
    """JSON for what ``json`` does not know: arrays as lists, numpy numbers as floats."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return float(value)


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
