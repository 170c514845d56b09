"""The heavy-tailed start (truncated diffusion): its fit, and sampling from it.

The fit is checked against a law known exactly: fields drawn from a :class:`TailStart`
with given marginal parameters. The tolerance is the Monte Carlo spread of the fitted
values over independent sets (4 sd of the mean of 6 refits), and the same statistic
rejects a tail weight 0.05 away from the truth.
"""

import numpy as np
import pytest
import torch

from geodiff.diffusion.model import load_model
from geodiff.diffusion.tail_start import TailStart, fit_tail_start, sample_with_tail_start
from geodiff.errors import GeodiffError
from geodiff.fields.config import load_prior
from geodiff.fields.simulate import simulate

TRUTH = {"loc": 0.2, "scale": 1.3, "skew": 0.3, "tail": 0.15}


def _exponential_spectrum(shape=(32, 32), length=4.0):
    h, w = shape
    dy = np.minimum(np.arange(h), h - np.arange(h))[:, None]
    dx = np.minimum(np.arange(w), w - np.arange(w))[None]
    return np.clip(np.fft.fft2(np.exp(-np.hypot(dx, dy) / length)).real, 0, None)


@pytest.fixture(scope="module")
def fits():
    law = TailStart(**TRUTH, spectrum=_exponential_spectrum())
    return [fit_tail_start(law.sample(200, seed=s)) for s in range(6)]


@pytest.mark.parametrize("key", ["skew", "tail", "loc", "scale"])
def test_fit_recovers_the_marginal_of_a_known_law(fits, key):
    values = np.array([getattr(f, key) for f in fits])
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - TRUTH[key]) <= 4 * se + 1e-6, (values, TRUTH[key])
    if key == "tail":  # power: a tail weight 0.05 away is rejected by the same statistic
        assert abs(values.mean() - (TRUTH[key] + 0.05)) > 4 * se


LAGS = [(0, 1), (0, 2), (1, 1), (0, 4), (3, 2)]


def _correlations(spectrum):
    correlation = np.fft.ifft2(spectrum).real
    correlation /= correlation[0, 0]
    return np.array([correlation[dy, dx] for dy, dx in LAGS])


def test_fit_recovers_the_dependence_of_a_known_law(fits):
    values = np.array([_correlations(f.spectrum) for f in fits])
    se = values.std(axis=0, ddof=1) / np.sqrt(len(values))
    truth = _correlations(_exponential_spectrum())
    assert np.all(np.abs(values.mean(0) - truth) <= 4 * se), (values.mean(0), truth, se)
    longer = _correlations(_exponential_spectrum(length=4.4))  # power: a 10 % longer range
    assert np.any(np.abs(values.mean(0) - longer) > 4 * se)


def test_fit_refuses_too_few_or_non_finite_fields():
    with pytest.raises(GeodiffError, match="at least 20 fields"):
        fit_tail_start(np.zeros((5, 8, 8)))
    bad = np.random.default_rng(0).standard_normal((30, 8, 8))
    bad[0, 0, 0] = np.nan
    with pytest.raises(GeodiffError, match="finite"):
        fit_tail_start(bad)


def test_sampling_from_a_start_is_reproducible_and_finite():
    model = load_model("stationary-matern-32", "cpu")
    prior = load_prior("stationary-matern")
    fields = simulate(prior, model.grid, 40, seed=0).fields.double().numpy()
    start = fit_tail_start(fields)
    a = sample_with_tail_start(model, start, 3, start_sigma=1.0, steps=5, seed=1)
    b = sample_with_tail_start(model, start, 3, start_sigma=1.0, steps=5, seed=1)
    assert a.shape == (3, *model.grid.shape) and torch.isfinite(a).all()
    assert torch.equal(a, b)
