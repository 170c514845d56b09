"""The ``geodiff`` command line: every flag has one meaning (:data:`FLAGS`) in every command.

A user's error (a bad config, an invalid grid, an unwritable path, ...) prints one line
and exits with status 2; an interrupted run exits with 130 and resumes when rerun.

Modules: :mod:`~geodiff.cli.flags` (the flags and the parser), :mod:`~geodiff.cli.commands`
(what each command does).
"""

from __future__ import annotations

import logging
import sys

from geodiff.cli.commands import COMMANDS
from geodiff.cli.flags import DEPRECATED, FLAGS, build_parser
from geodiff.errors import GeodiffError

__all__ = ["DEPRECATED", "FLAGS", "build_parser", "main"]


def main(argv=None) -> int:
    """Entry point of the ``geodiff`` command."""
    from geodiff.logs import configure_logging, plain_warnings

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)

    try:
        with plain_warnings(f"geodiff {args.command}"):
            status = COMMANDS[args.command](args)
    except GeodiffError as err:
        print(f"geodiff {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"geodiff {args.command}: interrupted; rerun it to resume", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
