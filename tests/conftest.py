import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them (OMP_NUM_THREADS lowers it further,
# e.g. to 1 while another job shares the machine).
torch.set_num_threads(min(2, os.cpu_count() or 1, int(os.environ.get("OMP_NUM_THREADS") or 2)))


@pytest.fixture
def unit_square():
    return ((0.0, 1.0), (0.0, 1.0))
