"""Former home of the covariance fit and ordinary kriging, kept for one release.

The fit (REML, the nugget estimate, variograms) is :mod:`geodiff.fields.fit`; ordinary
kriging is :func:`geodiff.baselines.kriging.ordinary_kriging`.
"""

from geodiff.baselines.kriging import ordinary_kriging
from geodiff.fields.fit import (
    CovarianceFit,
    FitWarning,
    NoiseEstimate,
    fit_covariance,
    plug_in_settings,
    reml_noise,
)

__all__ = [
    "CovarianceFit",
    "FitWarning",
    "NoiseEstimate",
    "fit_covariance",
    "ordinary_kriging",
    "plug_in_settings",
    "reml_noise",
]
