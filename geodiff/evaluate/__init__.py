"""Evaluation: how well does each method predict, and how do we know?

The last stage of geodiff's flow (fields → prior → posterior → evaluation):

- :mod:`~geodiff.evaluate.datasets` — synthetic datasets drawn from a prior;
- :mod:`~geodiff.evaluate.predictors` — the one registry of prediction methods
  (oracle kriging, ordinary kriging, MCMC, each diffusion sampler), each called the
  same way and timed the same way;
- :mod:`~geodiff.evaluate.validate` — checks of a trained prior and its posteriors
  against exact references, and the report;
- :mod:`~geodiff.evaluate.crossval` — K-fold cross-validation on real point data;
- :mod:`~geodiff.evaluate.demo` — the end-to-end demonstration.

Scores themselves (CRPS, coverage, energy score, ...) live in :mod:`geodiff.metrics`.
"""
