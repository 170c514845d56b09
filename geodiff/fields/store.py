"""Chunked on-disk stores of simulated fields with their parameters (zarr).

Why zarr: a store grows chunk by chunk, each chunk a separate file written once, so
parallel simulation, resumption and partial reads need no locking or rewriting, and
``xarray.open_zarr`` reads it as labelled arrays (dimension names are stored). NetCDF
would need a single writer and rewrites of one large file.

Layout of ``PATH``::

    fields            (field, y, x)   float32   chunked along `field`
    x, y              (x,), (y,)      float64   node coordinates
    theta/<key>       (field,) or (field, <key>_knot)  float64   every entry of theta
    maps/<name>       (field, y, x)   float32   spatially varying parameters on the grid
    attrs             spec (prior config, grid, n, seed, chunking), geodiff version, complete

Crash safety: a store is built under ``PATH.partial`` and renamed to ``PATH`` only once
every chunk is written, so a path without the suffix always holds a whole store. Each
chunk is marked done (a marker file written after its data) only after its arrays are
written; rerunning the same command resumes, recomputing exactly the chunks not marked
done. Field ``i`` depends only on ``(seed, i)``, so the result does not depend on the
number of workers, the device or interruptions.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
import zarr
from tqdm.auto import tqdm

from geodiff.errors import GeodiffError, StoreError
from geodiff.fields.config import prior_from_config
from geodiff.fields.simulate import check_simulation_memory, default_device, simulate
from geodiff.grid import Grid
from geodiff.io import partial_path, write_text

__all__ = ["FieldStore", "open_store", "partial_path", "write_store"]

FORMAT_VERSION = 1
_PROGRESS = "_progress"


def _spec(prior, grid: Grid, n: int, seed: int, chunk_size: int, fields_per_theta: int) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "prior": prior.to_config(),
        "grid": grid.to_dict(),
        "n": n,
        "seed": seed,
        "chunk_size": chunk_size,
        "fields_per_theta": fields_per_theta,
    }


def _same_spec(stored: dict, spec: dict) -> bool:
    # a JSON round trip turns tuples into lists; compare in that form
    return json.loads(json.dumps(stored)) == json.loads(json.dumps(spec))


def write_store(
    path,
    prior,
    grid: Grid,
    n: int,
    seed: int = 0,
    *,
    chunk_size: int = 256,
    fields_per_theta: int = 1,
    workers: int | None = None,
    device=None,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` fields into a zarr store at ``path``, resuming an interrupted run.

    Parameters
    ----------
    path : str or Path
        Directory of the store (created; must not hold another store).
    prior : GRFPrior
    grid : Grid
    n : int
        Number of fields.
    seed : int
    chunk_size : int, keyword-only
        Fields per chunk (the unit of work, of writing and of resumption).
    fields_per_theta : int
        Fields sharing one parameter draw; see :func:`geodiff.simulate`.
    workers : int, optional
        CPU processes; all cores by default on the CPU, one process on a GPU.
    device : str, optional
        Simulation device; the GPU when torch sees one.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        The completed store.

    Raises
    ------
    StoreError
        If ``path`` holds a different store, or writing fails (the chunks already
        written are kept under ``PATH.partial`` for the next run).
    """
    path = Path(path)
    _check_counts(n, chunk_size, seed)
    chunk_size = min(chunk_size, n)
    spec = _spec(prior, grid, n, seed, chunk_size, fields_per_theta)
    if path.exists():
        if _is_complete_store(path) and _same_spec(
            zarr.open_group(path, mode="r").attrs["spec"], spec
        ):
            return path  # the same run finished earlier: nothing to do
        raise StoreError(
            f"{path} already exists and is not this run's store; choose another --out or remove it"
        )
    check_simulation_memory(prior, grid, chunk_size)
    device = torch.device(device) if device is not None else default_device()
    tmp = partial_path(path)
    group = _open_partial(tmp, spec, prior, grid)
    progress_dir = tmp / _PROGRESS
    n_chunks = math.ceil(n / chunk_size)
    todo = [k for k in range(n_chunks) if not (progress_dir / f"{k}.done").exists()]
    if workers is None:
        workers = 1 if device.type == "cuda" else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(todo) or 1))
    bar = tqdm(
        total=n,
        initial=n - sum(_chunk_len(k, chunk_size, n) for k in todo),
        desc=f"simulating {path.name}",
        unit="field",
        disable=not progress,
    )
    job = (prior.to_config(), grid.to_dict(), seed, fields_per_theta, str(device))
    chunks = [(k, k * chunk_size, _chunk_len(k, chunk_size, n)) for k in todo]
    try:
        if workers == 1:
            _simulate_here(job, chunks, group, progress_dir, bar)
        else:
            _simulate_in_processes(job, chunks, group, progress_dir, bar, workers)
    except OSError as err:
        reason = err.strerror or str(err)
        raise StoreError(
            f"could not write {tmp}: {reason}. Finished chunks are kept; "
            "free the space and rerun the same command to resume"
        ) from err
    finally:
        bar.close()
    _finish_store(group, tmp, path)
    return path


def _check_counts(n, chunk_size, seed) -> None:
    """Refuse a number of fields, chunk size or seed that is not a proper integer.

    Raises
    ------
    GeodiffError
    """
    if not isinstance(n, int) or n < 1:
        raise GeodiffError(f"number of fields must be a positive integer, got {n!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise GeodiffError(f"chunk size must be a positive integer, got {chunk_size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise GeodiffError(f"seed must be a non-negative integer, got {seed!r}")


def _simulate_here(job: tuple, chunks: list, group, progress_dir: Path, bar) -> None:
    """Simulate and write ``chunks`` (``(k, start, count)`` each) in this process.

    Parameters
    ----------
    job : tuple
        The leading arguments of :func:`_simulate_chunk`.
    chunks : list of tuple
    group : zarr.Group
    progress_dir : Path
    bar : tqdm
        Advanced per simulated field.
    """
    for k, start, count in chunks:
        result = _simulate_chunk(*job, start, count, threads=None, callback=bar.update)
        _write_chunk(group, progress_dir, k, start, result)


def _simulate_in_processes(
    job: tuple, chunks: list, group, progress_dir: Path, bar, workers: int
) -> None:
    """Simulate ``chunks`` in ``workers`` spawned processes, writing each as it finishes.

    Parameters
    ----------
    job, chunks, group, progress_dir, bar :
        As for :func:`_simulate_here` (the bar advances per finished chunk).
    workers : int
    """
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {
            pool.submit(_simulate_chunk, *job, start, count, threads=threads): (k, start)
            for k, start, count in chunks
        }
        try:
            for future in as_completed(futures):
                k, start = futures[future]
                result = future.result()
                _write_chunk(group, progress_dir, k, start, result)
                bar.update(len(result["fields"]))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _finish_store(group, tmp: Path, path: Path) -> None:
    """Mark the partial store complete, consolidate its metadata and move it to ``path``.

    Parameters
    ----------
    group : zarr.Group
        The partial store at ``tmp``.
    tmp, path : Path
    """
    group.attrs["complete"] = True
    shutil.rmtree(tmp / _PROGRESS, ignore_errors=True)
    with warnings.catch_warnings():  # zarr notes consolidation is not in the v3 spec yet
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(tmp)
    os.replace(tmp, path)


def _chunk_len(k: int, chunk_size: int, n: int) -> int:
    return min(chunk_size, n - k * chunk_size)


def _open_partial(tmp: Path, spec: dict, prior, grid: Grid):
    """Open the partial store of this run, or create it."""
    if tmp.exists():
        try:
            group = zarr.open_group(tmp, mode="r+")
            stored = group.attrs["spec"]
        except Exception as err:  # an unreadable partial store cannot be resumed
            raise StoreError(
                f"{tmp} is not a readable partial store ({err}); remove it to start over"
            ) from err
        if not _same_spec(stored, spec):
            raise StoreError(
                f"{tmp} holds an interrupted run with other settings (prior, grid, n, seed "
                "or chunking); rerun with those, or remove it to start over"
            )
        return group
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(tmp, mode="w-")
        _create_arrays(group, spec, prior, grid)
        (tmp / _PROGRESS).mkdir()
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"cannot create a store at {tmp}: {err.strerror or err}") from err
    return group


def _create_arrays(group, spec: dict, prior, grid: Grid) -> None:
    from geodiff._version import __version__

    n, chunk = spec["n"], spec["chunk_size"]
    h, w = grid.shape
    group.attrs.update({"spec": spec, "geodiff_version": __version__, "complete": False})
    fields = group.create_array(
        "fields",
        shape=(n, h, w),
        chunks=(chunk, h, w),
        dtype="float32",
        dimension_names=("field", "y", "x"),
    )
    fields.attrs["description"] = "simulated fields; fields[i, r, c] is the value at (x[c], y[r])"
    group.create_array("x", data=grid.x, dimension_names=("x",))
    group.create_array("y", data=grid.y, dimension_names=("y",))
    theta = group.create_group("theta")
    for key, leaf in prior.leaves().items():
        if isinstance(leaf, int):
            theta.create_array(
                key,
                shape=(n, leaf),
                chunks=(chunk, leaf),
                dtype="float64",
                dimension_names=("field", f"{key}_knot"),
            )
        else:
            theta.create_array(
                key, shape=(n,), chunks=(chunk,), dtype="float64", dimension_names=("field",)
            )
    maps = group.create_group("maps")
    for key in prior.map_parameters:
        maps.create_array(
            key,
            shape=(n, h, w),
            chunks=(chunk, h, w),
            dtype="float32",
            dimension_names=("field", "y", "x"),
        )


def _simulate_chunk(
    config, grid_dict, seed, fields_per_theta, device, start, count, *, threads, callback=None
):
    """Worker task: simulate fields ``start .. start + count`` as numpy arrays."""
    if threads is not None:
        torch.set_num_threads(threads)
    prior = prior_from_config(config)
    sim = simulate(
        prior,
        Grid.from_dict(grid_dict),
        count,
        seed,
        start=start,
        fields_per_theta=fields_per_theta,
        device=device,
        callback=callback,
    )
    return {
        "fields": sim.fields.numpy(),
        "theta": {k: v.numpy() for k, v in sim.theta.items()},
        "maps": {k: v.numpy() for k, v in sim.maps.items()},
    }


def _write_chunk(group, progress_dir: Path, k: int, start: int, result: dict) -> None:
    stop = start + len(result["fields"])
    group["fields"][start:stop] = result["fields"]
    for key, value in result["theta"].items():
        group["theta"][key][start:stop] = value
    for key, value in result["maps"].items():
        group["maps"][key][start:stop] = value
    try:  # the marker (written atomically) says the chunk's data is complete
        write_text(progress_dir / f"{k}.done", f"{start} {stop}\n")
    except GeodiffError as err:
        raise StoreError(
            f"{err}. Finished chunks are kept; free the space and rerun the same command to resume"
        ) from None


def _is_complete_store(path: Path) -> bool:
    try:
        return bool(zarr.open_group(path, mode="r").attrs.get("complete", False))
    except Exception:
        return False


class FieldStore:
    """Read access to a complete field store.

    Parameters
    ----------
    path : str or Path

    Attributes
    ----------
    prior : GRFPrior
        The prior the fields were drawn from (rebuilt from the stored config).
    grid : Grid
    spec : dict
        Prior config, grid, ``n``, seed and chunking of the run.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            hint = (
                " (an unfinished run: rerun it to complete)"
                if partial_path(self.path).exists()
                else ""
            )
            raise StoreError(f"no field store at {self.path}{hint}")
        try:
            self._group = zarr.open_group(self.path, mode="r")
            attrs = dict(self._group.attrs)
        except Exception as err:
            raise StoreError(f"{self.path} is not a readable field store ({err})") from err
        if self.path.name.endswith(".partial") or not attrs.get("complete", False):
            raise StoreError(
                f"{self.path} is an incomplete store; rerun the command that writes it to finish"
            )
        if attrs.get("spec", {}).get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{self.path} has an unsupported store format")
        self.spec = attrs["spec"]
        self.prior = prior_from_config(self.spec["prior"], source=str(self.path))
        self.grid = Grid.from_dict(self.spec["grid"])

    def __len__(self) -> int:
        return int(self.spec["n"])

    @property
    def fields(self):
        """The zarr array of fields, shape (n, H, W); slice it to read."""
        return self._group["fields"]

    def theta(self, index=slice(None)) -> dict:
        """Parameters of the selected fields as float64 tensors, each (n_sel, ...)."""
        return {k: torch.from_numpy(np.asarray(a[index])) for k, a in self._group["theta"].arrays()}

    def maps(self, index=slice(None)) -> dict:
        """Spatially varying parameters on the grid, each (n_sel, H, W)."""
        return {k: torch.from_numpy(np.asarray(a[index])) for k, a in self._group["maps"].arrays()}


def open_store(path) -> FieldStore:
    """Open a complete field store for reading (see :class:`FieldStore`)."""
    return FieldStore(path)
