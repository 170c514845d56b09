"""One line describing the machine a measurement ran on (reports and benchmarks)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["describe_machine", "resolve_device"]


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
