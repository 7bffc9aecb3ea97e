"""`python -m facekit.cli ...`: the `facekit` command (the roles run it this way, with the
interpreter of a venv that has no `facekit` script on PATH)."""

import sys

from facekit.cli import main

if __name__ == "__main__":
    sys.exit(main())
