"""Checkpoints: safetensors weights plus a JSON file that rebuilds everything else.

A model is a pair ``NAME.safetensors`` + ``NAME.json`` in a run directory. The JSON holds
the format version, the backbone config, the schedule, the prediction target, the grid,
the prior config, the data normalisation, the training step, the code revision and the
SHA-256 of the weights file; it is written last, so a JSON that exists describes a
complete weights file. ``meta_sha256`` is the SHA-256 of a canonical JSON of every entry
that changes what the model computes (all but ``info`` and ``code_revision``), so an
edited or damaged JSON is refused like damaged weights. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from geodiff.errors import CheckpointError
from geodiff.io import atomic_write, write_text

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointWarning",
    "code_revision",
    "finite_number",
    "load_state",
    "meta_checksum",
    "read_json",
    "read_tensors",
    "warn_unverified",
    "weights_path",
    "write_checkpoint",
]

FORMAT = "geodiff-diffusion"
FORMAT_VERSION = 1

#: entries of a checkpoint's JSON that describe it without changing what it computes
_DESCRIPTIVE = ("info", "code_revision", "meta_sha256", "_path")


class CheckpointWarning(UserWarning):
    """A checkpoint that loads but deserves attention (unverifiable, or from an unfinished run)."""


def meta_checksum(meta: dict) -> str:
    """SHA-256 of a canonical JSON of ``meta``'s entries that change what the model computes."""
    covered = {k: v for k, v in meta.items() if k not in _DESCRIPTIVE}
    text = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def code_revision() -> str:
    """The git revision of the code (with ``+dirty`` for uncommitted changes), or unknown."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    if rev.returncode != 0:
        from geodiff._version import __version__

        return f"geodiff {__version__}"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(directory, name: str, tensors: dict, meta: dict) -> Path:
    """Write ``directory/name.safetensors`` then ``directory/name.json`` atomically.

    Parameters
    ----------
    directory : str or Path
    name : str
    tensors : dict of str to torch.Tensor
    meta : dict
        JSON-ready; ``format``, ``format_version``, ``weights``, ``sha256`` and
        ``meta_sha256`` (:func:`meta_checksum`) are added.

    Returns
    -------
    Path
        The JSON file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_write(weights) as tmp:
        save_file(tensors, str(tmp))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **meta,
        "weights": weights.name,
        "sha256": _sha256(weights),
    }
    meta["meta_sha256"] = meta_checksum(meta)
    path = directory / f"{name}.json"
    write_text(path, json.dumps(meta, indent=1))
    return path


def read_json(path) -> dict:
    """Read and check a checkpoint's JSON (a ``.json`` file, or a run directory's model)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.json"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (expected a run directory or a .json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a geodiff diffusion checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('format_version')!r}, this geodiff "
            f"reads version {FORMAT_VERSION}"
        )
    stored = meta.get("meta_sha256")
    if stored is None:
        meta["_unverified"] = True  # written before geodiff checksummed its metadata
    elif stored != meta_checksum(meta):
        raise CheckpointError(
            f"{path}: {path.name} was edited or is corrupt (checksum mismatch); restore it "
            "or retrain"
        )
    meta["_path"] = str(path)
    return meta


def warn_unverified(meta: dict) -> None:
    """Warn that a checkpoint without ``meta_sha256`` (an older geodiff's) is unverified."""
    if meta.get("_unverified"):
        warnings.warn(
            f"{meta['_path']} has no metadata checksum (written by an older geodiff): its "
            "settings cannot be verified; load and save it again to add one",
            CheckpointWarning,
            stacklevel=2,
        )


def weights_path(meta: dict) -> Path:
    """The weights file a checkpoint's JSON names: a plain file name beside the JSON."""
    name = meta.get("weights")
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or Path(name).name != name
        or "\\" in name
    ):
        raise CheckpointError(
            f"{meta['_path']}: its weights entry {name!r} must be a file name in the model's folder"
        )
    return Path(meta["_path"]).with_name(name)


def finite_number(value) -> bool:
    """Whether ``value`` is a finite JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_tensors(meta: dict) -> dict:
    """The weights a checkpoint's JSON points to, checked against its SHA-256."""
    path = weights_path(meta)
    if not path.is_file():
        raise CheckpointError(f"{meta['_path']}: its weights file {path.name!r} is missing")
    if _sha256(path) != meta.get("sha256"):
        raise CheckpointError(f"{path}: weights do not match their checksum (corrupt or replaced)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read weights ({err})") from err


def load_state(module: torch.nn.Module, tensors: dict, where: str) -> None:
    """``module.load_state_dict(tensors)``, with a clear error on any mismatch."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1:3]
        raise CheckpointError(
            f"{where}: weights do not fit the model it describes ({' '.join(first).strip()})"
        ) from err
