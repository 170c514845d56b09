"""Synthetic datasets: a parameter draw, a true field and its noisy point observations."""

from __future__ import annotations

import numpy as np
import torch

from geodiff.fields.simulate import simulate
from geodiff.observe import Observations
from geodiff.rng import derive_seed

__all__ = ["synthetic_dataset"]


def synthetic_dataset(prior, grid, n_obs: int, noise_sd: float, seed: int, *key: int):
    """A true field drawn from ``prior`` and its noisy observations at uniform random points.

    Parameters
    ----------
    prior : GRFPrior
    grid : Grid
    n_obs : int
    noise_sd : float
    seed : int
    *key : int
        Stream of this dataset within the seeded run (e.g. its index in a benchmark).

    Returns
    -------
    theta : dict
        The field's parameters (a batch of one).
    truth : numpy.ndarray, shape (H, W)
    obs : Observations
        Bilinear reads of the grid field at the points, plus N(0, noise_sd²) noise.
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, 1, *key))
    theta = prior.sample_theta(1, gen)
    truth = simulate(prior, grid, 1, seed=derive_seed(seed, 2, *key), theta=theta).fields[0]
    rng = np.random.default_rng(derive_seed(seed, 3, *key))
    (x0, x1), (y0, y1) = grid.extent
    loc = np.column_stack([rng.uniform(x0, x1, n_obs), rng.uniform(y0, y1, n_obs)])
    values = grid.interpolate(truth[None].double(), loc)[0].numpy()
    obs = Observations.at_points(loc, values + noise_sd * rng.standard_normal(n_obs), noise_sd)
    return theta, truth.numpy(), obs
