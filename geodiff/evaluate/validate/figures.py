"""Figures of the validation report: each compares the model with its exact reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geodiff.metrics.scores import RANK_BINS
from geodiff.plot import _save

__all__ = [
    "plot_calibration",
    "plot_marginals",
    "plot_rank_histograms",
    "plot_spectra",
    "plot_variograms",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_variograms(comparison, path, *, control=None) -> Path:
    """Mean semivariogram per direction: generated against reference, ± 2 se bands.

    Parameters
    ----------
    comparison : VariogramComparison
    path : str or Path
    control : VariogramComparison, optional
        Exact simulations against the same reference (dotted).
    """
    plt = _pyplot()
    n = len(comparison.directions)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 2.9), sharey=True, squeeze=False)
    for d, ax in enumerate(axes[0]):
        ref = comparison.reference[d]
        band = 2 * comparison.standard_error[d]
        ax.fill_between(comparison.lags, ref - band, ref + band, color="0.85", label="± 2 se")
        ax.plot(comparison.lags, ref, "k-", lw=1.2, label="exact simulation")
        ax.plot(comparison.lags, comparison.generated[d], "C0o-", ms=3, label="network")
        if control is not None:
            ax.plot(control.lags, control.generated[d], "C2:", label="control")
        ax.set_title(f"direction {comparison.directions[d]}", fontsize=9)
        ax.set_xlabel("lag (grid steps)")
    axes[0, 0].set_ylabel("semivariogram")
    axes[0, 0].legend(fontsize=7)
    return _save(fig, path)


def plot_spectra(comparison, path, *, control=None) -> Path:
    """Radially averaged power spectra (log-log) and their log ratio with ± 2 se."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.8, 5.0), sharex=True)
    k = comparison.wavenumbers
    top.loglog(k, comparison.reference, "k-", label="exact simulation")
    top.loglog(k, comparison.generated, "C0o", ms=3, label="network")
    top.set_ylabel("power")
    top.legend(fontsize=8)
    band = 2 * comparison.standard_error
    bottom.fill_between(k, -band, band, color="0.85", label="± 2 se")
    bottom.plot(k, comparison.log_ratio, "C0o-", ms=3, label="network")
    if control is not None:
        bottom.plot(k, control.log_ratio, "C2:", label="control")
    bottom.axhline(0, color="k", lw=0.8)
    bottom.set_xscale("log")
    bottom.set_xlabel("wavenumber (cycles per domain)")
    bottom.set_ylabel("log power ratio")
    bottom.legend(fontsize=7)
    return _save(fig, path)


def plot_marginals(comparison, path, *, control=None) -> Path:
    """Quantile-quantile plot of pooled values, and the z-score of each quantile."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.4))
    lo = min(comparison.reference.min(), comparison.generated.min())
    hi = max(comparison.reference.max(), comparison.generated.max())
    left.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    left.plot(comparison.reference, comparison.generated, "C0o", ms=4, label="network")
    if control is not None:
        left.plot(control.reference, control.generated, "C2x", ms=4, label="control")
    left.set(xlabel="exact simulation quantile", ylabel="quantile", title="pooled values")
    left.legend(fontsize=8)
    positions = np.arange(len(comparison.levels))
    right.bar(positions - 0.2, comparison.z, 0.4, color="C0", label="network")
    if control is not None:
        right.bar(positions + 0.2, control.z, 0.4, color="C2", label="control")
    right.set_xticks(positions, [f"{p:g}" for p in comparison.levels], fontsize=7, rotation=45)
    right.set(xlabel="level", ylabel="z of the difference", title="quantile differences")
    right.axhline(0, color="k", lw=0.8)
    right.legend(fontsize=8)
    return _save(fig, path)


def plot_rank_histograms(shares: dict, path) -> Path:
    """Share of the truth's rank in each bin, per method (flat at 1/bins when calibrated).

    Parameters
    ----------
    shares : dict of str to array of shape (bins,)
    path : str or Path
    """
    plt = _pyplot()
    n = len(shares)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 2.7), sharey=True, squeeze=False)
    for ax, (name, share) in zip(axes[0], shares.items(), strict=True):
        ax.bar(np.arange(len(share)), share, width=0.9, color="C0")
        ax.axhline(1 / RANK_BINS, color="k", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("rank bin (PIT for kriging)")
    axes[0, 0].set_ylabel("share of nodes")
    return _save(fig, path)


def plot_calibration(records: list, method: str, path) -> Path:
    """Per dataset: 90 % coverage of diffusion and MCMC, and their CRPS against each other."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.4))
    k = np.arange(len(records))
    for name, style in (("mcmc", "ks"), ("diffusion", "C0o")):
        left.plot(k, [r[name]["cover90"] for r in records], style, ms=4, label=name)
    left.axhline(0.9, color="k", lw=0.8, ls="--")
    left.set(xlabel="dataset", ylabel="90 % coverage", title="coverage per dataset")
    left.legend(fontsize=8)
    x = np.array([r["mcmc"]["crps"] for r in records])
    y = np.array([r["diffusion"]["crps"] for r in records])
    right.plot(x, y, "C0o", ms=4)
    line = [min(x.min(), y.min()), max(x.max(), y.max())]
    right.plot(line, line, "k-", lw=0.8)
    right.set(xlabel="CRPS, MCMC", ylabel=f"CRPS, diffusion ({method})", title="CRPS per dataset")
    return _save(fig, path)
