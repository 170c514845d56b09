"""Predictive summaries and their files."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from geodiff import GeodiffError, Grid, Prediction


def test_gaussian_summaries_are_exact():
    pred = Prediction(np.zeros((2, 2)), np.array([0.0, 1.0]), np.array([1.0, 0.5]))
    q = pred.quantiles([0.05, 0.5, 0.975])
    np.testing.assert_allclose(q[:, 0], stats.norm.ppf([0.05, 0.5, 0.975]), rtol=1e-12)
    np.testing.assert_allclose(q[:, 1], 1.0 + 0.5 * stats.norm.ppf([0.05, 0.5, 0.975]))
    np.testing.assert_allclose(pred.exceedance(1.0), [stats.norm.sf(1.0), 0.5])
    with pytest.raises(GeodiffError, match="quantile levels"):
        pred.quantiles([0.0, 0.5])


def test_summaries_from_draws_follow_the_draws():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    pred = Prediction.from_draws(np.zeros((3, 2)), draws)
    np.testing.assert_allclose(pred.mean, draws.mean(0))
    np.testing.assert_allclose(pred.quantiles([0.1])[0], np.quantile(draws, 0.1, axis=0))
    np.testing.assert_allclose(pred.exceedance(0.0), (draws > 0).mean(0))


def test_files_on_a_grid(tmp_path):
    grid = Grid((3, 4))
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(5, 12))
    pred = Prediction.from_draws(grid.points(), draws, grid=grid, method="test")
    nc = pred.write(tmp_path / "p.nc", thresholds=[0.0])
    with xr.open_dataset(nc, engine="scipy") as ds:
        np.testing.assert_allclose(ds["mean"].values, draws.mean(0).reshape(3, 4))
        np.testing.assert_allclose(ds["draws"].values, draws.reshape(5, 3, 4), rtol=1e-6)
        np.testing.assert_allclose(ds["x"].values, grid.x)
        assert "p_gt_0" in ds
    csv = pred.write(tmp_path / "p.csv")
    lines = csv.read_text().splitlines()
    assert lines[0] == "x,y,mean,sd,q05,q50,q95" and len(lines) == 13
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(GeodiffError, match=r"\.csv or \.nc"):
        pred.write(tmp_path / "p.txt")


def test_files_at_points_and_the_dataset(tmp_path):
    from scipy.io import netcdf_file

    targets = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.3]])
    draws = np.random.default_rng(2).normal(size=(6, 3))
    info = {"options": {"steps": 4}, "samples": 6}
    pred = Prediction.from_draws(targets, draws, method="mmps", info=info, seconds=1.5)
    ds = pred.to_xarray(thresholds=[0.5])
    assert ds["mean"].dims == ("target",) and ds["draws"].dims == ("draw", "target")
    np.testing.assert_allclose(ds["x"].values, targets[:, 0])
    assert ds.attrs == {"samples": 6, "seconds": 1.5, "method": "mmps"}  # plain entries
    nc = pred.write(tmp_path / "p.nc", thresholds=[0.5])
    with xr.open_dataset(nc, engine="scipy") as back:
        np.testing.assert_allclose(back["y"].values, targets[:, 1])
        np.testing.assert_allclose(back["p_gt_0.5"].values, (draws > 0.5).mean(0))
        np.testing.assert_allclose(back["draws"].values, draws, rtol=1e-6)
    with netcdf_file(nc, "r", mmap=False) as f:  # plain NetCDF-3
        assert f.variables["sd"].shape == (3,) and f.method == b"mmps"
    gaussian = Prediction(targets, np.zeros(3), np.ones(3), grid=None)
    assert "draws" not in gaussian.to_xarray() and gaussian.to_xarray().attrs["method"]


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import errno

    import geodiff.prediction as prediction

    def full_disk(path, table):
        path.write_text("x,y,mea")  # a partial line, then the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prediction, "_write_csv", full_disk)
    pred = Prediction(np.zeros((1, 2)), np.zeros(1), np.ones(1))
    with pytest.raises(GeodiffError, match="No space left"):
        pred.write(tmp_path / "p.csv")
    assert list(tmp_path.iterdir()) == []
