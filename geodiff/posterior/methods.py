"""The posterior samplers by name, and one entry point that dispatches to them.

Each sampler module declares a :class:`SamplerSpec` (``SPEC``): its function, default
steps, its own options with their defaults, and the hooks a trained model needs
(``prepare``, ``cost``, ``fields_per_draw``, ``summary``). :func:`posterior_sample`
checks options against that declaration and returns a :class:`PosteriorSample`.
"""

from __future__ import annotations

from geodiff.errors import GeodiffError
from geodiff.posterior import daps, dps, mcgdiff, mmps, pigdm
from geodiff.posterior._steps import PosteriorSample, SamplerSpec

__all__ = ["POSTERIOR_SAMPLERS", "PosteriorSample", "SamplerSpec", "posterior_sample", "spec"]

#: posterior samplers by name (the command line's ``--method``)
POSTERIOR_SAMPLERS: dict[str, SamplerSpec] = {
    module.SPEC.name: module.SPEC for module in (mmps, mcgdiff, daps, pigdm, dps)
}


def spec(method: str) -> SamplerSpec:
    """The declaration of the sampler named ``method``.

    Raises
    ------
    GeodiffError
        An unknown method, naming the known ones.
    """
    try:
        return POSTERIOR_SAMPLERS[method]
    except KeyError:
        raise GeodiffError(
            f"unknown posterior method {method!r}; choose from {sorted(POSTERIOR_SAMPLERS)}"
        ) from None


def posterior_sample(
    method: str, denoiser, schedule, problem, generators, **options
) -> PosteriorSample:
    """Run the sampler named ``method`` (a key of :data:`POSTERIOR_SAMPLERS`).

    ``options`` are those the sampler declares (``steps``, ``timesteps``, ``device``,
    ``callback`` and its own); ``steps=None`` is its default.

    Raises
    ------
    GeodiffError
        An unknown method or option (naming the allowed ones), or an invalid value.
    """
    sampler = spec(method)
    sampler.check(options)
    if options.get("steps", 0) is None:
        options = dict(options, steps=sampler.steps)
    return sampler.sample(denoiser, schedule, problem, generators, **options)
