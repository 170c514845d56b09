"""The shared output helpers: atomic writes, NetCDF through xarray, Markdown tables."""

import errno

import numpy as np
import pytest
import xarray as xr

from geodiff import GeodiffError, Grid
from geodiff.io import atomic_write, partial_path, write_text
from geodiff.netcdf import netcdf_attrs, write_fields_netcdf
from geodiff.tables import markdown_table


def test_atomic_write_replaces_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    assert write_text(path, "old\n") == path  # creates the folder
    with pytest.raises(RuntimeError, match="bad value"), atomic_write(path) as tmp:
        assert tmp == partial_path(path) and tmp.name == "out.txt.partial"
        tmp.write_text("half of the new")
        raise RuntimeError("bad value")
    assert path.read_text() == "old\n" and not partial_path(path).exists()
    write_text(path, "new\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in path.parent.iterdir()) == [
        "out.txt"
    ]


def test_a_failed_write_is_one_line_and_leaves_the_older_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(GeodiffError, match=r"cannot write .*out\.txt: No space left"):
        with atomic_write(path) as tmp:
            tmp.write_text("new, until the disk filled up")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_overwrite_false_refuses_before_writing(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(GeodiffError, match="exists"):
        write_text(path, "new", overwrite=False)
    assert path.read_text() == "old" and not partial_path(path).exists()
    fresh = write_text(tmp_path / "fresh.txt", "x", overwrite=False)
    assert fresh.read_text() == "x"


def test_fields_netcdf_reads_back_with_xarray_and_scipy(tmp_path):
    from scipy.io import netcdf_file

    grid = Grid((3, 4))
    fields = np.random.default_rng(0).normal(size=(2, 3, 4))
    attrs = {"sampler": "ddim", "steps": None, "eta": 1.0, "seed": 3, "flag": True}
    out = write_fields_netcdf(tmp_path / "f.nc", fields, grid, attrs)
    with xr.open_dataset(out, engine="scipy") as ds:
        assert ds["fields"].dims == ("sample", "y", "x") and ds["fields"].dtype == np.float32
        np.testing.assert_allclose(ds["fields"].values, fields, rtol=1e-6)
        np.testing.assert_allclose(ds["y"].values, grid.y)
        assert ds.attrs["steps"] == "None" and ds.attrs["seed"] == 3 and ds.attrs["flag"] == 1
    with netcdf_file(out, "r", mmap=False) as nc:
        assert nc.variables["fields"].shape == (2, 3, 4) and nc.sampler == b"ddim"
    assert not partial_path(out).exists()
    with pytest.raises(GeodiffError, match=r"\.nc output"):
        write_fields_netcdf(tmp_path / "f.txt", fields, grid)
    with pytest.raises(GeodiffError, match="do not lie on"):
        write_fields_netcdf(tmp_path / "g.nc", fields[:, :2], grid)


def test_netcdf_attrs_keep_plain_values():
    attrs = {"a": "x", "b": 2, "c": 0.5, "d": [1], "e": 2**40, "f": np.int64(4)}
    assert netcdf_attrs(attrs) == {"a": "x", "b": 2, "c": 0.5, "d": "[1]", "e": str(2**40), "f": 4}
    assert netcdf_attrs(attrs, plain_only=True) == {"a": "x", "b": 2, "c": 0.5, "f": 4}


def test_markdown_table():
    text = markdown_table(["a", "b"], [[1, "x"], [2.5, ""]])
    assert text == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 |  |"
    assert markdown_table(["a", "b"], [], align="-r") == "| a | b |\n|---|---:|"
    assert markdown_table(["a", "b", "c"], [], align="lcr").endswith("|:---|:---:|---:|")
    with pytest.raises(ValueError, match="2 cells, the header 3"):
        markdown_table(["a", "b", "c"], [[1, 2]])
    with pytest.raises(ValueError, match="alignment"):
        markdown_table(["a", "b"], [], align="r")
