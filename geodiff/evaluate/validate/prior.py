"""Prior checks: does the trained network sample the prior it was trained on?

Every check compares the network with an exact reference and states a criterion fixed in
advance. Distribution checks also run on a *control*: a second set of exact simulations
compared with the reference in the same way, which shows the noise floor of each
statistic at this sample size.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from geodiff.diffusion.validation import denoising_mse, validation_steps
from geodiff.errors import GeodiffError, renamed_arguments
from geodiff.evaluate.validate.checks import Check
from geodiff.fields.simulate import simulate
from geodiff.metrics import (
    classifier_two_sample_test,
    compare_spectra,
    compare_variograms,
    directional_variograms,
    radial_power_spectrum,
)
from geodiff.metrics.anisotropy import compare_local_anisotropy
from geodiff.metrics.extremes import (
    CHI_LAGS,
    CHI_LEVEL,
    compare_exceedances,
    compare_extremal_dependence,
)
from geodiff.metrics.marginal import compare_marginals
from geodiff.metrics.scores import max_sliced_wasserstein
from geodiff.rng import derive_seed

__all__ = [
    "AUC_Z_LIMIT",
    "DENOISER_TOLERANCE",
    "MSW_RATIO_LIMIT",
    "Z_LIMIT",
    "PriorValidation",
    "principal_directions",
    "validate_prior",
]

logger = logging.getLogger(__name__)

#: network MSE may exceed the oracle's (the Bayes risk) by at most this factor
DENOISER_TOLERANCE = 1.10
#: largest |z| allowed for a difference of mean curves or quantiles; the maximum of some
#: 60 correlated standard normals rarely exceeds 3.5 when the two sets agree
Z_LIMIT = 4.0
#: max-sliced Wasserstein distance at most this many times its noise floor
MSW_RATIO_LIMIT = 1.5
#: classifier AUC at most this many null standard deviations above 0.5
AUC_Z_LIMIT = 3.0


@dataclass
class PriorValidation:
    """Results of :func:`validate_prior`; the arrays feed the report's figures.

    Attributes
    ----------
    checks : list of Check
    sigma, network_mse, oracle_mse : np.ndarray, shape (L,)
        Denoising error per noise level (noise-to-signal ratio σ); empty for a prior that
        is not Gaussian given θ (no exact oracle).
    variograms, control_variograms : VariogramComparison
        Generated and control fields against the reference.
    spectra, control_spectra : SpectrumComparison
    marginals, control_marginals : MarginalComparison
    exceedances, control_exceedances : TailComparison
        Exceedance probabilities of the reference's 90 %, 99 % and 99.9 % quantiles, by
        value and by field maximum.
    extremal_dependence, control_extremal_dependence : TailComparison
        ``chi(0.95)`` by lag along each axis.
    msw, msw_floor : float
        Max-sliced Wasserstein distance (prior-sd units): generated and control.
    classifier : ClassifierTestResult
    generated, reference : np.ndarray, shape (k, H, W)
        A few fields of each set, to look at.
    seconds : dict of str to float
        Wall time per stage.
    settings : dict
    """

    checks: list
    sigma: np.ndarray
    network_mse: np.ndarray
    oracle_mse: np.ndarray
    variograms: object
    control_variograms: object
    spectra: object
    control_spectra: object
    marginals: object
    control_marginals: object
    exceedances: object
    control_exceedances: object
    extremal_dependence: object
    control_extremal_dependence: object
    msw: float
    msw_floor: float
    classifier: object
    generated: np.ndarray
    reference: np.ndarray
    seconds: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


#: grids above this many nodes take Fourier directions for a translation-invariant prior
DENSE_DIRECTIONS_MAX = 4096


def principal_directions(prior, grid, *, n_theta: int = 64, k: int = 64, seed: int = 0):
    """Leading principal directions of a prior's field distribution, in prior-sd units.

    The covariance of the field under the prior (a mixture over θ) is the mean of the
    covariances of ``n_theta`` θ draws; its ``k`` leading eigenvectors, divided by the
    square root of their eigenvalues, project a field onto coordinates of unit prior
    variance. They do not depend on the samples they are used to compare. On grids of
    more than :data:`DENSE_DIRECTIONS_MAX` nodes, and for an SPDE prior at any size, a
    translation-invariant prior takes the torus's eigenvectors instead (Fourier modes,
    :func:`_fourier_directions`).

    Parameters
    ----------
    prior : GRFPrior
    grid : Grid
    n_theta : int
    k : int
    seed : int

    Returns
    -------
    np.ndarray, shape (H*W, k)
    """
    d = grid.shape[0] * grid.shape[1]
    if not 1 <= k <= d:
        raise GeodiffError(f"k must be in 1..{d}, got {k}")
    # an SPDE prior's dense covariance costs one sparse solve per node and θ: Fourier too
    if prior.translation_invariant and (d > DENSE_DIRECTIONS_MAX or prior.extends_beyond_domain):
        return _fourier_directions(prior, grid, n_theta=n_theta, k=k, seed=seed)
    eigval, eigvec = torch.linalg.eigh(prior.marginal_covariance(grid.points(), n_theta, seed))
    top = torch.argsort(eigval, descending=True)[:k]
    return (eigvec[:, top] / eigval[top].clamp(min=1e-12).sqrt()).numpy()


def _fourier_directions(prior, grid, *, n_theta: int, k: int, seed: int) -> np.ndarray:
    """The ``k`` real Fourier modes of largest prior variance on the grid, in prior-sd units.

    The eigenvectors of a stationary covariance embedded in a torus
    (:class:`~geodiff.posterior.gaussian.StationaryGaussian` of the prior's
    :meth:`~geodiff.fields.prior.GRFPrior.lag_covariance`) are Fourier modes; each is
    restricted to the grid, normalised, and divided by its variance's square root under
    the lag covariance (exact for the torus, close on the grid away from its edges).
    """
    from geodiff.posterior.gaussian import StationaryGaussian

    dx = grid.spacing[1]
    radius = min(32, *(s - 1 for s in grid.shape))
    lags = prior.lag_covariance(float(dx), radius, n_theta, seed)
    gaussian = StationaryGaussian(lags, grid.shape)
    lam = gaussian.spectrum("cpu").numpy()
    p, q = gaussian.torus
    half = lam[:, : q // 2 + 1].ravel()  # a mode and its conjugate once (real fields)
    order = np.argsort(half)[::-1]
    h, w = grid.shape
    rows, cols = np.arange(h)[:, None] / p, np.arange(w)[None, :] / q
    out = []
    for index in order:
        u, v = divmod(int(index), q // 2 + 1)
        phase = 2 * np.pi * (u * rows + v * cols)
        for mode in (np.cos(phase), np.sin(phase)):
            norm = np.linalg.norm(mode)
            if norm > 1e-6 * np.sqrt(h * w) and len(out) < k:
                direction = mode.ravel() / norm
                variance = max(float(direction @ _lag_apply(lags, mode / norm).ravel()), 1e-12)
                out.append(direction / np.sqrt(variance))
        if len(out) == k:
            break
    return np.stack(out, axis=1)


def _lag_apply(lags: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``Σ field`` on the grid for the covariance by lag (zero beyond its radius)."""
    from scipy.signal import fftconvolve

    return fftconvolve(field, lags, mode="same")


def validate_prior(
    model,
    *,
    fields: int = 500,
    prior_sampler: str = "dpm2m",
    prior_steps: int = 50,
    oracle_components: int = 64,
    mse_fields: int = 256,
    n_directions: int = 64,
    classifier_epochs: int = 10,
    seed: int = 0,
    device=None,
    progress: bool = True,
    **former,
) -> PriorValidation:
    """Check unconditional samples and the denoiser of a trained model against exact ones.

    Parameters
    ----------
    model : DiffusionModel
    fields : int
        Fields in each set: generated, reference and control (exact simulations).
    prior_sampler, prior_steps :
        How the network samples (see :meth:`DiffusionModel.sample`).
    oracle_components : int
        θ draws in the exact mixture oracle (the denoising floor).
    mse_fields : int
        Fields for the denoising error.
    n_directions : int
        Principal directions for the max-sliced Wasserstein distance.
    classifier_epochs : int
    seed : int
    device : optional
        Where the network runs (the model's device by default).
    progress : bool
        Log each stage (``logging.INFO``, logger ``geodiff.evaluate.validate.prior``)
        and show progress bars.
    **former
        The former names ``n``, ``sampler``, ``steps`` and ``n_mse`` (one release, with a
        :class:`DeprecationWarning`); the names above are the command line's flags.

    Returns
    -------
    PriorValidation
    """
    renamed = renamed_arguments(former, _FORMER_NAMES, "validate_prior")
    fields = renamed.get("fields", fields)
    prior_sampler = renamed.get("prior_sampler", prior_sampler)
    prior_steps = renamed.get("prior_steps", prior_steps)
    mse_fields = renamed.get("mse_fields", mse_fields)
    n, sampler, steps, n_mse = fields, prior_sampler, prior_steps, mse_fields
    if n < 20:
        raise GeodiffError(f"prior checks need at least 20 fields per set, got {n}")
    prior, grid = model.prior, model.grid
    device = device or model.device
    seconds = {}

    gaussian = getattr(prior, "is_gaussian", True)
    with _stage(seconds, "denoising error", progress) as log:
        if gaussian:
            log(f"[prior 1/5] denoising error against the exact oracle ({n_mse} fields)")
            errors = _denoising_errors(model, oracle_components, n_mse, seed, device)
        else:
            log("[prior 1/5] no exact oracle for a prior that is not Gaussian given θ")
            errors = {key: np.empty(0) for key in ("sigma", "network_mse", "oracle_mse")}
    with _stage(seconds, "sampling", progress) as log:
        log(f"[prior 2/5] {n} network samples ({sampler}, {steps} steps)")
        generated = model.sample(n, steps=steps, sampler=sampler, seed=seed, progress=progress)
        generated = generated.double().numpy()
    with _stage(seconds, "exact simulation", progress) as log:
        log(f"[prior 3/5] {2 * n} exact simulations (reference and control)")
        reference = simulate(prior, grid, n, seed=derive_seed(seed, 11)).fields.double().numpy()
        control = simulate(prior, grid, n, seed=derive_seed(seed, 12)).fields.double().numpy()
    with _stage(seconds, "statistics", progress) as log:
        log("[prior 4/5] variograms, spectra, marginal quantiles, tails, max-sliced Wasserstein")
        stats = _distribution_statistics(model, generated, reference, control, n_directions, seed)
    with _stage(seconds, "classifier", progress) as log:
        log(f"[prior 5/5] classifier two-sample test ({classifier_epochs} epochs)")
        c2st = classifier_two_sample_test(
            generated,
            reference,
            seed=seed,
            epochs=classifier_epochs,
            device=device,
            progress=progress,
        )

    checks = [_denoiser_check(errors)] if gaussian else []
    checks += _distribution_checks(stats, n_directions)
    checks.append(_classifier_check(c2st))
    settings = {
        "fields": n,
        "prior_sampler": sampler,
        "prior_steps": steps,
        "oracle_components": oracle_components,
        "mse_fields": n_mse,
        "n_directions": n_directions,
        "classifier_epochs": classifier_epochs,
        "seed": seed,
    }
    return PriorValidation(
        checks=checks,
        **errors,
        **{k: v for k, v in stats.items() if k not in _NOT_STORED},
        classifier=c2st,
        generated=generated[:8],
        reference=reference[:8],
        seconds=seconds,
        settings=settings,
    )


#: statistics that the checks use but :class:`PriorValidation` does not keep
_NOT_STORED = ("anisotropy", "control_anisotropy")
#: validate_prior's former argument names (before they matched the command line's flags)
_FORMER_NAMES = {"n": "fields", "sampler": "prior_sampler", "steps": "prior_steps",
                 "n_mse": "mse_fields"}  # fmt: skip


@contextmanager
def _stage(seconds: dict, name: str, progress: bool):
    """Time one stage of :func:`validate_prior` into ``seconds[name]``.

    Parameters
    ----------
    seconds : dict of str to float
    name : str
    progress : bool
        Whether the logger the stage yields writes (``logging.INFO``).

    Yields
    ------
    callable
        ``log(message)``.
    """
    started = time.perf_counter()

    def log(message: str) -> None:
        """Log ``message`` if ``progress``."""
        if progress:
            logger.info(message)

    yield log
    seconds[name] = time.perf_counter() - started


def _denoising_errors(model, oracle_components: int, n_mse: int, seed: int, device) -> dict:
    """Denoising error of the network and of the exact mixture oracle per noise level.

    Returns
    -------
    dict
        ``sigma``, ``network_mse`` and ``oracle_mse``, each np.ndarray of shape (L,).
    """
    oracle = model.oracle(oracle_components, seed=seed)
    clean = oracle.sample(n_mse, seed=seed).float()
    t_levels = validation_steps(model.schedule)
    floor = denoising_mse(oracle, clean, model.schedule, t_levels, seed=seed).numpy()
    net = denoising_mse(
        model.denoiser, clean, model.schedule, t_levels, seed=seed, device=device
    ).numpy()
    sigma = model.schedule.sigma(t_levels).numpy()
    return {"sigma": sigma, "network_mse": net, "oracle_mse": floor}


def _distribution_statistics(model, generated, reference, control, n_directions, seed) -> dict:
    """Compare the generated and the control fields with the reference.

    Returns
    -------
    dict
        ``variograms, spectra, anisotropy, marginals, exceedances, extremal_dependence``
        (each also with a ``control_``
        twin), ``msw`` and ``msw_floor``.
    """
    n = len(generated)
    lags = tuple(k for k in CHI_LAGS if k < min(generated.shape[-2:]))
    ref_vario, ref_spec = directional_variograms(reference), radial_power_spectrum(reference)
    stats = {
        "variograms": compare_variograms(directional_variograms(generated), ref_vario),
        "control_variograms": compare_variograms(directional_variograms(control), ref_vario),
        "spectra": compare_spectra(radial_power_spectrum(generated), ref_spec),
        "control_spectra": compare_spectra(radial_power_spectrum(control), ref_spec),
        "marginals": compare_marginals(generated, reference, seed=seed),
        "control_marginals": compare_marginals(control, reference, seed=seed),
        "exceedances": compare_exceedances(generated, reference, seed=seed),
        "control_exceedances": compare_exceedances(control, reference, seed=seed),
        "extremal_dependence": compare_extremal_dependence(
            generated, reference, lags=lags, seed=seed
        ),
        "control_extremal_dependence": compare_extremal_dependence(
            control, reference, lags=lags, seed=seed
        ),
        "anisotropy": compare_local_anisotropy(generated, reference, seed=seed),
        "control_anisotropy": compare_local_anisotropy(control, reference, seed=seed),
    }
    directions = principal_directions(model.prior, model.grid, k=n_directions, seed=seed)
    directions = directions / model.data_scale
    flat = {k: v.reshape(n, -1) for k, v in (("g", generated), ("r", reference), ("c", control))}
    stats["msw"] = max_sliced_wasserstein(flat["g"], flat["r"], directions)
    stats["msw_floor"] = max_sliced_wasserstein(flat["c"], flat["r"], directions)
    return stats


def _denoiser_check(errors: dict) -> Check:
    """The denoiser's MSE against the exact oracle's, at the worst noise level.

    Parameters
    ----------
    errors : dict
        As from :func:`_denoising_errors`.

    Returns
    -------
    Check
    """
    ratio = errors["network_mse"] / errors["oracle_mse"]
    worst = int(np.argmax(ratio))
    return Check(
        "prior",
        "denoiser MSE / exact oracle MSE (worst noise level)",
        f"{ratio[worst]:.3f} at σ = {errors['sigma'][worst]:.3g}",
        "1 (Bayes risk)",
        f"≤ {DENOISER_TOLERANCE:.2f} at all {len(ratio)} levels",
        bool(ratio.max() <= DENOISER_TOLERANCE),
    )


def _distribution_checks(stats: dict, n_directions: int) -> list:
    """Checks of variograms, spectra, local anisotropy, marginals and max-sliced Wasserstein.

    Parameters
    ----------
    stats : dict
        As from :func:`_distribution_statistics`.
    n_directions : int

    Returns
    -------
    list of Check
    """
    vario, vario_ctrl = stats["variograms"], stats["control_variograms"]
    spec, spec_ctrl = stats["spectra"], stats["control_spectra"]
    aniso, aniso_ctrl = stats["anisotropy"], stats["control_anisotropy"]
    marg, marg_ctrl = stats["marginals"], stats["control_marginals"]
    msw, msw_floor = stats["msw"], stats["msw_floor"]
    return [
        Check(
            "prior",
            "directional variograms (max |z| over 4 directions × lags)",
            f"{vario.max_abs_z:.1f} (largest relative difference "
            f"{vario.max_relative_difference:.3f})",
            f"{vario_ctrl.max_abs_z:.1f} (control)",
            f"max |z| ≤ {Z_LIMIT:g}",
            bool(vario.max_abs_z <= Z_LIMIT),
        ),
        Check(
            "prior",
            "radially averaged power spectra (max |z| over wavenumbers)",
            f"{spec.max_abs_z:.1f} (largest |log ratio| {spec.max_abs_log_ratio:.3f})",
            f"{spec_ctrl.max_abs_z:.1f} (control)",
            f"max |z| ≤ {Z_LIMIT:g}",
            bool(spec.max_abs_z <= Z_LIMIT),
        ),
        Check(
            "prior",
            "local anisotropy (structure-tensor coherence quantiles and orientation "
            "agreement by separation; max |z|)",
            f"{aniso.max_abs_z:.1f}",
            f"{aniso_ctrl.max_abs_z:.1f} (control)",
            f"max |z| ≤ {Z_LIMIT:g}",
            bool(aniso.max_abs_z <= Z_LIMIT),
        ),
        Check(
            "prior",
            f"marginal quantiles ({len(marg.levels)} levels, 0.1 % to 99.9 %; max |z|)",
            f"{marg.max_abs_z:.1f}",
            f"{marg_ctrl.max_abs_z:.1f} (control)",
            f"max |z| ≤ {Z_LIMIT:g}",
            bool(marg.max_abs_z <= Z_LIMIT),
        ),
        _z_check(
            "exceedance probabilities of the 90 / 99 / 99.9 % quantiles, by value and by "
            "field maximum (max |z|)",
            stats["exceedances"],
            stats["control_exceedances"],
        ),
        _z_check(
            f"extremal dependence χ({CHI_LEVEL:g}) by lag along x and y (max |z|)",
            stats["extremal_dependence"],
            stats["control_extremal_dependence"],
        ),
        Check(
            "prior",
            f"max-sliced Wasserstein distance ({n_directions} principal directions, prior sd)",
            f"{msw:.3f}",
            f"{msw_floor:.3f} (control)",
            f"≤ {MSW_RATIO_LIMIT:g} × floor",
            bool(msw <= MSW_RATIO_LIMIT * msw_floor),
        ),
    ]


def _z_check(name: str, comparison, control) -> Check:
    """A check that a comparison's largest |z| is within :data:`Z_LIMIT`, beside its control."""
    return Check(
        "prior",
        name,
        f"{comparison.max_abs_z:.1f}",
        f"{control.max_abs_z:.1f} (control)",
        f"max |z| ≤ {Z_LIMIT:g}",
        bool(comparison.max_abs_z <= Z_LIMIT),
    )


def _classifier_check(c2st) -> Check:
    """The classifier two-sample test's held-out AUC against its null.

    Parameters
    ----------
    c2st : ClassifierTestResult

    Returns
    -------
    Check
    """
    return Check(
        "prior",
        "classifier two-sample test (held-out ROC AUC)",
        f"{c2st.auc:.3f} (z = {c2st.z:.1f})",
        f"0.5 ± {c2st.auc_se:.3f} (null)",
        f"AUC ≤ 0.5 + {AUC_Z_LIMIT:g} null sd",
        bool(c2st.z <= AUC_Z_LIMIT),
    )
