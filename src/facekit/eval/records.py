"""Reading the images and boxes of TFRecord files in the Object Detection API's format
(what facekit.dataset.tfrecord writes): image/encoded, image/filename, image/width and
image/height, image/object/bbox/{ymin,xmin,ymax,xmax} (normalised),
image/object/class/label and, when present, image/object/difficult (VOC's flag).

TensorFlow reads the files (its reader checks each record's CRC) and parses the
tf.train.Example protos; it is imported by the caller and passed in. Works with
TensorFlow 1.7 (tf.python_io) and 2.x (tf.compat.v1.io). Every problem is a RecordError
naming the file and the record's number. Python 3.6.
"""

import collections
import glob
import os

import numpy as np

from facekit import files
from facekit.eval.errors import EvalError

# index: the image's number over all files (0-based); path: its file; number: its record
# in the file (0-based); filename: image/filename; encoded: the image bytes; width,
# height: pixels as the record says; boxes: (n, 4) float64 (ymin, xmin, ymax, xmax)
# normalised; labels: (n,) int64 class ids (1-based); difficult: (n,) bool, VOC's
# difficult flag (all False when the record has none).
Record = collections.namedtuple(
    "Record", "index path number filename encoded width height boxes labels difficult")


class RecordError(EvalError):
    """A TFRecord file that is missing, corrupt or not in the Object Detection API's format."""


def record_files(pattern):
    """The files matching the glob `pattern`, sorted; RecordError when none does."""
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths:
        raise RecordError("--records {}: no file matches: give a TFRecord file or a glob such "
                          "as 'data/val.record*' (quoted, so the shell leaves it to "
                          "facekit)".format(pattern))
    return paths


def checksums(paths):
    """[{"path", "sha256", "bytes"}] of the record files."""
    found = []
    for path in paths:
        digest, size = files.sha256_file(path)
        found.append({"path": path, "sha256": digest, "bytes": size})
    return found


def _iterator(tf):
    """path -> the serialized records: TFRecordDataset where TensorFlow runs eagerly (2.x;
    its tf_record_iterator is deprecated), tf.python_io's iterator on 1.x."""
    executing_eagerly = getattr(tf, "executing_eagerly", None)
    if executing_eagerly is not None and executing_eagerly():
        return lambda path: (raw.numpy() for raw in tf.data.TFRecordDataset(path))
    return tf.python_io.tf_record_iterator


def _values(feature, kind):
    return list(getattr(feature, kind).value)


def parse_example(tf, raw, path, number, index):
    """A Record of one serialized tf.train.Example; RecordError if it is not one."""
    where = "{}: record {}".format(path, number)
    try:
        example = tf.train.Example.FromString(raw)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError differs by version
        raise RecordError("{}: not a tf.train.Example ({}): is {} a TFRecord file of "
                          "images?".format(where, exc, path)) from None
    feature = example.features.feature
    if "image/encoded" not in feature or not _values(feature["image/encoded"], "bytes_list"):
        raise RecordError("{} has no image/encoded: the records must hold the images, as "
                          "`facekit dataset convert` writes them".format(where))
    encoded = _values(feature["image/encoded"], "bytes_list")[0]
    filename = ""
    if "image/filename" in feature and _values(feature["image/filename"], "bytes_list"):
        filename = _values(feature["image/filename"], "bytes_list")[0].decode("utf-8", "replace")
    size = []
    for key in ("image/width", "image/height"):
        values = _values(feature[key], "int64_list") if key in feature else []
        size.append(int(values[0]) if values else 0)
    coords = []
    for key in ("ymin", "xmin", "ymax", "xmax"):
        full = "image/object/bbox/" + key
        coords.append(_values(feature[full], "float_list") if full in feature else [])
    labels = (_values(feature["image/object/class/label"], "int64_list")
              if "image/object/class/label" in feature else [])
    counts = set(len(c) for c in coords)
    if len(counts) != 1 or (coords[0] and len(labels) != len(coords[0])):
        raise RecordError("{} ({}): the box coordinates and class labels differ in count "
                          "(ymin, xmin, ymax, xmax, label: {}): rewrite the records".format(
                              where, filename, ", ".join(str(len(c)) for c in coords + [labels])))
    boxes = np.array(coords, dtype=np.float64).T.reshape(-1, 4)
    difficult = np.zeros(len(boxes), dtype=bool)
    if "image/object/difficult" in feature:
        flags = _values(feature["image/object/difficult"], "int64_list")
        if flags and len(flags) != len(boxes):
            raise RecordError("{} ({}): {} boxes but {} image/object/difficult flags: rewrite "
                              "the records".format(where, filename, len(boxes), len(flags)))
        if flags:
            difficult = np.asarray(flags, dtype=np.int64) != 0
    return Record(index, path, number, filename, encoded, size[0], size[1], boxes,
                  np.asarray(labels, dtype=np.int64).reshape(-1), difficult)


def read_records(tf, paths):
    """Every Record of the files, in order; RecordError names a file that is missing or a
    record that is corrupt (truncated, bad CRC) or not an Example."""
    iterator = _iterator(tf)
    index = 0
    for path in paths:
        if not os.path.isfile(path):
            raise RecordError("{}: no such file (it matched --records when the run "
                              "started)".format(path))
        number = 0
        try:
            for raw in iterator(path):
                yield parse_example(tf, raw, path, number, index)
                number += 1
                index += 1
        except tf.errors.OpError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                type(exc).__name__
            raise RecordError("{}: record {} cannot be read ({}): the file is corrupt or "
                              "truncated; write the records again (facekit dataset "
                              "convert)".format(path, number, message)) from None
