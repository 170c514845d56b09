"""Exact output covariance of the samplers when driven by the oracle on a Gaussian prior.

With a Gaussian prior ``N(0, U diag(λ) Uᵀ)`` the oracle is linear, so every sampler step
is linear in its state plus independent noise, and the variance of the output along each
eigenvector follows a scalar recursion. This measures a sampler's discretisation error
with no Monte Carlo and no network error (and is the exact reference of its tests).
"""

from __future__ import annotations

import itertools

import numpy as np

from geodiff.diffusion.samplers import check_timesteps, ddim_coefficients
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError

__all__ = [
    "ddim_state_variance",
    "gaussian_sampler_law",
    "gaussian_sampler_variance",
    "oracle_gain",
]


def gaussian_sampler_variance(
    schedule: NoiseSchedule, timesteps, eigval, sampler: str = "ddim", eta: float = 0.0
) -> np.ndarray:
    """Variance of the samples along each eigenvector of the prior covariance.

    The second half of :func:`gaussian_sampler_law`; arguments and shapes as there.
    """
    return gaussian_sampler_law(schedule, timesteps, eigval, sampler, eta)[1]


def gaussian_sampler_law(
    schedule: NoiseSchedule,
    timesteps,
    eigval,
    sampler: str = "ddim",
    eta: float = 0.0,
    start_variance=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The sampler's output along each eigenvector: ``x_out = transfer · x_T + noise``.

    Parameters
    ----------
    schedule : NoiseSchedule
    timesteps : array of int, shape (K,)
        The decreasing steps the sampler visits (as it would choose them).
    eigval : array, shape (d,)
        Eigenvalues λ of the prior covariance (model units).
    sampler : {"ddim", "ddpm", "dpm2m"}
        ``"ddpm"`` is DDIM with ``eta=1``.
    eta : float
        DDIM's η.
    start_variance : array, shape (d,), optional
        Variance of the start along each eigenvector (default 1: ``x_T ~ N(0, I)``; a
        chain started at an intermediate step from the exact law of its state has
        ``ᾱ λ + 1 - ᾱ``).

    Returns
    -------
    transfer : numpy.ndarray, shape (d,)
        The coefficient of the start ``x_T`` in the output (a zero-mean prior makes it
        irrelevant; a chain whose target has a mean ``μ`` is shifted by it, see
        :func:`geodiff.testing.mmps_limit`).
    variance : numpy.ndarray, shape (d,)
        Output variances from the start (``x_T ~ N(0, I)`` unless ``start_variance``);
        the exact sampler would give ``eigval``.
    """
    if sampler == "ddpm":
        sampler, eta = "ddim", 1.0
    if sampler not in ("ddim", "dpm2m"):
        raise GeodiffError(f"unknown sampler {sampler!r}")
    ts = check_timesteps(timesteps).numpy()
    lam = np.asarray(eigval, dtype=float)
    ab = schedule.alpha_bar.numpy()
    if sampler == "ddim":
        gain = oracle_gain(ab[ts[-1]], lam)
        transfer, var = _ddim_state(schedule, ts, lam, eta, start_variance)
        return gain * transfer, gain**2 * var
    half_log_snr = 0.5 * (np.log(ab) - np.log1p(-ab))
    # the start has variance start_variance (default 1: x_T ~ N(0, I), whose true
    # variance ᾱ_T λ + 1 - ᾱ_T ≈ 1); (c_x, c_p): the coefficients of the start in the
    # state and in the previous x̂_0
    var_x = _start_variance(start_variance, lam)
    cov_xp, var_p, h_prev = np.zeros_like(lam), np.zeros_like(lam), None
    c_x, c_p = np.ones_like(lam), np.zeros_like(lam)
    for i, t in enumerate(ts):
        gain = oracle_gain(ab[t], lam)  # x̂_0 = gain · x_t
        if i == len(ts) - 1:
            return gain * c_x, gain**2 * var_x
        n = ts[i + 1]
        h = half_log_snr[n] - half_log_snr[t]
        shrink, lift = np.sqrt((1 - ab[n]) / (1 - ab[t])), np.sqrt(ab[n]) * np.expm1(-h)
        if h_prev is None:  # first step: D = x̂_0 (a DDIM step)
            a_x, a_p = shrink - lift * gain, 0.0
        else:  # D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0,prev
            r = h_prev / h
            a_x, a_p = shrink - lift * (1 + 1 / (2 * r)) * gain, lift / (2 * r)
        new_var = a_x**2 * var_x + 2 * a_x * a_p * cov_xp + a_p**2 * var_p
        new_cov = gain * (a_x * var_x + a_p * cov_xp)  # cov(x_next, this step's x̂_0)
        var_x, cov_xp, var_p, h_prev = new_var, new_cov, gain**2 * var_x, h
        c_x, c_p = a_x * c_x + a_p * c_p, gain * c_x
    raise AssertionError("unreachable: the last step returns")


def oracle_gain(alpha_bar: float, eigval) -> np.ndarray:
    """The oracle's ``x̂_0 = gain · x_t`` along each eigenvector: ``√ᾱ λ / (ᾱλ + 1 - ᾱ)``."""
    lam = np.asarray(eigval, dtype=float)
    return np.sqrt(alpha_bar) * lam / (alpha_bar * lam + 1 - alpha_bar)


def ddim_state_variance(schedule: NoiseSchedule, timesteps, eigval, eta: float = 0.0) -> np.ndarray:
    """Variance of DDIM's state ``x_t`` at the last of ``timesteps`` (before its x̂_0).

    The DDIM chain driven by the oracle of ``N(0, U diag(λ) Uᵀ)`` from ``x_T ~ N(0, I)``;
    arguments as :func:`gaussian_sampler_variance`. Returns shape (d,).
    """
    return _ddim_state(schedule, timesteps, eigval, eta)[1]


def _start_variance(start_variance, lam: np.ndarray) -> np.ndarray:
    if start_variance is None:
        return np.ones_like(lam)
    return np.broadcast_to(np.asarray(start_variance, dtype=float), lam.shape).copy()


def _ddim_state(
    schedule, timesteps, eigval, eta, start_variance=None
) -> tuple[np.ndarray, np.ndarray]:
    """``(transfer, variance)`` of DDIM's last state ``x_t = transfer · x_T + noise``."""
    ts = check_timesteps(timesteps).numpy()
    lam = np.asarray(eigval, dtype=float)
    ab = schedule.alpha_bar.numpy()
    transfer, var_x = np.ones_like(lam), _start_variance(start_variance, lam)
    for t, n in itertools.pairwise(ts):
        gain = oracle_gain(ab[t], lam)
        keep, sigma = ddim_coefficients(ab[t], ab[n], eta)
        m = np.sqrt(ab[n]) * gain + keep / np.sqrt(1 - ab[t]) * (1 - np.sqrt(ab[t]) * gain)
        transfer, var_x = m * transfer, m**2 * var_x + sigma**2
    return transfer, var_x
