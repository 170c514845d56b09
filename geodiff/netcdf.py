"""Fields on a grid to NetCDF (version 3, through scipy), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.grid import Grid

__all__ = ["write_fields_netcdf"]


def write_fields_netcdf(path, fields, grid: Grid, attrs: dict | None = None) -> Path:
    """Write ``fields`` (n, H, W) as variable ``fields(sample, y, x)`` with coordinates.

    The file is built under ``PATH.partial`` and renamed when complete, so a failed
    write (a full disk, an interruption) never leaves a partial file under ``path``.
    ``attrs`` (strings or numbers) become global attributes.
    """
    from scipy.io import netcdf_file

    path = Path(path)
    if path.suffix != ".nc":
        raise GeodiffError(f"{path}: expected a .nc output file")
    fields = np.asarray(fields, dtype=np.float32)
    if fields.ndim != 3 or fields.shape[1:] != tuple(grid.shape):
        raise GeodiffError(f"fields of shape {fields.shape} do not lie on a {grid.shape} grid")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        with netcdf_file(tmp, "w") as nc:
            for key, value in (attrs or {}).items():
                setattr(nc, key, value if isinstance(value, int | float) else str(value))
            nc.createDimension("sample", len(fields))
            nc.createDimension("y", grid.shape[0])
            nc.createDimension("x", grid.shape[1])
            for name, values in (("x", grid.x), ("y", grid.y)):
                nc.createVariable(name, "f8", (name,))[:] = values
            nc.createVariable("fields", "f4", ("sample", "y", "x"))[:] = fields
        os.replace(tmp, path)
    except OSError as err:
        raise GeodiffError(f"cannot write {path}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return path
