"""Exact simulation of prior fields on a grid.

Two exact engines, picked per prior:

* ``"circulant"`` (stationary priors): circulant embedding of the grid covariance on a
  torus of ``p x`` the grid (``p`` = 2, 4 or 8, the first whose embedding is
  non-negative definite), sampled with two FFTs per field: exact in distribution,
  ``O(N log N)`` per field. A parameter draw whose embedding stays indefinite falls back
  to Cholesky.
* ``"cholesky"`` (any dense prior): the dense grid covariance, factorised in float64, one
  factorisation per parameter draw (shared by ``fields_per_theta`` fields), batched on
  the GPU when there is one.
* ``"spde"`` (SPDE priors, :mod:`geodiff.fields.spde`): one sparse factorisation per
  parameter draw on the CPU (SuperLU), shared by its fields; exact draws of the
  discretised prior at any size. On a GPU machine the factorisation stays on the CPU and
  the fields move to the device afterwards.

Randomness comes from one generator per parameter draw and one per field, derived from
``(seed, index)``: field ``i`` is the same whatever ``start``, the batch size or the
number of workers that produced it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from geodiff.errors import GeodiffError
from geodiff.grid import Grid
from geodiff.linalg import robust_cholesky
from geodiff.rng import generators_for

__all__ = ["Simulation", "default_device", "simulate"]

THETA_STREAM, NOISE_STREAM = 0, 1
_EMBEDDING_FACTORS = (2, 4, 8)
_EMBEDDING_TOLERANCE = 1e-9  # allowed negative eigenvalue, relative to the largest
_METHODS = ("auto", "circulant", "cholesky", "spde")


@dataclass
class Simulation:
    """Simulated fields with the parameters that made them.

    Attributes
    ----------
    fields : torch.Tensor, float32, shape (n, H, W)
    theta : dict of str to torch.Tensor, float64, each (n,) or (n, K**2)
    maps : dict of str to torch.Tensor, float32, each (n, H, W)
        The spatially varying parameters on the grid (empty for stationary priors).
    index : torch.Tensor, int64, shape (n,)
        Global index of each field in its seeded run.
    grid : Grid
    """

    fields: torch.Tensor
    theta: dict
    maps: dict
    index: torch.Tensor
    grid: Grid

    def __len__(self) -> int:
        return self.fields.shape[0]


def default_device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_domain(prior, grid: Grid) -> None:
    if prior.translation_invariant:
        return
    (gx0, gx1), (gy0, gy1) = grid.extent
    (px0, px1), (py0, py1) = prior.domain
    tol = 1e-9 * max(px1 - px0, py1 - py0)
    if gx0 < px0 - tol or gx1 > px1 + tol or gy0 < py0 - tol or gy1 > py1 + tol:
        raise GeodiffError(
            f"grid extent {grid.extent} leaves the prior's domain {prior.domain}, "
            "where its parameter maps are defined"
        )


def simulate(
    prior,
    grid: Grid,
    n: int,
    seed: int = 0,
    *,
    start: int = 0,
    fields_per_theta: int = 1,
    theta: dict | None = None,
    method: str = "auto",
    device=None,
    batch_size: int | None = None,
    progress: bool = False,
    callback=None,
) -> Simulation:
    """Draw fields from a prior, exactly, on a grid.

    Parameters
    ----------
    prior : GRFPrior or TransformedPrior
        A transformed prior simulates its latent Gaussian field, then transforms it.
    grid : Grid
    n : int
        Number of fields.
    seed : int
        Seed of the run.
    start : int, keyword-only
        Global index of the first field: ``simulate(..., n=10, start=5)`` returns fields
        5..14 of the run, identical to those of ``simulate(..., n=15)``.
    fields_per_theta : int
        Fields sharing one parameter draw (and one factorisation): fields ``i`` and
        ``j`` share ``theta`` when ``i // fields_per_theta == j // fields_per_theta``.
    theta : dict, optional
        Simulate given these parameters instead of drawing them from the prior (for
        conditional simulation and posterior predictive draws): a batch of 1 shared by
        every field, or a batch of ``n``, one per field. ``fields_per_theta`` is then
        ignored.
    method : {"auto", "circulant", "cholesky", "spde"}
        ``"auto"`` uses the sparse engine for SPDE priors, circulant embedding for
        stationary priors, else Cholesky.
    device : str or torch.device, optional
        Where to compute; the GPU when torch sees one.
    batch_size : int, optional
        Parameter draws processed together (memory only; results do not depend on it).
    progress : bool
        Show a progress bar.
    callback : callable, optional
        Called as ``callback(k)`` each time ``k`` more fields are finished.

    Returns
    -------
    Simulation
    """
    if not isinstance(n, int) or n < 0:
        raise GeodiffError(f"number of fields must be a non-negative integer, got {n!r}")
    if not isinstance(fields_per_theta, int) or fields_per_theta < 1:
        raise GeodiffError(f"fields_per_theta must be a positive integer, got {fields_per_theta!r}")
    if method not in _METHODS:
        raise GeodiffError(f"unknown simulation method {method!r}; choose from {_METHODS}")
    target, prior = prior, getattr(prior, "latent", prior)  # a transformed prior's Gaussian
    sparse = prior.kind == "spde"
    if method == "circulant" and not prior.is_stationary:
        raise GeodiffError("circulant embedding needs a stationary prior")
    if (sparse and method not in ("auto", "spde")) or (method == "spde" and not sparse):
        raise GeodiffError(
            f"method {method!r} does not fit a {prior.kind} prior: "
            + ("SPDE priors simulate with 'spde'" if sparse else "'spde' needs an SPDE prior")
        )
    _check_domain(prior, grid)
    check_simulation_memory(prior, grid, n, method)
    device = torch.device(device) if device is not None else default_device()
    use_circulant = method == "circulant" or (method == "auto" and prior.is_stationary)

    indices = list(range(start, start + n))
    if theta is None:  # draw g of the run feeds fields g * fields_per_theta, ...
        group_of = [i // fields_per_theta for i in indices]
        groups = sorted(set(group_of))
        theta = target.sample_theta(generators=generators_for(seed, THETA_STREAM, groups))
    else:
        theta, group_of = _given_theta(target, theta, n)
        groups = sorted(set(group_of))
    group_pos = {g: k for k, g in enumerate(groups)}
    members_of = {g: [] for g in groups}  # positions in this call of each draw's fields
    for k, g in enumerate(group_of):
        members_of[g].append(k)
    fields = torch.empty((n, *grid.shape), dtype=torch.float32)
    if batch_size is None:
        # parameter draws per batch: bounded by the dense covariances held at once
        budget = 2**28 if device.type == "cuda" else 2**25
        batch_size = 64 if use_circulant or sparse else max(1, budget // grid.n_nodes**2)
    bar = tqdm(total=n, desc="simulating", unit="field", disable=not progress, leave=False)
    for lo in range(0, len(groups), batch_size):
        batch_groups = groups[lo : lo + batch_size]
        batch_theta = {k: v[lo : lo + batch_size].to(device) for k, v in theta.items()}
        members = [members_of[g] for g in batch_groups]
        samplers = _circulant_samplers(prior, grid, batch_theta) if use_circulant else None
        cholesky_groups = [
            j for j in range(len(batch_groups))
            if not sparse and (samplers is None or samplers[j] is None)
        ]  # fmt: skip
        factors = _cholesky_factors(prior, grid, batch_theta, cholesky_groups)
        sparse_draws = (
            _spde_batch(prior, grid, batch_theta, members, indices, seed) if sparse else None
        )
        for j, field_positions in enumerate(members):
            gens = generators_for(seed, NOISE_STREAM, [indices[k] for k in field_positions])
            if sparse:
                x = sparse_draws[j].to(device)
            elif j in factors:  # (k, N) noise -> (k, H, W) fields in one product
                z = torch.stack(
                    [torch.randn(grid.n_nodes, generator=g, dtype=torch.float64) for g in gens]
                )
                x = (z.to(device) @ factors[j].T).reshape(-1, *grid.shape)
            else:
                x = _circulant_draws(samplers[j], grid, gens, device)
            nugget = batch_theta["nugget"][j]
            if nugget > 0:  # drawn after the field's own noise, from the same generator
                eps = torch.stack(
                    [torch.randn(grid.shape, generator=g, dtype=torch.float64) for g in gens]
                )
                x = x + torch.sqrt(nugget) * eps.to(device)
            fields[field_positions] = x.float().cpu()
            bar.update(len(field_positions))
            if callback is not None:
                callback(len(field_positions))
    bar.close()

    field_group = torch.tensor([group_pos[g] for g in group_of], dtype=torch.long)
    theta_per_field = {k: v[field_group] for k, v in theta.items()}
    maps = {k: v.float() for k, v in prior.grid_maps(theta_per_field, grid).items()} if n else {}
    if target is not prior:
        fields = target.transform_fields(fields, theta_per_field, grid)
    return Simulation(fields, theta_per_field, maps, torch.tensor(indices, dtype=torch.long), grid)


def check_simulation_memory(prior, grid: Grid, n: int, method: str = "auto") -> None:
    """Refuse, before allocating, a simulation of ``n`` fields too large for this machine.

    Counts the float32 fields and the work of a batch: circulant embedding (at least 2x
    per axis, a batch of up to 64 parameter draws: lags, covariances and their FFT) or
    the dense Cholesky factor of the grid covariance (float64).
    """
    from geodiff.machine import check_memory

    h, w = grid.shape
    fields = 4.0 * n * h * w
    if prior.kind == "spde":
        check_memory(fields, f"{n} fields on a {h}x{w} grid", "simulate fewer --n at a time")
        return  # each parameter draw checks its own lattice before it is built
    if method == "circulant" or (method == "auto" and prior.is_stationary):
        work = min(64, max(n, 1)) * 4.0 * h * w * 48
        what = f"simulating {n} fields on a {h}x{w} grid"
    else:
        work = 3 * 8.0 * (h * w) ** 2
        what = f"a {h * w} x {h * w} grid covariance ({h}x{w} grid)"
    check_memory(fields + work, what, "choose a coarser --grid or a smaller --chunk-size")


def _given_theta(prior, theta: dict, n: int) -> tuple[dict, list]:
    """Validate user-given parameters; return them (float64, CPU) and each field's draw."""
    missing = sorted(set(prior.leaves()) - set(theta))
    if missing:
        raise GeodiffError(f"theta lacks {missing} for prior {prior.name!r}")
    theta = {k: torch.as_tensor(theta[k], dtype=torch.float64).cpu() for k in prior.leaves()}
    batch = {v.shape[0] if v.ndim else -1 for v in theta.values()}
    if batch == {1}:
        return theta, [0] * n
    if batch == {n}:
        return theta, list(range(n))
    raise GeodiffError(
        f"theta must have a leading batch of 1 or n = {n}, got sizes {sorted(batch)}"
    )


# --------------------------------------------------------------------- circulant
def _torus_lags(grid: Grid, factor: int) -> torch.Tensor:
    """Signed lag vectors of a ``factor``-times embedding torus, shape (My * Mx, 2)."""
    (h, w), (dy, dx) = grid.shape, grid.spacing
    my, mx = factor * h, factor * w
    ky, kx = torch.arange(my, dtype=torch.float64), torch.arange(mx, dtype=torch.float64)
    ky = torch.where(ky <= my // 2, ky, ky - my) * dy
    kx = torch.where(kx <= mx // 2, kx, kx - mx) * dx
    yy, xx = torch.meshgrid(ky, kx, indexing="ij")
    return torch.stack([xx.ravel(), yy.ravel()], dim=1)


def _circulant_samplers(prior, grid: Grid, theta: dict) -> list:
    """Per parameter draw, ``sqrt(eigenvalues / M)`` of the smallest valid embedding.

    Returns
    -------
    list of torch.Tensor (My, Mx) or None where no embedding up to 8x is non-negative
    """
    batch = next(iter(theta.values())).shape[0]
    out: list = [None] * batch
    todo = list(range(batch))
    origin = torch.zeros(1, 2, dtype=torch.float64)
    for factor in _EMBEDDING_FACTORS:
        if not todo:
            break
        sub = {k: v[todo] for k, v in theta.items()}
        my, mx = factor * grid.shape[0], factor * grid.shape[1]
        first_row = prior.covariance(origin, _torus_lags(grid, factor), sub, nugget=False)
        eig = torch.fft.fft2(first_row.reshape(len(todo), my, mx)).real
        worst = eig.amin(dim=(-2, -1)) / eig.amax(dim=(-2, -1))
        still = []
        for pos, j in enumerate(todo):
            if worst[pos] >= -_EMBEDDING_TOLERANCE:
                out[j] = torch.sqrt(eig[pos].clamp_min(0.0) / (my * mx))
            else:
                still.append(j)
        todo = still
    return out


def _circulant_draws(sqrt_eig: torch.Tensor, grid: Grid, gens: list, device) -> torch.Tensor:
    """Fields ``Re(FFT(sqrt(lambda / M) * (e1 + i e2)))`` cropped to the grid, (k, H, W)."""
    noise = torch.stack(
        [torch.randn((2, *sqrt_eig.shape), generator=g, dtype=torch.float64) for g in gens]
    )
    noise = noise.to(device)
    spectrum = sqrt_eig * torch.complex(noise[:, 0], noise[:, 1])
    return torch.fft.fft2(spectrum).real[:, : grid.shape[0], : grid.shape[1]]


# -------------------------------------------------------------------------- spde
def _spde_batch(prior, grid: Grid, theta: dict, members: list, indices: list, seed: int) -> list:
    """:func:`_spde_draws` of each parameter draw of a batch, in threads.

    SuperLU releases the GIL, so the draws' factorisations run side by side (1.25-1.4x for
    4 draws at 256^2 on 2 cores, ``benchmarks/bench_spde.py``); each draw depends on its
    own generators only.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(j):
        gens = generators_for(seed, NOISE_STREAM, [indices[k] for k in members[j]])
        return _spde_draws(prior, grid, {k: v[j : j + 1] for k, v in theta.items()}, gens)

    workers = max(1, min(len(members), os.cpu_count() or 1))
    if workers == 1:
        return [one(j) for j in range(len(members))]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(len(members))))


def _spde_draws(prior, grid: Grid, theta: dict, gens: list) -> torch.Tensor:
    """Fields of one parameter set: one sparse factorisation, one solve per field.

    Each field's standard normals come from its own generator (lattice length), so a
    field does not depend on the others drawn with it. Returns (k, H, W), float64, CPU.
    """
    grid_op = prior.grid_operator(grid, {k: v.cpu() for k, v in theta.items()})
    size = grid_op.operator.size
    z = torch.stack([torch.randn(size, generator=g, dtype=torch.float64) for g in gens])
    x = grid_op.sample(z.numpy().T)  # (H * W, k)
    return torch.as_tensor(x.T.copy()).reshape(len(gens), *grid.shape)


# ---------------------------------------------------------------------- cholesky
def _cholesky_factors(prior, grid: Grid, theta: dict, groups: list) -> dict:
    """Lower Cholesky factors of the grid covariance for the listed draws (float64)."""
    if not groups:
        return {}
    sub = {k: v[groups] for k, v in theta.items()}
    points = grid.points()
    cov = prior.covariance(points, points, sub, nugget=False)
    return {j: robust_cholesky(cov[pos], "grid covariance") for pos, j in enumerate(groups)}
