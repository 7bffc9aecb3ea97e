"""Test helpers: small WIDER FACE trees (real images at known sizes, known boxes) and
TFRecord read-back with tf.data / tf.io."""

import io
import os
import random

import tensorflow as tf
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_VAL = os.path.join(REPO, "..", "shared", "datasets", "wider_face_split",
                        "wider_face_val_bbx_gt.txt")


def face(x, y, w, h, *, blur=0, expression=0, illumination=0, invalid=0, occlusion=0, pose=0):
    return (x, y, w, h, blur, expression, illumination, invalid, occlusion, pose)


def jpeg_bytes(width, height, seed=0, fmt="JPEG"):
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), 90))
    # A little structure so each file differs and the encoder writes real scan data.
    for _ in range(20):
        x, y = rng.randrange(width), rng.randrange(height)
        image.paste((rng.randrange(256),) * 3, (x, y, min(width, x + 9), min(height, y + 9)))
    buf = io.BytesIO()
    image.save(buf, fmt, quality=85) if fmt == "JPEG" else image.save(buf, fmt)
    return buf.getvalue()


def annotation_text(entries, crlf=False):
    """WIDER text for [(path, [face tuples])]; an empty list writes the 0 + zeros quirk."""
    lines = []
    for path, faces in entries:
        lines.append(path)
        lines.append(str(len(faces)))
        if not faces:
            lines.append("0 0 0 0 0 0 0 0 0 0 ")
        for values in faces:
            # The real files end every face line with a space.
            lines.append(" ".join(str(v) for v in values) + " ")
    newline = "\r\n" if crlf else "\n"
    return newline.join(lines) + newline


class WiderTree(object):
    def __init__(self, root):
        self.root = str(root)
        self.images = os.path.join(self.root, "WIDER_val", "images")
        self.annotations = os.path.join(self.root, "wider_face_split",
                                        "wider_face_val_bbx_gt.txt")
        self.sizes = {}

    def add_image(self, relpath, width, height, *, seed=0, fmt="JPEG", data=None):
        path = os.path.join(self.images, relpath)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        if data is None:
            data = jpeg_bytes(width, height, seed, fmt)
        with open(path, "wb") as fh:
            fh.write(data)
        self.sizes[relpath] = (width, height)
        return path

    def write_annotations(self, entries, crlf=False, text=None):
        if not os.path.isdir(os.path.dirname(self.annotations)):
            os.makedirs(os.path.dirname(self.annotations))
        with open(self.annotations, "wb") as fh:
            fh.write((text if text is not None else annotation_text(entries, crlf)).encode())
        return self.annotations

    def read(self, relpath):
        with open(os.path.join(self.images, relpath), "rb") as fh:
            return fh.read()


# The standard small set: (path, size, faces) with what the default filter does to each.
STANDARD = [
    # two good faces, one past the right/bottom edges (clipped to 320x240)
    ("0--Parade/0_Parade_a.jpg", (320, 240),
     [face(10, 20, 60, 70), face(280, 200, 60, 55)]),
    # invalid, blurry, small: the image is left empty -> dropped (no_faces)
    ("0--Parade/0_Parade_b.jpg", (200, 150),
     [face(5, 5, 80, 80, invalid=1), face(5, 5, 80, 80, blur=1), face(5, 5, 49, 30)]),
    # the 0-face quirk: count 0 + a line of ten zeros
    ("1--Handshaking/1_Handshaking_c.jpg", (160, 120), []),
    # a zero-size box (degenerate on the annotation) next to a good one, x starting left of 0
    ("1--Handshaking/1_Handshaking_d.jpg", (400, 300),
     [face(50, 50, 0, 0), face(-10, 100, 100, 120, blur=0)]),
    # a box entirely outside the image: degenerate after clipping; image left empty
    ("2--Demonstration/2_Demonstration_e.jpg", (240, 180), [face(300, 10, 60, 60)]),
    # a PNG with a heavy-blur face and a good one
    ("2--Demonstration/2_Demonstration_f.png", (256, 256),
     [face(0, 0, 256, 256), face(10, 10, 50, 50, blur=2)]),
]


FEATURES = None


def _features(tf):
    fixed = tf.io.FixedLenFeature
    var = tf.io.VarLenFeature
    return {
        "image/height": fixed([], tf.int64),
        "image/width": fixed([], tf.int64),
        "image/filename": fixed([], tf.string),
        "image/source_id": fixed([], tf.string),
        "image/encoded": fixed([], tf.string),
        "image/format": fixed([], tf.string),
        "image/object/bbox/xmin": var(tf.float32),
        "image/object/bbox/xmax": var(tf.float32),
        "image/object/bbox/ymin": var(tf.float32),
        "image/object/bbox/ymax": var(tf.float32),
        "image/object/class/text": var(tf.string),
        "image/object/class/label": var(tf.int64),
    }


def read_records(paths):
    """Parse TFRecord files with tf.data + tf.io.parse_single_example into plain dicts."""
    features = _features(tf)
    records = []
    for raw in tf.data.TFRecordDataset([str(p) for p in paths]):
        parsed = tf.io.parse_single_example(raw, features)
        record = {}
        for key, tensor in parsed.items():
            if isinstance(tensor, tf.SparseTensor):
                tensor = tf.sparse.to_dense(  # noqa: PLW2901
                    tensor, default_value=b"" if tensor.dtype == tf.string else 0)
            value = tensor.numpy()
            record[key] = value.tolist() if hasattr(value, "tolist") else value
        records.append(record)
    return records


def raw_records(paths):
    """The serialized records, for byte-level comparisons."""
    return [raw.numpy() for raw in tf.data.TFRecordDataset([str(p) for p in paths])]


def tree_bytes(root):
    """{relative path: bytes} of every file under root (hidden temporaries included)."""
    found = {}
    for dirpath, _, filenames in os.walk(str(root)):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, str(root))] = fh.read()
    return found
