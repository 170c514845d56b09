"""Priors over Gaussian random fields, their simulation and on-disk stores."""
