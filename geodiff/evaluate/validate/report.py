"""``geodiff validate``: run the prior and posterior checks and write one report.

The report (``OUT/report.md``) starts with a summary table — every check with what it
measured, its noise floor or exact reference, its criterion and ``pass`` or ``WARN`` —
followed by one section per check with its figure (PNG files beside the report).
``OUT/summary.json`` holds the same checks for machines.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

from geodiff.errors import GeodiffError
from geodiff.evaluate.validate.checks import checks_table
from geodiff.evaluate.validate.posterior import (
    PosteriorValidation,
    check_settings,
    validate_posterior,
)
from geodiff.evaluate.validate.prior import (
    AUC_Z_LIMIT,
    DENOISER_TOLERANCE,
    MSW_RATIO_LIMIT,
    Z_LIMIT,
    PriorValidation,
    validate_prior,
)
from geodiff.io import write_text
from geodiff.machine import describe_machine

__all__ = ["ValidationReport", "run_validation"]


@dataclass
class ValidationReport:
    """Where the report went, and its checks.

    Attributes
    ----------
    path : Path
        ``report.md``.
    checks : list of Check
    prior : PriorValidation or None
    posterior : PosteriorValidation or None
    """

    path: Path
    checks: list
    prior: PriorValidation | None
    posterior: PosteriorValidation | None

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    def summary(self) -> str:
        """The summary table, Markdown."""
        return checks_table(self.checks)


def run_validation(
    model,
    out,
    *,
    prior_checks: bool = True,
    posterior_checks: bool = True,
    prior_options: dict | None = None,
    posterior_options: dict | None = None,
    seed: int = 0,
    command: str = "",
    progress: bool = True,
) -> ValidationReport:
    """Validate a trained model and write ``out/report.md`` with its figures.

    Parameters
    ----------
    model : DiffusionModel
    out : str or Path
        Output folder (created). Posterior results are kept there and resumed.
    prior_checks, posterior_checks : bool
        Which halves to run.
    prior_options : dict, optional
        Keyword arguments of :func:`~geodiff.evaluate.validate.prior.validate_prior`.
    posterior_options : dict, optional
        Keyword arguments of :func:`~geodiff.evaluate.validate.posterior.validate_posterior`.
    seed : int
    command : str
        How the report was made, quoted in it.
    progress : bool

    Returns
    -------
    ValidationReport
    """
    if not (prior_checks or posterior_checks):
        raise GeodiffError("nothing to validate: both the prior and the posterior checks are off")
    if posterior_checks:  # before the prior checks' minutes, not after
        check_settings(**(posterior_options or {}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    prior = posterior = None
    if prior_checks:
        prior = validate_prior(model, seed=seed, progress=progress, **(prior_options or {}))
    if posterior_checks:
        posterior = validate_posterior(
            model,
            seed=seed,
            results=out / "posterior.jsonl",
            progress=progress,
            **(posterior_options or {}),
        )
    checks = (prior.checks if prior else []) + (posterior.checks if posterior else [])
    report = out / "report.md"
    text = _report(model, prior, posterior, checks, out, command, time.perf_counter() - started)
    write_text(report, text)
    summary = {"model": _model_name(model), "checks": [c.to_dict() for c in checks]}
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    return ValidationReport(report, checks, prior, posterior)


def _model_name(model) -> str:
    return str(model.info.get("name") or model.prior.name)


def _reuse_note(posterior) -> str:
    if posterior is None or not posterior.reused:
        return ""
    return (
        f" (the posterior results of {posterior.reused} of {len(posterior.records)} datasets "
        "were read back from an earlier run with the same settings; all posterior methods "
        f"took {posterior.seconds() / 60:.1f} min over the datasets)"
    )


def _report(model, prior, posterior, checks, out: Path, command: str, seconds: float) -> str:
    grid = model.grid
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    n_pass = sum(c.passed for c in checks)
    lines = [
        f"# Validation of a diffusion prior: `{model.prior.name}` on a "
        f"{grid.shape[0]}×{grid.shape[1]} grid",
        "",
        f"- model: step {model.info.get('step')}, "
        f"{model.denoiser.n_parameters / 1e6:.2f} M parameters, "
        f"{model.denoiser.prediction}-prediction, {model.schedule.kind} schedule",
        f"- command: `{command or 'geodiff validate'}`",
        f"- date: {stamp}; machine: {describe_machine()}; wall time {seconds / 60:.1f} min"
        + _reuse_note(posterior),
        "",
        "## Summary",
        "",
        f"{n_pass} of {len(checks)} checks pass. Each compares the model with an exact "
        "reference. *Floor* is what the same measurement gives with no model error: a "
        "second set of exact simulations compared with the first (prior), or the exact "
        "reference itself (posterior). A warning means the model departs from its "
        "reference by more than the criterion allows, not that the run failed.",
        "",
        checks_table(checks),
        "",
    ]
    if prior is not None:
        lines += _prior_section(model, prior, out)
    if posterior is not None:
        lines += _posterior_section(posterior, out)
    return "\n".join(lines)


def _prior_section(model, prior: PriorValidation, out: Path) -> list:
    from geodiff.evaluate.validate import figures
    from geodiff.plot import plot_denoising_mse, plot_samples

    s = prior.settings
    plot_samples(prior.generated, out / "prior_samples.png", reference=prior.reference)
    if len(prior.sigma):
        plot_denoising_mse(prior.sigma, prior.network_mse, prior.oracle_mse, out / "denoising.png")
    figures.plot_variograms(
        prior.variograms, out / "variograms.png", control=prior.control_variograms
    )
    figures.plot_spectra(prior.spectra, out / "spectra.png", control=prior.control_spectra)
    figures.plot_marginals(prior.marginals, out / "marginals.png", control=prior.control_marginals)
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in prior.seconds.items())
    return [
        "## Prior checks",
        "",
        f"{s['fields']} fields from the network ({s['prior_sampler']}, {s['prior_steps']} "
        f"steps) against {s['fields']} exact simulations of the training prior (the "
        f"reference); a control set of {s['fields']} more exact simulations gives each "
        f"statistic's noise floor. ({timing}.)",
        "",
        "![network samples above exact simulations](prior_samples.png)",
        "",
        *_denoising_lines(prior),
        "### Directional variograms",
        "",
        "Mean empirical semivariogram along x, y and both diagonals; z is the difference "
        f"over its standard error. Criterion: max |z| ≤ {Z_LIMIT:g}.",
        "",
        "![variograms](variograms.png)",
        "",
        "### Radially averaged power spectra",
        "",
        "Mean power per radial wavenumber and the log ratio to the reference, with the "
        f"delta-method standard error. Criterion: max |z| ≤ {Z_LIMIT:g}.",
        "",
        "![power spectra](spectra.png)",
        "",
        "### Marginal quantiles and the max-sliced Wasserstein distance",
        "",
        "Quantiles of all values pooled over fields and nodes, with bootstrap standard "
        f"errors over fields; criterion max |z| ≤ {Z_LIMIT:g}. The max-sliced distance is "
        f"the largest 1-D Wasserstein-2 distance over the {s['n_directions']} leading "
        "principal directions of the prior (from its exact covariance), each scaled to "
        f"unit prior variance: network {prior.msw:.3f}, control {prior.msw_floor:.3f}; "
        f"criterion ≤ {MSW_RATIO_LIMIT:g} × the control.",
        "",
        "![marginal quantiles](marginals.png)",
        "",
        "### Tails: exceedances and extremal dependence",
        "",
        "Thresholds are the reference's pooled quantiles. p(q): the share of all values "
        "above q; p_max(q): the share of fields whose maximum is above q; χ x k (y k): "
        "P(X(s + h) > q₀.₉₅ | X(s) > q₀.₉₅) at lag h of k cells along x (y). Bootstrap "
        f"standard errors over fields; criterion max |z| ≤ {Z_LIMIT:g}.",
        "",
        *_tail_table(prior.exceedances, prior.control_exceedances),
        *_tail_table(prior.extremal_dependence, prior.control_extremal_dependence),
        "### Classifier two-sample test",
        "",
        f"A small ResNet trained for {s['classifier_epochs']} epochs to tell network "
        f"samples from exact simulations ({prior.classifier.n_train} training and "
        f"{prior.classifier.n_test} held-out fields per set; train accuracy "
        f"{prior.classifier.train_accuracy:.3f}) scores held-out ROC AUC "
        f"{prior.classifier.auc:.3f}; 0.5 is chance, the null sd is "
        f"{prior.classifier.auc_se:.3f}. Criterion: AUC ≤ 0.5 + {AUC_Z_LIMIT:g} null sd.",
        "",
    ]


def _denoising_lines(prior: PriorValidation) -> list:
    """The report's denoising-error subsection (none without an exact oracle)."""
    s = prior.settings
    if not len(prior.sigma):
        return ["The prior is not Gaussian given θ, so no exact denoiser exists to compare "
                "the network's denoising error with.", ""]  # fmt: skip
    ratio = prior.network_mse / prior.oracle_mse
    return [
        "### Denoising error against the exact oracle",
        "",
        f"The exact denoiser E[x₀ | x_t] of a {s['oracle_components']}-component mixture "
        "of the prior's Gaussians has the smallest possible error (the Bayes risk); the "
        f"network is scored on {s['mse_fields']} fields drawn from that mixture with the same "
        f"noise. Criterion: ratio ≤ {DENOISER_TOLERANCE} at every level. Ratios from "
        f"σ = {prior.sigma[0]:.3g} to {prior.sigma[-1]:.3g}: "
        + ", ".join(f"{r:.3f}" for r in ratio)
        + ".",
        "",
        "![denoising error](denoising.png)",
        "",
    ]


def _tail_table(comparison, control) -> list:
    """A markdown table of a tail comparison beside its control's |z|."""
    rows = ["| statistic | network | reference | z | control z |", "|---|---|---|---|---|"]
    for k, label in enumerate(comparison.labels):
        rows.append(f"| {label} | {comparison.generated[k]:.4g} | {comparison.reference[k]:.4g} "
                    f"| {comparison.z[k]:+.1f} | {control.z[k]:+.1f} |")  # fmt: skip
    return [*rows, ""]


def _posterior_section(posterior: PosteriorValidation, out: Path) -> list:
    from geodiff.evaluate.validate import figures
    from geodiff.evaluate.validate.posterior import METHODS, _shares

    s = posterior.settings
    records = posterior.records
    figures.plot_rank_histograms(
        {name: _shares(records, name) for name in METHODS}, out / "ranks.png"
    )
    diffusion, mcmc = s["methods"]["diffusion"], s["methods"]["mcmc"]
    figures.plot_calibration(records, diffusion["method"], out / "calibration.png")
    return [
        "## Posterior checks",
        "",
        f"{s['datasets']} datasets drawn from the training prior: parameters θ, a true "
        f"field, {s['n_obs']} uniformly placed point observations with noise sd "
        f"{s['noise_sd']:g}. Methods predict every grid node with {s['draws']} draws: "
        f"diffusion posterior sampling ({diffusion['method']}, "
        f"{diffusion.get('steps', 'its default')} steps) with the trained network; MCMC "
        f"(NUTS; for an SPDE prior elliptical slice sampling over θ; 2 chains × "
        f"({mcmc['warmup']} + {mcmc['samples']}), then exact conditional "
        "fields), the fully Bayesian "
        "reference; and, for context, kriging with the true θ (oracle, which no method "
        "can beat on average) and ordinary kriging with REML-fitted parameters.",
        "",
        "Scores against the true field, averaged over nodes and datasets: CRPS and the "
        "energy score of whole fields (lower is better), RMSE of the posterior mean, the "
        "share of nodes inside the central 90 % interval (exactly 0.90 in expectation "
        "when calibrated), and the share of the truth's rank among the draws in 10 "
        "equal bins (0.1 each when calibrated; PIT for kriging). The distance check "
        "compares diffusion draws with one half of 2 × "
        f"{s['draws']} MCMC draws; the floor is the other half against the same one.",
        "",
        posterior.table(),
        "",
        "![rank histograms](ranks.png)",
        "",
        "![coverage and CRPS per dataset](calibration.png)",
        "",
    ]
