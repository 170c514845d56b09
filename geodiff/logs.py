"""geodiff's progress messages go through :mod:`logging`; progress bars through tqdm.

Library modules log with ``logging.getLogger(__name__)`` and never print. The command
line (or a user) calls :func:`configure_logging` once to show them as plain lines that
do not break tqdm's progress bars. :func:`progress_bar` is the one progress-bar helper.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

__all__ = ["configure_logging", "plain_warnings", "progress_bar"]


class _TqdmHandler(logging.Handler):
    """Write each record with ``tqdm.write`` so that open progress bars stay intact."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record))
        except Exception:  # a logging handler must not raise
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Show geodiff's messages at ``level`` and above on stderr, one plain line each.

    Idempotent: calling it again replaces the handler it installed before.
    """
    logger = logging.getLogger("geodiff")
    for handler in list(logger.handlers):
        if isinstance(handler, _TqdmHandler):
            logger.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def progress_bar(total: int, *, enabled: bool = True, desc: str = "", unit: str = "it"):
    """A tqdm progress bar (disabled when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit=unit)


@contextlib.contextmanager
def plain_warnings(prefix: str):
    """Show geodiff's own warnings (poor fits, unconverged chains) as one line each.

    Within the block a warning raised from geodiff is printed to stderr as
    ``PREFIX: warning: MESSAGE``; other libraries' warnings keep their usual form.
    """
    with warnings.catch_warnings():
        default_show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__module__.startswith("geodiff") or "geodiff" in filename:
                print(f"{prefix}: warning: {message}", file=sys.stderr)
            else:
                default_show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
