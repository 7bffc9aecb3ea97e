"""The detector's output adaptation: the Vision Bonnet's result of a frame -> detections ->
the JSON line published for it; and the sparse configs that make the bonnet send only
what can become a face.

The bonnet runs the SSD and thresholds its class logits on the device (sparse_configs),
so a result usually holds only the (anchor, class) hits above the score and those
anchors' box encodings; result_detections decodes them with facekit.detector.decode
(a bonnet that ignores the configs sends the full tensors, which decode as well), and
checks them against the bundle's anchors and labels: outputs that do not fit are an
OutputError, exit status 3 (EXIT_MODEL). face_record and frame_record make the JSON
the service publishes, one line per frame with detections (Publisher; SCHEMA).

Python 3.5; the standard library and numpy (through decode). AIY's own models keep the
same job beside their decoder (aiy/vision/models/object_detection.py).
"""

import collections
import json
import logging
import math
import os

from facekit.detector import decode, wire
from facekit.detector.exits import EXIT_MODEL, DetectorError
from facekit.model import bundle

log = logging.getLogger(__name__)

BOXES_TENSOR = "concat"
LOGITS_TENSOR = "concat_1"


def logit(probability):
    """The logit whose sigmoid is `probability` (0 < probability < 1)."""
    return math.log(probability / (1.0 - probability))


class OutputError(DetectorError):
    """Output tensors that do not fit the bundle (exit 3)."""

    def __init__(self, message):
        DetectorError.__init__(self, message, EXIT_MODEL)


def _tensor(result, name):
    try:
        return result.tensors[name]
    except KeyError:
        raise OutputError("the Vision Bonnet's result has no tensor {} (it has {}): the "
                          "model is not an SSD exported for the bonnet".format(
                              name, ", ".join(sorted(result.tensors)) or "none")) from None


def _index(entry, size, name, number):
    values = tuple(entry.values)
    if len(values) != size:
        raise OutputError("{} index {}: expected {} values, got {}: the bonnet did not apply "
                          "the sparse configs".format(name, number, size, list(values)))
    return values


def sparse_inputs(result):
    """(hits, encodings) for decode.decode_sparse from a result with sparse tensors:
    hits (anchor, class, logit) from concat_1, encodings {anchor: 4 floats} from concat."""
    logits = _tensor(result, LOGITS_TENSOR)
    boxes = _tensor(result, BOXES_TENSOR)
    logit_indices, logit_data = list(logits.indices), list(logits.data)
    box_indices, box_data = list(boxes.indices), list(boxes.data)
    if len(logit_indices) != len(logit_data):
        raise OutputError("{}: {} indices but {} values: expected one logit per (anchor, "
                          "class)".format(LOGITS_TENSOR, len(logit_indices), len(logit_data)))
    if len(box_data) != 4 * len(box_indices):
        raise OutputError("{}: {} indices but {} values: expected 4 per anchor (ty, tx, th, "
                          "tw)".format(BOXES_TENSOR, len(box_indices), len(box_data)))
    hits = []
    for number, (entry, value) in enumerate(zip(logit_indices, logit_data)):
        anchor, class_id = _index(entry, 2, LOGITS_TENSOR, number)
        hits.append((anchor, class_id, value))
    encodings = {}
    for number, entry in enumerate(box_indices):
        (anchor,) = _index(entry, 1, BOXES_TENSOR, number)
        encodings[anchor] = box_data[4 * number:4 * number + 4]
    return hits, encodings


def result_detections(result, model, score_threshold=0.5, iou_threshold=0.5,
                      max_detections=100):
    """Detections of one inference result, best first.

    Sparse tensors (indices present, or nothing above the threshold) go through
    decode_sparse; full tensors (a bonnet that ignored the sparse configs) through
    decode_dense. OutputError when the tensors do not fit the model's anchors or labels.
    """
    logits = _tensor(result, LOGITS_TENSOR)
    boxes = _tensor(result, BOXES_TENSOR)
    options = {"score_threshold": score_threshold, "iou_threshold": iou_threshold,
               "max_detections": max_detections}
    dense = not len(logits.indices) and len(logits.data)
    try:
        if dense:
            # Not list(): decode_dense reads only what it needs of the repeated fields, or
            # an array tensor_values makes of each in C.
            detections = decode.decode_dense(wire.tensor_values(boxes),
                                             wire.tensor_values(logits), model.anchors,
                                             **options)
        else:
            hits, encodings = sparse_inputs(result)
            detections = decode.decode_sparse(hits, encodings, model.anchors, **options)
    except decode.DecodeError as exc:
        raise OutputError("the Vision Bonnet's outputs do not fit model {} {}: {}".format(
            model.name, model.version, exc)) from None
    for det in detections:
        if not 0 <= det.label_index < len(model.labels):
            raise OutputError(
                "the model gave class {} but {} lists {} labels: the bonnet runs a model "
                "with more classes than the bundle's labels".format(
                    det.class_id, os.path.join(model.path, bundle.LABELS), len(model.labels)))
    return detections


def frame_window(result, model):
    """(x, y, width, height) of the image region the detections' boxes refer to."""
    window = getattr(result, "window", None)
    if window is not None and window.width > 0 and window.height > 0:
        return window.x, window.y, window.width, window.height
    if getattr(result, "width", 0) > 0 and getattr(result, "height", 0) > 0:
        return 0, 0, result.width, result.height
    return 0, 0, model.input_size, model.input_size


def face_record(detection, labels, window):
    """The JSON record of one detection: label, score, pixel box [x, y, w, h] in the
    camera frame, and the normalised box [ymin, xmin, ymax, xmax]."""
    x0, y0, width, height = window
    left = x0 + detection.xmin * width
    top = y0 + detection.ymin * height
    right = x0 + detection.xmax * width
    bottom = y0 + detection.ymax * height
    box = [int(round(left)), int(round(top)), int(round(right - left)),
           int(round(bottom - top))]
    norm = [round(v, 5) for v in (detection.ymin, detection.xmin, detection.ymax,
                                  detection.xmax)]
    return collections.OrderedDict([
        ("label", labels[detection.label_index]),
        ("score", round(detection.score, 4)),
        ("box", box),
        ("norm", norm),
    ])


# The JSON lines' layout. 2: "detections" (a VOC model's are not faces) and "thresholds";
# "faces", the same list under its schema 1 name, stays for one more release.
SCHEMA = 2


def frame_record(frame, when, model, detections, duration_ms, *, camera_frame=None,
                 thresholds=None):
    """The JSON line published for a frame with detections (face_record's). camera_frame
    is the bonnet's own frame index (counted from the camera's start), which ties a line to
    the image it came from; thresholds: {label: {"score", "from"}} in force
    (facekit.detector.thresholds)."""
    return collections.OrderedDict([
        ("schema", SCHEMA), ("frame", frame), ("time", when), ("model", model.name),
        ("version", model.version), ("detections", detections), ("faces", detections),
        ("thresholds", thresholds), ("ms", duration_ms), ("camera_frame", camera_frame),
    ])


def sparse_configs(model, score_threshold, inference):
    """The bonnet-side thresholding: concat_1's logits above logit(score_threshold),
    background column ignored, and concat's box encodings of the same anchors.
    inference: the AIY library's aiy.vision.inference, whose config classes these are."""
    count = model.num_anchors
    return {
        LOGITS_TENSOR: inference.ThresholdingConfig(
            logical_shape=[count, 1 + len(model.labels)], threshold=logit(score_threshold),
            top_k=count, to_ignore=[(1, 0)]),
        BOXES_TENSOR: inference.FromSparseTensorConfig(
            logical_shape=[count], tensor_name=LOGITS_TENSOR, squeeze_dims=[1]),
    }


class Publisher(object):
    """Writes one compact JSON line per record to a stream and flushes it."""

    def __init__(self, stream):
        self._stream = stream
        self._broken = False

    def publish(self, record):
        if self._broken:
            return
        try:
            self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            # Nobody reads stdout any more; the status endpoint still reports the faces.
            log.error("cannot write to stdout (%s): no more JSON lines", exc)
            self._broken = True
