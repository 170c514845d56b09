"""Simulation-based calibration of the MCMC reference (slow: about 20 minutes on 2 cores).

Run with ``python -m pytest -m slow tests/test_sbc.py``. For each of 100 datasets drawn
from the prior (parameters, field, noisy observations), the rank of the true parameters
and of the true field at held-out points among the posterior draws is uniform when the
sampler is right (Talts et al. 2018). Each rank statistic is tested with a chi-square
test over 10 bins and must have p > 0.01.
"""

import numpy as np
import pytest
import torch
from scipy import stats

from geodiff import LogNormal, LogUniform, StationaryPrior
from geodiff.baselines.mcmc import mcmc_posterior
from geodiff.observe import Observations
from geodiff.rng import derive_seed

PRIOR = StationaryPrior(
    "matern", nu=1.5, variance=LogNormal(1.0, 0.5), length_scale=LogUniform(0.08, 0.4)
)
N_REPLICATES, N_OBS, NOISE, THIN = 100, 20, 0.1, 8
N_BINS = 10


def _replicate(r, points, held_out):
    gen = torch.Generator().manual_seed(derive_seed(2024, r))
    theta = PRIOR.sample_theta(generators=[gen])
    both = np.concatenate([points, held_out])
    cov = PRIOR.covariance(both, both, theta)[0]
    field = torch.linalg.cholesky(cov) @ torch.randn(len(both), generator=gen, dtype=torch.float64)
    noise = NOISE * torch.randn(N_OBS, generator=gen, dtype=torch.float64)
    obs = Observations.at_points(points, (field[:N_OBS] + noise).numpy(), NOISE)
    result = mcmc_posterior(
        PRIOR, obs, num_samples=400, warmup_steps=300, num_chains=2, seed=r, progress=False
    )
    ranks = {}
    for key in ("variance", "length_scale"):
        draws = result.samples[key][:, ::THIN].reshape(-1)
        ranks[key] = int((draws < theta[key][0]).sum())
    n_draws = result.samples["variance"][:, ::THIN].numel()
    pred = result.predict(held_out, draws=n_draws, seed=r)
    for k in range(len(held_out)):
        ranks[f"field@{k}"] = int((pred.draws[:, k] < field[N_OBS + k].item()).sum())
    return ranks, n_draws


@pytest.mark.slow
def test_mcmc_posterior_is_calibrated():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (N_OBS, 2))
    held_out = np.array([[0.5, 0.5], [0.95, 0.05]])
    all_ranks, n_draws = {}, None
    for r in range(N_REPLICATES):
        ranks, n_draws = _replicate(r, points, held_out)
        for key, value in ranks.items():
            all_ranks.setdefault(key, []).append(value)
    for key, ranks in all_ranks.items():
        bins = np.floor(np.asarray(ranks) * N_BINS / (n_draws + 1)).astype(int)
        counts = np.bincount(bins, minlength=N_BINS)
        p = stats.chisquare(counts).pvalue
        print(f"{key}: rank histogram {counts.tolist()}, chi-square p = {p:.3f}")
        assert p > 0.01, (key, counts.tolist(), p)
