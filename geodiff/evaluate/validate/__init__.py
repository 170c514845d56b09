"""Validation of a trained diffusion prior against exact references (``geodiff validate``).

``run_validation(model, out, ...)``
    Runs both halves and writes ``out/report.md`` with figures and ``out/summary.json``.
``validate_prior(model, ...)``
    Denoising error against the exact oracle, variograms, spectra, marginal quantiles,
    the max-sliced Wasserstein distance and a classifier two-sample test, each against
    exact simulations with a control set for the noise floor.
``validate_posterior(model, ...)``
    Coverage, CRPS, energy score, rank histograms and the distance to MCMC draws on
    datasets drawn from the prior, with kriging for context.
``Check``
    One check: measured value, floor, criterion, pass or warn.
"""

from geodiff.evaluate.validate.checks import Check, checks_table
from geodiff.evaluate.validate.posterior import PosteriorValidation, validate_posterior
from geodiff.evaluate.validate.prior import PriorValidation, validate_prior
from geodiff.evaluate.validate.report import ValidationReport, run_validation

__all__ = [
    "Check",
    "PosteriorValidation",
    "PriorValidation",
    "ValidationReport",
    "checks_table",
    "run_validation",
    "validate_posterior",
    "validate_prior",
]
