"""Radially averaged power spectra of field stacks, and their comparison.

For a field ``f`` of shape ``(H, W)`` with mean ``m``, let ``F = FFT2(f - m)`` and
``P(ky, kx) = |F|^2 / (H W)``, so that ``sum P = sum (f - m)^2`` (Parseval). The integer
wavenumbers ``ky`` and ``kx`` count cycles per field height and width, with signs, and
the radial wavenumber of a frequency is ``round(sqrt(kx^2 + ky^2))``: bin ``k`` is the
annulus ``k - 1/2 <= |k| < k + 1/2``. The radial spectrum is the mean of ``P`` over each
annulus; with every bin kept, ``sum_k counts[k] * power[k] = sum (f - m)^2`` exactly. The
zero-frequency bin holds only the removed mean and is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.metrics._checks import as_fields

__all__ = ["RadialSpectrum", "SpectrumComparison", "compare_spectra", "radial_power_spectrum"]

_CHUNK_ELEMENTS = 2**22  # complex128 FFT values processed at once (64 MiB)


@dataclass(frozen=True, eq=False)
class RadialSpectrum:
    """Radially averaged power spectra, one per field.

    Attributes
    ----------
    wavenumbers : np.ndarray of int, shape (K,)
        Radial wavenumbers ``1..K`` in cycles per field length.
    counts : np.ndarray of int, shape (K,)
        Number of discrete frequencies in each annulus.
    power : np.ndarray, float64, shape (n, K)
        Mean power over each annulus, per field.
    """

    wavenumbers: np.ndarray
    counts: np.ndarray
    power: np.ndarray

    @property
    def n(self) -> int:
        """Number of fields."""
        return self.power.shape[0]

    def mean(self) -> np.ndarray:
        """Mean spectrum over fields, shape (K,)."""
        return self.power.mean(axis=0)

    def standard_error(self) -> np.ndarray:
        """Standard error of :meth:`mean`, shape (K,)."""
        if self.n < 2:
            raise GeodiffError(f"a standard error needs at least 2 spectra, got {self.n}")
        return self.power.std(axis=0, ddof=1) / math.sqrt(self.n)


@dataclass(frozen=True, eq=False)
class SpectrumComparison:
    """Mean radial spectra of two sets and their log-ratio.

    Attributes
    ----------
    wavenumbers : np.ndarray of int, shape (K,)
    generated, reference : np.ndarray, shape (K,)
        Mean spectra.
    log_ratio : np.ndarray, shape (K,)
        ``log(generated / reference)``.
    standard_error : np.ndarray, shape (K,)
        Delta-method standard error of ``log_ratio``:
        ``sqrt((se_g / g)^2 + (se_r / r)^2)``.
    z : np.ndarray, shape (K,)
        ``log_ratio / standard_error``.
    max_abs_z : float
    max_abs_log_ratio : float
    """

    wavenumbers: np.ndarray
    generated: np.ndarray
    reference: np.ndarray
    log_ratio: np.ndarray
    standard_error: np.ndarray
    z: np.ndarray
    max_abs_z: float
    max_abs_log_ratio: float

    def table(self) -> list[dict]:
        """One row per wavenumber, as dicts of plain Python numbers."""
        return [
            {
                "wavenumber": int(k),
                "generated": float(g),
                "reference": float(r),
                "log_ratio": float(lr),
                "standard_error": float(se),
                "z": float(z),
            }
            for k, g, r, lr, se, z in zip(
                self.wavenumbers,
                self.generated,
                self.reference,
                self.log_ratio,
                self.standard_error,
                self.z,
                strict=True,
            )
        ]


def _radial_bins(shape) -> np.ndarray:
    """Radial wavenumber bin of every frequency of an FFT of ``shape``, (H, W) int."""
    h, w = shape
    ky = np.fft.fftfreq(h) * h
    kx = np.fft.fftfreq(w) * w
    radius = np.hypot(ky[:, None], kx[None, :])
    return np.floor(radius + 0.5).astype(np.int64)


def radial_power_spectrum(fields, n_bins: int | None = None) -> RadialSpectrum:
    """Radially averaged power spectrum of every field.

    Parameters
    ----------
    fields : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
    n_bins : int, optional
        Keep wavenumbers ``1..n_bins``; default every annulus that holds a frequency
        (up to ``round(sqrt((H/2)^2 + (W/2)^2))``), which makes the Parseval identity of
        the module docstring exact.

    Returns
    -------
    RadialSpectrum
        ``power`` of shape (n, K), computed in float64.
    """
    array = as_fields(fields, min_fields=1)
    n, h, w = array.shape
    bins = _radial_bins((h, w))
    k_max = int(bins.max())
    if n_bins is not None:
        if not isinstance(n_bins, int) or not 1 <= n_bins <= k_max:
            raise GeodiffError(f"n_bins must be an integer in 1..{k_max}, got {n_bins!r}")
        k_max = n_bins
    flat_bins = bins.ravel()
    counts = np.bincount(flat_bins, minlength=k_max + 1)[1 : k_max + 1]
    power = np.empty((n, k_max))
    chunk = max(1, _CHUNK_ELEMENTS // (h * w))
    for lo in range(0, n, chunk):
        block = array[lo : lo + chunk]
        block = block - block.mean(axis=(1, 2), keepdims=True)
        spectrum = np.fft.fft2(block)
        p = (spectrum.real**2 + spectrum.imag**2).reshape(len(block), -1) / (h * w)
        sums = np.zeros((len(block), int(bins.max()) + 1))
        for i in range(len(block)):  # bincount has no batch axis
            sums[i] = np.bincount(flat_bins, weights=p[i], minlength=sums.shape[1])
        power[lo : lo + chunk] = sums[:, 1 : k_max + 1] / counts
    return RadialSpectrum(np.arange(1, k_max + 1), counts, power)


def compare_spectra(generated: RadialSpectrum, reference: RadialSpectrum) -> SpectrumComparison:
    """Compare the mean radial spectra of two sets.

    Parameters
    ----------
    generated, reference : RadialSpectrum
        Spectra with the same wavenumbers, each of at least 2 fields.

    Returns
    -------
    SpectrumComparison
    """
    for name, s in (("generated", generated), ("reference", reference)):
        if not isinstance(s, RadialSpectrum):
            raise GeodiffError(f"{name} must be a RadialSpectrum, got {type(s).__name__}")
    if not np.array_equal(generated.wavenumbers, reference.wavenumbers):
        raise GeodiffError("generated and reference spectra have different wavenumbers")
    g, r = generated.mean(), reference.mean()
    if np.any(g <= 0) or np.any(r <= 0):
        raise GeodiffError("a mean spectrum has zero power in some bin (constant fields?)")
    log_ratio = np.log(g / r)
    se = np.hypot(generated.standard_error() / g, reference.standard_error() / r)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            se > 0, log_ratio / se, np.where(log_ratio == 0, 0.0, np.sign(log_ratio) * np.inf)
        )
    return SpectrumComparison(
        wavenumbers=generated.wavenumbers,
        generated=g,
        reference=r,
        log_ratio=log_ratio,
        standard_error=se,
        z=z,
        max_abs_z=float(np.max(np.abs(z))),
        max_abs_log_ratio=float(np.max(np.abs(log_ratio))),
    )
