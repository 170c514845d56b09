"""GSTools' randomization method (RandMeth) against geodiff's exact simulation.

GSTools' default generator writes a field as a sum of ``mode_no`` cosine modes whose wave
vectors are drawn from the model's spectral density (for the Matérn model by MCMC). Given
its modes, a RandMeth field is Gaussian with the covariance ``var * mean_j cos(k_j . h)``
of those modes, not the model's; over realisations the field is a mixture of such
Gaussians, so its covariance is right on average while its higher moments and
per-realisation statistics are not exactly those of the Gaussian field. This benchmark
measures, for several ``mode_no``, on a 32x32 grid over the unit square:

* the empirical covariance at 17 lags (0, 1, 2, 4, 8 cells along x, y and both
  diagonals) against ``model.cov_spatial``: each field's lag products are averaged over
  all node pairs with that offset, and the Monte Carlo standard error is the spread of
  these per-field averages over the independent fields;
* from the wave vectors of each realisation's modes, RandMeth's covariance given those
  modes: its mean over seeds (the expected covariance, free of field noise) and its RMS
  deviation from the model's (the covariance error of one realisation);
* the excess kurtosis (0 for a Gaussian) of the centre node across realisations
  (standard error ``sqrt(24 / N)``) and, pooled over each field, of increments
  ``x(s + h) - x(s)`` at ``h`` = 1 cell along x and of pair sums at ``h`` = 8 cells
  (standard errors by resampling whole fields);
* the spread (standard deviation over realisations) of each field's spatial variance;
* the time per 32x32 field;

and the same statistics for geodiff's exact circulant-embedding simulation of the same
model in the same run.

Usage::

    python benchmarks/bench_gstools_randmeth.py          # full run, writes BENCHMARKS.md
    python benchmarks/bench_gstools_randmeth.py --quick  # smoke run, prints only
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import gstools as gs
import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff import Grid, StationaryPrior, simulate

SIZE = 32
NODES = np.linspace(0.0, 1.0, SIZE)
MODEL = {"dim": 2, "var": 1.0, "len_scale": 0.15, "nu": 1.5, "anis": 0.6, "angles": 0.5}
PRIOR = {"nu": 1.5, "variance": 1.0, "length_scale": 0.15, "anis_ratio": 0.6, "angle": 0.5}
#: lag offsets in cells, (along x, along y)
LAGS = (
    (0, 0),
    *((d * ux, d * uy) for ux, uy in ((1, 0), (0, 1), (1, 1), (1, -1)) for d in (1, 2, 4, 8)),
)
INCREMENT_LAG = (1, 0)
SUM_LAG = (8, 0)
BOOTSTRAP = 500  # resamples of whole fields for standard errors
Z_FLAG = 3.0  # |z| at which a difference counts as resolved beyond Monte Carlo error
FULL_FIELDS = {"exact": 2000, 64: 2000, 256: 2000, 1024: 1000, 4096: 500, 16384: 100}
QUICK_FIELDS = {"exact": 200, 64: 100, 256: 100, 1024: 40, 4096: 10, 16384: 4}


def gstools_model():
    """The Matérn model under test: GSTools' parametrisation of the shipped prior's family."""
    return gs.Matern(**MODEL)


# ----------------------------------------------------------------------- simulation
def mode_covariance(srf, lags: np.ndarray) -> np.ndarray:
    """Covariance of a RandMeth field given its modes, ``var * mean_j cos(k_j . h)``.

    Given the wave vectors ``k_j`` of its modes (GSTools' private ``_cov_sample``, in
    isometrized coordinates) a RandMeth field is Gaussian with this covariance; its mean
    over seeds is RandMeth's expected covariance, its spread the per-realisation error.

    Parameters
    ----------
    srf : gstools.SRF
        After a call, so that its generator holds that call's modes.
    lags : numpy.ndarray, shape (2, L)
        Lag vectors ``(x, y)``.

    Returns
    -------
    numpy.ndarray, shape (L,); NaN if GSTools no longer exposes the modes
    """
    modes = getattr(srf.generator, "_cov_sample", None)
    if modes is None:  # pragma: no cover - private attribute moved
        return np.full(lags.shape[1], np.nan)
    iso = srf.model.isometrize(lags)
    return srf.model.var * np.cos(modes.T @ iso).mean(axis=0)


def _randmeth_chunk(task: tuple[int, list[int]]) -> tuple[np.ndarray, list, np.ndarray]:
    """Fields, CPU seconds and mode covariances for a list of seeds (in a worker process)."""
    mode_no, seeds = task
    gs.config.NUM_THREADS = 1
    srf = gs.SRF(gstools_model(), mode_no=mode_no)
    lags = lag_vectors()
    fields = np.empty((len(seeds), SIZE, SIZE))
    given_modes = np.empty((len(seeds), lags.shape[1]))
    seconds = []
    for k, seed in enumerate(seeds):
        start = time.process_time()
        fields[k] = srf((NODES, NODES), mesh_type="structured", seed=seed)
        seconds.append(time.process_time() - start)
        given_modes[k] = mode_covariance(srf, lags)
    return fields, seconds, given_modes


@dataclass
class Draws:
    """Simulated fields of one method.

    Attributes
    ----------
    label : str
    fields : numpy.ndarray, shape (n, 32, 32), indexed ``[field, x, y]``
    seconds : float
        CPU time per field.
    given_modes : numpy.ndarray, shape (n, len(LAGS)), optional
        RandMeth only: each field's covariance given its modes (:func:`mode_covariance`).
    mode_no : int
        RandMeth's mode count; 0 for the exact method.
    """

    label: str
    fields: np.ndarray
    seconds: float
    given_modes: np.ndarray | None = None
    mode_no: int = 0


def randmeth_fields(mode_no: int, n: int, pool: ProcessPoolExecutor, workers: int) -> Draws:
    """``n`` RandMeth fields, field ``i`` from ``srf(..., seed=i)``.

    ``seconds`` is the median CPU time of one single-threaded structured ``srf`` call.
    """
    chunks = np.array_split(np.arange(n), max(1, min(n, 4 * workers)))
    tasks = [(mode_no, [int(s) for s in chunk]) for chunk in chunks if len(chunk)]
    results = list(pool.map(_randmeth_chunk, tasks))
    return Draws(
        f"RandMeth mode_no={mode_no}",
        np.concatenate([r[0] for r in results]),
        float(np.median(np.concatenate([r[1] for r in results]))),
        np.concatenate([r[2] for r in results]),
        mode_no,
    )


def exact_fields(n: int, seed: int = 0) -> Draws:
    """``n`` exact fields from geodiff's circulant embedding.

    ``seconds`` is the CPU time per field of one batched ``simulate`` call (one torch
    thread).
    """
    prior = StationaryPrior("matern", **PRIOR)
    grid = Grid.square(SIZE)
    simulate(prior, grid, 8, seed + 1, method="circulant", device="cpu")  # warm-up
    start = time.process_time()
    sim = simulate(prior, grid, n, seed, method="circulant", device="cpu")
    seconds = (time.process_time() - start) / n
    # geodiff stores field[i, j] at (x[j], y[i]); GSTools' structured layout is [x, y]
    fields = sim.fields.double().transpose(-1, -2).numpy()
    return Draws("geodiff exact (circulant)", fields, seconds)


# ----------------------------------------------------------------------- statistics
def _shifted(fields: np.ndarray, lag: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Node values ``x(s)`` and ``x(s + lag)`` over all nodes where both exist."""
    (a, b), n = lag, SIZE
    first = fields[:, max(0, -a) : n - max(0, a), max(0, -b) : n - max(0, b)]
    second = fields[:, max(0, a) : n + min(0, a), max(0, b) : n + min(0, b)]
    return first, second


def lag_products(fields: np.ndarray) -> np.ndarray:
    """Per field, the mean of ``x(s) x(s + h)`` over all node pairs, shape (n, len(LAGS))."""
    out = []
    for lag in LAGS:
        first, second = _shifted(fields, lag)
        out.append((first * second).mean(axis=(1, 2)))
    return np.stack(out, axis=1)


def lag_vectors() -> np.ndarray:
    """The lags as ``(x, y)`` vectors in domain units, shape (2, len(LAGS))."""
    return np.array(LAGS, dtype=float).T / (SIZE - 1)


def exact_covariance() -> np.ndarray:
    """``model.cov_spatial`` at the lags, shape (len(LAGS),)."""
    return gstools_model().cov_spatial(lag_vectors())


def _kurtosis_from_sums(sums: np.ndarray) -> np.ndarray:
    """Excess kurtosis from power sums ``(count, S1, S2, S3, S4)`` along the last axis."""
    count, s1, s2, s3, s4 = np.moveaxis(sums, -1, 0)
    mean = s1 / count
    m2 = s2 / count - mean**2
    m4 = s4 / count - 4 * mean * s3 / count + 6 * mean**2 * s2 / count - 3 * mean**4
    return m4 / m2**2 - 3.0


def excess_kurtosis(values: np.ndarray) -> float:
    """Sample excess kurtosis ``m4 / m2**2 - 3`` (about the sample mean)."""
    centred = values - values.mean()
    m2, m4 = (centred**2).mean(), (centred**4).mean()
    return float(m4 / m2**2 - 3.0)


def power_sums(values: np.ndarray) -> np.ndarray:
    """Per field, ``(count, S1, S2, S3, S4)`` of its values, shape (n, 5)."""
    flat = values.reshape(len(values), -1)
    sums = [np.full(len(flat), flat.shape[1], dtype=float)]
    sums += [(flat**k).sum(axis=1) for k in range(1, 5)]
    return np.stack(sums, axis=1)


def bootstrap_weights(n: int, draws: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` fields appears in each bootstrap resample, (draws, n)."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=draws)


def pooled_kurtosis(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Excess kurtosis of values pooled over fields, and its bootstrap standard error.

    Fields are independent, so resampling whole fields gives the standard error whatever
    the dependence between the values inside a field.

    Parameters
    ----------
    values : numpy.ndarray, shape (n, ...)
        Values of each field.
    weights : numpy.ndarray, shape (draws, n)
        Bootstrap resampling counts.

    Returns
    -------
    value, standard_error : float
    """
    sums = power_sums(values)
    value = float(_kurtosis_from_sums(sums.sum(axis=0)))
    return value, float(_kurtosis_from_sums(weights @ sums).std(ddof=1))


def variance_spread(fields: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Standard deviation over fields of each field's spatial variance, with bootstrap SE.

    Returns
    -------
    value, standard_error : float
    """
    per_field = fields.var(axis=(1, 2))
    total = weights.sum(axis=1)
    mean = weights @ per_field / total
    square = weights @ per_field**2 / total
    resampled = np.sqrt((square - mean**2) * total / (total - 1))
    return float(per_field.std(ddof=1)), float(resampled.std(ddof=1))


def increments(fields: np.ndarray) -> np.ndarray:
    """``x(s + h) - x(s)`` for ``h = INCREMENT_LAG`` at every node where it exists."""
    first, second = _shifted(fields, INCREMENT_LAG)
    return second - first


def pair_sums(fields: np.ndarray) -> np.ndarray:
    """``x(s + h) + x(s)`` for ``h = SUM_LAG`` at every node where it exists."""
    first, second = _shifted(fields, SUM_LAG)
    return second + first


@dataclass
class Stats:
    """Statistics of one set of fields; ``*_se`` are Monte Carlo standard errors.

    ``cov_error`` and ``mode_bias`` are signed, at the lag where they are largest in
    absolute value; the ``mode_*`` entries are NaN for the exact method.
    """

    label: str
    n: int
    seconds: float
    cov_error: float
    cov_error_se: float
    cov_max_z: float
    mode_bias: float
    mode_bias_se: float
    mode_max_z: float
    mode_rms: float
    node_kurt: float
    node_kurt_se: float
    inc_kurt: float
    inc_kurt_se: float
    sum_kurt: float
    sum_kurt_se: float
    spread: float
    spread_se: float
    mode_no: int = 0


def _worst(per_field: np.ndarray, exact: np.ndarray) -> tuple[float, float, float]:
    """Signed error of the mean at the worst lag, its SE, and the largest abs z."""
    error = per_field.mean(axis=0) - exact
    se = per_field.std(axis=0, ddof=1) / math.sqrt(len(per_field))
    worst = int(np.argmax(np.abs(error)))
    return float(error[worst]), float(se[worst]), float(np.max(np.abs(error / se)))


def mode_statistics(given_modes: np.ndarray | None) -> tuple[float, float, float, float]:
    """Expected-covariance bias (worst lag, SE, max abs z) and largest RMS error, from modes.

    Lag 0 is left out: given any modes the variance is exactly ``var``.
    """
    if given_modes is None or np.isnan(given_modes).any():
        return (math.nan,) * 4
    exact = exact_covariance()[1:]
    per_field = given_modes[:, 1:]
    rms = np.sqrt(((per_field - exact) ** 2).mean(axis=0))
    return (*_worst(per_field, exact), float(rms.max()))


def statistics(draws: Draws) -> Stats:
    """All the statistics of the table for one set of fields."""
    fields, n = draws.fields, len(draws.fields)
    centre = fields[:, SIZE // 2, SIZE // 2]
    weights = bootstrap_weights(n)
    return Stats(
        draws.label,
        n,
        draws.seconds,
        *_worst(lag_products(fields), exact_covariance()),
        *mode_statistics(draws.given_modes),
        excess_kurtosis(centre),
        math.sqrt(24.0 / n),
        *pooled_kurtosis(increments(fields), weights),
        *pooled_kurtosis(pair_sums(fields), weights),
        *variance_spread(fields, weights),
        draws.mode_no,
    )


# --------------------------------------------------------------------------- report
def _z(value: float, se: float, reference: float = 0.0, reference_se: float = 0.0) -> float:
    return (value - reference) / math.hypot(se, reference_se)


def flags(stats: Stats, exact: Stats) -> list[str]:
    """Statistics whose departure from the exact field exceeds ``Z_FLAG`` standard errors."""
    out = []
    if stats.cov_max_z >= Z_FLAG:
        out.append("covariance")
    if stats.mode_max_z >= Z_FLAG:  # False for NaN
        out.append("expected covariance (modes)")
    if abs(_z(stats.node_kurt, stats.node_kurt_se)) >= Z_FLAG:
        out.append("node kurtosis")
    if abs(_z(stats.inc_kurt, stats.inc_kurt_se)) >= Z_FLAG:
        out.append("increment kurtosis")
    if abs(_z(stats.sum_kurt, stats.sum_kurt_se)) >= Z_FLAG:
        out.append("pair-sum kurtosis")
    if abs(_z(stats.spread, stats.spread_se, exact.spread, exact.spread_se)) >= Z_FLAG:
        out.append("variance spread")
    return out


def _pm(value: float, se: float, digits: int = 3, sign: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:{'+' if sign else ''}.{digits}f} ± {se:.{digits}f}"


def _row(s: Stats, exact: Stats) -> str:
    resolved = ", ".join(flags(s, exact)) or "none"
    modes = (
        "n/a (exact)"
        if math.isnan(s.mode_bias)
        else (f"{_pm(s.mode_bias, s.mode_bias_se, 4, sign=True)} ({s.mode_max_z:.1f})")
    )
    rms = "0 (exact)" if math.isnan(s.mode_rms) else f"{s.mode_rms:.3f}"
    return (
        f"| {s.label} | {s.n} | {1e3 * s.seconds:.1f} "
        f"| {_pm(s.cov_error, s.cov_error_se, sign=True)} ({s.cov_max_z:.1f}) "
        f"| {modes} | {rms} "
        f"| {_pm(s.node_kurt, s.node_kurt_se)} | {_pm(s.inc_kurt, s.inc_kurt_se)} "
        f"| {_pm(s.sum_kurt, s.sum_kurt_se)} "
        f"| {_pm(s.spread, s.spread_se)} ({s.spread / exact.spread:.3f}x) | {resolved} |"
    )


def table(rows: list[Stats], exact: Stats) -> str:
    """Markdown table of the statistics, one row per method."""
    header = [
        "method",
        "fields N",
        "CPU ms / field",
        "cov error ± SE, worst lag (max abs z)",
        "expected-cov bias from modes ± SE (max abs z)",
        "per-realisation cov RMS error (modes)",
        "node excess kurtosis ± SE",
        "increment excess kurtosis ± SE",
        "pair-sum excess kurtosis ± SE",
        "spatial-variance spread ± SE (vs exact)",
        f"resolved (abs z ≥ {Z_FLAG:g})",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + [_row(s, exact) for s in rows])


def scaling_note(rows: list[Stats]) -> str:
    """Measured ``M x`` increment excess kurtosis, and the 1/M law it suggests.

    The constant is the inverse-variance weighted mean over the counts whose kurtosis is
    resolved; the values it gives for the other counts are an extrapolation, not a
    measurement.
    """
    randmeth = [s for s in rows if s.mode_no]
    parts = [
        f"{s.mode_no}: {s.mode_no * s.inc_kurt:.0f} ± {s.mode_no * s.inc_kurt_se:.0f}"
        for s in randmeth
    ]
    text = "mode_no x increment excess kurtosis (constant under a 1/mode_no decay): " + (
        ", ".join(parts)
    )
    resolved = [s for s in randmeth if abs(_z(s.inc_kurt, s.inc_kurt_se)) >= Z_FLAG]
    if len(resolved) >= 2:
        weights = np.array([1.0 / (s.mode_no * s.inc_kurt_se) ** 2 for s in resolved])
        values = np.array([s.mode_no * s.inc_kurt for s in resolved])
        constant = float(weights @ values / weights.sum())
        rest = [s for s in randmeth if s not in resolved]
        text += f". Weighted mean over the resolved counts: {constant:.0f}" + (
            "; extrapolated (not measured) for the others: "
            + ", ".join(f"{s.mode_no}: {constant / s.mode_no:.4f}" for s in rest)
            if rest
            else ""
        )
    return text


def conclusion(rows: list[Stats], exact: Stats) -> str:
    """The smallest mode count from which no larger one shows a resolved departure."""
    randmeth = [s for s in rows if s.mode_no]
    clean = [s for s in randmeth if not flags(s, exact)]
    smallest = next(
        (s for k, s in enumerate(randmeth) if all(not flags(t, exact) for t in randmeth[k:])),
        None,
    )
    if smallest is None:
        return (
            "Every mode count tested shows, at its N, a departure beyond "
            f"{Z_FLAG:g} Monte Carlo standard errors ({len(clean)} of {len(randmeth)} clean)."
        )
    return (
        f"Smallest mode count with no departure resolved beyond {Z_FLAG:g} standard errors, "
        f"for it and every larger count tested: **mode_no = {smallest.mode_no}** "
        f"({len(clean)} of {len(randmeth)} counts clean). Its N = {smallest.n} fields "
        f"resolve increment excess kurtosis down to about {2 * smallest.inc_kurt_se:.3f} and "
        f"the spatial-variance spread to about {2 * smallest.spread_se / exact.spread:.0%} "
        "(2 SE); the larger counts get fewer fields to keep the run short, so their test is "
        "weaker."
    )


# ----------------------------------------------------------------------------- main
def describe(workers: int, load: tuple[float, float], total: float) -> list[str]:
    """The lines explaining the table."""
    return [
        f"Model `gs.Matern(dim=2, var=1, len_scale=0.15, nu=1.5, anis=0.6, angles=0.5)` "
        f"(length scales 0.15 / 0.09) on a {SIZE}x{SIZE} structured grid over the unit "
        f"square (spacing {1 / (SIZE - 1):.4f}). RandMeth: `gs.SRF(model, mode_no=M)`, "
        "field i from `srf((x, y), mesh_type='structured', seed=i)`. Exact baseline: geodiff "
        "`simulate(StationaryPrior('matern', nu=1.5, variance=1.0, length_scale=0.15, "
        "anis_ratio=0.6, angle=0.5), grid, N, 0, method='circulant')`.",
        "",
        "- cov error: per field, the mean of x(s) x(s+h) over all pairs at offset h, for "
        "h = 0, 1, 2, 4, 8 cells along x, y and both diagonals; error = mean over fields "
        "minus `model.cov_spatial(h)`, signed, at the worst lag with its SE (spread of the "
        "per-field means / sqrt(N)), and the largest abs z over the 17 lags",
        "- from modes: given its wave vectors k_j a RandMeth field is Gaussian with "
        "covariance var mean_j cos(k_j . h) (read from GSTools' private `_cov_sample`); its "
        "mean over seeds minus the model's is RandMeth's bias in expected covariance (no "
        "field noise, so a much finer test), and its RMS deviation from the model's, over "
        "seeds (largest over the 16 non-zero lags), is the covariance error of a single "
        "realisation (exactly 0 for exact simulation)",
        "- node kurtosis: centre node across the N realisations, SE = sqrt(24/N); "
        f"increment: x(s+h) - x(s), h = {INCREMENT_LAG[0]} cell along x; pair sum: "
        f"x(s+h) + x(s), h = {SUM_LAG[0]} cells along x; both pooled over each field, "
        f"SE from {BOOTSTRAP} bootstrap resamples of whole fields (a Gaussian field has 0)",
        "- spatial-variance spread: standard deviation over realisations of each field's "
        "variance about its own mean (bootstrap SE), and its ratio to exact",
        "- time: CPU time (`time.process_time`, robust to other jobs sharing the cores) per "
        "32x32 field, single-threaded: GSTools the median over its `srf` calls (run in "
        f"{workers} worker processes), geodiff one batched `simulate` call divided by N; "
        f"load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after; total {total:.0f} s",
    ]


def run(counts: dict, workers: int) -> str:
    """Simulate, compute the statistics and return the markdown body."""
    torch.set_num_threads(1)
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    exact = statistics(exact_fields(counts["exact"]))
    rows = [exact]
    print(f"done: exact ({counts['exact']} fields)", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for mode_no in (m for m in counts if m != "exact"):
            rows.append(statistics(randmeth_fields(mode_no, counts[mode_no], pool, workers)))
            print(f"done: mode_no={mode_no}", file=sys.stderr, flush=True)
    load = (load_before, os.getloadavg()[0])
    lines = describe(workers, load, time.perf_counter() - start)
    lines += ["", table(rows, exact), "", scaling_note(rows), "", conclusion(rows, exact)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; print, do not write")
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="GSTools processes"
    )
    args = parser.parse_args(argv)
    body = run(QUICK_FIELDS if args.quick else FULL_FIELDS, args.workers)
    print(body)
    if args.quick:
        return
    path = update_section(
        "gstools_randmeth",
        "GSTools randomization method vs exact simulation",
        "python benchmarks/bench_gstools_randmeth.py",
        body,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
