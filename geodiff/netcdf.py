"""NetCDF outputs: xarray Datasets written as NetCDF-3 (scipy engine), atomically.

Every NetCDF file geodiff writes is an :class:`xarray.Dataset` saved with
``engine="scipy"`` (NetCDF-3: no netCDF4/HDF5 library needed) through
:func:`geodiff.io.atomic_write`, so a failed write never leaves a partial file under
its name. The files read back with ``xarray.open_dataset(path, engine="scipy")`` or
``scipy.io.netcdf_file``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.io import atomic_write

__all__ = ["fields_dataset", "netcdf_attrs", "write_dataset", "write_fields_netcdf"]

_INT32 = (-(2**31), 2**31 - 1)


def netcdf_attrs(attrs: dict | None, *, plain_only: bool = False) -> dict:
    """Attributes a NetCDF-3 file can hold.

    Numbers (32-bit integers, floats) and strings are kept; booleans become 0/1.
    Anything else (``None``, lists, dicts, big integers) is written with ``str``, or
    left out when ``plain_only`` is True.
    """
    out = {}
    for key, value in (attrs or {}).items():
        if isinstance(value, bool | np.bool_):
            out[str(key)] = int(value)
        elif isinstance(value, int | np.integer) and _INT32[0] <= value <= _INT32[1]:
            out[str(key)] = int(value)
        elif isinstance(value, float | np.floating):
            out[str(key)] = float(value)
        elif isinstance(value, str):
            out[str(key)] = value
        elif not plain_only:
            out[str(key)] = str(value)
    return out


def write_dataset(path, ds, *, overwrite: bool = True) -> Path:
    """Write the xarray Dataset ``ds`` to ``path`` (``.nc``, NetCDF-3) atomically.

    Raises
    ------
    GeodiffError
        ``path`` does not end in ``.nc``, exists and ``overwrite`` is False, or the
        write failed (one line, naming it).
    """
    path = Path(path)
    if path.suffix != ".nc":
        raise GeodiffError(f"{path}: expected a .nc output file")
    encoding = {name: {"_FillValue": None} for name in ds.variables}
    with atomic_write(path, overwrite=overwrite) as tmp:
        ds.to_netcdf(tmp, engine="scipy", format="NETCDF3_64BIT", encoding=encoding)
    return path


def fields_dataset(fields, grid: Grid, attrs: dict | None = None):
    """Fields (n, H, W) on ``grid`` as a Dataset: ``fields(sample, y, x)``, float32.

    ``x`` and ``y`` are coordinates (the node centres); ``attrs`` become global
    attributes (see :func:`netcdf_attrs`).
    """
    import xarray as xr

    fields = np.asarray(fields, dtype=np.float32)
    if fields.ndim != 3 or fields.shape[1:] != tuple(grid.shape):
        raise GeodiffError(f"fields of shape {fields.shape} do not lie on a {grid.shape} grid")
    return xr.Dataset(
        {"fields": (("sample", "y", "x"), fields)},
        coords={"x": ("x", np.asarray(grid.x, dtype=float)), "y": ("y", np.asarray(grid.y, float))},
        attrs=netcdf_attrs(attrs),
    )


def write_fields_netcdf(
    path, fields, grid: Grid, attrs: dict | None = None, *, overwrite: bool = True
) -> Path:
    """Write ``fields`` (n, H, W) as variable ``fields(sample, y, x)`` with coordinates.

    The file is built under ``PATH.partial`` and renamed when complete, so a failed
    write (a full disk, an interruption) never leaves a partial file under ``path``.
    ``attrs`` (strings or numbers; anything else as text) become global attributes.
    """
    if Path(path).suffix != ".nc":
        raise GeodiffError(f"{path}: expected a .nc output file")
    return write_dataset(path, fields_dataset(fields, grid, attrs), overwrite=overwrite)
