"""References for a heavy-tailed prior (:class:`~geodiff.fields.transformed.TransformedPrior`).

* **The fully Bayesian reference** (Pyro NUTS, :func:`latent_pyro_model`): the likelihood
  of a transformed field has no closed form, so the latent Gaussian values at the
  observations' support points are sampled with θ, whitened::

      θ ~ prior,   w ~ N(0, I_m),   Z(P) = L_θ w  (L_θ the Cholesky factor of C_θ(P, P)),
      y ~ N(W X(P), diag(τ²)),   X(P) = sqrt(v) tau_{g,h}(Z(P) / sqrt(v)).

  A posterior draw of the field at targets (:func:`latent_predictive`) conditions the
  latent field on ``Z(P)`` exactly (Matheron's rule, :func:`~geodiff.baselines.kriging.
  conditional_simulation` without noise) and transforms it.
* **Oracle trans-Gaussian kriging** (:func:`trans_gaussian_kriging`): θ and the transform
  known; the observations are mapped back to the latent scale, ``z = X^-1(y)``, with the
  noise carried by the transform's slope (``τ_z = τ / X'(z)``, first order), the latent
  field is simple-kriged and its conditional draws transformed. Exact for noiseless
  point data, an approximation with noise.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from geodiff.baselines.kriging import conditional_simulation
from geodiff.grid import Grid
from geodiff.observe import Observations, point_operator
from geodiff.prediction import Prediction
from geodiff.rng import derive_seed

__all__ = ["LATENT_SITE", "latent_predictive", "latent_pyro_model", "trans_gaussian_kriging"]

#: the Pyro site of the whitened latent values at the observations' support
LATENT_SITE = "latent_white"
_JITTER = 1e-8  # relative diagonal jitter of the latent covariance at the support


def _latent_factor(prior, theta: dict, support) -> torch.Tensor:
    """Cholesky factor of the latent covariance at the support points, shape (m, m)."""
    cov = prior.latent.covariance(support, support, theta, nugget=True)[0]
    eye = torch.eye(len(support), dtype=cov.dtype)
    return torch.linalg.cholesky(cov + _JITTER * cov.diagonal().mean() * eye)


def latent_values(prior, theta: dict, white: torch.Tensor, support) -> torch.Tensor:
    """``Z(P) = L_θ w`` for one θ (a batch of 1) and whitened values ``w`` of shape (m,)."""
    return _latent_factor(prior, theta, support) @ white


def latent_pyro_model(prior, obs: Observations, noise_prior=None):
    """The Pyro model of ``obs`` under a transformed prior (see the module docstring).

    Returns
    -------
    callable
        A model function taking no arguments; its sites are θ's (as
        :meth:`TransformedPrior.pyro_theta` with periodic angles), :data:`LATENT_SITE`
        and, with a ``noise_prior``, ``noise_variance``.
    """
    y = torch.as_tensor(obs.values, dtype=torch.float64)
    noise = torch.as_tensor(obs.noise_variance, dtype=torch.float64)
    support = torch.as_tensor(obs.operator.support, dtype=torch.float64)
    weights = torch.as_tensor(obs.operator.weights.toarray(), dtype=torch.float64)

    def model():
        theta = prior.pyro_theta(periodic_angles=True)
        site = dist.Normal(torch.zeros(len(support), dtype=torch.float64), 1.0).to_event(1)
        white = pyro.sample(LATENT_SITE, site)
        z = latent_values(prior, theta, white, support)
        scale = prior.scale(theta, support)
        x = prior.transform(z[None], theta, scale)[0]
        extra = 0.0 if noise_prior is None else pyro.sample("noise_variance", noise_prior.pyro())
        sd = torch.sqrt(noise + extra)
        pyro.sample("y", dist.Normal(weights @ x, sd).to_event(1), obs=y)

    return model


def latent_predictive(prior, theta: dict, white: torch.Tensor, obs: Observations, targets,
                      seed: int) -> torch.Tensor:  # fmt: skip
    """One posterior draw of the field at targets given θ and the latent values' draw.

    Parameters
    ----------
    prior : TransformedPrior
    theta : dict, a batch of 1
    white : torch.Tensor, shape (m,)
        The whitened latent values at ``obs.operator.support`` (:data:`LATENT_SITE`).
    obs : Observations
    targets : Grid or array_like, shape (t, 2)
    seed : int

    Returns
    -------
    torch.Tensor, float64, shape (t,)
    """
    support = np.asarray(obs.operator.support, dtype=float)
    z = latent_values(prior, theta, white, torch.as_tensor(support))
    exact = Observations(point_operator(support), z.detach().numpy(), 0.0)
    latent = conditional_simulation(prior.latent, prior.latent_theta(theta), exact, targets, 1,
                                    seed).reshape(1, -1)  # fmt: skip
    points = targets.points() if isinstance(targets, Grid) else np.asarray(targets, dtype=float)
    scale = prior.scale(theta, points)
    return prior.transform(latent, theta, scale)[0]


def trans_gaussian_kriging(prior, theta: dict, obs: Observations, targets, draws: int,
                           seed: int = 0) -> Prediction:  # fmt: skip
    """Oracle trans-Gaussian kriging: θ and the transform known (see the module docstring).

    Parameters
    ----------
    prior : TransformedPrior
    theta : dict, a batch of 1
    obs : Observations
        Point observations (``W = I``).
    targets : Grid or array_like, shape (t, 2)
    draws : int
    seed : int

    Returns
    -------
    Prediction
        Represented by its draws, shape (draws, t).
    """
    if not obs.operator.is_identity:
        from geodiff.errors import GeodiffError

        raise GeodiffError("trans-Gaussian kriging takes point observations")
    support = np.asarray(obs.operator.support, dtype=float)
    values = torch.as_tensor(obs.values, dtype=torch.float64)[None]
    scale = prior.scale(theta, support)
    z = prior.inverse(values, theta, scale)
    with torch.enable_grad():
        z_grad = z.clone().requires_grad_(True)
        prior.transform(z_grad, theta, scale).sum().backward()
    slope = z_grad.grad[0].clamp_min(1e-12)
    latent_obs = Observations(point_operator(support), z[0].numpy(),
                              (np.asarray(obs.noise_sd) / slope.numpy()))  # fmt: skip
    latent = conditional_simulation(prior.latent, prior.latent_theta(theta), latent_obs, targets,
                                    draws,
                                    derive_seed(seed, 0)).reshape(draws, -1)  # fmt: skip
    points = targets.points() if isinstance(targets, Grid) else np.asarray(targets, dtype=float)
    x = prior.transform(latent, theta, prior.scale(theta, points))  # θ's batch of 1 broadcasts
    grid = targets if isinstance(targets, Grid) else None
    return Prediction.from_draws(points, x.numpy(), grid=grid, method="kriging-oracle-tg")
