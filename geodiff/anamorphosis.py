"""Value transforms (Gaussian anamorphosis): skewed data modelled as a transformed Gaussian.

Positive, skewed data (heavy-metal concentrations in ppm, rainfall, permeability) are
rarely Gaussian, but a monotone transform ``z = T(y)`` often makes them close to it. The
field is then modelled and predicted in the transformed (latent) space and the
predictions are mapped back to the original units by :func:`back_transform`.

Public API
----------
ValueTransform
    The base class: ``name``, ``forward(y) -> z``, ``inverse(z) -> y``,
    ``derivative(y) = dz/dy``, ``to_dict()``.
IdentityTransform, LogTransform, BoxCoxTransform, NormalScoreTransform
    ``z = y``; ``z = log(y + offset)``; ``z = ((y + offset)^λ - 1) / λ``; the empirical
    normal-score transform (Gaussian anamorphosis) of the observed values.
fit_transform, TRANSFORM_KINDS
    A transform of a named kind fitted to observed values, with clear errors.
transform_from_dict
    The inverse of ``to_dict`` (for JSON sidecars; nothing is pickled).
back_transform
    A latent :class:`~geodiff.prediction.Prediction` in the original units: exact
    quantiles and exceedances, mean and sd by Gauss–Hermite quadrature (exact sums for
    normal scores).
latent_noise_sd
    A noise sd in the original units mapped to latent units (delta method).
skewness_advice, SkewWarning, SKEWNESS_THRESHOLD
    One line recommending a transform for strongly skewed values.

Order of operations: a new measurement's noise lives in the latent space, so the
predictive distribution of a measurement in original units is
``back_transform(pred.measurement(tau), T)``; calling ``measurement`` on a
back-transformed prediction is refused.

Example
-------
>>> from dataclasses import replace                                # doctest: +SKIP
>>> T = fit_transform("log", obs.values)                           # doctest: +SKIP
>>> latent_obs = replace(obs, values=T.forward(obs.values))        # doctest: +SKIP
>>> latent = simple_kriging(prior, theta, latent_obs, grid)        # doctest: +SKIP
>>> pred = back_transform(latent.measurement(tau), T)              # doctest: +SKIP
>>> pred.quantiles([0.05, 0.95]), pred.exceedance(100.0)           # doctest: +SKIP
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
from scipy import stats

from geodiff.errors import GeodiffError
from geodiff.prediction import Prediction, check_finite, draw_moments

__all__ = [
    "SKEWNESS_THRESHOLD",
    "TRANSFORM_KINDS",
    "BoxCoxTransform",
    "IdentityTransform",
    "LogTransform",
    "NormalScoreTransform",
    "SkewWarning",
    "ValueTransform",
    "back_transform",
    "fit_transform",
    "latent_noise_sd",
    "skewness_advice",
    "transform_from_dict",
]

logger = logging.getLogger(__name__)

#: the kinds :func:`fit_transform` knows, as given to ``--transform``
TRANSFORM_KINDS = ("none", "log", "boxcox", "normal-score")

#: |sample skewness| above which :func:`skewness_advice` recommends a transform. A
#: Gaussian sample of n values has skewness sd ≈ sqrt(6 / n) (0.35 at n = 50), so |g1| > 1
#: is far from Gaussian for any usable sample; a log-normal with σ = 0.3 already has 0.95.
SKEWNESS_THRESHOLD = 1.0

#: Gauss–Hermite nodes of the back-transformed mean and sd
_HERMITE_NODES = 64

#: quadrature mass that may fall where the inverse is infinite (Box-Cox with λ < 0
#: beyond z = -1/λ) and be left out of the back-transformed mean and sd
_IGNORED_MASS = 1e-9


class SkewWarning(UserWarning):
    """Observed values are strongly skewed; a value transform is advisable."""


@dataclass(frozen=True)
class ValueTransform(ABC):
    """A strictly increasing map ``z = T(y)`` from original to latent (Gaussian) units.

    Subclasses set ``name`` and implement ``_forward``, ``_inverse``, ``_derivative``;
    inputs of any shape are accepted and returned with that shape.
    """

    name: ClassVar[str] = ""

    @property
    def lower(self) -> float:
        """The lower end of the domain (values must exceed it); -inf when unbounded."""
        return -np.inf

    def forward(self, y) -> np.ndarray:
        """``z = T(y)``; values outside the domain are a :class:`GeodiffError`."""
        y = np.asarray(y, dtype=float)
        bad = ~(y > self.lower) & ~np.isnan(y)
        if bad.any():
            raise GeodiffError(
                f"the {self.name} transform needs values > {self.lower:g}: {int(bad.sum())} of "
                f"{y.size} are not (smallest {float(np.nanmin(y)):.6g})"
            )
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return self._forward(y)

    def inverse(self, z) -> np.ndarray:
        """``y = T⁻¹(z)``; may be inf where it overflows (callers check)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._inverse(np.asarray(z, dtype=float))

    def derivative(self, y) -> np.ndarray:
        """``dz/dy`` at ``y`` (the delta method's factor for a noise sd)."""
        y = np.asarray(y, dtype=float)
        self.forward(y)  # domain check
        with np.errstate(divide="ignore", over="ignore"):
            return self._derivative(y)

    def forward_extended(self, t) -> np.ndarray:
        """``T(t)`` extended below the domain by ``-inf`` (for exceedance thresholds).

        At the domain's lower end it is the limit of ``T`` (``-inf`` for log, ``-1/λ``
        for Box-Cox with λ > 0), so ``P(Y > t) = P(Z > T(t))`` holds for every ``t``.
        """
        t = np.asarray(t, dtype=float)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            z = self._forward(np.maximum(t, self.lower))
        return np.where(t < self.lower, -np.inf, z)

    def to_dict(self) -> dict:
        """The transform as plain JSON-ready values (``transform_from_dict`` reads it)."""
        return {"name": self.name}

    def gaussian_moments(self, mu, sigma) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of ``T⁻¹(Z)``, ``Z ~ N(mu, sigma²)``.

        By 64-node Gauss–Hermite quadrature (probabilists' nodes, ``hermegauss``): exact
        for polynomials of degree < 128 in ``z``; for ``exp`` (log, Box-Cox near 0) the
        relative error is ~1e-15 up to σ = 3. Nodes where ``T⁻¹`` is infinite (Box-Cox
        with λ < 0 above ``-1/λ``, an overflow) are left out when they carry at most
        1e-9 of the probability; otherwise the moments are inf.

        Parameters
        ----------
        mu, sigma : array_like, shape (m,)

        Returns
        -------
        mean, sd : numpy.ndarray, shape (m,)
        """
        nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)
        weights = weights / weights.sum()  # probability weights of N(0, 1)
        mu = np.asarray(mu, dtype=float)
        sigma = np.asarray(sigma, dtype=float)
        values = self.inverse(mu[None] + sigma[None] * nodes[:, None])  # (K, m)
        finite = np.isfinite(values)
        w = np.where(finite, weights[:, None], 0.0)  # (K, m)
        lost = 1.0 - w.sum(0)
        values = np.where(finite, values, 0.0)
        w = w / np.maximum(w.sum(0), 1e-300)
        mean = (w * values).sum(0)
        with np.errstate(over="ignore", invalid="ignore"):
            sd = np.sqrt((w * (values - mean) ** 2).sum(0))
        bad = lost > _IGNORED_MASS
        return np.where(bad, np.inf, mean), np.where(bad, np.inf, sd)

    @abstractmethod
    def _forward(self, y):
        """The subclass's own map (inputs already checked)."""

    @abstractmethod
    def _inverse(self, z):
        """The subclass's own map (inputs already checked)."""

    @abstractmethod
    def _derivative(self, y):
        """The subclass's own map (inputs already checked)."""


@dataclass(frozen=True)
class IdentityTransform(ValueTransform):
    """``z = y`` (no transform)."""

    name: ClassVar[str] = "none"

    def _forward(self, y):
        return y.copy()

    def _inverse(self, z):
        return z.copy()

    def _derivative(self, y):
        return np.ones_like(y)


@dataclass(frozen=True)
class LogTransform(ValueTransform):
    """``z = log(y + offset)``, for values ``y > -offset``."""

    offset: float = 0.0
    name: ClassVar[str] = "log"

    def __post_init__(self):
        _check_number(self.offset, "log offset")

    @property
    def lower(self) -> float:
        return 0.0 - float(self.offset)  # not -0.0

    def _forward(self, y):
        return np.log(y + self.offset)

    def _inverse(self, z):
        return np.exp(z) - self.offset

    def _derivative(self, y):
        return 1.0 / (y + self.offset)

    def to_dict(self) -> dict:
        return {"name": self.name, "offset": float(self.offset)}


@dataclass(frozen=True)
class BoxCoxTransform(ValueTransform):
    """``z = ((y + offset)^λ - 1) / λ`` (``log(y + offset)`` at λ = 0), for ``y > -offset``.

    The image of the domain is ``(-1/λ, inf)`` for λ > 0 and ``(-inf, -1/λ)`` for λ < 0.
    Outside it the inverse is taken to the image's end: ``y = -offset`` below ``-1/λ``
    when λ > 0, and ``y = inf`` above ``-1/λ`` when λ < 0 (then :func:`back_transform`
    leaves out up to 1e-9 of quadrature mass, or refuses).
    """

    lam: float = 1.0
    offset: float = 0.0
    name: ClassVar[str] = "boxcox"

    def __post_init__(self):
        _check_number(self.lam, "Box-Cox λ")
        _check_number(self.offset, "Box-Cox offset")

    @classmethod
    def fit(cls, values, offset: float = 0.0) -> BoxCoxTransform:
        """λ by maximum likelihood (``scipy.stats.boxcox_normmax(method="mle")``)."""
        x = np.asarray(values, dtype=float).reshape(-1) + offset
        return cls(float(stats.boxcox_normmax(x, method="mle")), float(offset))

    @property
    def lower(self) -> float:
        return 0.0 - float(self.offset)  # not -0.0

    def _forward(self, y):
        logy = np.log(y + self.offset)
        if self.lam == 0:
            return logy
        return np.expm1(self.lam * logy) / self.lam  # accurate for small λ

    def _inverse(self, z):
        if self.lam == 0:
            return np.exp(z) - self.offset
        u = np.maximum(self.lam * z, -1.0)  # 1 + λz >= 0: the image's end
        return np.exp(np.log1p(u) / self.lam) - self.offset

    def _derivative(self, y):
        return np.exp((self.lam - 1.0) * np.log(y + self.offset))

    def to_dict(self) -> dict:
        return {"name": self.name, "lam": float(self.lam), "offset": float(self.offset)}


@dataclass(frozen=True)
class NormalScoreTransform(ValueTransform):
    """The empirical normal-score transform (Gaussian anamorphosis) of observed values.

    **Fit** (:meth:`fit`): the ``n`` values are ranked; each distinct value ``u_j`` gets
    the plotting position ``p_j = (r_j - 0.5) / n`` of its mid-rank ``r_j`` (tied values
    share one knot, the mean of their ranks) and the score ``s_j = Φ⁻¹(p_j)``.

    **Map**: ``T`` interpolates the knots ``(u_j, s_j)`` linearly; beyond the smallest
    and largest datum it continues the first and last segment's straight line (linear
    tails in both ``y`` and ``z``), so ``T`` is a strictly increasing, continuous
    bijection of the real line and ``T⁻¹`` is exactly its inverse everywhere. Far in
    the lower tail the inverse may go below the smallest datum, and below zero for
    positive data; those tails carry the probability beyond the data's range, which the
    data say nothing about.

    Attributes
    ----------
    knots : tuple of float, length k >= 2
        Distinct observed values, increasing.
    scores : tuple of float, length k
        Their normal scores, increasing.
    """

    knots: tuple = ()
    scores: tuple = ()
    name: ClassVar[str] = "normal-score"
    _u: np.ndarray = field(init=False, repr=False, compare=False)
    _s: np.ndarray = field(init=False, repr=False, compare=False)
    _slopes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        u = np.asarray(self.knots, dtype=float)
        s = np.asarray(self.scores, dtype=float)
        if u.ndim != 1 or u.shape != s.shape or len(u) < 2:
            raise GeodiffError("a normal-score transform needs at least two knots and scores")
        if not (np.isfinite(u).all() and np.isfinite(s).all()):
            raise GeodiffError("normal-score knots and scores must be finite")
        if (np.diff(u) <= 0).any() or (np.diff(s) <= 0).any():
            raise GeodiffError("normal-score knots and scores must be strictly increasing")
        object.__setattr__(self, "knots", tuple(u.tolist()))
        object.__setattr__(self, "scores", tuple(s.tolist()))
        object.__setattr__(self, "_u", u)
        object.__setattr__(self, "_s", s)
        inner = np.diff(s) / np.diff(u)  # dz/dy of each segment, (k-1,)
        object.__setattr__(self, "_slopes", np.concatenate([inner[:1], inner, inner[-1:]]))

    @classmethod
    def fit(cls, values) -> NormalScoreTransform:
        """Knots and scores from observed values (ties share their mid-rank), shape (n,)."""
        y = np.sort(np.asarray(values, dtype=float).reshape(-1))
        u, counts = np.unique(y, return_counts=True)
        last = np.cumsum(counts)
        mid_rank = last - (counts - 1) / 2.0  # mean of ranks last-c+1 .. last
        return cls(tuple(u.tolist()), tuple(stats.norm.ppf((mid_rank - 0.5) / len(y)).tolist()))

    def _forward(self, y):
        u, s, k = self._u, self._s, self._slopes
        z = np.interp(y, u, s)
        z = np.where(y < u[0], s[0] + (y - u[0]) * k[0], z)
        return np.where(y > u[-1], s[-1] + (y - u[-1]) * k[-1], z)

    def _inverse(self, z):
        u, s, k = self._u, self._s, self._slopes
        y = np.interp(z, s, u)
        y = np.where(z < s[0], u[0] + (z - s[0]) / k[0], y)
        return np.where(z > s[-1], u[-1] + (z - s[-1]) / k[-1], y)

    def gaussian_moments(self, mu, sigma) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of ``T⁻¹(Z)``, ``Z ~ N(mu, sigma²)``, exactly.

        ``T⁻¹`` is linear, ``y = c + d x`` in ``x = (z - mu) / sigma``, on each of the
        k + 1 pieces ``(a, b)`` between the scores (tails included), so the moments are
        sums of the truncated normal moments ``P = Φ(b) - Φ(a)``,
        ``M1 = φ(a) - φ(b)``, ``M2 = P + a φ(a) - b φ(b)`` (quadrature would converge
        slowly across the kinks). The variance is summed about the mean (no
        cancellation). Where ``sigma == 0``: ``T⁻¹(mu)`` and 0.

        Parameters
        ----------
        mu, sigma : array_like, shape (m,)

        Returns
        -------
        mean, sd : numpy.ndarray, shape (m,)
        """
        mu = np.asarray(mu, dtype=float).reshape(-1)
        sigma = np.asarray(sigma, dtype=float).reshape(-1)
        u, s = self._u, self._s
        beta = np.concatenate(
            [1 / self._slopes[:1], np.diff(u) / np.diff(s), 1 / self._slopes[-1:]]
        )
        alpha = np.concatenate([u[:1], u]) - beta * np.concatenate([s[:1], s])  # (k+1,)
        edges = np.concatenate([[-np.inf], s, [np.inf]])  # (k+2,)
        mean, sd = self.inverse(mu), np.zeros_like(mu)
        for start in range(0, len(mu), 4096):  # (k+2, 4096) blocks bound the memory
            part = slice(start, start + 4096)
            m, g = mu[part], sigma[part]
            live = g > 0
            if not live.any():
                continue
            m, g = m[live], g[live]
            ab = (edges[:, None] - m[None]) / g[None]  # (k+2, n)
            cdf, pdf = stats.norm.cdf(ab), stats.norm.pdf(ab)
            with np.errstate(invalid="ignore"):  # inf * 0 at the outer edges
                apdf = np.where(np.isfinite(ab), ab * pdf, 0.0)
            p, m1 = np.diff(cdf, axis=0), -np.diff(pdf, axis=0)  # (k+1, n)
            m2 = p - np.diff(apdf, axis=0)
            c = alpha[:, None] + beta[:, None] * m[None]
            d = beta[:, None] * g[None]
            first = (c * p + d * m1).sum(0)
            dc = c - first[None]
            var = (dc**2 * p + 2 * dc * d * m1 + d**2 * m2).sum(0)
            idx = np.arange(len(mu))[part][live]
            mean[idx], sd[idx] = first, np.sqrt(np.maximum(var, 0.0))
        return mean, sd

    def _derivative(self, y):
        """The slope of the segment holding ``y``; at a knot, the mean of its two."""
        left = np.searchsorted(self._u, y, side="left")
        right = np.searchsorted(self._u, y, side="right")
        return 0.5 * (self._slopes[left] + self._slopes[right])

    def to_dict(self) -> dict:
        return {"name": self.name, "knots": list(self.knots), "scores": list(self.scores)}


#: the transform classes by name (constant; strategies picked by name)
_CLASSES = {
    cls.name: cls
    for cls in (IdentityTransform, LogTransform, BoxCoxTransform, NormalScoreTransform)
}


def transform_from_dict(d: dict) -> ValueTransform:
    """The transform a :meth:`ValueTransform.to_dict` describes.

    Raises
    ------
    GeodiffError
        An unknown name, or parameters that do not fit it.
    """
    if not isinstance(d, dict) or d.get("name") not in _CLASSES:
        name = d.get("name") if isinstance(d, dict) else d
        raise GeodiffError(f"unknown value transform {name!r}; expected one of {list(_CLASSES)}")
    params = {k: v for k, v in d.items() if k != "name"}
    cls = _CLASSES[d["name"]]
    if cls is NormalScoreTransform:
        params = {k: tuple(v) for k, v in params.items()}
    try:
        return cls(**params)
    except TypeError as err:
        raise GeodiffError(f"bad parameters for the {d['name']} transform: {err}") from None


def fit_transform(kind: str, values, *, offset: float = 0.0) -> ValueTransform:
    """A transform of the given kind for the observed ``values``.

    Parameters
    ----------
    kind : {"none", "log", "boxcox", "normal-score"}
    values : array_like, shape (n,)
        Observed values in the original units.
    offset : float
        Added to the values before ``log`` and ``boxcox`` (to allow zeros).

    Returns
    -------
    ValueTransform

    Raises
    ------
    GeodiffError
        One line: an unknown kind; NaN or infinite values; fewer than 3 values; constant
        values (``boxcox``, ``normal-score``: nothing to fit); values ``<= -offset``
        under ``log`` and ``boxcox`` (how many, the smallest, and what to do instead).
        ``"none"`` checks nothing.
    """
    if kind not in TRANSFORM_KINDS:
        raise GeodiffError(f"unknown transform {kind!r}; expected one of {list(TRANSFORM_KINDS)}")
    if kind == "none":
        return IdentityTransform()
    y = np.asarray(values, dtype=float).reshape(-1)
    bad = ~np.isfinite(y)
    if bad.any():
        raise GeodiffError(
            f"cannot fit a {kind} transform: {int(bad.sum())} of {y.size} values are NaN or "
            "infinite; remove them first"
        )
    if y.size < 3:
        raise GeodiffError(f"cannot fit a {kind} transform to {y.size} values; need at least 3")
    if kind in ("boxcox", "normal-score") and np.all(y == y[0]):
        raise GeodiffError(
            f"cannot fit a {kind} transform: all {y.size} values are {y[0]:g} (constant)"
        )
    if kind in ("log", "boxcox"):
        _check_number(offset, "offset")
        nonpos = y + offset <= 0
        if nonpos.any():
            shifted = " after the offset" if offset else ""
            raise GeodiffError(
                f"the {kind} transform needs positive values{shifted}: {int(nonpos.sum())} of "
                f"{y.size} are <= {0.0 - offset:g} (smallest {y.min():.6g}); use --transform "
                "normal-score, or an offset larger than that"
            )
    if kind == "log":
        return LogTransform(float(offset))
    if kind == "boxcox":
        transform = BoxCoxTransform.fit(y, offset)
        logger.info("Box-Cox λ fitted by maximum likelihood: %.4g", transform.lam)
        return transform
    return NormalScoreTransform.fit(y)


def skewness_advice(values) -> str | None:
    """A recommendation when the values are strongly skewed, else None.

    Parameters
    ----------
    values : array_like, shape (n,)

    Returns
    -------
    str or None
        One line when the sample skewness ``g1`` (``scipy.stats.skew``, NaN left out)
        has ``|g1| >`` :data:`SKEWNESS_THRESHOLD`: a log or Box-Cox transform when all
        values are positive, else the normal-score transform. None otherwise, and for
        fewer than 3 values or constant values. Computed on the values centred and
        scaled to at most 1 (skewness is scale-free), so huge values do not overflow.
    """
    y = np.asarray(values, dtype=float).reshape(-1)
    y = y[np.isfinite(y)]
    if y.size < 3 or np.all(y == y[0]):
        return None
    centred = y - np.median(y)
    g1 = float(stats.skew(centred / np.max(np.abs(centred))))  # scale-free; no overflow
    if not np.isfinite(g1) or abs(g1) <= SKEWNESS_THRESHOLD:
        return None
    fix = (
        "--transform log (or boxcox)"
        if (y > 0).all()
        else "--transform normal-score (not all values are positive)"
    )
    return (
        f"the observed values are strongly skewed (sample skewness {g1:.2f}, |g1| > "
        f"{SKEWNESS_THRESHOLD:g}); a Gaussian model fits them poorly: consider {fix}"
    )


def latent_noise_sd(transform: ValueTransform, values, noise_sd) -> np.ndarray:
    """A noise sd in original units, in latent units by the delta method.

    Parameters
    ----------
    transform : ValueTransform
    values : array_like, shape (n,)
        Observed values (where the slope is taken).
    noise_sd : float or array_like, shape (n,)

    Returns
    -------
    numpy.ndarray, shape (n,)
        ``noise_sd * dz/dy(values)``: first order, good while the noise is small next to
        the scale on which the transform bends.
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    return np.broadcast_to(np.asarray(noise_sd, dtype=float), values.shape) * np.abs(
        transform.derivative(values)
    )


def back_transform(pred: Prediction, transform: ValueTransform) -> Prediction:
    """A latent prediction in the original units ``y = T⁻¹(z)``.

    Parameters
    ----------
    pred : Prediction
        In the latent units, with draws (S, m) or Gaussian (mean, sd of shape (m,)); the
        field, or a new measurement (:meth:`Prediction.measurement`, applied first).
    transform : ValueTransform

    Returns
    -------
    Prediction
        ``transform`` set and ``info["transform"] = transform.to_dict()``.
        With draws: the draws are ``T⁻¹(draws)`` (exact; quantiles and exceedances
        follow from them), mean and sd recomputed from them. Gaussian: ``latent_mean``
        and ``latent_sd`` keep ``μ, σ``; quantiles ``T⁻¹(μ + σ Φ⁻¹(p))`` and exceedances
        ``Φ((μ - T(t)) / σ)`` are exact; ``mean`` and ``sd`` are ``E[T⁻¹(Z)]`` and its sd
        by :meth:`ValueTransform.gaussian_moments`: 64-node Gauss–Hermite quadrature
        (relative error ~1e-15 for log and Box-Cox up to σ = 3), exact sums over the
        pieces of the piecewise-linear normal-score inverse.

    Raises
    ------
    GeodiffError
        ``pred`` is already back-transformed, or the back-transform overflows.
    """
    if not isinstance(transform, ValueTransform):
        raise GeodiffError(f"expected a ValueTransform, got {type(transform).__name__}")
    if pred.transform is not None:
        raise GeodiffError(
            f"this prediction is already back-transformed ({pred.transform.name}); "
            "back_transform takes a prediction in latent units"
        )
    info = {**pred.info, "transform": transform.to_dict()}
    if pred.draws is not None:
        draws = transform.inverse(pred.draws)
        _check_back(draws, "draws", f"latent draws up to {np.max(pred.draws):.4g}", transform)
        mean, sd = draw_moments(draws)
        return replace(pred, mean=mean, sd=sd, draws=draws, info=info, transform=transform)
    mean, sd = transform.gaussian_moments(pred.mean, pred.sd)
    where = f"latent means up to {np.max(pred.mean):.4g}, sds up to {np.max(pred.sd):.4g}"
    _check_back(mean, "means", where, transform)
    _check_back(sd, "standard deviations", where, transform)
    return replace(pred, mean=mean, sd=sd, info=info, transform=transform,
                   latent_mean=np.asarray(pred.mean, dtype=float).copy(),
                   latent_sd=np.asarray(pred.sd, dtype=float).copy())  # fmt: skip


def _check_back(values, what: str, where: str, transform: ValueTransform) -> None:
    """Refuse a back-transform that overflowed or left the transform's range, clearly."""
    hint = (
        f"the {transform.name} back-transform overflowed ({where}); check that the "
        "prediction is in the transform's latent units"
    )
    if isinstance(transform, BoxCoxTransform) and transform.lam < 0:
        hint += (
            f"; Box-Cox with λ = {transform.lam:.3g} is infinite above z = "
            f"{-1 / transform.lam:.4g}: try --transform log or normal-score"
        )
    check_finite(values, what, hint=hint)


def _check_number(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise GeodiffError(f"{what} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise GeodiffError(f"{what} must be finite, got {value}")
