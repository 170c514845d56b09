"""GPU checks (opt in with ``pytest -m gpu`` on a machine with CUDA)."""

import pytest
import torch

from geodiff import Grid, simulate
from geodiff.fields.config import load_prior

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("name", ["stationary-matern", "nonstationary-anisotropy"])
def test_gpu_simulation_matches_cpu(name):
    # the same generators feed both devices, so fields agree up to float64 round-off
    prior, grid = load_prior(name), Grid.square(32)
    cpu = simulate(prior, grid, 8, seed=3, device="cpu")
    gpu = simulate(prior, grid, 8, seed=3, device="cuda")
    torch.testing.assert_close(gpu.fields, cpu.fields, rtol=1e-4, atol=1e-4)
