"""The posterior samplers by name, and one entry point that dispatches to them."""

from __future__ import annotations

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
    try:
        return sampler(denoiser, schedule, problem, generators, **options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise GeodiffError(f"{method}: {err}") from None
        raise
