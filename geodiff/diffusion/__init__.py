"""The learned prior: a UNet denoiser trained as a DDPM, its samplers and exact oracles.

Public API
----------
NoiseSchedule
    Variance-preserving schedules (cosine, linear), T steps.
DenoiserProtocol
    The one denoiser interface, ``D(x_t, t) -> x̂_0``, which every sampler takes
    (:mod:`geodiff.diffusion.denoiser`, with the prediction parameterisations).
Denoiser, network_config, NETWORKS
    The trained denoiser: a diffusers ``UNet2DModel`` (ε-, v- or x0-prediction).
GaussianMixtureOracle
    The exact denoiser of a Gaussian or a finite mixture over parameter draws.
ddim_sample, ddpm_sample, dpm_solver_sample, sample
    Samplers as pure functions of ``(denoiser, schedule, x_T)``.
gaussian_sampler_variance
    A sampler's exact output variance on a Gaussian prior with the oracle.
FreshFields, StoredFields
    Training batches: fresh simulations or a field store.
TrainingConfig, train
    Resumable training with EMA, warm-up, clipping, validation and DDP.
DiffusionModel, load_model
    A trained prior: sample from it, save it, load it (safetensors + JSON).
"""

from geodiff.diffusion.data import FreshFields, StoredFields
from geodiff.diffusion.denoiser import DenoiserProtocol
from geodiff.diffusion.exact import gaussian_sampler_variance
from geodiff.diffusion.model import DiffusionModel, load_model
from geodiff.diffusion.network import NETWORKS, Denoiser, network_config
from geodiff.diffusion.oracle import GaussianMixtureOracle
from geodiff.diffusion.samplers import ddim_sample, ddpm_sample, dpm_solver_sample, sample
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.diffusion.training import TrainingConfig, train

__all__ = [
    "NETWORKS",
    "Denoiser",
    "DenoiserProtocol",
    "DiffusionModel",
    "FreshFields",
    "GaussianMixtureOracle",
    "NoiseSchedule",
    "StoredFields",
    "TrainingConfig",
    "ddim_sample",
    "ddpm_sample",
    "dpm_solver_sample",
    "gaussian_sampler_variance",
    "load_model",
    "network_config",
    "sample",
    "train",
]
