#!/usr/bin/env python3
"""Start the discomfy bot: ``python run.py`` (``--help`` for options; see README.md)."""

import sys

if sys.version_info < (3, 12):  # noqa: UP036  (a clear message beats a SyntaxError on an old Python)
    sys.exit("discomfy needs Python 3.12 or newer (this is {}.{}).".format(*sys.version_info[:2]))

from discomfy.app import main

if __name__ == "__main__":
    raise SystemExit(main())
