"""Training batches as pure functions of the step: fresh simulations or a stored set.

A source is called as ``source(step, rank, world)`` and returns float32 fields of shape
(batch_size, 1, H, W) in physical units. Batch contents depend only on the seed, the
step and the rank, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import numpy as np
import torch

from geodiff.errors import GeodiffError
from geodiff.fields.datasets import SimulatedFieldDataset
from geodiff.fields.simulate import simulate
from geodiff.grid import Grid
from geodiff.rng import derive_seed

__all__ = ["FreshFields", "StoredFields"]

_SCALE_STREAM, _EPOCH_STREAM = 31, 32


class FreshFields:
    """Fields simulated exactly from ``prior`` on ``grid`` for every batch (no reuse).

    Batch ``step * world + rank`` of :class:`SimulatedFieldDataset`'s stream, so the
    fields of a run do not depend on how many processes train it.

    Parameters
    ----------
    prior : GRFPrior
    grid : Grid
    batch_size : int
    seed : int
    fields_per_theta : int
        Fields sharing one parameter draw (cheaper for Cholesky-simulated priors).
    device : str, optional
        Simulation device.
    """

    def __init__(
        self,
        prior,
        grid: Grid,
        batch_size: int,
        seed: int = 0,
        *,
        fields_per_theta: int = 1,
        device=None,
    ):
        self.stream = SimulatedFieldDataset(
            prior,
            grid,
            batch_size=batch_size,
            seed=seed,
            fields_per_theta=fields_per_theta,
            device=device,
        )

    def describe(self) -> dict:
        return {"kind": "fresh", "fields_per_theta": self.stream.fields_per_theta}

    def scale(self, n: int = 512) -> float:
        """Standard deviation of ``n`` fields drawn from an independent stream."""
        s = self.stream
        sim = simulate(
            s.prior,
            s.grid,
            n,
            derive_seed(s.seed, _SCALE_STREAM),
            fields_per_theta=s.fields_per_theta,
            device=s.device,
        )
        return float(sim.fields.double().std())

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        return self.stream.batch(step * world + rank)


class StoredFields:
    """Batches of a field store, reshuffled every epoch; held in memory.

    Parameters
    ----------
    store : FieldStore
    batch_size : int
    seed : int
    """

    def __init__(self, store, batch_size: int, seed: int = 0):
        if len(store) < batch_size:
            raise GeodiffError(f"store {store.path} holds {len(store)} fields, fewer than a batch")
        self.fields = torch.from_numpy(np.asarray(store.fields[:], dtype=np.float32))
        if not torch.isfinite(self.fields).all():
            raise GeodiffError(f"store {store.path} holds non-finite values")
        self.path, self.batch_size, self.seed = str(store.path), batch_size, seed
        self.per_epoch = len(self.fields) // batch_size

    def describe(self) -> dict:
        return {"kind": "store", "path": self.path, "n_fields": len(self.fields)}

    def scale(self, n: int = 512) -> float:
        return float(self.fields.double().std())

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        g = step * world + rank
        epoch, k = divmod(g, self.per_epoch)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, _EPOCH_STREAM, epoch))
        perm = torch.randperm(len(self.fields), generator=gen)
        return self.fields[perm[k * self.batch_size : (k + 1) * self.batch_size]][:, None]
