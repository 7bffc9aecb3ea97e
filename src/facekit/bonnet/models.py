"""What the software bonnet runs for a LoadModel: the bundle whose compiled graph it is.

The real bonnet runs the compiled model.binaryproto a client sends. Its compiler is
Google's and closed, so the software bonnet identifies the bytes instead: their sha256
is looked up among the model.binaryproto entries of the manifest.json of every bundle
under the models directory (searched again at each LoadModel: bundles appear during a
rollout), the bundle is verified (facekit.model.bundle.verify_bundle), and its
frozen_inference_graph.pb is run with TensorFlow on the CPU, from Preprocessor/sub
(where the compiler cuts the graph) to concat (box encodings) and concat_1 (class
logits).

A frame is resized (bilinear) to the input_shape's height x width and normalised with
(x - mean) / stddev from the LoadModel's input_normalizer, as the bonnet does before
the compiled graph. Anything the board would not run is refused with a LoadRefused
whose message names the model and the reason.
"""

import collections
import hashlib
import json
import logging
import os
import re
import threading
import time

import numpy as np

from facekit.bonnet import BonnetError
from facekit.errors import FacekitError
from facekit.model import bundle as bundles

log = logging.getLogger(__name__)

INPUT = "Preprocessor/sub"
BOXES = "concat"
CLASSES = "concat_1"
MIN_REFUSE_DIGITS = 12

Bundle = collections.namedtuple("Bundle", ["path", "name", "version", "compiled_sha256"])
Bundle.__doc__ = "A bundle directory found under the models directory (not yet verified)."

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_RESIZER = re.compile(r"fixed_shape_resizer\s*\{[^}]*?height:\s*(\d+)[^}]*?width:\s*(\d+)",
                      re.S)
_tf_lock = threading.Lock()


class LoadRefused(BonnetError):
    """A LoadModel the bonnet does not carry out; the message is sent to the client."""


def load_tensorflow():
    """tf.compat.v1 (or tf itself on 1.x), imported on first use: it takes seconds."""
    with _tf_lock:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Same numbers as `facekit model check` and the tests' direct runs.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        import tensorflow as tf  # noqa: PLC0415 - lazy: the server listens before TF loads

        from facekit.model.graphcheck import tf_v1  # noqa: PLC0415

        return tf, tf_v1(tf)


def scan_bundles(root):
    """Every bundle under `root` (a manifest.json with a model.binaryproto entry), by path.

    Hidden directories (create_bundle's temporary ones) are skipped; unreadable
    manifests are logged and skipped.
    """
    found = []
    for directory, subdirs, filenames in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        if bundles.MANIFEST not in filenames:
            continue
        path = os.path.join(directory, bundles.MANIFEST)
        try:
            with open(path, "r", encoding="utf-8") as fh:
                manifest = json.load(fh)
            sha256 = manifest["files"][bundles.COMPILED]["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("%s: not a usable bundle manifest (%s: %s)", path, type(exc).__name__,
                      exc)
            continue
        found.append(Bundle(directory, manifest.get("name"), manifest.get("version"),
                            str(sha256).lower()))
    return found


def _refused_by(rules, name, sha256, version=None):
    """The --refuse rule matching a model name, bundle version or sha256 prefix, or None."""
    for rule in rules:
        if rule == name or (version is not None and rule == version):
            return rule
        if len(rule) >= MIN_REFUSE_DIGITS and _HEX.match(rule) and \
                sha256.startswith(rule.lower()):
            return rule
    return None


def _config_input_size(bundle_dir):
    """(height, width) of the bundle's pipeline.config fixed_shape_resizer, or None."""
    try:
        with open(os.path.join(bundle_dir, bundles.CONFIG), "r", encoding="utf-8") as fh:
            match = _RESIZER.search(fh.read())
    except OSError:
        return None
    return (int(match.group(1)), int(match.group(2))) if match else None


class Model(object):
    """A loaded model: the bundle's frozen graph in a TensorFlow session."""

    def __init__(self, name, bundle, *, sha256, height, width, mean, stddev, threads=1):
        self.name = name
        self.bundle = bundle
        self.sha256 = sha256
        self.height = height
        self.width = width
        self.mean = float(mean)
        self.stddev = float(stddev)
        self.sizes = {}
        # TensorFlow's threads per op; 1 on the bonnet (a frame at a time), more for eval.
        self.threads = threads
        # Whether the graph's input takes several images at once (an unknown batch size).
        self.batchable = False
        self._session = None
        self._feed = self._fetches = None

    def open(self, graph_path):
        """Import the frozen graph and run it once on a zero image; LoadRefused on failure."""
        from PIL import Image  # noqa: PLC0415, F401 - fail here, not at the first frame

        tf, v1 = load_tensorflow()
        from facekit.model.graphcheck import read_graph_def  # noqa: PLC0415

        try:
            graph_def = read_graph_def(graph_path, tf)
            graph = v1.Graph()
            with graph.as_default():
                v1.import_graph_def(graph_def, name="")
            names = set(node.name for node in graph_def.node)
            missing = [n for n in (INPUT, BOXES, CLASSES) if n not in names]
            if missing:
                raise BonnetError("it has no node {} (the graph needs {} in, {} and {} "
                                  "out)".format(", ".join(missing), INPUT, BOXES, CLASSES))
            self._check_input(graph.get_tensor_by_name(INPUT + ":0").get_shape())
            config = v1.ConfigProto(intra_op_parallelism_threads=self.threads,
                                    inter_op_parallelism_threads=1, device_count={"GPU": 0})
            self._session = v1.Session(graph=graph, config=config)
            self._feed = graph.get_tensor_by_name(INPUT + ":0")
            self._fetches = [graph.get_tensor_by_name(n + ":0") for n in (BOXES, CLASSES)]
            boxes, classes = self._session.run(self._fetches, feed_dict={
                self._feed: np.zeros((1, self.height, self.width, 3), np.float32)})
        except LoadRefused:
            self.close()
            raise
        except (FacekitError, ValueError, TypeError, KeyError, tf.errors.OpError) as exc:
            self.close()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else \
                type(exc).__name__
            raise LoadRefused("Cannot load model \"{}\": the frozen graph {} of bundle {} does "
                              "not load or run with TensorFlow {}: {}".format(
                                  self.name, graph_path, self.bundle.path, tf.__version__,
                                  reason)) from None
        anchors = boxes.size // 4
        if boxes.size % 4 or not anchors or classes.size % anchors or \
                classes.size // anchors < 2:
            self.close()
            raise LoadRefused(
                "Cannot load model \"{}\": bundle {} gives {} {} and {} {}, not box "
                "encodings [N, 4] and class logits [N, 1 + classes]".format(
                    self.name, self.bundle.path, BOXES, list(boxes.shape), CLASSES,
                    list(classes.shape)))
        self.sizes = {BOXES: (anchors, 4), CLASSES: (anchors, classes.size // anchors)}
        return self

    def _check_input(self, shape):
        dims = shape.as_list() if shape.ndims is not None else None
        self.batchable = dims is None or dims[0] is None
        if dims is not None and (len(dims) != 4 or dims[3] not in (None, 3)):
            raise BonnetError("its input {} has shape {}, not [1, height, width, 3]".format(
                INPUT, dims))
        size = tuple(dims[1:3]) if dims is not None and None not in dims[1:3] else None
        where = "its input {}".format(INPUT)
        if size is None:
            size = _config_input_size(self.bundle.path)
            where = "the fixed_shape_resizer of its {}".format(bundles.CONFIG)
        if size is not None and size != (self.height, self.width):
            raise LoadRefused(
                "Cannot load model \"{}\": input_shape (1, {}, {}, 3) does not match bundle "
                "{} version {}, whose graph takes {}x{} ({}): load it with input_shape=(1, "
                "{}, {}, 3)".format(self.name, self.height, self.width, self.bundle.name,
                                    self.bundle.version, size[0], size[1], where, size[0],
                                    size[1]))

    def run(self, image):
        """({concat: [N, 4], concat_1: [N, 1 + C]} float32, milliseconds) for a PIL image."""
        started = time.monotonic()
        boxes, classes = self.infer(self.pixels(image)[np.newaxis])
        outputs = {BOXES: boxes[0], CLASSES: classes[0]}
        return outputs, (time.monotonic() - started) * 1000.0

    def pixels(self, image):
        """The float32 [height, width, 3] pixels of a PIL image resized (bilinear) to the
        input size, not yet normalised."""
        from PIL import Image  # noqa: PLC0415

        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.BILINEAR)
        return np.asarray(image, dtype=np.float32)

    def infer(self, pixels):
        """(box encodings [B, N, 4], class logits [B, N, 1 + C]) float32 of a batch of
        pixels [B, height, width, 3] (0-255, as pixels() gives them), normalised with
        (x - mean) / stddev. B > 1 only where the graph is batchable."""
        pixels = (np.asarray(pixels, dtype=np.float32) - self.mean) / self.stddev
        boxes, classes = self._session.run(self._fetches, feed_dict={self._feed: pixels})
        batch = pixels.shape[0]
        return (boxes.reshape((batch,) + self.sizes[BOXES]),
                classes.reshape((batch,) + self.sizes[CLASSES]))

    def describe(self):
        """What the state file records of the model."""
        return {"name": self.name, "bundle": self.bundle.path, "bundle_name": self.bundle.name,
                "version": self.bundle.version, "sha256": self.sha256,
                "input_shape": [1, self.height, self.width, 3],
                "input_normalizer": [self.mean, self.stddev],
                "outputs": {name: list(size) for name, size in sorted(self.sizes.items())}}

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None


class Registry(object):
    """Turns LoadModel requests into Models from the bundles under `root`."""

    def __init__(self, root, refuse=()):
        self.root = root
        self.refuse = list(refuse)

    def find(self, sha256):
        """Bundles under the root whose model.binaryproto has this sha256."""
        if not os.path.isdir(self.root):
            return []
        return [b for b in scan_bundles(self.root) if b.compiled_sha256 == sha256]

    def load(self, name, input_shape, mean, stddev, compute_graph):
        """A Model for a LoadModel; LoadRefused with the board-style message otherwise.

        input_shape: (batch, height, width, depth).
        """
        what = "Cannot load model \"{}\"".format(name)
        if not compute_graph:
            raise LoadRefused("{}: the compute graph is empty: send the bundle's {}".format(
                what, bundles.COMPILED))
        sha256 = hashlib.sha256(compute_graph).hexdigest()
        rule = _refused_by(self.refuse, name, sha256)
        if rule is not None:
            raise LoadRefused("{}: refused on purpose (--refuse {})".format(what, rule))
        batch, height, width, depth = input_shape
        if batch != 1 or depth != 3 or height < 1 or width < 1:
            raise LoadRefused("{}: input_shape ({}, {}, {}, {}) is not supported: batch must "
                              "be 1, depth 3 and height and width positive".format(
                                  what, batch, height, width, depth))
        if not stddev:
            raise LoadRefused("{}: input_normalizer ({}, {}) has stddev 0".format(
                what, mean, stddev))
        candidates = self.find(sha256)
        if not candidates:
            where = self.root if os.path.isdir(self.root) else \
                "{} (which does not exist)".format(self.root)
            raise LoadRefused("{}: unknown compiled graph: sha256 {} is not the {} of any "
                              "bundle under {}: put its bundle there".format(
                                  what, sha256, bundles.COMPILED, where))
        problems = []
        for bundle in candidates:
            rule = _refused_by(self.refuse, name, sha256, bundle.version)
            if rule is not None:
                raise LoadRefused("{}: refused on purpose (--refuse {})".format(what, rule))
            check = bundles.verify_bundle(bundle.path)
            if not check["ok"]:
                problems.append("{}: {}".format(bundle.path, "; ".join(check["problems"])))
                continue
            model = Model(name, bundle, sha256=sha256, height=height, width=width, mean=mean,
                          stddev=stddev)
            return model.open(os.path.join(bundle.path, bundles.GRAPH))
        raise LoadRefused("{}: its bundle does not verify ({}): rebuild or copy it "
                          "again".format(what, " | ".join(problems)))
