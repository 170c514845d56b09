"""torch datasets of prior fields: read from a store, or simulated on the fly."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from geodiff.fields.simulate import simulate
from geodiff.fields.store import FieldStore
from geodiff.grid import Grid

__all__ = ["SimulatedFieldDataset", "StoreFieldDataset"]


class StoreFieldDataset(Dataset):
    """Fields of a complete store, one item per field.

    Parameters
    ----------
    store : FieldStore or str or Path
    with_theta : bool
        Also return the field's parameters (a dict of float64 tensors).

    Items
    -----
    torch.Tensor, float32, shape (1, H, W); or ``(field, theta)`` with ``with_theta``.
    """

    def __init__(self, store, *, with_theta: bool = False):
        self.store = store if isinstance(store, FieldStore) else FieldStore(store)
        self.with_theta = with_theta

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} fields")
        index %= len(self)
        field = torch.from_numpy(np.asarray(self.store.fields[index]))[None]
        if not self.with_theta:
            return field
        return field, {k: v[0] for k, v in self.store.theta(slice(index, index + 1)).items()}


class SimulatedFieldDataset(IterableDataset):
    """An endless (or ``n_batches``-long) stream of freshly simulated batches.

    Batch ``b`` holds fields ``b * batch_size ... (b + 1) * batch_size - 1`` of the run
    seeded by ``seed``; with several ``DataLoader`` workers, worker ``w`` makes the
    batches with ``b % num_workers == w``, so the stream does not depend on the worker
    count (use ``batch_size=None`` in the ``DataLoader``).

    Parameters
    ----------
    prior : GRFPrior
    grid : Grid
    batch_size : int
    seed : int
    n_batches : int, optional
        Stop after this many batches (endless by default).
    fields_per_theta : int
        Fields sharing one parameter draw (cheaper Cholesky simulation).
    device : str, optional
        Simulation device (the GPU when torch sees one).

    Items
    -----
    torch.Tensor, float32, shape (batch_size, 1, H, W)
    """

    def __init__(
        self,
        prior,
        grid: Grid,
        *,
        batch_size: int,
        seed: int = 0,
        n_batches: int | None = None,
        fields_per_theta: int = 1,
        device=None,
    ):
        self.prior, self.grid, self.batch_size, self.seed = prior, grid, int(batch_size), int(seed)
        self.n_batches, self.fields_per_theta, self.device = n_batches, fields_per_theta, device

    def batch(self, b: int) -> torch.Tensor:
        """Batch ``b`` of the stream, float32, shape (batch_size, 1, H, W)."""
        sim = simulate(
            self.prior,
            self.grid,
            self.batch_size,
            self.seed,
            start=b * self.batch_size,
            fields_per_theta=self.fields_per_theta,
            device=self.device,
        )
        return sim.fields[:, None]

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        b = worker
        while self.n_batches is None or b < self.n_batches:
            yield self.batch(b)
            b += n_workers
