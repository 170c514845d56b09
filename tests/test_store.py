import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import geodiff.fields.store as store_module
from geodiff import Grid, StoreError, simulate
from geodiff.fields.config import load_prior
from geodiff.fields.datasets import SimulatedFieldDataset, StoreFieldDataset
from geodiff.fields.store import open_store, partial_path, write_store

GRID = Grid.square(12)


@pytest.fixture(scope="module")
def prior():
    return load_prior("nonstationary-anisotropy")


def test_store_holds_the_simulated_fields_and_theta(tmp_path, prior):
    path = write_store(
        tmp_path / "s", prior, GRID, 10, seed=4, chunk_size=4, workers=1, progress=False
    )
    store = open_store(path)
    sim = simulate(prior, GRID, 10, seed=4)
    assert len(store) == 10 and store.grid == GRID
    np.testing.assert_array_equal(store.fields[:], sim.fields.numpy())
    theta = store.theta()
    assert set(theta) == set(sim.theta)
    assert all(torch.equal(theta[k], sim.theta[k]) for k in theta)
    np.testing.assert_array_equal(store.maps()["angle"].numpy(), sim.maps["angle"].numpy())
    assert not partial_path(path).exists()


def test_worker_count_does_not_change_fields(tmp_path, prior):
    one = write_store(
        tmp_path / "a", prior, GRID, 9, seed=2, chunk_size=3, workers=1, progress=False
    )
    two = write_store(
        tmp_path / "b", prior, GRID, 9, seed=2, chunk_size=3, workers=2, progress=False
    )
    np.testing.assert_array_equal(open_store(one).fields[:], open_store(two).fields[:])


def test_full_disk_keeps_finished_chunks_and_resumes(tmp_path, prior, monkeypatch):
    path = tmp_path / "s"
    real_write = store_module._write_chunk
    calls, disk = [], {"full_after": 2}

    def failing_write(group, progress_dir, k, start, result):
        calls.append(k)
        if len(calls) > disk["full_after"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(group, progress_dir, k, start, result)

    monkeypatch.setattr(store_module, "_write_chunk", failing_write)
    with pytest.raises(StoreError, match="No space left on device"):
        write_store(path, prior, GRID, 10, seed=1, chunk_size=2, workers=1, progress=False)
    assert not path.exists()  # nothing that could be taken for a whole store
    assert partial_path(path).exists()
    with pytest.raises(StoreError, match="unfinished run"):
        open_store(path)
    with pytest.raises(StoreError, match="incomplete"):
        open_store(partial_path(path))

    calls.clear()
    disk["full_after"] = 99  # space freed
    write_store(path, prior, GRID, 10, seed=1, chunk_size=2, workers=1, progress=False)
    assert sorted(calls) == [2, 3, 4]  # only the chunks not yet done
    np.testing.assert_array_equal(
        open_store(path).fields[:], simulate(prior, GRID, 10, seed=1).fields.numpy()
    )


def test_kill_9_mid_run_resumes_to_the_same_store(tmp_path):
    path = tmp_path / "s"
    command = [
        sys.executable, "-m", "geodiff.cli", "simulate", "--prior", "nonstationary-anisotropy",
        "--grid", "16", "--n", "400", "--chunk-size", "4", "--seed", "3", "--workers", "1",
        "--out", str(path), "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = partial_path(path) / "_progress"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(progress.glob("*.done"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(progress.glob("*.done")))
    assert 2 <= done_before < 100 and not path.exists()
    subprocess.run(command, check=True, capture_output=True)
    prior = load_prior("nonstationary-anisotropy")
    expected = simulate(prior, Grid.square(16), 400, seed=3).fields.numpy()
    np.testing.assert_array_equal(open_store(path).fields[:], expected)


def test_rerun_of_a_finished_store_is_a_no_op_but_other_settings_are_refused(tmp_path, prior):
    path = write_store(tmp_path / "s", prior, GRID, 4, seed=0, workers=1, progress=False)
    stamp = os.stat(path / "zarr.json").st_mtime_ns
    write_store(path, prior, GRID, 4, seed=0, workers=1, progress=False)
    assert os.stat(path / "zarr.json").st_mtime_ns == stamp
    with pytest.raises(StoreError, match="already exists"):
        write_store(path, prior, GRID, 4, seed=1, workers=1, progress=False)


def test_partial_store_with_other_settings_is_refused(tmp_path, prior, monkeypatch):
    path = tmp_path / "s"

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "_write_chunk", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_store(path, prior, GRID, 4, seed=0, chunk_size=2, workers=1, progress=False)
    monkeypatch.undo()
    with pytest.raises(StoreError, match="other settings"):
        write_store(path, prior, GRID, 4, seed=7, chunk_size=2, workers=1, progress=False)


def test_unwritable_output_path(tmp_path, prior):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create a store"):
        write_store(blocker / "s", prior, GRID, 4, workers=1, progress=False)


def test_store_dataset_items(tmp_path, prior):
    path = write_store(tmp_path / "s", prior, GRID, 5, seed=0, workers=1, progress=False)
    data = StoreFieldDataset(path, with_theta=True)
    field, theta = data[3]
    assert len(data) == 5 and field.shape == (1, *GRID.shape) and field.dtype == torch.float32
    assert torch.equal(field[0], torch.from_numpy(open_store(path).fields[3]))
    assert theta["angle.latent"].shape == (25,)
    with pytest.raises(IndexError):
        data[5]


def test_simulated_dataset_streams_the_seeded_run(prior):
    batches = list(SimulatedFieldDataset(prior, GRID, batch_size=3, seed=8, n_batches=2))
    assert [b.shape for b in batches] == [(3, 1, *GRID.shape)] * 2
    expected = simulate(prior, GRID, 6, seed=8).fields
    assert torch.equal(torch.cat(batches)[:, 0], expected)


def test_simulated_dataset_does_not_depend_on_dataloader_workers(prior):
    from torch.utils.data import DataLoader

    data = SimulatedFieldDataset(prior, GRID, batch_size=2, seed=5, n_batches=4)
    single = torch.cat(list(data))
    loader = DataLoader(data, batch_size=None, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), single)
