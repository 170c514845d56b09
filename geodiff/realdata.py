"""Real data for examples: the Meuse heavy-metal survey, read from an installed package.

* :func:`meuse_table` — every column of the Meuse data set as arrays;
* :func:`meuse` — one metal as :class:`~geodiff.observe.Observations` in metres, with a
  stated observation noise (by default the nugget of a REML fit, :func:`reml_noise_sd`).

The Meuse data (155 topsoil samples in a flood plain of the river Meuse near Stein, the
Netherlands; Rikken & Van Rijn 1993) ship with R's ``sp`` package and are described in

    Pebesma, E. J. and Bivand, R. S. (2005). Classes and methods for spatial data in R.
    R News 5(2), 9-13.

They are distributed under the GPL-3.0, so geodiff does not copy them: it reads
``meuse.txt`` from the user's installed ``scikit-gstat`` (``pip install -e ".[meuse]"``
or ``pip install scikit-gstat``), without importing ``skgstat`` itself (whose import
pulls in numba).
"""

from __future__ import annotations

import csv
import importlib.resources
import importlib.util
import io

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.observe import Observations

__all__ = ["MEUSE_METALS", "meuse", "meuse_table", "reml_noise_sd"]

#: the metals of the Meuse data (topsoil concentrations, ppm)
MEUSE_METALS = ("cadmium", "copper", "lead", "zinc")
_NUMERIC = ("x", "y", *MEUSE_METALS, "elev", "dist", "om", "dist.m")
_INSTALL = 'pip install -e ".[meuse]" (or pip install scikit-gstat)'


def _meuse_text() -> str:
    if importlib.util.find_spec("skgstat") is None:
        raise GeodiffError(
            "the Meuse data are read from the scikit-gstat package, which is not installed: "
            + _INSTALL
        )
    path = importlib.resources.files("skgstat") / "data" / "samples" / "meuse.txt"
    try:
        return path.read_text()
    except OSError as err:
        raise GeodiffError(
            f"scikit-gstat is installed but its meuse.txt cannot be read ({err}); reinstall it: "
            f"{_INSTALL}"
        ) from None


def meuse_table() -> dict[str, np.ndarray]:
    """All columns of the Meuse data, one array of length 155 each.

    Numeric columns (``x, y`` in metres, Dutch RD New / EPSG:28992; ``cadmium, copper,
    lead, zinc`` in ppm; ``elev`` in m; ``dist``, the distance to the river normalised
    to [0, 1]; ``dist.m`` in m; ``om`` in %, NaN where missing) are floats; the factors
    ``ffreq, soil, lime, landuse`` are strings.

    Raises
    ------
    GeodiffError
        scikit-gstat (which ships the file) is not installed, or the file is not the
        expected table.
    """
    rows = list(csv.reader(io.StringIO(_meuse_text())))
    header, body = rows[0], [r for r in rows[1:] if r]
    missing = [c for c in ("x", "y", *MEUSE_METALS) if c not in header]
    if missing or len(body) != 155 or any(len(r) != len(header) for r in body):
        raise GeodiffError(
            f"scikit-gstat's meuse.txt is not the expected 155-row table (missing {missing}); "
            f"reinstall it: {_INSTALL}"
        )
    table = {}
    for j, name in enumerate(header):
        column = [r[j] for r in body]
        if name in _NUMERIC:
            table[name] = np.array([np.nan if v in ("NA", "") else float(v) for v in column])
        else:
            table[name] = np.array(column)
    return table


def reml_noise_sd(obs: Observations, family: str = "matern", shape: dict | None = None) -> float:
    """The measurement noise implied by a REML fit: the square root of its nugget.

    Fits a stationary anisotropic covariance with an unknown constant mean and a nugget
    (:func:`~geodiff.fields.fit.fit_covariance`) to ``obs`` taken as noiseless, and
    returns ``sqrt(nugget)``, in the units of the values.
    """
    from geodiff.fields.fit import reml_noise

    return reml_noise(obs, family, shape).sd


def meuse(variable: str = "zinc", log: bool = True, noise_sd="reml") -> Observations:
    """Topsoil concentrations of one metal at the 155 Meuse sample points.

    Parameters
    ----------
    variable : {"zinc", "cadmium", "copper", "lead"}
    log : bool
        Natural logarithm of the concentration (ppm); the raw values are strongly
        right-skewed (zinc: skewness 1.5, 0.33 after the log).
    noise_sd : float or "reml"
        Standard deviation of the measurement (and sub-grid) noise, in the units of the
        returned values. ``"reml"`` (default): the square root of the nugget of an
        anisotropic Matérn (ν = 1.5, the family of the shipped prior) fitted by REML to
        all 155 values (:func:`reml_noise_sd`; for log-zinc the nugget is 0.071, τ =
        0.27, about 14% of the sample variance). That one number is estimated from
        every point, so a cross-validation that keeps it fixed leaks that much
        information from the held-out points; the kriging baseline refits its own
        nugget on each training fold.

    Returns
    -------
    Observations
        Points ``(x, y)`` in metres (RD New), values in log(ppm) or ppm. The survey
        has no repeated locations (checked: a repeat would raise).

    Raises
    ------
    GeodiffError
        scikit-gstat is not installed, or an unknown variable.

    Notes
    -----
    Data: Pebesma & Bivand (2005), R package ``sp``, GPL-3.0; read from the installed
    scikit-gstat, never copied into geodiff.
    """
    if variable not in MEUSE_METALS:
        raise GeodiffError(f"unknown Meuse variable {variable!r}; choose from {MEUSE_METALS}")
    table = meuse_table()
    values = table[variable]
    if log:
        values = np.log(values)
    coords = np.column_stack([table["x"], table["y"]])
    obs = Observations.at_points(coords, values, 0.0)  # rejects repeated locations
    if isinstance(noise_sd, str):
        if noise_sd != "reml":
            raise GeodiffError(f"noise_sd must be a number or 'reml', got {noise_sd!r}")
        noise_sd = reml_noise_sd(obs, "matern", {"nu": 1.5})
    return Observations.at_points(coords, values, float(noise_sd))
