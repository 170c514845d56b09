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

__all__ = ["atomic_write", "check_outputs", "partial_path", "write_text"]


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
        raise GeodiffError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    tmp = partial_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as err:
        raise GeodiffError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk where the system allows it (POSIX)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`; return ``path``."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def check_outputs(*paths, overwrite: bool = False) -> None:
    """Refuse, before any work, outputs that coincide or exist (unless ``overwrite``).

    Parameters
    ----------
    *paths : str or Path or None
        The files a command will write (``None`` entries are skipped).
    overwrite : bool
        The user asked to replace existing files.

    Raises
    ------
    GeodiffError
        Two outputs are one file, a folder on the way is a file, or an output exists and
        ``overwrite`` is False.
    """
    paths = [Path(p) for p in paths if p is not None]
    if len({p.resolve() for p in paths}) < len(paths):
        raise GeodiffError(f"outputs {', '.join(map(str, paths))} must be different files")
    for path in paths:
        blocked = next((d for d in path.parents if d.exists() and not d.is_dir()), None)
        if blocked is not None:
            raise GeodiffError(f"cannot write {path}: {blocked} is a file, not a folder")
        if path.exists() and not overwrite:
            raise GeodiffError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
