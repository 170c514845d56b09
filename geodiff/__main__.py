"""``python -m geodiff``: the command line."""

from geodiff.cli import main

raise SystemExit(main())
