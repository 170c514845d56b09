"""The trained models shipped with geodiff, and how a model argument finds its files.

Each shipped model is a run directory ``geodiff/models/NAME/`` holding ``model.json`` and
``model.safetensors`` (in a clone also its training log, ``run.json`` and a preview image;
``data/NAME`` links to it). :func:`resolve_model` turns what a user passes as ``--model``
(a path, or a bare name) into the path :func:`geodiff.load_model` reads.

Example
-------
>>> from geodiff.models import DEMO_MODEL, resolve_model, shipped_models
>>> sorted(shipped_models())
['heavy-tail-anisotropy-32', 'nonstationary-anisotropy-32', 'spde-anisotropy',
 'stationary-matern-32']
>>> resolve_model(DEMO_MODEL).name
'nonstationary-anisotropy-32'
"""

from __future__ import annotations

import os
from pathlib import Path

from geodiff.errors import CheckpointError

__all__ = ["DEMO_MODEL", "MODEL_PATH_ENV", "resolve_model", "shipped_models"]

DEMO_MODEL = "nonstationary-anisotropy-32"
"""The shipped model ``geodiff demo`` uses by default."""

MODEL_PATH_ENV = "GEODIFF_MODEL_PATH"
"""Environment variable: directories (``os.pathsep``-separated) searched for model names."""

_HERE = Path(__file__).resolve().parent


def _is_model_dir(path: Path) -> bool:
    return (path / "model.json").is_file()


def shipped_models() -> dict[str, Path]:
    """The models installed with geodiff: name -> run directory, sorted by name."""
    return {p.name: p for p in sorted(_HERE.iterdir()) if p.is_dir() and _is_model_dir(p)}


def resolve_model(path_or_name) -> Path:
    """The checkpoint a model argument names.

    An existing path (a run directory or its ``.json``) wins. Otherwise a bare name (no
    directory separator) is looked up as ``DIR/NAME`` in each directory of the environment
    variable ``GEODIFF_MODEL_PATH`` (``os.pathsep``-separated, first match wins), then among
    the :func:`shipped_models`.

    Raises
    ------
    CheckpointError
        Neither an existing path nor a known name; the message lists the shipped names.
    """
    path = Path(path_or_name).expanduser()
    if path.exists():
        return path
    name = str(path_or_name)
    is_name = bool(name) and path.name == name and name not in (".", "..")
    if is_name:
        for directory in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep):
            if directory and (Path(directory).expanduser() / name).exists():
                return Path(directory).expanduser() / name
        shipped = shipped_models()
        if name in shipped:
            return shipped[name]
    names = ", ".join(shipped_models()) or "none"
    searched = f" or in ${MODEL_PATH_ENV}" if is_name and os.environ.get(MODEL_PATH_ENV) else ""
    raise CheckpointError(
        f"no model at {name!r}{searched}: give a run directory, its model.json, or the name "
        f"of a shipped model ({names})"
    )
