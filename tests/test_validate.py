"""``geodiff validate``: the statistics against exact values, the checks against models
known to be right (exact simulations) and wrong (scaled fields), resuming, the command."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from geodiff import GeodiffError, Grid, StationaryPrior
from geodiff.cli import main
from geodiff.diffusion.model import load_model
from geodiff.evaluate.datasets import synthetic_dataset
from geodiff.evaluate.validate import Check, checks_table, validate_posterior, validate_prior
from geodiff.evaluate.validate import posterior as posterior_module
from geodiff.evaluate.validate.prior import principal_directions
from geodiff.fields.simulate import simulate
from geodiff.metrics.marginal import compare_marginals, pooled_quantiles
from geodiff.metrics.scores import energy_score, max_sliced_wasserstein

MODEL = Path(__file__).resolve().parents[1] / "data" / "stationary-matern-32"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def test_pooled_quantiles_of_white_noise_match_the_normal_quantiles():
    levels = (0.01, 0.25, 0.5, 0.9, 0.99)
    z_p = stats.norm.ppf(levels)
    n_values = 200 * 8 * 8
    # iid values: a sample quantile's sd is sqrt(p (1 - p) / N) / φ(z_p)
    exact_se = np.sqrt(np.multiply(levels, 1 - np.array(levels)) / n_values) / stats.norm.pdf(z_p)
    ratios = []
    for seed in range(8):
        fields = np.random.default_rng(seed).standard_normal((200, 8, 8))
        q, se = pooled_quantiles(fields, levels, n_boot=200, seed=seed + 100)
        assert np.all(np.abs(q - z_p) < 4 * exact_se)
        ratios.append(se / exact_se)
    # a bootstrap se of a tail quantile varies by ~20 % between samples: check its mean
    # over 40 (seed, level) pairs, whose standard error is about 0.03
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.1)


def test_compare_marginals_finds_a_scale_error_and_not_a_resample():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((100, 8, 8)), rng.standard_normal((100, 8, 8))
    assert compare_marginals(a, b, seed=0).max_abs_z < 4
    assert compare_marginals(1.2 * a, b, seed=0).max_abs_z > 6
    with pytest.raises(GeodiffError, match="levels"):
        pooled_quantiles(a, (0.0, 0.5))
    with pytest.raises(GeodiffError, match="grid"):
        compare_marginals(a, rng.standard_normal((100, 8, 9)))


def test_energy_score_equals_its_formula():
    rng = np.random.default_rng(2)
    y, x = rng.standard_normal(5), rng.standard_normal((30, 5))
    pair = np.linalg.norm(x[:, None] - x[None], axis=-1).sum() / (2 * 30 * 29)
    assert energy_score(y, x) == pytest.approx(np.linalg.norm(x - y, axis=1).mean() - pair)


def test_max_sliced_wasserstein_is_the_largest_projected_distance():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((50, 3))
    shift = np.array([0.5, -2.0, 1.0])
    # a translation moves every 1-D projection by its component: W2 = |shift · direction|
    assert max_sliced_wasserstein(a, a + shift, np.eye(3)) == pytest.approx(2.0)
    assert max_sliced_wasserstein(a, a + shift, 3 * np.eye(3)[:, :1]) == pytest.approx(1.5)
    with pytest.raises(GeodiffError):
        max_sliced_wasserstein(a, a, np.eye(4))


def test_principal_directions_whiten_the_exact_covariance():
    prior = StationaryPrior("matern", nu=1.5, variance=2.0, length_scale=0.2, nugget=0.01)
    grid = Grid.square(6, prior.domain)
    directions = principal_directions(prior, grid, n_theta=2, k=10)
    theta = prior.sample_theta(1, 0)
    pts = torch.as_tensor(grid.points(), dtype=torch.float64)
    cov = prior.covariance(pts, pts, theta)[0].numpy()
    assert np.allclose(directions.T @ cov @ directions, np.eye(10), atol=1e-8)
    # the leading directions carry the most variance: their unscaled variances decrease
    unit = directions / np.linalg.norm(directions, axis=0)
    variances = np.einsum("dk,de,ek->k", unit, cov, unit)
    assert np.all(np.diff(variances) <= 1e-10)


def test_checks_table_states_criteria_and_escapes_pipes():
    table = checks_table(
        [
            Check("prior", "max |z|", "2.0", "1.5", "≤ 4", True),
            Check("posterior", "coverage", "0.8", "0.9", "±0.03", False),
        ]
    )
    rows = table.splitlines()
    assert rows[2].count(" | ") == 4 and "max \\|z\\|" in rows[2] and "**pass**" in rows[2]
    assert "**WARN**" in rows[3]
    assert Check("p", "n", "v", "f", "c", False).to_dict()["status"] == "warn"


def _prior_checks(model, monkeypatch, factor):
    """Prior checks with the network's sampler replaced by exact simulation x factor."""
    prior, grid = model.prior, model.grid

    def sample(n, *, seed=0, **_):
        return simulate(prior, grid, n, seed=10**6 + seed).fields * factor

    monkeypatch.setattr(model, "sample", sample)
    result = validate_prior(
        model,
        fields=150,
        oracle_components=4,
        mse_fields=16,
        n_directions=16,
        classifier_epochs=1,
        progress=False,
    )
    return {c.name.split(" (")[0]: c for c in result.checks}, result


def test_prior_checks_pass_exact_simulations_and_flag_scaled_fields(model, monkeypatch):
    checks, result = _prior_checks(model, monkeypatch, 1.0)
    for name in (
        "directional variograms",
        "radially averaged power spectra",
        "marginal quantiles",
        "local anisotropy",
        "exceedance probabilities of the 90 / 99 / 99.9 % quantiles, by value and by field maximum",
        "extremal dependence χ(0.95) by lag along x and y",
    ):
        assert checks[name].passed, checks[name]
    assert result.generated.shape == (8, *model.grid.shape)
    assert len(result.sigma) == len(result.oracle_mse)
    assert abs(result.classifier.z) < 4  # exact fields: the AUC is within its null spread
    # the trained network's denoiser (not replaced) is within 10 % of the Bayes risk
    assert checks["denoiser MSE / exact oracle MSE"].passed
    exact_msw = result.msw
    checks, result = _prior_checks(model, monkeypatch, 1.25)
    for name in ("directional variograms", "radially averaged power spectra", "marginal quantiles",
                 "exceedance probabilities of the 90 / 99 / 99.9 % quantiles, by value and by "
                 "field maximum"):  # fmt: skip
        assert not checks[name].passed, checks[name]
    # coherence and orientation do not change when a field is scaled: the check that
    # looks at anisotropy alone still passes (its power is in tests/test_anisotropy.py)
    assert checks["local anisotropy"].passed
    # at 150 fields the max-sliced distance's floor (~0.37) exceeds the error (0.25 in
    # prior-sd units), so it need not warn; the same fields scaled move away, though
    assert result.msw > exact_msw


POSTERIOR = dict(datasets=2, draws=19, methods={"diffusion": {"steps": 4},
                 "mcmc": {"warmup": 30, "samples": 30}}, progress=False)  # fmt: skip


def _oracle_coverage_variance(prior, grid, obs, theta) -> float:
    """Upper bound on the variance of the exact posterior's 90 % coverage over the nodes.

    The truth's standardised errors under the exact posterior (given θ, observations of
    the grid field) are jointly N(0, R); for an even function f such as the indicator of
    |z| < 1.645, Cov(f(z_i), f(z_j)) <= R_ij² Var f (its Hermite expansion has only even
    orders), so the share of the m nodes covered has variance <= 0.09 Σ R_ij² / m².
    """
    from geodiff.posterior import LinearGaussianProblem

    pts = torch.as_tensor(grid.points(), dtype=torch.float64)
    cov = prior.covariance(pts, pts, theta)[0].numpy()
    a = LinearGaussianProblem.from_observations(obs, grid).matrix.numpy()
    noise = np.diag(np.asarray(obs.noise_sd, dtype=float) ** 2 * np.ones(len(a)))
    post = cov - cov @ a.T @ np.linalg.solve(a @ cov @ a.T + noise, a @ cov)
    sd = np.sqrt(np.diag(post))
    return 0.09 * float(np.sum((post / np.outer(sd, sd)) ** 2)) / len(sd) ** 2


def test_scores_of_calibrated_and_miscalibrated_predictions_have_their_exact_coverage():
    """Truth and predictive from one N(0, 1) at m independent targets: the 90 % interval
    holds each truth with probability 0.9 (19 draws: ranks 1..18 of 0..19, 18/20), so the
    coverage is within 4 binomial standard errors of 0.9; predictive sd halved (a Gaussian
    N(0, 0.5²)) or draws shifted by one sd cover P(|Z| < 0.82) = 0.589 and
    P(-0.64 < Z < 2.64) = 0.736 of them."""
    from geodiff.metrics.scores import score_prediction
    from geodiff.prediction import Prediction

    m = 4000
    rng = np.random.default_rng(7)
    truth, targets = rng.standard_normal(m), np.zeros((m, 2))
    se = lambda p: math.sqrt(p * (1 - p) / m)  # noqa: E731
    z90 = stats.norm.ppf(0.95)
    gaussian = Prediction(targets, np.zeros(m), np.ones(m))
    narrow = Prediction(targets, np.zeros(m), 0.5 * np.ones(m))
    draws = Prediction.from_draws(targets, rng.standard_normal((19, m)))
    shifted = Prediction.from_draws(targets, rng.standard_normal((199, m)) + 1.0)
    expected = {
        "gaussian": (gaussian, 0.9),
        "19 draws": (draws, 0.9),
        "narrow": (narrow, 2 * stats.norm.cdf(z90 / 2) - 1),
        # 199 draws: the 10th to 190th smallest, i.e. the 5 % and 95 % quantiles of N(1, 1)
        "shifted": (shifted, stats.norm.cdf(1 + z90) - stats.norm.cdf(1 - z90)),
    }
    for label, (pred, p) in expected.items():
        scores = score_prediction(pred, truth, seed=1)
        assert abs(scores["cover90"] - p) < 4 * se(p), (label, scores["cover90"], p)
        assert sum(scores["ranks"]) == m
    # a calibrated predictive's ranks (or PIT) are uniform over the 10 bins
    for pred in (gaussian, draws):
        shares = np.array(score_prediction(pred, truth)["ranks"]) / m
        assert np.abs(shares - 0.1).max() < 4 * se(0.1)


@pytest.mark.filterwarnings("ignore::geodiff.baselines.mcmc.MCMCWarning")  # 30 NUTS draws
def test_posterior_checks_resume_and_refuse_other_settings(model, tmp_path, monkeypatch):
    results = tmp_path / "posterior.jsonl"
    first = validate_posterior(model, results=results, **POSTERIOR)
    lines = results.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["settings"]["draws"] == 19
    record = first.records[0]
    nodes = model.grid.shape[0] * model.grid.shape[1]
    for name in posterior_module.METHODS:
        ranks = np.array(record[name]["ranks"])
        assert ranks.sum() == nodes and record[name]["crps"] > 0
        # a share of the nodes, at least those whose rank (PIT) is in the 8 inner bins,
        # which lie inside the central 90 % interval (19 draws: ranks 2..17 of 0..19)
        covered = record[name]["cover90"] * nodes
        assert covered == pytest.approx(round(covered), abs=1e-6)
        assert ranks[1:-1].sum() <= round(covered) <= nodes
    # oracle kriging is the exact posterior: its coverage is 0.9 in expectation, within
    # 4 sd of the bound above (the datasets are independent)
    data = [first.settings[k] for k in ("n_obs", "noise_sd", "seed")]
    variances = []
    for r in first.records:
        theta, _, obs = synthetic_dataset(model.prior, model.grid, *data, r["dataset"])
        variances.append(_oracle_coverage_variance(model.prior, model.grid, obs, theta))
    oracle_cover = np.mean([r["kriging-oracle"]["cover90"] for r in first.records])
    bound = 4 * math.sqrt(sum(variances)) / len(variances)
    assert abs(oracle_cover - 0.9) < bound, (oracle_cover, bound)
    assert record["diffusion"]["sw_floor"] > 0 and record["mcmc"]["energy"] > 0
    assert {c.group for c in first.checks} == {"posterior"} and len(first.checks) == 7

    # a rerun reads every dataset back; a line cut by a kill is recomputed
    results.write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    calls = []
    real = posterior_module._score_dataset

    def counting(model_, k, settings, progress):
        calls.append(k)
        return real(model_, k, settings, progress)

    monkeypatch.setattr(posterior_module, "_score_dataset", counting)
    again = validate_posterior(model, results=results, **POSTERIOR)
    assert calls == [1] and first.reused == 0 and again.reused == 1
    assert again.records[0] == json.loads(json.dumps(first.records[0]))
    assert again.records[1]["diffusion"]["crps"] == pytest.approx(
        first.records[1]["diffusion"]["crps"]
    )
    with pytest.raises(GeodiffError, match="other settings"):
        validate_posterior(model, results=results, **{**POSTERIOR, "noise_sd": 0.2})
    with pytest.raises(GeodiffError, match="multiple of 20"):
        validate_posterior(model, **{**POSTERIOR, "draws": 20})


@pytest.mark.filterwarnings("ignore::geodiff.baselines.mcmc.MCMCWarning")
def test_cli_validate_writes_a_report_and_strict_fails_on_warnings(tmp_path, capsys):
    out = tmp_path / "report"
    args = [
        "validate",
        "--model",
        str(MODEL),
        "--out",
        str(out),
        "--quick",
        "--fields",
        "40",
        "--prior-steps",
        "4",
        "--classifier-epochs",
        "1",
        "--oracle-components",
        "4",
        "--mse-fields",
        "16",
        "--datasets",
        "2",
        "--steps",
        "2",
        "--mcmc-warmup",
        "30",
        "--mcmc-samples",
        "30",
        "--quiet",
    ]
    assert main([*args, "--strict"]) == 1  # a 2-step sampler is far from MCMC: warnings
    text = (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["checks"]) == 16
    for name in ("variograms", "spectra", "marginals", "denoising", "ranks", "calibration"):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert f"({name}.png)" in text
    assert "## Summary" in text and "geodiff validate --model" in text
    assert "checks pass" in capsys.readouterr().out
    # the posterior results are resumed: a second run with --posterior-only reuses them
    assert main([*args, "--posterior-only"]) == 0
    rerun = (out / "report.md").read_text()
    assert "## Prior checks" not in rerun and "2 of 2 datasets were read back" in rerun
    assert main([*args, "--draws", "20"]) == 2
    assert "multiple of 20" in capsys.readouterr().err
    # the first check is the network's denoising error, within 10 % of the Bayes risk
    assert summary["checks"][0]["status"] == "pass", summary["checks"][0]


def test_paired_ratio_standard_error_matches_replication():
    """The delta-method se of a CRPS ratio agrees with the spread over replicated studies."""
    from geodiff.evaluate.validate.posterior import paired_ratio

    rng = np.random.default_rng(0)
    ratios, ses = [], []
    for _ in range(2000):
        reference = rng.gamma(4.0, 0.1, 40)  # per-dataset scores, strongly paired
        mine = 1.05 * reference + 0.01 * rng.standard_normal(40)
        ratio, se = paired_ratio(mine, reference)
        ratios.append(ratio)
        ses.append(se)
    spread = np.std(ratios, ddof=1)
    # the sd of 2000 replicates is known to about 1.6 %; the se estimate's mean to less
    assert abs(np.mean(ses) / spread - 1) < 0.1, (np.mean(ses), spread)
    assert abs(np.mean(ratios) - 1.05) < 4 * spread / np.sqrt(2000)
    # power: an unpaired se (as if the datasets were unrelated) is many times larger
    unpaired = np.sqrt(mine.var(ddof=1) + (1.05 * reference).var(ddof=1)) / np.sqrt(40)
    assert unpaired / reference.mean() > 5 * np.mean(ses)


def test_coverage_check_adds_two_standard_errors():
    from geodiff.evaluate.validate.posterior import _coverage_check

    def records(values):
        return [{"m": {"cover90": v}} for v in values]

    steady = records([0.91, 0.905, 0.915, 0.91] * 10)  # 0.91 ± 0.0007
    noisy = records([0.80, 1.0, 0.83, 0.99] * 10)  # 0.905 ± 0.013
    assert _coverage_check(steady, "m", "steady").passed
    assert not _coverage_check(noisy, "m", "noisy").passed


def test_validate_prior_takes_the_command_line_names_and_its_former_ones_for_a_release():
    from geodiff.errors import renamed_arguments

    with pytest.warns(DeprecationWarning, match=r"validate_prior: n= is now fields="):
        moved = renamed_arguments({"n": 30}, {"n": "fields"}, "validate_prior")
    assert moved == {"fields": 30}
    with pytest.raises(TypeError, match="unexpected keyword argument 'fieldz'"):
        validate_prior(None, fieldz=3)
    with (
        pytest.warns(DeprecationWarning, match="n_mse= is now mse_fields="),
        pytest.raises(GeodiffError, match="at least 20 fields"),
    ):
        validate_prior(None, fields=10, n_mse=8)
