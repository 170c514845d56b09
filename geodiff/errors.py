"""Exceptions for errors a user can fix, and the former names of renamed arguments.

The command line prints a :class:`GeodiffError` as one line and exits non-zero;
anything else is a bug and keeps its traceback.
"""

import warnings

__all__ = ["CheckpointError", "ConfigError", "GeodiffError", "StoreError", "renamed_arguments"]


class GeodiffError(ValueError):
    """An error caused by the user's input (a file, an argument, a path)."""


class ConfigError(GeodiffError):
    """A prior configuration that is malformed or out of range."""


class StoreError(GeodiffError):
    """A field store that is missing, incomplete, incompatible or unwritable."""


class CheckpointError(GeodiffError):
    """A model checkpoint or training state that is missing, corrupt or incompatible."""


def renamed_arguments(given: dict, renames: dict, function: str) -> dict:
    """Keyword arguments given by their former names, under their new ones.

    Each former name still works for one release and warns (:class:`DeprecationWarning`);
    an unknown name is a :class:`TypeError`, as Python would raise.

    Parameters
    ----------
    given : dict
        The keyword arguments the function did not recognise (its ``**former``).
    renames : dict of str to str
        Former name to new name.
    function : str
        The function's name, for the messages.
    """
    unknown = sorted(set(given) - set(renames))
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
    for old in given:
        warnings.warn(f"{function}: {old}= is now {renames[old]}=", DeprecationWarning,
                      stacklevel=3)  # fmt: skip
    return {renames[old]: value for old, value in given.items()}
