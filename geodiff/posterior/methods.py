"""The posterior samplers by name, and one entry point that dispatches to them."""

from __future__ import annotations

import inspect

from geodiff.errors import GeodiffError
from geodiff.posterior.daps import daps_sample
from geodiff.posterior.dps import dps_sample
from geodiff.posterior.mcgdiff import mcgdiff_sample
from geodiff.posterior.mmps import mmps_sample
from geodiff.posterior.pigdm import pigdm_sample

__all__ = ["POSTERIOR_SAMPLERS", "posterior_sample"]

#: posterior samplers by name (the command line's ``--method``)
POSTERIOR_SAMPLERS = {
    "mmps": mmps_sample,
    "mcgdiff": mcgdiff_sample,
    "daps": daps_sample,
    "pigdm": pigdm_sample,
    "dps": dps_sample,
}


def posterior_sample(method: str, denoiser, schedule, problem, generators, **options):
    """Run the sampler named ``method`` (a key of :data:`POSTERIOR_SAMPLERS`)."""
    try:
        sampler = POSTERIOR_SAMPLERS[method]
    except KeyError:
        raise GeodiffError(
            f"unknown posterior method {method!r}; choose from {sorted(POSTERIOR_SAMPLERS)}"
        ) from None
    accepted = sampler_options(method)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise GeodiffError(
            f"{method} does not take the option(s) {', '.join(unknown)}; "
            f"its options: {', '.join(accepted)}"
        )
    return sampler(denoiser, schedule, problem, generators, **options)


def sampler_options(method: str) -> tuple[str, ...]:
    """The keyword options the sampler named ``method`` declares."""
    parameters = inspect.signature(POSTERIOR_SAMPLERS[method]).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)
