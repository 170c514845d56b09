"""Gaussian conditioning (:func:`geodiff.linalg.condition_on`) against the textbook formula."""

import numpy as np
import torch

from geodiff.linalg import condition_on


def test_gaussian_conditioning_matches_the_textbook_formula_and_sees_a_wrong_covariance():
    """``condition_on`` against ``k K⁻¹ y`` and ``C - k K⁻¹ kᵀ`` by numpy's dense solve (an
    independent route); the same comparison rejects a 10 % wider observation covariance."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (12, 2))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    cov = np.exp(-dist / 0.3)  # 7 observed, 5 predicted
    big_k = cov[:7, :7] + 0.01 * np.eye(7)
    k, y = cov[7:, :7], rng.normal(size=7)
    want_mean = k @ np.linalg.solve(big_k, y)
    want_cov = cov[7:, 7:] - k @ np.linalg.solve(big_k, k.T)

    def conditioned(obs_cov):
        chol = torch.linalg.cholesky(torch.as_tensor(obs_cov))
        mean, half = condition_on(chol, torch.as_tensor(k), torch.as_tensor(y))
        return mean.numpy(), cov[7:, 7:] - (half.T @ half).numpy()

    mean, post = conditioned(big_k)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post, want_cov, rtol=1e-10, atol=1e-12)
    wrong_mean, _ = conditioned(1.1 * big_k)
    assert np.abs(wrong_mean - want_mean).max() > 1e-3
