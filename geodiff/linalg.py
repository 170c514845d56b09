"""Dense linear algebra shared by simulation, kriging and MCMC."""

from __future__ import annotations

import warnings

import torch

from geodiff.errors import GeodiffError

__all__ = ["JITTERS", "robust_cholesky"]

#: relative diagonal jitters tried in turn when a covariance will not factorise
JITTERS = (1e-12, 1e-10, 1e-8, 1e-6)
_WARN_ABOVE = 1e-8


def robust_cholesky(matrix: torch.Tensor, what: str = "covariance") -> torch.Tensor:
    """Lower Cholesky factor, adding the smallest jitter of :data:`JITTERS` that works.

    The jitter is relative to the mean diagonal; a warning names any above 1e-8.

    Parameters
    ----------
    matrix : torch.Tensor, shape (..., n, n)
        Symmetric positive (semi-)definite.
    what : str
        How to call the matrix in messages.

    Returns
    -------
    torch.Tensor, shape (..., n, n)
    """
    scale = matrix.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    for jitter in JITTERS:
        chol, info = torch.linalg.cholesky_ex(matrix + jitter * scale * eye)
        if not bool((info != 0).any()):
            break
    else:
        raise GeodiffError(f"the {what} is not positive definite, even with relative jitter 1e-6")
    if jitter > _WARN_ABOVE:
        warnings.warn(
            f"the {what} needed relative jitter {jitter:g} to factorise",
            RuntimeWarning,
            stacklevel=2,
        )
    return chol
