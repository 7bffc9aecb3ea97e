"""Decoding of the SSD output tensors the Vision Bonnet returns, on the Vision Kit.

The bonnet runs the compiled graph and returns two tensors per frame: `concat`, the box
encodings [N, 4] as (ty, tx, th, tw), and `concat_1`, the class logits [N, 1 + C] with
the background class first. This module turns them into detections the way the
Object Detection API's post-processing does: the Faster R-CNN box coder with scales
(10, 10, 5, 5) against the anchor table, boxes clamped to [0, 1], score = sigmoid of the
best non-background logit, then greedy non-maximum suppression.

NMS is class-agnostic (as AIY's own decoder): a face model has a single class, and for
several classes one object should not come back once per class.

Two input forms give the same detections:
- dense (decode_dense): the full tensors, as arrays [N, 4] and [N, 1 + C] or the flat
  `data` lists of the FloatTensors;
- sparse (decode_sparse): what the bonnet sends when asked to threshold on the device,
  so the Pi Zero only decodes anchors that can become detections: the logits' hits as
  (anchor, class, logit) and the box encodings of those anchors as {anchor: (ty, tx, th, tw)}.

Python 3.5 and numpy only: this runs on the kit.
"""

import collections
import logging
import math
import struct

import numpy as np

from facekit.model.errors import ModelError

log = logging.getLogger(__name__)

# The Faster R-CNN box coder's (y, x, h, w) scale factors of the Object Detection API's
# SSD configs; AIY's models and facekit's pipeline use the same.
SCALES = (10.0, 10.0, 5.0, 5.0)

Detection = collections.namedtuple(
    "Detection", ["class_id", "label_index", "score", "ymin", "xmin", "ymax", "xmax"])
Detection.__doc__ = """One detection.

class_id is the model's 1-based class id (the column of the logits tensor), label_index
is class_id - 1, the line of labels.txt (0-based). score is in (0, 1); the box is
normalised to [0, 1] in (ymin, xmin, ymax, xmax) order: multiply by the image's height
and width for pixels."""


class DecodeError(ModelError):
    """Output tensors or an anchors file the decoder cannot use."""


def load_anchors(path):
    """The anchor table of a file of 'ymin xmin ymax xmax' lines: float32 array [N, 4].

    The file is what `facekit model anchors` writes (and a bundle's anchors.txt holds).
    DecodeError names the file and line of a malformed row.
    """
    rows = []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.split()
            try:
                values = [float(f) for f in fields]
            except ValueError:
                values = []
            if len(values) != 4 or not all(math.isfinite(v) for v in values):
                raise DecodeError(
                    "{}:{}: expected 4 finite numbers (ymin xmin ymax xmax), got {!r}: "
                    "write the file with `facekit model anchors CONFIG --output "
                    "anchors.txt`".format(path, lineno, line.rstrip("\n")))
            rows.append(values)
    if not rows:
        raise DecodeError("{}: no anchors in the file: write it with `facekit model anchors "
                          "CONFIG --output anchors.txt`".format(path))
    return np.array(rows, dtype=np.float32)


def _anchor_table(anchors):
    """anchors as an array [N, 4] (a float array as given, anything else as float64);
    DecodeError if it is not such a table. Callers convert the rows they use."""
    if isinstance(anchors, np.ndarray) and anchors.dtype.kind == "f":
        table = anchors
    else:
        table = np.asarray(anchors, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 4 or not table.shape[0]:
        raise DecodeError("anchors: expected an array [N, 4] (ymin xmin ymax xmax), got shape "
                          "{}: load it with load_anchors(path)".format(table.shape))
    return table


def _packed(values):
    """A flat sequence of numbers (a list, a tuple, a FloatTensor's repeated `data`) as a
    float64 array, or None if it is not one. Much faster than np.asarray on a list."""
    try:
        count = len(values)
        if not count:
            return None
        return np.frombuffer(struct.pack("{}d".format(count), *values), dtype=np.float64)
    except (struct.error, TypeError, ValueError, OverflowError):
        return None


def _box_encodings(box_encodings, count):
    """box_encodings as float64 [count, 4]; a flat list of 4 * count floats is accepted."""
    enc = None if isinstance(box_encodings, np.ndarray) else _packed(box_encodings)
    if enc is None:
        enc = np.asarray(box_encodings, dtype=np.float64)
    if enc.ndim == 1 and enc.size == 4 * count:
        enc = enc.reshape(count, 4)
    if enc.ndim != 2 or enc.shape != (count, 4):
        _bad_box_encodings(count, enc.shape)
    return enc


def _bad_box_encodings(count, shape):
    raise DecodeError(
        "box_encodings: expected shape ({}, 4) (one (ty, tx, th, tw) per anchor) or {} "
        "flat floats, got shape {}: the anchors table does not belong to this model; "
        "use the anchors.txt of the same bundle".format(count, 4 * count, shape))


def _encoding_source(box_encodings, count):
    """What _encoding_rows reads: an array [count, 4] as given, or a flat sequence of
    4 * count numbers left as it is (only the candidates' rows get converted). Checks the
    shape only; DecodeError as _box_encodings."""
    if isinstance(box_encodings, np.ndarray):
        enc = box_encodings
        if enc.ndim == 1 and enc.size == 4 * count:
            enc = enc.reshape(count, 4)
        if enc.ndim != 2 or enc.shape != (count, 4):
            _bad_box_encodings(count, enc.shape)
        return enc
    try:
        flat = len(box_encodings) == 4 * count
    except TypeError:
        flat = False
    return box_encodings if flat else _box_encodings(box_encodings, count)


def _encoding_rows(source, rows):
    """float64 [len(rows), 4]: the rows (anchor numbers, a list of ints) of an
    _encoding_source."""
    if not isinstance(source, np.ndarray):
        flat = []
        for i in rows:
            flat.extend(source[4 * i:4 * i + 4])
        enc = _packed(flat)
        if enc is not None and enc.size == 4 * len(rows):
            return enc.reshape(-1, 4)
        source = _box_encodings(source, len(source) // 4)
    return np.asarray(source[rows], dtype=np.float64)


def _class_logits(class_logits, count):
    """class_logits as float64 [count, 1 + C]; a flat list of count * (1 + C) is accepted."""
    logits = None if isinstance(class_logits, np.ndarray) else _packed(class_logits)
    if logits is None:
        logits = np.asarray(class_logits, dtype=np.float64)
    if logits.ndim == 1 and logits.size and logits.size % count == 0:
        logits = logits.reshape(count, -1)
    if logits.ndim != 2 or logits.shape[0] != count or logits.shape[1] < 2:
        raise DecodeError(
            "class_logits: expected shape ({}, 1 + classes) with the background first, got "
            "shape {}: the anchors table does not belong to this model, or the tensor is not "
            "the class logits (concat_1)".format(count, logits.shape))
    return logits


def decode_boxes(encodings, anchors, scales=SCALES):
    """Boxes [N, 4] (ymin, xmin, ymax, xmax) clamped to [0, 1] from encodings [N, 4] as
    (ty, tx, th, tw) against anchors [N, 4] (the Faster R-CNN box coder's decode)."""
    table = np.asarray(_anchor_table(anchors), dtype=np.float64)
    return _decode_rows(_box_encodings(encodings, table.shape[0]), table, scales)


def _decode_rows(enc, table, scales=SCALES):
    """decode_boxes of float64 arrays [K, 4] already checked, (y, x) pairs at a time."""
    size = table[:, 2:] - table[:, :2]                       # ha, wa
    centre = table[:, :2] + 0.5 * size                      # yca, xca
    if scales is SCALES:
        centre_scale, size_scale = _CENTRE_SCALE, _SIZE_SCALE
    else:
        centre_scale = np.array([float(scales[0]), float(scales[1])])
        size_scale = np.array([float(scales[2]), float(scales[3])])
    # A huge th/tw overflows to inf: the box then covers the image after clamping. No
    # real frame comes near; the check is cheaper than np.errstate on old numpy.
    if np.abs(enc).max() < 500.0:
        boxes = _box_corners(enc, size, centre, centre_scale, size_scale)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            boxes = _box_corners(enc, size, centre, centre_scale, size_scale)
    return np.clip(boxes, 0.0, 1.0, out=boxes)


def _box_corners(enc, size, centre, centre_scale, size_scale):
    half = 0.5 * np.exp(enc[:, 2:] / size_scale) * size     # half height, half width
    mid = enc[:, :2] / centre_scale * size + centre          # yc, xc
    return np.concatenate([mid - half, mid + half], axis=1)


_CENTRE_SCALE = np.array(SCALES[:2])
_SIZE_SCALE = np.array(SCALES[2:])


def sigmoid(logits):
    """1 / (1 + exp(-x)) elementwise, without overflow for large negative x."""
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def best_classes(class_logits):
    """(class ids [N], scores [N]) from logits [N, 1 + C], background first: per anchor the
    best non-background class (1-based; the lowest on a tie) and sigmoid of its logit."""
    logits = np.asarray(class_logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise DecodeError("class_logits: expected shape (N, 1 + classes) with the background "
                          "first, got shape {}".format(logits.shape))
    best = np.argmax(logits[:, 1:], axis=1)
    return best + 1, sigmoid(logits[np.arange(logits.shape[0]), best + 1])


def nms(boxes, scores, iou_threshold=0.5, max_detections=100):
    """Indices of the boxes greedy NMS keeps, best score first.

    The best remaining box is kept and every remaining box whose IoU with it is above
    iou_threshold is dropped, until none remain or max_detections are kept. Equal scores
    keep their input order.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise DecodeError("nms: {} boxes but {} scores: give one score per box".format(
            boxes.shape[0], scores.shape[0]))
    areas = (np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
             * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0))
    order = np.argsort(-scores, kind="mergesort")
    keep = []
    while order.size and len(keep) < max_detections:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        inter_h = np.maximum(np.minimum(boxes[rest, 2], boxes[best, 2])
                             - np.maximum(boxes[rest, 0], boxes[best, 0]), 0.0)
        inter_w = np.maximum(np.minimum(boxes[rest, 3], boxes[best, 3])
                             - np.maximum(boxes[rest, 1], boxes[best, 1]), 0.0)
        inter = inter_h * inter_w
        union = areas[rest] + areas[best] - inter
        # Degenerate boxes (zero union) overlap nothing.
        iou = np.where(union > 0.0, inter / np.where(union > 0.0, union, 1.0), 0.0)
        order = rest[iou <= iou_threshold]
    return keep


def _detections(anchor_ids, class_ids, scores, encodings, anchors, *, iou_threshold,
                max_detections):
    """Decode the candidates' boxes, run NMS, and build the Detection list."""
    if not len(anchor_ids):
        return []
    boxes = decode_boxes(encodings, anchors)
    keep = nms(boxes, scores, iou_threshold, max_detections)
    result = []
    for i in keep:
        box = boxes[i].tolist()
        class_id = int(class_ids[i])
        result.append(Detection(class_id, class_id - 1, float(scores[i]),
                                box[0], box[1], box[2], box[3]))
    log.debug("%d candidates, %d detections after NMS (anchors %s)", len(scores),
              len(result), [int(anchor_ids[i]) for i in keep])
    return result


def decode_dense(box_encodings, class_logits, anchors, *, score_threshold=0.5,
                 iou_threshold=0.5, max_detections=100):
    """Detections, best score first, from the dense tensors: box_encodings [N, 4]
    (concat), class_logits [N, 1 + C] (concat_1), anchors [N, 4]. Flat lists (a
    FloatTensor's data) are accepted. An anchor is a candidate when its score is above
    score_threshold."""
    table = _anchor_table(anchors)
    count = table.shape[0]
    enc = _box_encodings(box_encodings, count)
    class_ids, scores = best_classes(_class_logits(class_logits, count))
    picked = np.nonzero(scores > score_threshold)[0]
    return _detections(picked, class_ids[picked], scores[picked], enc[picked], table[picked],
                       iou_threshold=iou_threshold, max_detections=max_detections)


def decode_sparse(hits, box_encodings_by_anchor, anchors, *, score_threshold=0.5,
                  iou_threshold=0.5, max_detections=100):
    """Detections, best score first, from the bonnet's sparse outputs.

    hits: (anchor, class, logit) triples from the logits' thresholding config, class being
    the column of concat_1 (0 = background, ignored). box_encodings_by_anchor: a mapping
    (or (anchor, encoding) pairs) anchor -> (ty, tx, th, tw) from the boxes'
    from_sparse_tensor config; only anchors with a hit need an entry. Gives the same
    detections as decode_dense on the full tensors.
    """
    table = _anchor_table(anchors)
    count = table.shape[0]
    try:
        encodings = dict(box_encodings_by_anchor)
    except (TypeError, ValueError) as exc:
        raise DecodeError("box_encodings_by_anchor: expected a mapping anchor -> (ty, tx, th, "
                          "tw) or (anchor, encoding) pairs ({})".format(exc)) from None
    best = {}
    for number, hit in enumerate(hits):
        try:
            anchor, class_id, logit = hit
            anchor, class_id, logit = int(anchor), int(class_id), float(logit)
        except (TypeError, ValueError):
            raise DecodeError("hits[{}]: expected (anchor, class, logit), got {!r}".format(
                number, hit)) from None
        if not 0 <= anchor < count:
            raise DecodeError("hits[{}]: anchor {} out of range: the anchors table has {} rows; "
                              "use the anchors.txt of the same bundle".format(
                                  number, anchor, count))
        if class_id < 1:
            continue
        current = best.get(anchor)
        # Lowest class on equal logits, as the dense path's argmax.
        if (current is None or logit > current[1]
                or (logit == current[1] and class_id < current[0])):
            best[anchor] = (class_id, logit)
    anchor_ids = sorted(best)
    class_ids = np.array([best[a][0] for a in anchor_ids], dtype=np.int64)
    scores = sigmoid(np.array([best[a][1] for a in anchor_ids], dtype=np.float64))
    picked = [i for i in range(len(anchor_ids)) if scores[i] > score_threshold]
    if not picked:
        return []
    rows = []
    for i in picked:
        anchor = anchor_ids[i]
        if anchor not in encodings:
            raise DecodeError("box_encodings_by_anchor: no encoding for anchor {}, which has a "
                              "class hit: the boxes' sparse config must select the same anchors "
                              "as the logits' thresholding".format(anchor))
        encoding = np.asarray(encodings[anchor], dtype=np.float64).reshape(-1)
        if encoding.size != 4:
            raise DecodeError("box_encodings_by_anchor[{}]: expected 4 floats (ty, tx, th, tw), "
                              "got {}".format(anchor, encoding.size))
        rows.append(encoding)
    ids = np.array([anchor_ids[i] for i in picked], dtype=np.int64)
    return _detections(ids, class_ids[picked], scores[picked], np.array(rows), table[ids],
                       iou_threshold=iou_threshold, max_detections=max_detections)
