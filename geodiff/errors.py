"""Exceptions for errors a user can fix.

The command line prints a :class:`GeodiffError` as one line and exits non-zero;
anything else is a bug and keeps its traceback.
"""

__all__ = ["CheckpointError", "ConfigError", "GeodiffError", "StoreError"]


class GeodiffError(ValueError):
    """An error caused by the user's input (a file, an argument, a path)."""


class ConfigError(GeodiffError):
    """A prior configuration that is malformed or out of range."""


class StoreError(GeodiffError):
    """A field store that is missing, incomplete, incompatible or unwritable."""


class CheckpointError(GeodiffError):
    """A model checkpoint or training state that is missing, corrupt or incompatible."""
