"""The machine: one line describing it (reports, benchmarks), its device and its memory."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = [
    "available_memory",
    "check_dense",
    "check_memory",
    "describe_machine",
    "format_bytes",
    "resolve_device",
]

#: the share of the machine's memory one dense allocation may take
MEMORY_FRACTION = 0.8


def available_memory() -> int | None:
    """Bytes of memory this process may use: available RAM (psutil) or physical RAM."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(nbytes: float) -> str:
    """``80.0 GB``, ``512.0 MB``: decimal units, one decimal."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Refuse, before making it, an allocation of ``nbytes`` that cannot fit in memory.

    Parameters
    ----------
    nbytes : float
        The estimated size of the dense allocation.
    what : str
        What needs it, e.g. ``"a 100000 x 100000 covariance (kriging)"``.
    hint : str
        How to need less, appended to the message.

    Raises
    ------
    GeodiffError
        ``WHAT needs 80.0 GB; this machine has 23.4 GB``, when ``nbytes`` exceeds
        :data:`MEMORY_FRACTION` of the available memory.
    """
    from geodiff.errors import GeodiffError

    have = available_memory()
    if have is None or nbytes <= MEMORY_FRACTION * have:
        return
    more = f"; {hint}" if hint else ""
    raise GeodiffError(
        f"{what} needs {format_bytes(nbytes)}; this machine has {format_bytes(have)}{more}"
    )


def describe_machine() -> str:
    """CPU model, core count, torch version and threads, and the GPU if torch sees one."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}"
    )


def resolve_device(name: str | None = None) -> str:
    """``name`` checked (``cpu``, ``cuda`` or ``cuda:N``), or ``cuda`` when available.

    Raises
    ------
    GeodiffError
        An unknown device, or CUDA asked for where torch sees no GPU.
    """
    import torch

    from geodiff.errors import GeodiffError

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise GeodiffError(f"--device must be cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GeodiffError(f"--device {name}: torch sees no GPU")
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun: this process's GPU
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return name


def check_dense(
    what: str, n: int, m: int = 0, *, copies: int = 2, joint: bool = False, hint: str = ""
) -> None:
    """Refuse the dense float64 matrices of a Gaussian computation before they are made.

    ``n`` observations (support points) and ``m`` targets need ``copies`` of an ``n x n``
    covariance, two ``m x n`` cross-covariances and, with ``joint``, an ``(n + m)`` square
    joint covariance and its factor.

    Raises
    ------
    GeodiffError
        ``a 100000 x 100000 covariance (kriging) needs 160.0 GB; this machine has 23.4 GB``.
    """
    n, m = int(n), int(m)
    pieces = [(copies * 8.0 * n * n, f"a {n} x {n} covariance")]
    if m:
        pieces.append((2 * 8.0 * m * n + 3 * 8.0 * m, f"a {m} x {n} cross-covariance"))
    if joint:
        pieces.append((2 * 8.0 * (n + m) ** 2, f"a {n + m} x {n + m} joint covariance"))
    total = sum(size for size, _ in pieces)
    biggest = max(pieces)[1]
    check_memory(
        total,
        f"{biggest} ({what})",
        hint or "use fewer observations (thin or average them) or fewer targets (a coarser --grid)",
    )
