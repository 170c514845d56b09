"""Prior validation: compare generated fields against exactly simulated ones.

Every function takes stacks of fields of shape ``(n, H, W)`` (or ``(n, 1, H, W)``), as
torch tensors or numpy arrays, and raises :class:`geodiff.GeodiffError` on bad input.

Semivariograms (:mod:`geodiff.metrics.variogram`)
    ``directional_variograms(fields, max_lag=None, *, directions=DIRECTIONS)``
        empirical semivariogram per field along x, y and both diagonals -> ``Variograms``
    ``expected_variogram(prior, grid, directions=DIRECTIONS, lags=None, *, n_theta=1000,
    seed=0, method="auto", pairs_per_lag=4)``
        the semivariogram a prior implies, Monte Carlo over its parameters -> ``Variograms``
    ``compare_variograms(generated, reference)``
        mean curves, differences, z-scores -> ``VariogramComparison``

Power spectra (:mod:`geodiff.metrics.spectrum`)
    ``radial_power_spectrum(fields, n_bins=None)`` -> ``RadialSpectrum``
    ``compare_spectra(generated, reference)`` -> ``SpectrumComparison``

Classifier two-sample test (:mod:`geodiff.metrics.classifier`)
    ``classifier_two_sample_test(generated, reference, *, seed=0, test_fraction=0.3,
    epochs=10, batch_size=64, lr=1e-3, widths=(16, 32, 32), augment=False, device=None,
    progress=False)`` -> ``ClassifierTestResult``
    ``roc_auc(scores_pos, scores_neg)``: exact AUC with ties counting 1/2
    ``SmallResNet(in_channels=1, widths=(16, 32, 32))``: the classifier

Scores of predictions (:mod:`geodiff.metrics.scores`)
    ``crps(truth, draws=None, *, mean=None, sd=None)``, ``interval_coverage(truth, lower,
    upper)``, ``truth_ranks(truth, draws)``, ``rank_histogram(ranks, n_draws, bins=10)``,
    ``sliced_wasserstein(a, b)``, ``sliced_wasserstein_floor(sample, n)``
"""

from geodiff.metrics.classifier import (
    ClassifierTestResult,
    SmallResNet,
    classifier_two_sample_test,
    roc_auc,
)
from geodiff.metrics.scores import (
    crps,
    interval_coverage,
    rank_histogram,
    sliced_wasserstein,
    sliced_wasserstein_floor,
    truth_ranks,
)
from geodiff.metrics.spectrum import (
    RadialSpectrum,
    SpectrumComparison,
    compare_spectra,
    radial_power_spectrum,
)
from geodiff.metrics.variogram import (
    DIRECTIONS,
    VariogramComparison,
    Variograms,
    compare_variograms,
    directional_variograms,
    expected_variogram,
)

__all__ = [
    "DIRECTIONS",
    "ClassifierTestResult",
    "RadialSpectrum",
    "SmallResNet",
    "SpectrumComparison",
    "VariogramComparison",
    "Variograms",
    "classifier_two_sample_test",
    "compare_spectra",
    "compare_variograms",
    "crps",
    "directional_variograms",
    "expected_variogram",
    "interval_coverage",
    "radial_power_spectrum",
    "rank_histogram",
    "roc_auc",
    "sliced_wasserstein",
    "sliced_wasserstein_floor",
    "truth_ranks",
]
