"""Local anisotropy of fields: structure-tensor strength and orientation in windows.

What makes a prior non-stationary is that the direction and strength of its anisotropy
vary in space. For a field ``f`` with gradient ``g = ∇f`` (central differences), the
structure tensor of a square window ``W`` is ``J = mean_W g gᵀ``; with ``λ₁ ≥ λ₂`` its
eigenvalues,

- coherence ``c = (λ₁ - λ₂) / (λ₁ + λ₂)`` in [0, 1] is the strength (0: isotropic), and
- orientation ``φ = ½ atan2(2 J_xy, J_xx - J_yy)`` is the direction of fastest change,
  perpendicular to the correlation's long axis (defined modulo π).

Two sets of fields are compared on (a) the pooled quantiles of the coherence of every
window (bootstrap over fields) and (b) the orientation agreement ``E[cos 2(φ_i - φ_j)]``
of window pairs ``s`` windows apart along rows and columns (1 when the orientation is the
same everywhere, as in a stationary prior; falling with ``s`` when it turns across the
domain), with standard errors over fields. Each difference is divided by its standard
error; ``max_abs_z`` is the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodiff.errors import GeodiffError
from geodiff.metrics._checks import as_fields, check_same_grid
from geodiff.metrics.marginal import pooled_quantiles

__all__ = ["AnisotropyComparison", "compare_local_anisotropy", "local_anisotropy"]

#: coherence quantiles compared
COHERENCE_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)


def local_anisotropy(fields, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Coherence and orientation of each field in non-overlapping square windows.

    Parameters
    ----------
    fields : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
    window : int, optional
        Window side in nodes (default ``max(4, H // 8)``); rows and columns beyond a
        whole number of windows are left out.

    Returns
    -------
    coherence : np.ndarray, shape (n, H // window, W // window)
    orientation : np.ndarray, shape (n, H // window, W // window)
        Radians in (-π/2, π/2].
    """
    array = as_fields(fields)
    n, h, w = array.shape
    window = max(4, h // 8) if window is None else window
    if not isinstance(window, int) or window < 2 or window > min(h, w):
        raise GeodiffError(f"window must be an integer in [2, {min(h, w)}], got {window!r}")
    gy, gx = np.gradient(array, axis=(1, 2))
    a, b = h // window, w // window

    def window_mean(values):
        cut = values[:, : a * window, : b * window]
        return cut.reshape(n, a, window, b, window).mean(axis=(2, 4))

    jxx, jyy, jxy = window_mean(gx * gx), window_mean(gy * gy), window_mean(gx * gy)
    spread = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    coherence = spread / np.maximum(jxx + jyy, np.finfo(float).tiny)
    return coherence, 0.5 * np.arctan2(2 * jxy, jxx - jyy)


def _agreement(orientation: np.ndarray) -> np.ndarray:
    """Per field, mean ``cos 2Δφ`` of window pairs ``s = 1 … S`` apart; shape (n, S)."""
    _, a, b = orientation.shape
    curves = []
    for s in range(1, max(a, b)):
        pairs = []
        if s < a:
            pairs.append(np.cos(2 * (orientation[:, s:] - orientation[:, :-s])).mean(axis=(1, 2)))
        if s < b:
            pairs.append(np.cos(2 * (orientation[:, :, s:] - orientation[:, :, :-s])).mean((1, 2)))
        curves.append(np.mean(pairs, axis=0))
    return np.stack(curves, axis=1)


@dataclass(frozen=True)
class AnisotropyComparison:
    """Local anisotropy of two sets of fields, compared (see module docs).

    Attributes
    ----------
    levels : np.ndarray, shape (Q,)
    coherence_generated, coherence_reference : np.ndarray, shape (Q,)
        Pooled coherence quantiles.
    separations : np.ndarray, shape (S,)
        Window pair separations, in windows.
    agreement_generated, agreement_reference : np.ndarray, shape (S,)
        Mean orientation agreement at each separation.
    z : np.ndarray, shape (Q + S,)
        The differences (coherence quantiles, then agreements) over their standard errors.
    max_abs_z : float
    """

    levels: np.ndarray
    coherence_generated: np.ndarray
    coherence_reference: np.ndarray
    separations: np.ndarray
    agreement_generated: np.ndarray
    agreement_reference: np.ndarray
    z: np.ndarray
    max_abs_z: float


def compare_local_anisotropy(
    generated, reference, *, window: int | None = None, n_boot: int = 200, seed: int = 0
) -> AnisotropyComparison:
    """Compare the local anisotropy of generated fields with reference fields.

    Parameters
    ----------
    generated, reference : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
    window : int, optional
        As in :func:`local_anisotropy`.
    n_boot : int
        Bootstrap resamples of whole fields for the coherence quantiles.
    seed : int

    Returns
    -------
    AnisotropyComparison
    """
    gen, ref = as_fields(generated, "generated"), as_fields(reference, "reference")
    check_same_grid(gen, ref)
    coh_g, phi_g = local_anisotropy(gen, window)
    coh_r, phi_r = local_anisotropy(ref, window)
    if max(phi_g.shape[1:]) < 2:
        raise GeodiffError("need at least two windows along a side; use a smaller window")
    q_g, se_qg = pooled_quantiles(coh_g, COHERENCE_LEVELS, n_boot=n_boot, seed=seed)
    q_r, se_qr = pooled_quantiles(coh_r, COHERENCE_LEVELS, n_boot=n_boot, seed=seed + 1)
    agree_g, agree_r = _agreement(phi_g), _agreement(phi_r)
    mean_g, mean_r = agree_g.mean(0), agree_r.mean(0)
    se_a = np.sqrt(agree_g.var(0, ddof=1) / len(agree_g) + agree_r.var(0, ddof=1) / len(agree_r))
    diff = np.concatenate([q_g - q_r, mean_g - mean_r])
    se = np.concatenate([np.hypot(se_qg, se_qr), se_a])
    z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
    return AnisotropyComparison(
        np.asarray(COHERENCE_LEVELS),
        q_g,
        q_r,
        np.arange(1, len(mean_g) + 1),
        mean_g,
        mean_r,
        z,
        float(np.abs(z).max()),
    )
