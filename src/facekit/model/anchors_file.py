"""The reader of anchors.txt, the anchor table a model bundle carries.

One line per anchor, 'ymin xmin ymax xmax' (normalised, not clipped), in the order of
the model's outputs: what `facekit model anchors` writes and AIY's own tables hold.
Bundling counts its rows (facekit.model.bundle) and the detector decodes against them
(facekit.detector.decode), so both read it here and refuse the same files with the same
message. Python 3.5, standard library only: the Vision Kit reads it.
"""

import math

from facekit.model.errors import AnchorsFileError

FIX = "write it with `facekit model anchors CONFIG --output anchors.txt`"


def read_anchors(path):
    """The rows of the anchors file at `path`, each a list of 4 floats.

    AnchorsFileError names the file and line of a row that is not 4 finite numbers (a
    NaN or infinite corner would decode into a box nothing can match), and an empty file.
    """
    rows = []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                values = [float(f) for f in line.split()]
            except ValueError:
                values = []
            if len(values) != 4 or not all(math.isfinite(v) for v in values):
                raise AnchorsFileError(
                    "{}:{}: expected 4 finite numbers (ymin xmin ymax xmax), got {!r}: "
                    "{}".format(path, lineno, line.rstrip("\n"), FIX))
            rows.append(values)
    if not rows:
        raise AnchorsFileError("{}: no anchors in the file: {}".format(path, FIX))
    return rows
