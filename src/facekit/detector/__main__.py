"""`python3 -m facekit.detector`: the detector service (facekit.detector.service)."""

import sys

from facekit.detector.service import main

if __name__ == "__main__":
    sys.exit(main())
