"""Seeds and generators, one per ensemble member.

Every random draw in geodiff comes from a ``torch.Generator`` derived from a user's seed
and the draw's *index* (never its position in a batch), so that field ``i`` of a run is
the same whatever the batch size, the number of workers or the chunk it falls in.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["derive_seed", "generators_for"]


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for the stream ``key`` of the run seeded with ``seed``."""
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)).generate_state(
        1, np.uint64
    )
    return int(state[0] >> np.uint64(1))


def generators_for(seed: int, stream: int, indices) -> list[torch.Generator]:
    """One CPU generator per index, for the given stream of a seeded run."""
    return [torch.Generator().manual_seed(derive_seed(seed, stream, i)) for i in indices]
