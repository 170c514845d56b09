"""Measurement noise that geodiff infers instead of demanding it.

Real data come without a known measurement-error sd ``τ`` (kriging users let the nugget
be estimated). Every prediction method takes one of three noise models (:class:`NoiseModel`):

``"given"``
    ``τ`` is known: the observations' own ``noise_sd`` (a column or a number).
``"reml"``
    The practitioner's plug-in: ``τ̂`` is the nugget of a stationary covariance of the
    prior's family fitted by REML to the observations taken as noiseless
    (:func:`~geodiff.fields.fit.reml_noise`), then used as if known.
``"bayes"``
    Fully Bayesian: ``τ² ~`` :class:`NoisePrior` and ``τ`` is inferred jointly with the
    field — by MCMC, as one more NUTS site (the marginal likelihood is exact); by the
    diffusion posterior, with :func:`gibbs_noise`, a Gibbs sampler that alternates a
    posterior-sampler run given ``τ`` and the conjugate draw of ``τ²`` given a field.

A method's field draws come with the ``τ`` each was drawn under
(:attr:`~geodiff.prediction.Prediction.noise_sd_draws`; a plug-in ``τ̂`` is
:attr:`~geodiff.prediction.Prediction.noise_sd`) so that a *new measurement* (field plus
noise, the default prediction for scoring against held-out data) carries the noise's own
uncertainty.

Legend
------
``y`` (n,) observed values; ``A`` the observation operator; ``f`` a field;
``r = y - A f`` the residuals; ``τ`` the noise sd; ``IG(a, b)`` the inverse-gamma law of
density ``∝ (τ²)^-(a+1) exp(-b / τ²)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from geodiff.errors import GeodiffError
from geodiff.rng import derive_seed

__all__ = ["NOISE_MODES", "GibbsNoise", "NoiseModel", "NoisePrior", "gibbs_noise"]

logger = logging.getLogger(__name__)


class NoiseModel(str, Enum):
    """How a method learns the measurement noise (see the module's docstring).

    A string enum: ``NoiseModel("reml") is NoiseModel.REML``, and a member equals its value,
    so the API and the command line keep taking ``"given"``, ``"reml"`` or ``"bayes"``.
    """

    GIVEN = "given"
    REML = "reml"
    BAYES = "bayes"

    @classmethod
    def parse(cls, value) -> NoiseModel:
        """The noise model called ``value``.

        Raises
        ------
        GeodiffError
            An unknown name; the message lists the known ones.
        """
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise GeodiffError(f"unknown noise mode {value!r}; choose from {known}") from None

    @property
    def inferred(self) -> bool:
        """True when τ comes from the data (a plug-in or a posterior), not from the user."""
        return self is not NoiseModel.GIVEN

    @property
    def sampled(self) -> bool:
        """True when τ is a parameter of the posterior (drawn with the field)."""
        return self is NoiseModel.BAYES

    def __str__(self) -> str:
        return self.value


#: the noise models' names, as the command line takes them
NOISE_MODES = tuple(m.value for m in NoiseModel)

#: a kept chain whose mean τ is below this fraction of its REML start has collapsed
COLLAPSE_FRACTION = 0.5
_PRIOR_SHAPE = 1.0  # a: a heavy right tail (no prior mean), little mass near 0
_PRIOR_SCALE = 0.02  # b / var(y): prior median of τ² is 0.029 var(y)


class NoiseWarning(UserWarning):
    """An inferred noise that should not be trusted."""


def collapse_message(chain_mean: float, start: float) -> str | None:
    """A warning when a Gibbs chain's kept τ fell far below its REML start, else None.

    The field step is only as good as its sampler: one that fits the data more closely
    than the prior allows (too few steps) leaves small residuals, and the conjugate step
    then shrinks τ sweep after sweep.
    """
    if chain_mean >= COLLAPSE_FRACTION * start:
        return None
    return (
        f"the sampled noise sd fell to {chain_mean:.3g}, below {COLLAPSE_FRACTION:g} x the "
        f"REML estimate {start:.3g}: the posterior sampler fits the data too closely for "
        "the noise to be inferred (raise --steps, or use --noise reml)"
    )


def plug_in_noise(obs, prior):
    """The REML nugget of ``obs`` under ``prior``'s family (a :class:`NoiseEstimate`).

    The observations are taken as noiseless and the prior's shape parameter is held at
    its median (:func:`~geodiff.fields.fit.plug_in_settings`); the fit's own
    warnings are left out (the estimate is a plug-in or a chain's start, reported as such).
    """
    import warnings

    from geodiff.fields.fit import FitWarning, plug_in_settings, reml_noise
    from geodiff.observe import Observations

    if obs.operator.kind != "points" or obs.operator.grid is not None:
        raise GeodiffError(
            "the REML noise estimate needs point observations off any grid; give the noise "
            "(--noise-sd) or sample it (--noise bayes)"
        )
    settings = plug_in_settings(prior)
    exact = Observations(obs.operator, obs.values, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return reml_noise(exact, settings["family"], settings["shape"])


@dataclass(frozen=True)
class NoisePrior:
    """``τ² ~ IG(shape, scale)``, in the units of the values it is used with.

    Attributes
    ----------
    shape, scale : float
        ``a`` and ``b`` of the legend.
    """

    shape: float
    scale: float

    def __post_init__(self):
        if not (self.shape > 0 and self.scale > 0 and math.isfinite(self.shape * self.scale)):
            raise GeodiffError(
                f"noise prior needs shape, scale > 0, got {self.shape}, {self.scale}"
            )

    @classmethod
    def weak(cls, values) -> NoisePrior:
        """The default: ``IG(1, 0.02 var(y))``, scaled to the observed values.

        Scaled by the sample variance so that it moves with the data's units (every
        method stays exactly equivariant). Its median is 0.029 var(y); it gives τ² >
        var(y) probability 0.02 and τ² < 0.002 var(y) probability 5e-5, which keeps a
        Gibbs sampler away from the τ → 0 corner that interpolating fields invite.
        """
        values = np.asarray(values, dtype=float)
        var = float(np.var(values, ddof=1)) if values.size > 1 else 0.0
        if not var > 0:
            raise GeodiffError("cannot infer the noise of constant (or single) values")
        return cls(_PRIOR_SHAPE, _PRIOR_SCALE * var)

    def scaled(self, factor: float) -> NoisePrior:
        """The same prior for values multiplied by ``factor``."""
        return NoisePrior(self.shape, self.scale * factor**2)

    def posterior(self, residuals) -> NoisePrior:
        """``τ² | r``: ``IG(a + n/2, b + |r|²/2)`` for residuals of shape (n,)."""
        r = np.asarray(residuals, dtype=float).reshape(-1)
        return NoisePrior(self.shape + r.size / 2, self.scale + 0.5 * float(r @ r))

    def sample_sd(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of ``τ`` (square roots of ``τ²`` draws)."""
        return np.sqrt(self.scale / rng.gamma(self.shape, 1.0, size))

    def log_density_variance(self, variance) -> np.ndarray:
        """Log density of ``τ²`` at ``variance`` (normalised)."""
        v = np.asarray(variance, dtype=float)
        a, b = self.shape, self.scale
        return a * math.log(b) - math.lgamma(a) - (a + 1) * np.log(v) - b / v

    def pyro(self):
        """The prior of ``τ²`` as a Pyro distribution (float64)."""
        import pyro.distributions as dist

        return dist.InverseGamma(
            torch.tensor(self.shape, dtype=torch.float64),
            torch.tensor(self.scale, dtype=torch.float64),
        )

    def to_dict(self) -> dict:
        return {"law": "tau^2 ~ InverseGamma", "shape": self.shape, "scale": self.scale}


@dataclass
class GibbsNoise:
    """What :func:`gibbs_noise` drew.

    Attributes
    ----------
    fields : numpy.ndarray, shape (S, ...)
        The kept field draws, in draw-index order.
    noise_sd : numpy.ndarray, shape (S,)
        The ``τ`` each field was drawn under.
    chain : numpy.ndarray, shape (burn_in + sweeps,)
        ``τ`` of every sweep, burn-in first.
    """

    fields: np.ndarray
    noise_sd: np.ndarray
    chain: np.ndarray


def gibbs_noise(
    draw_fields: Callable,
    residuals: Callable,
    prior: NoisePrior,
    start_sd: float,
    samples: int,
    *,
    sweeps: int = 10,
    burn_in: int = 3,
    seed: int = 0,
    stream: int = 0,
) -> GibbsNoise:
    """Gibbs sampling of ``(f, τ) | y``: fields given ``τ``, then ``τ²`` given one field.

    Sweep ``k`` draws the fields of indices ``i ≡ k (mod sweeps)`` given ``τ_k`` (in one
    batched call), then ``τ²_{k+1} ~ IG(a + n/2, b + |y - A f|²/2)`` given its first
    field. Burn-in sweeps draw one field each (indices ``samples, samples + 1, ...``)
    and are discarded. Field ``i`` and every ``τ`` depend on ``(seed, stream, index)``
    only, so the result does not depend on how the caller batches its draws.

    Parameters
    ----------
    draw_fields : callable
        ``draw_fields(tau, indices) -> array (len(indices), ...)``: draws from
        ``f | τ, y`` (any sampler; exact samplers make this an exact Gibbs sampler).
    residuals : callable
        ``residuals(field) -> array (n,)``: ``y - A f`` of one field.
    prior : NoisePrior
    start_sd : float
        ``τ_0`` (e.g. the REML estimate: the chain starts near its mode).
    samples : int
        Number of kept fields ``S``.
    sweeps : int
        Kept sweeps (at most ``S``); each contributes about ``S / sweeps`` fields and
        one ``τ``.
    burn_in : int
        Discarded sweeps before them.
    seed, stream : int

    Returns
    -------
    GibbsNoise
    """
    if not (isinstance(samples, int) and samples >= 1):
        raise GeodiffError(f"samples must be a positive integer, got {samples!r}")
    if not (isinstance(sweeps, int) and sweeps >= 1 and isinstance(burn_in, int) and burn_in >= 0):
        raise GeodiffError(f"need sweeps >= 1 and burn_in >= 0, got {sweeps!r}, {burn_in!r}")
    if not (math.isfinite(start_sd) and start_sd > 0):
        raise GeodiffError(f"the chain's starting noise sd must be > 0, got {start_sd!r}")
    sweeps = min(sweeps, samples)
    plan = [[samples + b] for b in range(burn_in)]
    plan += [list(range(k, samples, sweeps)) for k in range(sweeps)]
    tau, chain, kept, kept_sd = float(start_sd), [], [None] * samples, np.empty(samples)
    for k, indices in enumerate(plan):
        fields = np.asarray(draw_fields(tau, indices))
        chain.append(tau)
        if k >= burn_in:
            for i, f in zip(indices, fields, strict=True):
                kept[i], kept_sd[i] = f, tau
        rng = np.random.default_rng(derive_seed(seed, stream, k))
        tau = float(prior.posterior(residuals(fields[0])).sample_sd(rng))
    logger.debug("noise chain: %s", np.round(chain, 4).tolist())
    return GibbsNoise(np.stack(kept), kept_sd, np.asarray(chain))
