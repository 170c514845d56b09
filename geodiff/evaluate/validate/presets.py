"""Settings of ``geodiff validate``: the full report, and ``quick`` (a few minutes)."""

from __future__ import annotations

__all__ = ["PRESETS", "validation_options"]

#: the sizes that set how long validation takes and how reliable its warnings are
PRESETS = {
    "full": {
        "fields": 500,
        "oracle_components": 64,
        "mse_fields": 256,
        "classifier_epochs": 10,
        "datasets": 20,
        "mcmc_warmup": 200,
        "mcmc_samples": 200,
    },
    "quick": {
        "fields": 100,
        "oracle_components": 16,
        "mse_fields": 64,
        "classifier_epochs": 5,
        "datasets": 3,
        "mcmc_warmup": 100,
        "mcmc_samples": 100,
    },
}


def validation_options(preset: str = "full", **given) -> tuple[dict, dict]:
    """Keyword arguments of the prior and the posterior checks.

    Parameters
    ----------
    preset : {"full", "quick"}
        The sizes used where ``given`` leaves them ``None``.
    **given
        ``fields``, ``oracle_components``, ``mse_fields``, ``classifier_epochs``,
        ``datasets``, ``mcmc_warmup``, ``mcmc_samples`` (``None``: the preset's), and
        ``prior_sampler``, ``prior_steps``, ``n_obs``, ``noise_sd``, ``draws``,
        ``method``, ``steps``; other keys (a command line's other flags) are ignored.

    Returns
    -------
    prior_options, posterior_options : dict
        For :func:`~geodiff.evaluate.validate.prior.validate_prior` and
        :func:`~geodiff.evaluate.validate.posterior.validate_posterior`.
    """
    s = {k: given.get(k) if given.get(k) is not None else v for k, v in PRESETS[preset].items()}
    prior = {
        "fields": s["fields"],
        "prior_sampler": given.get("prior_sampler", "dpm2m"),
        "prior_steps": given.get("prior_steps", 50),
        "oracle_components": s["oracle_components"],
        "mse_fields": s["mse_fields"],
        "classifier_epochs": s["classifier_epochs"],
    }
    posterior = {
        "datasets": s["datasets"],
        "n_obs": given.get("n_obs", 30),
        "noise_sd": given.get("noise_sd", 0.1),
        "draws": given.get("draws", 19),
        "methods": {
            "diffusion": {"method": given.get("method"), "steps": given.get("steps")},
            "mcmc": {"warmup": s["mcmc_warmup"], "samples": s["mcmc_samples"]},
        },
    }
    return prior, posterior
