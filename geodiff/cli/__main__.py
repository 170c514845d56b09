"""``python -m geodiff.cli``: the command line."""

from geodiff.cli import main

raise SystemExit(main())
