"""Writing outputs so that no half-written file is ever taken for a whole one.

Every file geodiff writes goes through :func:`atomic_write`: the content is written to
``PATH.partial`` beside its destination, flushed to disk and renamed over ``PATH`` only
once complete (a rename within one folder is atomic on POSIX and Windows). A failure
(a full disk, an interruption, a bad value) removes the partial file, leaves any older
``PATH`` untouched, and is raised as one :class:`~geodiff.errors.GeodiffError` line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from geodiff.errors import GeodiffError

__all__ = ["atomic_write", "partial_path", "write_text"]


def partial_path(path) -> Path:
    """Where the content of ``path`` is built before it is renamed into place."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


@contextlib.contextmanager
def atomic_write(path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or Path
        Destination file. Its folder is created if needed.
    overwrite : bool
        Replace an existing ``path`` (default); if False an existing file is an error,
        raised before anything is written.

    Yields
    ------
    Path
        ``PATH.partial``: write the whole content there (by name, with any library).

    Raises
    ------
    GeodiffError
        ``path`` exists and ``overwrite`` is False, or the write failed (``OSError``):
        the message names the file and the reason; nothing is left under ``path``
        that was not there before.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise GeodiffError(f"{path} exists; pass --overwrite to replace it")
    tmp = partial_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise GeodiffError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`; return ``path``."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
