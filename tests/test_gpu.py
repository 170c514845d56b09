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


def test_gpu_training_with_mixed_precision_and_sampling(tmp_path):
    from geodiff.diffusion import FreshFields, TrainingConfig, load_model, network_config, train

    prior, grid = load_prior("stationary-matern"), Grid.square(16)
    config = TrainingConfig(
        steps=20,
        batch_size=16,
        warmup_steps=2,
        checkpoint_every=10,
        validate_every=20,
        oracle_components=4,
        n_validation=16,
        n_preview=2,
    )
    model = train(
        tmp_path / "run",
        prior=prior,
        grid=grid,
        data=FreshFields(prior, grid, 16, 0, device="cuda"),
        network=network_config("tiny", 16),
        config=config,
        device="cuda",
        progress=False,
    )
    assert model.device.type == "cuda"
    assert all(r < 10 for r in model.info["validation"]["ratio"])
    loaded = load_model(tmp_path / "run", "cuda")
    fields = loaded.sample(4, steps=10)
    assert fields.shape == (4, 16, 16) and torch.isfinite(fields).all()
    # the CPU reproduces the GPU's samples up to float32 round-off
    cpu = load_model(tmp_path / "run", "cpu").sample(4, steps=10)
    torch.testing.assert_close(cpu, fields, rtol=1e-3, atol=1e-3)


def test_gpu_matrix_free_mmps_matches_cpu():
    """An any-size model's MMPS (sparse A, FFT Gaussian, CG tolerance) on CUDA equals the CPU."""
    import numpy as np

    from geodiff.diffusion.model import DiffusionModel
    from geodiff.diffusion.network import Denoiser, network_config
    from geodiff.diffusion.schedule import NoiseSchedule
    from geodiff.observe import Observations
    from geodiff.posterior import diffusion_posterior

    torch.manual_seed(0)
    prior = load_prior("spde-anisotropy")
    denoiser = Denoiser(network_config("conv", 32), NoiseSchedule()).eval()
    model = DiffusionModel(denoiser, prior.window((32, 32)), prior.to_config(), 1.0)
    big = model.on_grid((64, 48))
    rng = np.random.default_rng(0)
    obs = Observations.at_points(rng.uniform(0, 47, (30, 2)), rng.standard_normal(30), 0.1)
    options = {"samples": 4, "steps": 6, "cg_iterations": 3, "start_sigma": 3.0}
    cpu = diffusion_posterior(big, obs, **options).fields
    # cuDNN would run float32 convolutions in TF32 (10-bit mantissa: the first H200 run,
    # with it, differed by 3e-3 on 14 of 12,288 values): compare float32 with float32
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        gpu = diffusion_posterior(big.to("cuda"), obs, **options).fields
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3)
