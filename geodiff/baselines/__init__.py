"""Reference posteriors every geodiff prediction is judged against.

kriging
    Oracle simple kriging with known parameters (exact for Gaussian priors) and
    conditional simulation.
fit
    The practitioner's plug-in: parameters fitted to the observations (variogram or
    maximum likelihood), then ordinary kriging.
mcmc
    Fully Bayesian Pyro NUTS over the parameters with the simulator's own prior.
"""
