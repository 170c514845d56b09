"""What the posterior samplers share: their result, their declaration, the start.

The steps (:func:`~geodiff.diffusion.samplers.visited_steps`), the DDIM update
(:func:`~geodiff.diffusion.samplers.ddim_step`) and the differentiable denoiser call
(:func:`~geodiff.diffusion.samplers.denoise_with_grad`) are the unconditional samplers'.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from geodiff.diffusion.samplers import initial_noise
from geodiff.errors import GeodiffError


class PosteriorSample(NamedTuple):
    """What every posterior sampler returns: the draws and its diagnostics."""

    #: float64, shape (B, 1, H, W), one draw per generator, in the model's units
    draws: torch.Tensor
    #: the sampler's diagnostics (empty for most)
    info: dict


@dataclass(frozen=True)
class SamplerSpec:
    """A posterior sampler as :func:`~geodiff.posterior.posterior_sample` runs it.

    Attributes
    ----------
    name : str
        The ``--method`` name.
    sample : callable
        ``sample(denoiser, schedule, problem, generators, *, steps, device, callback,
        **options) -> PosteriorSample``. Its signature is the one place its options and
        their defaults are written: ``steps`` and ``options`` are read from it.
    steps : int
        Its default number of steps (read from ``sample``).
    options : dict
        Its own keyword-only options (besides ``steps``, ``timesteps``, ``device``,
        ``callback``) with their defaults (read from ``sample``).
    gradients : bool
        Whether it differentiates the denoiser.
    prepare : callable, optional
        ``prepare(model, problem, options) -> options``: options a trained model adds
        (e.g. MMPS's preconditioner), given the caller's.
    cost : callable, optional
        ``cost(schedule, problem, options) -> dict``: its cost per draw.
    fields_per_draw : callable
        ``fields_per_draw(options) -> int``: fields per draw in one denoiser call.
    summary : callable, optional
        ``summary(infos) -> dict``: one summary of the batches' diagnostics.
    matrix_free : bool
        Whether it only applies ``A`` and ``Aᵀ`` and forms no ``d × d`` object (it then
        gets a sparse ``A`` and runs on grids of any size).
    """

    name: str
    sample: Callable[..., PosteriorSample]
    gradients: bool = False
    prepare: Callable | None = None
    cost: Callable | None = None
    fields_per_draw: Callable[[dict], int] = lambda options: 1
    summary: Callable | None = None
    matrix_free: bool = False
    steps: int = field(init=False)
    options: dict[str, Any] = field(init=False)

    #: options every sampler takes
    COMMON = ("steps", "timesteps", "device", "callback")

    def __post_init__(self):
        parameters = inspect.signature(self.sample).parameters
        own = {name: p.default for name, p in parameters.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in self.COMMON}  # fmt: skip
        object.__setattr__(self, "steps", parameters["steps"].default)
        object.__setattr__(self, "options", own)

    @property
    def defaults(self) -> dict:
        """Every option's default, ``steps`` included."""
        return {"steps": self.steps, **self.options}

    def check(self, options: dict) -> None:
        """Refuse options the sampler does not declare, naming those it does."""
        allowed = (*self.COMMON, *self.options)
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise GeodiffError(
                f"{self.name} does not take the option(s) {', '.join(unknown)}; "
                f"its options: {', '.join(allowed)}"
            )


def start(shape, generators: list, device) -> torch.Tensor:
    """``x_T ~ N(0, I)`` in float64, one row per generator, shape ``(B, 1, H, W)``."""
    if not generators:
        raise GeodiffError("need at least one generator (one per posterior draw)")
    return initial_noise((1, *shape), generators, device, torch.float64)


def gaussian_start(
    gaussian, problem, schedule, step: int, generators: list, device
) -> torch.Tensor:
    """``x_t`` at ``step`` drawn from its exact law given the observations under a Gaussian.

    Under ``N(0, Σ̄)`` that law is ``N(√ᾱ μ, ᾱ P + (1-ᾱ) I)`` with ``(μ, P)`` the
    posterior of ``N(0, Σ̄)`` (:func:`~geodiff.posterior.exact.gaussian_posterior`); a
    sampler started there skips the steps above it. Row ``i`` is a fixed linear map of
    the standard normal draw of ``generators[i]`` (for a dense ``Σ̄`` the same draw
    :func:`start` makes), so it does not depend on the batch.

    Parameters
    ----------
    gaussian : torch.Tensor of shape (d, d), or a Gaussian of :mod:`geodiff.posterior.gaussian`
        ``Σ̄`` (MMPS's preconditioner), ``d = H*W``.
    problem : LinearGaussianProblem
        The observations, on ``device``.
    schedule : NoiseSchedule
    step : int
        The step ``t`` of the state drawn.
    generators : list of torch.Generator
        One per row.
    device : torch.device or str

    Returns
    -------
    torch.Tensor, float64, shape (B, 1, H, W)
    """
    from geodiff.posterior.gaussian import as_gaussian

    if not generators:
        raise GeodiffError("need at least one generator (one per posterior draw)")
    gaussian = as_gaussian(gaussian)
    shape = gaussian.start_noise_shape(len(problem), problem.shape)
    z = initial_noise((1, *shape), generators, device, torch.float64)[:, 0]
    ab = float(schedule.alpha_bar[step])
    return gaussian.start(problem, ab, z).reshape(len(z), 1, *problem.shape)


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)
