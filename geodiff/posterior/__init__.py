"""Diffusion posterior sampling: draws of a field given linear-Gaussian observations.

Every sampler has the signature
``sampler(denoiser, schedule, problem, generators, *, steps, ..., device, callback)``,
takes a denoiser ``D(x_t, t) -> x̂_0`` (:mod:`geodiff.diffusion.denoiser`: the trained
network or the exact oracle) and returns a :class:`PosteriorSample` ``(draws, info)``:
``(B, 1, H, W)`` float64 draws in the model's units, one per generator, and its
diagnostics. Each declares itself in a :class:`SamplerSpec` (options and defaults, hooks);
:func:`posterior_sample` runs one by name, checking its options:

* :func:`mcgdiff_sample` — sequential Monte Carlo, asymptotically exact (no gradients);
* :func:`dps_sample` — diffusion posterior sampling (gradients of the denoiser);
* :func:`pigdm_sample` — pseudoinverse guidance (gradients of the denoiser);
* :func:`daps_sample` — decoupled annealing with exact Gaussian conditioning (no gradients);
* :func:`mmps_sample` — moment matching: an integrator on the conditional denoiser from
  Tweedie's covariance, exact for a Gaussian prior (vector-Jacobian products).

:func:`diffusion_posterior` and :func:`predict` run them with a trained
:class:`~geodiff.diffusion.model.DiffusionModel` on observations in physical units.
"""

from __future__ import annotations

from geodiff.posterior.daps import daps_sample
from geodiff.posterior.dps import dps_sample
from geodiff.posterior.exact import condition_gaussian, gaussian_posterior
from geodiff.posterior.mcgdiff import mcgdiff_sample
from geodiff.posterior.methods import (
    POSTERIOR_SAMPLERS,
    PosteriorSample,
    SamplerSpec,
    posterior_sample,
)
from geodiff.posterior.mmps import conditional_denoiser, mmps_sample
from geodiff.posterior.pigdm import pigdm_sample
from geodiff.posterior.predict import DEFAULT_METHOD, PosteriorDraws, diffusion_posterior, predict
from geodiff.posterior.problem import LinearGaussianProblem, SpectralProblem

__all__ = [
    "DEFAULT_METHOD",
    "POSTERIOR_SAMPLERS",
    "LinearGaussianProblem",
    "PosteriorDraws",
    "PosteriorSample",
    "SamplerSpec",
    "SpectralProblem",
    "condition_gaussian",
    "conditional_denoiser",
    "daps_sample",
    "diffusion_posterior",
    "dps_sample",
    "gaussian_posterior",
    "mcgdiff_sample",
    "mmps_sample",
    "pigdm_sample",
    "posterior_sample",
    "predict",
]
