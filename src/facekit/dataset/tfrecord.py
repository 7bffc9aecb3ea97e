"""TFRecord output in the Object Detection API's format, sharded the API's way.

TensorFlow is imported only here and only when a writer is opened: the parser,
filters and the VOC/CSV steps work without it, and the CLI starts fast.
Works with TensorFlow 1.7 (training host) and 2.x: 1.7 only has
tf.python_io.TFRecordWriter, 2.x only tf.io.TFRecordWriter.

Shard names: `<split>.record` for one shard, else `<split>.record-00000-of-00010`
... `<split>.record-00009-of-00010`; a pipeline config reads them all with
`input_path: "<dir>/<split>.record-?????-of-00010"`. Image i (0-based, in
annotation order) goes to shard i % shards.
"""

import logging
import os
import re

from facekit import files

log = logging.getLogger(__name__)

CLASS_TEXT = b"face"
CLASS_LABEL = 1


def _tf():
    # TF's C++ start-up banner (CPU features, oneDNN) would bury the CLI's own
    # messages; an explicit setting by the user still wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: PLC0415 - lazy by design, see the module docstring

    return tf


def writer_class(tf):
    """The TFRecord writer class this TensorFlow provides."""
    io = getattr(tf, "io", None)
    if io is not None and hasattr(io, "TFRecordWriter"):
        return io.TFRecordWriter
    return tf.python_io.TFRecordWriter


def shard_names(split, shards):
    if shards == 1:
        return [split + ".record"]
    return ["{}.record-{:05d}-of-{:05d}".format(split, i, shards) for i in range(shards)]


def shard_glob(split, shards):
    """The glob a pipeline config's input_path uses to read every shard."""
    if shards == 1:
        return split + ".record"
    return "{}.record-?????-of-{:05d}".format(split, shards)


def make_example(tf, filename, info, boxes, classes=False):
    """A tf.train.Example with the feature keys the Object Detection API decodes.

    info: an ImageInfo (size, format, bytes). Boxes are pixel edges clipped to the
    image; they are stored normalised to [0, 1]. WIDER boxes (filters.Box) are all
    class 1, "face". With `classes`, boxes are vocconvert.VocBox: each carries its own
    class, and the record adds what the API's create_pascal_tf_record.py writes:
    difficult, truncated, view (the pose) and the image's sha256 key.
    """
    width, height = info.width, info.height
    feature = tf.train.Feature
    name = filename.encode("utf-8")

    def floats(values):
        return feature(float_list=tf.train.FloatList(value=values))

    def ints(values):
        return feature(int64_list=tf.train.Int64List(value=values))

    def byte_list(values):
        return feature(bytes_list=tf.train.BytesList(value=values))

    w = float(width)
    h = float(height)
    features = {
        "image/height": ints([height]),
        "image/width": ints([width]),
        "image/filename": byte_list([name]),
        "image/source_id": byte_list([name]),
        "image/encoded": byte_list([info.data]),
        "image/format": byte_list([info.format.encode("ascii")]),
        "image/object/bbox/xmin": floats([b.xmin / w for b in boxes]),
        "image/object/bbox/xmax": floats([b.xmax / w for b in boxes]),
        "image/object/bbox/ymin": floats([b.ymin / h for b in boxes]),
        "image/object/bbox/ymax": floats([b.ymax / h for b in boxes]),
    }
    if classes:
        features.update({
            "image/object/class/text": byte_list([b.text.encode("utf-8") for b in boxes]),
            "image/object/class/label": ints([b.label for b in boxes]),
            "image/object/difficult": ints([int(b.difficult) for b in boxes]),
            "image/object/truncated": ints([int(b.truncated) for b in boxes]),
            "image/object/view": byte_list([b.pose.encode("utf-8") for b in boxes]),
            "image/key/sha256": byte_list([info.sha256.encode("ascii")]),
        })
    else:
        features.update({
            "image/object/class/text": byte_list([CLASS_TEXT] * len(boxes)),
            "image/object/class/label": ints([CLASS_LABEL] * len(boxes)),
        })
    return tf.train.Example(features=tf.train.Features(feature=features))


_SHARD_RE = r"^{}\.record(-\d{{5}}-of-\d{{5}})?$"
# Bytes written to a shard between two files.start_writeback() calls.
WRITEBACK_EVERY = 32 << 20


class ShardedWriter(object):
    """Round-robin writer over temporary shard files; commit() renames them all."""

    def __init__(self, output_dir, split, shards, classes=False):
        if shards < 1:
            raise ValueError("shards must be >= 1, got {}".format(shards))
        self.tf = _tf()
        self.classes = classes
        self.output_dir = output_dir
        self.split = split
        self.names = shard_names(split, shards)
        self.tmps = [files.temp_path(os.path.join(output_dir, n)) for n in self.names]
        cls = writer_class(self.tf)
        self._writers = []
        try:
            for tmp in self.tmps:
                self._writers.append(cls(tmp))
        except BaseException:
            self.abort()
            raise
        self.counts = [0] * shards
        self._unflushed = [0] * shards
        self._next = 0
        self._finished = False

    def add(self, filename, info, boxes):
        example = make_example(self.tf, filename, info, boxes, self.classes)
        shard = self._next % len(self._writers)
        # Features is a protobuf map: without deterministic=True the C++ runtime of the
        # training host (protobuf 3.x) writes its keys in hash order, which differs
        # between runs, and identical inputs would give different record bytes.
        record = example.SerializeToString(deterministic=True)
        self._writers[shard].write(record)
        self.counts[shard] += 1
        self._next += 1
        self._unflushed[shard] += len(record)
        if self._unflushed[shard] >= WRITEBACK_EVERY:
            self._unflushed[shard] = 0
            files.start_writeback(self.tmps[shard])

    def _close(self):
        for writer in self._writers:
            writer.close()
        self._writers = []

    def finish(self):
        """Close the temporary shards and flush them to disk; abort() can still undo it."""
        self._close()
        if not self._finished:
            for tmp in self.tmps:
                files.fsync_file(tmp)
            self._finished = True

    def commit(self):
        """Rename the shards into place; return [(name, records, bytes)]; remove stale shards."""
        self.finish()
        result = []
        for tmp, name, count in zip(self.tmps, self.names, self.counts):
            files.commit(tmp, os.path.join(self.output_dir, name))
            result.append((name, count, os.path.getsize(os.path.join(self.output_dir, name))))
        # Shards of an earlier run with another shard count would still match a
        # glob like `<split>.record*` and be trained on twice.
        pattern = re.compile(_SHARD_RE.format(re.escape(self.split)))
        for entry in sorted(os.listdir(self.output_dir)):
            if pattern.match(entry) and entry not in self.names:
                log.info("removing %s, a shard of an earlier run with a different shard count",
                         entry)
                os.remove(os.path.join(self.output_dir, entry))
        return result

    def abort(self):
        self._close()
        for tmp in self.tmps:
            files.discard(tmp)
