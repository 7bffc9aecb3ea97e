"""A WIDER-format prediction folder: `<event>/<image>.txt` per image of the ground truth.

Each file: line 1 the image's name (a path or a bare name, with or without .jpg), line 2
the number of boxes, then one `x y w h score` line per box (pixels; scores on any scale,
the scorer normalises them over the whole set). Any detector's output in this format can
be scored, facekit's or another's.

Every problem is a PredictionFileError naming the file and line. An image of the ground
truth without a file is not an error: the evaluation tools count it as no detections, and
so does this; the caller reports how many there were.
"""

import collections
import math
import os

import numpy as np

from facekit.eval.errors import PredictionFileError

FIELDS = 5

# boxes: (n, 4) float64 x, y, w, h; scores: (n,) float64 as written; pred_start:
# (images + 1,) offsets of each image's boxes; missing: the (event, image) pairs with no
# file; unexpected: .txt files in the event folders that name no ground-truth image.
Predictions = collections.namedtuple(
    "Predictions", "boxes scores pred_start missing unexpected")


def _image_stem(name):
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base[:-4] if base.lower().endswith(".jpg") else base


def _bad_line(path, number, line):
    fields = line.split()
    if len(fields) != FIELDS:
        return "{}:{}: expected 'x y w h score' ({} numbers), found {} field{}: {!r}".format(
            path, number, FIELDS, len(fields), "" if len(fields) == 1 else "s", line.strip())
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            return "{}:{}: {!r} is not a number".format(path, number, field)
        if not math.isfinite(value):
            return "{}:{}: {!r} is not a finite number".format(path, number, field)
    return None


def parse_prediction_text(text, path, image):
    """The (n, 5) float64 rows of one prediction file's `text`; `image` is the name the
    ground truth gives it (line 1 must name it). Raises PredictionFileError."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PredictionFileError("{}: empty file; expected the image name on line 1, the "
                                  "number of boxes on line 2, then 'x y w h score' "
                                  "lines".format(path))
    named = lines[0].strip()
    if _image_stem(named) != image:
        raise PredictionFileError("{}:1: names image {!r}, but this file holds the predictions "
                                  "of {} (line 1 must be the image's name)".format(
                                      path, named, image))
    if len(lines) < 2:
        raise PredictionFileError("{}: has no line 2 (the number of boxes)".format(path))
    try:
        count = int(lines[1].strip())
    except ValueError:
        raise PredictionFileError("{}:2: {!r} is not a number of boxes".format(
            path, lines[1].strip())) from None
    rows = lines[2:]
    if count != len(rows):
        raise PredictionFileError(
            "{}:2: says {} box{}, but {} box line{} follow{}".format(
                path, count, "" if count == 1 else "es", len(rows),
                "" if len(rows) == 1 else "s", "s" if len(rows) == 1 else ""))
    if not rows:
        return np.zeros((0, FIELDS))
    try:
        values = [float(v) for row in rows for v in row.split()]
    except ValueError:
        values = None
    if values is None or len(values) != FIELDS * len(rows) or not all(
            map(math.isfinite, values)):
        for number, row in enumerate(rows, start=3):
            problem = _bad_line(path, number, row)
            if problem:
                raise PredictionFileError(problem)
    return np.array(values, dtype=np.float64).reshape(-1, FIELDS)


def read_prediction_file(path, image):
    """Read and check one file (see parse_prediction_text); OSError if it cannot be read."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PredictionFileError("{}: not UTF-8 text (byte {}): is it a prediction "
                                  "file?".format(path, exc.start)) from None
    return parse_prediction_text(text, path, image)


def read_predictions(directory, images):
    """Read `<directory>/<event>/<image>.txt` for every (event, image) of `images`, in order."""
    if not os.path.isdir(directory):
        raise PredictionFileError("{} is not a directory: expected a WIDER-format prediction "
                                  "folder (<event>/<image>.txt)".format(directory))
    per_image, missing = [], []
    wanted = collections.defaultdict(set)
    for event, image in images:
        wanted[event].add(image + ".txt")
        path = os.path.join(directory, event, image + ".txt")
        try:
            rows = read_prediction_file(path, image)
        except FileNotFoundError:
            missing.append((event, image))
            rows = np.zeros((0, FIELDS))
        per_image.append(rows)
    unexpected = []
    for event in sorted(wanted):
        folder = os.path.join(directory, event)
        if os.path.isdir(folder):
            unexpected.extend(os.path.join(event, name) for name in sorted(os.listdir(folder))
                              if name.endswith(".txt") and name not in wanted[event])
    start = np.zeros(len(per_image) + 1, dtype=np.int64)
    np.cumsum([len(rows) for rows in per_image], out=start[1:])
    rows = np.concatenate(per_image) if per_image else np.zeros((0, FIELDS))
    return Predictions(rows[:, :4], rows[:, 4], start, missing, unexpected)
