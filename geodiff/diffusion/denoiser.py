"""The one denoiser interface every sampler uses, and the parameterisations behind it.

A *denoiser* is any callable ``D(x_t, t) -> x̂_0`` (k-diffusion's denoiser wrappers):

- ``x_t``: noisy fields, shape (B, 1, H, W), any float dtype;
- ``t``: integer timesteps, a tensor of shape (B,) (or a scalar for every row);
- returns ``x̂_0 ≈ E[x_0 | x_t]``, the shape of ``x_t``, where
  ``x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε`` with ``ε ~ N(0, I)``.

Gradients follow torch's grad mode: a sampler that needs ``∂x̂_0/∂x_t`` calls the same
denoiser with grad enabled on a leaf ``x_t``
(:func:`~geodiff.diffusion.samplers.denoise_with_grad`).
The trained network (:class:`~geodiff.diffusion.network.Denoiser`) and the exact
Gaussian-mixture oracle (:class:`~geodiff.diffusion.oracle.GaussianMixtureOracle`) both
satisfy it; samplers derive ε̂ from x̂_0 with :func:`eps_from_x0` where they need it.

The network behind a :class:`~geodiff.diffusion.network.Denoiser` is trained to predict
one of three targets (its ``prediction``), converted to x̂_0 by :func:`x0_from_output`:

- ``eps``: ε;                     x̂_0 = (x_t - √(1-ᾱ) ε̂) / √ᾱ
- ``v``:   v = √ᾱ ε - √(1-ᾱ) x_0;  x̂_0 = √ᾱ x_t - √(1-ᾱ) v̂
- ``x0``:  x_0;                   x̂_0 = the output

and in every case ``ε̂ = (x_t - √ᾱ x̂_0) / √(1-ᾱ)``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = [
    "PREDICTIONS",
    "DenoiserProtocol",
    "eps_from_x0",
    "training_target",
    "x0_from_output",
]

#: the training targets a network may predict
PREDICTIONS = ("eps", "v", "x0")


@runtime_checkable
class DenoiserProtocol(Protocol):
    """``D(x_t, t) -> x̂_0``: see the module's documentation."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar) -> torch.Tensor:
    """ε̂ = (x_t - √ᾱ x̂_0) / √(1-ᾱ), with ``alpha_bar`` a float or a broadcastable tensor."""
    return (x_t - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5


def training_target(
    prediction: str, x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """What a network with ``prediction`` is trained to output for ``x0`` noised by ``noise``."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0


def x0_from_output(
    prediction: str, output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """x̂_0 from a network's ``output`` (its estimate of the training target) at ``x_t``."""
    if prediction == "eps":
        return (x_t - (1 - alpha_bar).sqrt() * output) / alpha_bar.sqrt()
    if prediction == "x0":
        return output
    return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * output
