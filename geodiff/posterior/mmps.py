"""Moment-matching posterior sampling, MMPS (Rozet et al., NeurIPS 2024).

The clean field given a noisy state is approximated by a Gaussian with the denoiser's
*exact* first two moments, ``x_0 | x_t ≈ N(x̂_0, V)``, where Tweedie's second-order
identity gives the covariance from the denoiser's Jacobian. The observations then
condition that Gaussian in closed form, which yields a conditional denoiser
``E[x_0 | x_t, y]``; an unconditional integrator (DPM-Solver++(2M) or DDIM) run on it
samples the posterior. For a Gaussian prior ``x_0 | x_t`` *is* that Gaussian, so the
conditional denoiser is exact and the only error is the integrator's discretisation,
known in closed form (:func:`~geodiff.testing.mmps_limit`).

Legend:

- ``x̂_0 = D(x_t, t)``  the denoiser's E[x_0 | x_t]; ``J = ∂x̂_0/∂x_t`` (symmetric when exact)
- ``V = ((1-ᾱ)/√ᾱ) J``  Cov[x_0 | x_t], Tweedie's second-order identity
- ``K = A V Aᵀ + diag(τ²)``  covariance of ``y`` given ``x_t``, ``(n, n)``
- ``w = K⁻¹ (y - A x̂_0)``  by conjugate gradients, one vector-Jacobian product ``Jᵀu``
  per iteration for the whole batch
- ``D(x_t, t | y) = x̂_0 + V Aᵀ w``  the conditional denoiser; ``V Aᵀ w`` is accumulated
  from the iterations' products, so it costs no extra product

Cost per draw and step: one denoiser evaluation with its graph and ``cg_iterations``
vector-Jacobian products. Conjugate gradients solve ``K w = r`` exactly in ``n``
iterations; fewer trade accuracy for time (the default is chosen in BENCHMARKS.md).
``start_sigma`` replaces the steps above a noise level by one exact draw of ``x_t``
under the preconditioner's Gaussian given ``y`` (a warm start; exact for that prior).
"""

from __future__ import annotations

import math

import torch

from geodiff.diffusion.samplers import (
    ddim_sample,
    denoise_with_grad,
    dpm_solver_sample,
    step_tensor,
)
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import GeodiffError
from geodiff.posterior._steps import PosteriorSample, SamplerSpec, flat, gaussian_start, start
from geodiff.posterior.gaussian import as_gaussian
from geodiff.posterior.problem import LinearGaussianProblem

__all__ = ["INTEGRATORS", "SPEC", "conditional_denoiser", "mmps_cost", "mmps_sample"]

#: default noise level above which the Jacobian gives way to the Gaussian guess
#: (chosen in BENCHMARKS.md: above it the network's Jacobian made draws diverge)
JACOBIAN_SIGMA_MAX = 10.0

#: integrators of the conditional denoiser
INTEGRATORS = ("dpm2m", "ddim")

#: conjugate gradients stop early once every residual is this small relative to its start
_CG_TOLERANCE = 1e-10
#: "to convergence" allows this many times ``n`` iterations (rounding slows CG past ``n``)
_CONVERGED_ITERATIONS = 4
#: default iterations: at most this many, stopping at a residual of DEFAULT_CG_TOLERANCE
#: (chosen in BENCHMARKS.md, "MMPS's conjugate gradients": as good as converged iterations
#: at a fifth of their products; one iteration, the former default, was biased)
DEFAULT_CG_ITERATIONS, DEFAULT_CG_TOLERANCE = 30, 0.03


def conditional_denoiser(
    denoiser,
    schedule: NoiseSchedule,
    problem: LinearGaussianProblem,
    *,
    cg_iterations: int | None = None,
    cg_tolerance: float = _CG_TOLERANCE,
    preconditioner=None,
    jacobian_sigma_max: float = math.inf,
    counts: dict | None = None,
):
    """``D(x_t, t | y)``: the denoiser conditioned on the observations (see module docs).

    Parameters
    ----------
    denoiser : callable
        ``D(x_t, t) -> x̂_0`` (:mod:`geodiff.diffusion.denoiser`), called with grad
        enabled to differentiate it in ``x_t``.
    schedule : NoiseSchedule
    problem : LinearGaussianProblem
        On the device of the states.
    cg_iterations : int, optional
        Conjugate-gradient iterations per evaluation (default: to convergence, a relative
        residual of 1e-10 or ``4 n`` iterations; ``n`` are exact in exact arithmetic).
        0 takes ``V`` to be the preconditioner's ``V̄`` (no Jacobian, no gradient: exact
        only for a Gaussian prior equal to ``Σ̄``).
    cg_tolerance : float
        A row's iterations stop once its residual ``‖y - A x̂_0 - K w‖`` is this fraction
        of its start (0: 1e-10; ``cg_iterations=None`` always uses 1e-10).
    preconditioner : torch.Tensor of shape (d, d), or a Gaussian, optional
        A covariance ``Σ̄`` close to the prior's (for example its marginal covariance), or a
        :class:`~geodiff.posterior.gaussian.StationaryGaussian` on large grids:
        the iterations are preconditioned by ``A V̄ Aᵀ + diag(τ²)`` with ``V̄`` the exact
        ``Cov[x_0 | x_t]`` of ``N(0, Σ̄)``, so a Gaussian prior equal to ``Σ̄`` needs one
        iteration. It changes the speed of convergence, never the converged answer.
    jacobian_sigma_max : float
        With a preconditioner: above this noise level ``σ = √((1-ᾱ)/ᾱ)`` take ``V = V̄``
        as with ``cg_iterations=0``. There ``V = (σ²/√(1+σ²)) J`` multiplies the network's
        Jacobian error by about ``σ``, while ``Cov[x_0 | x_t]`` tends to the prior's
        covariance, which ``V̄`` is when the preconditioner is the prior's.

    counts : dict, optional
        Receives ``"vjps"``: the vector-Jacobian products made, summed over rows.

    Returns
    -------
    callable
        A denoiser ``(x_t, t) -> E[x_0 | x_t, y]``, the shape and dtype of ``x_t``,
        without a graph.
    """
    counts = {} if counts is None else counts
    y = problem.values
    if not (isinstance(cg_tolerance, (int, float)) and 0 <= cg_tolerance < 1):
        raise GeodiffError(f"cg_tolerance must be a number in [0, 1), got {cg_tolerance!r}")
    iterations = _CONVERGED_ITERATIONS * len(problem) if cg_iterations is None else cg_iterations
    # to convergence (None) ignores the tolerance given
    tolerance = _CG_TOLERANCE if cg_iterations is None else (cg_tolerance or _CG_TOLERANCE)
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
        raise GeodiffError(f"cg_iterations must be a non-negative integer, got {cg_iterations!r}")
    if iterations == 0 and preconditioner is None:
        raise GeodiffError("cg_iterations=0 uses the preconditioner's covariance: give one")
    if not jacobian_sigma_max > 0:
        raise GeodiffError(f"jacobian_sigma_max must be > 0, got {jacobian_sigma_max!r}")
    gaussian = None if preconditioner is None else as_gaussian(preconditioner).guess(problem)
    alpha_bar = schedule.alpha_bar

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        step = int(t.reshape(-1)[0])
        ab = float(alpha_bar[step])
        guess = gaussian is not None and ((1 - ab) / ab) ** 0.5 > jacobian_sigma_max
        if iterations == 0 or guess:  # V ≈ V̄: no Jacobian, no graph
            with torch.no_grad():
                x0 = flat(denoiser(x_t, step_tensor(step, x_t)).to(torch.float64))
            solve, guess_times = gaussian(ab)
            correction = guess_times(solve(y - problem.apply(x0)))
            return (x0 + correction).reshape(x_t.shape).to(x_t.dtype)
        x0, leaf = denoise_with_grad(denoiser, x_t, step)
        scale = (1 - ab) / ab**0.5  # V = scale · J

        def cov_times(v: torch.Tensor) -> torch.Tensor:  # (B, n) -> V Aᵀ v, (B, d)
            pull = problem.adjoint(v).reshape(x0.shape).to(x0.dtype)
            (jt,) = torch.autograd.grad(x0, leaf, grad_outputs=pull, retain_graph=True)
            return scale * flat(jt.to(torch.float64))

        x0_flat = flat(x0.detach().to(torch.float64))
        residual = y - problem.apply(x0_flat)
        solve = (lambda r: r) if gaussian is None else gaussian(ab)[0]
        correction = _conjugate_gradients(
            cov_times, problem, residual, solve, iterations, tolerance, counts
        )
        return (x0_flat + correction).reshape(x_t.shape).to(x_t.dtype)

    return denoise


def _conjugate_gradients(
    cov_times, problem, rhs, solve, iterations: int, tolerance: float, counts: dict
) -> torch.Tensor:
    """``V Aᵀ w`` with ``w ≈ K⁻¹ rhs`` by preconditioned CG, one system per row of ``rhs``.

    ``rhs`` is (B, n); ``solve`` applies ``M⁻¹`` to (B, n). A row stops once its residual
    is ``tolerance`` times its start or after ``iterations``. A direction with
    ``pᵀ K p ≤ 0`` (a network Jacobian that is not positive) ends that row's iterations,
    keeping what it has. Adds the products made for each row to ``counts["vjps"]``.
    """
    tau2 = problem.noise_sd**2
    correction = rhs.new_zeros(rhs.shape[0], problem.dim)
    residual = rhs.clone()
    direction = solve(residual)
    rz = (residual * direction).sum(-1)
    start_norm = (residual * residual).sum(-1).clamp_min(torch.finfo(rhs.dtype).tiny)
    active = rz > 0
    for _ in range(iterations):
        if not active.any():
            break
        counts["vjps"] = counts.get("vjps", 0) + int(active.sum())
        v_dir = cov_times(direction)  # V Aᵀ p, (B, d)
        k_dir = problem.apply(v_dir) + tau2 * direction  # K p, (B, n)
        curvature = (direction * k_dir).sum(-1)
        active = active & (curvature > 0)
        step = torch.where(active, rz / curvature.where(active, 1.0), 0.0)
        correction = correction + step[:, None] * v_dir
        residual = residual - step[:, None] * k_dir
        active = active & ((residual * residual).sum(-1) > tolerance**2 * start_norm)
        z = solve(residual)
        new_rz = (residual * z).sum(-1)
        beta = torch.where(active, new_rz / rz.where(active, 1.0), 0.0)
        direction = torch.where(active[:, None], z + beta[:, None] * direction, 0.0)
        rz = new_rz
    return correction


def mmps_cost(
    schedule: NoiseSchedule, n_observations: int, *, preconditioned: bool = True, **options
) -> dict:
    """Denoiser evaluations and vector-Jacobian products per draw of :func:`mmps_sample`.

    Upper bounds for conjugate gradients that may stop early (``None``: at most
    ``4 n``); ``options`` as there, those not given at :func:`mmps_sample`'s defaults.
    Returns ``{"denoiser_evaluations": …, "vjps": …}``.
    """
    o = {**SPEC.defaults, **options}
    ts = _timesteps(schedule, o["steps"], o["integrator"], o["start_sigma"])
    sigma = schedule.sigma(ts)
    with_jacobian = int((sigma <= o["jacobian_sigma_max"]).sum()) if preconditioned else len(ts)
    cg_iterations = o["cg_iterations"]
    per_step = _CONVERGED_ITERATIONS * n_observations if cg_iterations is None else cg_iterations
    return {"denoiser_evaluations": len(ts), "vjps": with_jacobian * per_step}


def mmps_sample(
    denoiser,
    schedule: NoiseSchedule,
    problem: LinearGaussianProblem,
    generators: list,
    *,
    steps: int = 25,
    cg_iterations: int | None = DEFAULT_CG_ITERATIONS,
    cg_tolerance: float = DEFAULT_CG_TOLERANCE,
    preconditioner=None,
    jacobian_sigma_max: float = JACOBIAN_SIGMA_MAX,
    integrator: str = "dpm2m",
    eta: float = 0.0,
    start_sigma: float | None = None,
    timesteps=None,
    device=None,
    callback=None,
) -> PosteriorSample:
    """Posterior draws by MMPS: an integrator run on the conditional denoiser.

    Parameters
    ----------
    denoiser, schedule, problem, generators, timesteps, device, callback
        As in :func:`~geodiff.posterior.dps.dps_sample`.
    steps : int
        Denoiser evaluations (``dpm2m`` spaces them evenly in log-SNR, ``ddim`` in t).
    cg_iterations : int or None
        Conjugate-gradient iterations (vector-Jacobian products) per step; None runs
        them to convergence, which is exact for a Gaussian prior; 0 uses the
        preconditioner's covariance instead of the denoiser's Jacobian.
    cg_tolerance : float
        Stop a draw's iterations once its residual is this fraction of its start
        (0: 1e-10); ``cg_iterations`` is then the most it may take. With
        ``cg_iterations=None`` the tolerance is 1e-10.
    preconditioner : torch.Tensor of shape (d, d), or a Gaussian, optional
        A covariance close to the prior's, see :func:`conditional_denoiser`.
    jacobian_sigma_max : float
        See :func:`conditional_denoiser` (used only with a preconditioner).
    integrator : {"dpm2m", "ddim"}
        DPM-Solver++(2M) (deterministic) or DDIM with ``eta``.
    eta : float
        DDIM's η (0 deterministic, 1 ancestral); only with ``integrator="ddim"``.
    start_sigma : float, optional
        Start at the step (≥ 1) whose noise level ``σ = √((1-ᾱ)/ᾱ)`` is nearest, from the exact
        law of ``x_t`` there under the Gaussian prior ``N(0, preconditioner)``
        (:func:`~geodiff.posterior._steps.gaussian_start`), instead of pure noise at
        ``T-1``: the steps above it are skipped and ``steps`` are spaced over the rest.
        Exact for a Gaussian prior equal to the preconditioner; for another prior the
        error shrinks as its law of ``x_t`` approaches that Gaussian's, i.e. as ``σ``
        grows. With ``timesteps``, the start is ``timesteps[0]``.

    Returns
    -------
    PosteriorSample
        Draws, float64, shape (B, 1, H, W); ``info["vjps"]``: the vector-Jacobian
        products made for the batch (``info["draws"]`` its size).
    """
    if integrator not in INTEGRATORS:
        raise GeodiffError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if integrator == "dpm2m" and eta:
        raise GeodiffError("the dpm2m integrator is deterministic: use integrator='ddim' for eta")
    problem = problem.to(device)
    counts = {"vjps": 0}
    conditional = conditional_denoiser(
        denoiser,
        schedule,
        problem,
        cg_iterations=cg_iterations,
        cg_tolerance=cg_tolerance,
        preconditioner=preconditioner,
        jacobian_sigma_max=jacobian_sigma_max,
        counts=counts,
    )
    if integrator == "dpm2m" and timesteps is None and (not isinstance(steps, int) or steps < 2):
        raise GeodiffError(f"steps must be an integer >= 2, got {steps!r}")
    if start_sigma is None:
        x_T = start(problem.shape, generators, device)
    else:
        if preconditioner is None:
            raise GeodiffError("start_sigma starts from the preconditioner's Gaussian: give one")
        _check_start_sigma(start_sigma)
        if timesteps is None:
            timesteps = _timesteps(schedule, steps, integrator, start_sigma)
        first = int(torch.as_tensor(timesteps).reshape(-1)[0])
        x_T = gaussian_start(preconditioner, problem, schedule, first, generators, device)
    if integrator == "dpm2m":
        draws = dpm_solver_sample(
            conditional, schedule, x_T, steps=steps, timesteps=timesteps, callback=callback
        )
    else:
        draws = ddim_sample(
            conditional,
            schedule,
            x_T,
            steps=steps,
            eta=eta,
            generators=generators,
            timesteps=timesteps,
            callback=callback,
        )
    return PosteriorSample(draws, {"vjps": counts["vjps"], "draws": len(generators)})


def _summary(infos: list) -> dict:
    """The vector-Jacobian products made per draw, over every batch."""
    draws = sum(i["draws"] for i in infos)
    return {"vjps_per_draw": sum(i["vjps"] for i in infos) / max(draws, 1)}


def _timesteps(schedule: NoiseSchedule, steps: int, integrator: str, start_sigma) -> torch.Tensor:
    """The steps MMPS visits, int64, shape (K,), decreasing to 0.

    ``steps`` spaced (in log-SNR for ``dpm2m``, in t for ``ddim``) from ``T-1``, or from
    the step nearest ``start_sigma`` (at least step 1).
    """
    first = None
    if start_sigma is not None:
        first = max(1, int(schedule.nearest_step(_check_start_sigma(start_sigma))))
    if integrator == "dpm2m":
        return schedule.log_snr_timesteps(steps, first=first)
    return schedule.timesteps(steps, first=first)


def _check_start_sigma(start_sigma) -> float:
    if isinstance(start_sigma, bool) or not float(start_sigma) > 0:
        raise GeodiffError(f"start_sigma must be a positive number, got {start_sigma!r}")
    return float(start_sigma)


def _prepare(model, problem: LinearGaussianProblem, options: dict) -> dict:
    """With a trained model, precondition by its prior's Gaussian unless told otherwise
    (:func:`~geodiff.posterior.gaussian.model_gaussian`)."""
    from geodiff.posterior.gaussian import model_gaussian

    if options.get("preconditioner") is not None:
        return options
    return dict(options, preconditioner=model_gaussian(model))


def _cost(schedule: NoiseSchedule, problem: LinearGaussianProblem, options: dict) -> dict:
    preconditioned = options.get("preconditioner") is not None
    return mmps_cost(schedule, len(problem), **dict(options, preconditioned=preconditioned))


SPEC = SamplerSpec(
    "mmps",
    mmps_sample,
    gradients=True,
    prepare=_prepare,
    cost=_cost,
    summary=_summary,
    matrix_free=True,
)
