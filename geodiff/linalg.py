"""Dense linear algebra shared by simulation, kriging and MCMC."""

from __future__ import annotations

import warnings

import torch

from geodiff.errors import GeodiffError

__all__ = [
    "CONDITION_LIMIT",
    "JITTERS",
    "IllConditionedWarning",
    "check_conditioning",
    "condition_on",
    "robust_cholesky",
]

#: relative diagonal jitters tried in turn when a covariance will not factorise
JITTERS = (1e-12, 1e-10, 1e-8, 1e-6)
_WARN_ABOVE = 1e-8
#: condition numbers above this make a solve lose more than 10 of float64's 16 digits
CONDITION_LIMIT = 1e10


class IllConditionedWarning(UserWarning):
    """A covariance so ill-conditioned that what is solved with it may be unreliable."""


def check_conditioning(chol, what: str = "covariance", hint: str = "") -> float:
    """Warn when the matrix ``chol`` factorises is ill-conditioned; its condition estimate.

    The estimate ``(max L_ii / min L_ii)^2`` from the Cholesky factor is a lower bound
    of the 2-norm condition number, and costs nothing once the factor exists.

    Parameters
    ----------
    chol : torch.Tensor or numpy.ndarray, shape (n, n)
        Lower Cholesky factor.
    """
    diag = torch.as_tensor(chol).diagonal(dim1=-2, dim2=-1).abs()
    low = float(diag.min())
    cond = float("inf") if low == 0 else (float(diag.max()) / low) ** 2
    if cond > CONDITION_LIMIT:
        more = f"; {hint}" if hint else ""
        warnings.warn(
            f"the {what} is ill-conditioned (condition number at least {cond:.2g}), so "
            f"the predictions may be unreliable{more}",
            IllConditionedWarning,
            stacklevel=3,
        )
    return cond


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


def condition_on(chol: torch.Tensor, cross: torch.Tensor, values: torch.Tensor):
    """Gaussian conditioning, the one place it is written: the mean of ``f`` given ``y``
    and the factor of the covariance it removes.

    With ``y ~ N(0, K)``, ``K = L Lᵀ``, and ``k = Cov(f, y)``: ``E[f | y] = k K⁻¹ y`` and
    ``Cov(f | y) = Cov(f) - Hᵀ H`` with ``H = L⁻¹ kᵀ``.

    Parameters
    ----------
    chol : torch.Tensor, shape (n, n)
        ``L``, the lower Cholesky factor of the observations' covariance (noise included).
    cross : torch.Tensor, shape (m, n)
        ``k``, the covariance between the m quantities predicted and the n observations.
    values : torch.Tensor, shape (n,)
        ``y``.

    Returns
    -------
    mean : torch.Tensor, shape (m,)
    half : torch.Tensor, shape (n, m)
        ``H``: the conditional covariance is ``Cov(f) - Hᵀ H``, its diagonal
        ``diag Cov(f) - (H * H).sum(0)``.
    """
    half = torch.linalg.solve_triangular(chol, cross.T, upper=False)
    mean = half.T @ torch.linalg.solve_triangular(chol, values[:, None], upper=False)[:, 0]
    return mean, half
