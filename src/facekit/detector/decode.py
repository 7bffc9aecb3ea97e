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

Python 3.5 and numpy only: this runs on the kit, whose CPU is slow, so a frame costs
little. Only anchors whose best logit can pass the score threshold (a bound a unit below
its logit, compared in numpy) are candidates; of flat lists only the logits (a one-class
model's class column) and the candidates' encodings are converted (with struct, not
np.asarray). A realistic frame has a few faces of a handful of anchors each: up to
PYTHON_DECODE_LIMIT candidates are scored, decoded and NMS'd in one loop on Python
floats, as a numpy call costs as much as a whole candidate there. More go through numpy
(NMS still on Python floats while few boxes can be kept, an IoU matrix otherwise). Both
ways do the same IEEE operations in the same order, math.exp or np.exp aside (which
may differ in the last bit); the dense and sparse forms of a frame take the same way and
agree to the bit. A FloatTensor message's floats come fastest from its wire form
(facekit.detector.wire.tensor_values).
"""

import collections
import logging
import math
import struct

import numpy as np

from facekit.model.anchors_file import read_anchors
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
    """Output tensors or an anchor table the decoder cannot use."""


def load_anchors(path):
    """The anchor table of an anchors.txt as a float32 array [N, 4] (ymin xmin ymax xmax).

    AnchorsFileError (facekit.model.anchors_file) names the file and line of a malformed
    row.
    """
    return np.array(read_anchors(path), dtype=np.float32)


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
        extend = flat.extend
        for row in rows:
            start = 4 * row
            extend(source[start:start + 4])
        enc = _packed(flat)
        if enc is not None and enc.size == 4 * len(rows):
            return enc.reshape(-1, 4)
        source = _box_encodings(source, len(source) // 4)
    return source.take(rows, 0).astype(np.float64)


def _flat_encoding_rows(source, rows):
    """The encodings of rows (anchor numbers) of an _encoding_source as one flat tuple of
    Python floats, or None if they do not convert (the numpy way then says why)."""
    if isinstance(source, np.ndarray):
        return tuple(source.take(rows, 0).astype(np.float64).ravel().tolist())
    flat = []
    extend = flat.extend
    for row in rows:
        start = 4 * row
        extend(source[start:start + 4])
    if len(flat) != 4 * len(rows):
        return None
    return _flat_floats(flat)


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
    enc = _box_encodings(encodings, table.shape[0])
    return np.ascontiguousarray(_decode_coords(enc, table, scales).T)


def _decode_coords(enc, anchors, scales=SCALES):
    """decode_boxes of float64 arrays [K, 4] already checked, as a new array [4, K]
    (a row per coordinate, as NMS wants them)."""
    size = anchors[:, 2:] - anchors[:, :2]                  # ha, wa
    centre = anchors[:, :2] + 0.5 * size                    # yca, xca
    # A huge th/tw overflows to inf: the box then covers the image after clamping. With
    # the default scales, encodings below 500 cannot overflow (a check cheaper than
    # np.errstate on old numpy); anything else decodes with the warnings silenced.
    if scales is SCALES and np.maximum.reduce(np.abs(enc), None) < 500.0:
        boxes = _corners(enc / _SCALES, size, centre)
    else:
        sy, sx, sh, sw = (float(s) for s in scales)
        with np.errstate(over="ignore", invalid="ignore"):
            boxes = _corners(enc / np.array([sy, sx, sh, sw]), size, centre)
    # np.clip(boxes, 0, 1) (NaN stays NaN) in two cheaper calls.
    return np.minimum(np.maximum(boxes, 0.0), 1.0)


def _corners(scaled, size, centre):
    """[4, K] corners from the encodings divided by the scales [K, 4], the anchors'
    sizes and centres [K, (y, x)]."""
    half = 0.5 * np.exp(scaled[:, 2:]) * size               # half height, half width
    mid = scaled[:, :2] * size + centre                     # yc, xc
    boxes = np.empty((4, scaled.shape[0]))
    np.subtract(mid, half, boxes[:2].T)
    np.add(mid, half, boxes[2:].T)
    return boxes


_SCALES = np.array(SCALES)


def sigmoid(logits):
    """1 / (1 + exp(-x)) elementwise, without overflow for large negative x."""
    return _sigmoid(np.asarray(logits, dtype=np.float64))


def _sigmoid(x):
    """sigmoid of a float64 array."""
    e = np.exp(-np.abs(x))
    d = 1.0 + e
    return np.where(x >= 0, 1.0 / d, e / d)


def _positive_sigmoid(x):
    """_sigmoid of a float64 array of positive numbers: the same values in fewer steps
    (positional `out`: no keyword to parse)."""
    d = np.negative(x)
    np.exp(d, d)
    d += 1.0
    return np.divide(1.0, d, d)


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
    order = np.argsort(-scores, kind="mergesort")
    ranked = np.ascontiguousarray(boxes[order].T)
    return [int(order[i]) for i in _nms_ranked(ranked, iou_threshold, max_detections)]


# Rows of the IoU matrix computed at a time: bounds its memory (NMS_BLOCK x candidates)
# when many anchors pass the score threshold.
NMS_BLOCK = 128


def _nms_ranked(coords, iou_threshold, max_detections):
    """Greedy NMS of boxes already in score order, best first, given as float64
    [4, K] (a row per coordinate): the positions kept.

    The IoUs are computed as a matrix, a block of rows at a time, then one pass keeps a
    box unless a kept one overlaps it; only the kept boxes' rows are used."""
    count = coords.shape[1]
    if count == 0 or max_detections < 1:
        return []
    threshold = float(iou_threshold)
    if math.isnan(threshold):
        return [0]  # no IoU is <= NaN: the best box drops all the others
    sides = np.maximum(coords[2:] - coords[:2], 0.0)
    areas = sides[0] * sides[1]
    suppressed = np.zeros(count, dtype=bool)
    keep = []
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        if start and suppressed[start:stop].all():
            continue
        # over[r, j]: box start + r drops box start + j.
        if count <= NMS_BLOCK:
            over = _overlaps(coords, areas, coords, areas, threshold)
            later = suppressed
        else:
            over = _overlaps(coords[:, start:stop], areas[start:stop], coords[:, start:],
                             areas[start:], threshold)
            later = suppressed[start:]
        for row in range(stop - start):
            if suppressed[start + row]:
                continue
            keep.append(start + row)
            if len(keep) >= max_detections:
                return keep
            later |= over[row]
    return keep


def _overlaps(rows, row_areas, cols, col_areas, threshold):
    """bool [R, C]: IoU(rows[:, r], cols[:, c]) > threshold (a float, not NaN) of boxes
    [4, R] and [4, C] with their areas; computed as for a box against each other box,
    so symmetric."""
    # [(y, x), R, C]: the intersection's height and width.
    sides = (np.minimum(rows[2:, :, None], cols[2:, None, :])
             - np.maximum(rows[:2, :, None], cols[:2, None, :]))
    sides = np.maximum(sides, 0.0)
    inter = sides[0] * sides[1]
    union = (col_areas + row_areas[:, None]) - inter
    # Degenerate boxes (zero union) overlap nothing: their IoU is 0. Where the union is
    # not positive, the intersection is 0 (or the union NaN): divided by inf it stays
    # 0 (or NaN), not above a threshold >= 0, just like 0.
    if threshold >= 0.0:
        return inter / np.where(union > 0.0, union, np.inf) > threshold
    iou = np.where(union > 0.0, inter / np.where(union > 0.0, union, 1.0), 0.0)
    return iou > threshold


# NMS runs on Python floats when at most this many boxes can be kept (max_detections,
# or fewer candidates): it compares a box with the kept ones only, and a numpy call
# costs as much as dozens of IoUs in Python; the IoU matrix wins only when hundreds of
# boxes are kept. Both ways do the same IEEE operations, so they agree to the bit.
PYTHON_NMS_LIMIT = 128


def _detections(anchor_ids, class_ids, scores, encodings, table, *, iou_threshold,
                max_detections):
    """The Detection list of candidates: anchor_ids int array [K] (ascending), their
    class_ids [K] (None: class 1 for all) and float64 scores [K]; encodings(rows) gives
    the float64 encodings [len(rows), 4] of a list of anchors; table is the anchor table.
    The candidates are put in score order first, then decoded and NMS'd in that order."""
    order = np.negative(scores).argsort(kind="mergesort")
    ranked = anchor_ids.take(order)
    enc = encodings(ranked.tolist())
    coords = _decode_coords(enc, table.take(ranked, 0).astype(np.float64))
    threshold = float(iou_threshold)
    boxes = keep = None
    if min(coords.shape[1], max_detections) <= PYTHON_NMS_LIMIT and threshold >= 0.0:
        boxes = coords.T.tolist()
        keep = _few_nms(boxes, threshold, max_detections)
    if keep is None:
        keep = _nms_ranked(coords, threshold, max_detections)
    if not keep:
        return []
    kept = order.take(keep)
    if boxes is None:
        kept_boxes = coords.take(keep, 1).T.tolist()
    else:
        kept_boxes = [boxes[position] for position in keep]
    kept_scores = scores.take(kept).tolist()
    if class_ids is None:
        result = [Detection(1, 0, score, box[0], box[1], box[2], box[3])
                  for score, box in zip(kept_scores, kept_boxes)]
    else:
        result = [Detection(c, c - 1, score, box[0], box[1], box[2], box[3])
                  for c, score, box in zip(class_ids.take(kept).tolist(), kept_scores,
                                           kept_boxes)]
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%d candidates, %d detections after NMS (anchors %s)", len(scores),
                  len(result), ranked.take(keep).tolist())
    return result


# At most this many candidates (anchors past the logit bound) are scored, decoded and NMS'd
# on Python floats with math.exp: a numpy call costs as much as a whole candidate there, and
# a realistic frame has a few faces of a handful of anchors each. More go the numpy way.
PYTHON_DECODE_LIMIT = 64


def _few_detections(ids, class_ids, logits, encodings, table, *, score_threshold,  # noqa: PLR0912, PLR0915 - one loop: a call per candidate costs
                    iou_threshold, max_detections):
    """The Detection list of few candidates, all on Python floats, or None where the numpy
    way must decide (a th or tw so large or NaN that exp could overflow; a NaN box).
    ids: anchor numbers (ascending); class_ids: their class ids or None (class 1 for
    all); logits: their best logits; encodings(rows): the (ty, tx, th, tw) of a list of
    anchors as one flat tuple of floats, or None if they are not numbers.

    Each candidate, best first, is decoded and compared with the boxes kept so far, as
    _few_nms does: the same IEEE operations in the same order as the numpy way; only the
    exponential is the C library's, which may differ from numpy's in the last bit. Dense
    and sparse frames with the same candidates take the same way: they agree to the bit."""
    threshold = float(iou_threshold)
    if not threshold >= 0.0 or max_detections < 1:  # NaN or negative: the IoU matrix
        return None
    scored = _few_scores(logits, score_threshold)
    if not scored:
        return []
    rows = [ids[position] for _, position in scored]
    flat = encodings(rows)
    if flat is None:
        return None
    kept = []
    result = []
    exp = math.exp
    quads = iter(flat)
    for (score, position), (ymin, xmin, ymax, xmax), (ty, tx, th, tw) in zip(
            scored, table.take(rows, 0).tolist(), zip(quads, quads, quads, quads)):
        if not (th < 3500.0 and tw < 3500.0):  # exp(700) is the most that stays finite
            return None
        ha = ymax - ymin
        wa = xmax - xmin
        half_h = 0.5 * exp(th / 5.0) * ha
        half_w = 0.5 * exp(tw / 5.0) * wa
        yc = ty / 10.0 * ha + (ymin + 0.5 * ha)
        xc = tx / 10.0 * wa + (xmin + 0.5 * wa)
        # Clamped as np.minimum(np.maximum(v, 0), 1): -0.0 stays as it is.
        y0 = yc - half_h
        y0 = 0.0 if y0 < 0.0 else 1.0 if y0 > 1.0 else y0
        x0 = xc - half_w
        x0 = 0.0 if x0 < 0.0 else 1.0 if x0 > 1.0 else x0
        y1 = yc + half_h
        y1 = 0.0 if y1 < 0.0 else 1.0 if y1 > 1.0 else y1
        x1 = xc + half_w
        x1 = 0.0 if x1 < 0.0 else 1.0 if x1 > 1.0 else x1
        # NMS against the boxes kept so far, as _few_nms (inline: a call per candidate costs).
        height = y1 - y0
        width = x1 - x0
        if height != height or width != width:  # noqa: PLR0124 - NaN, without a call
            return None
        area = (height if height > 0.0 else 0.0) * (width if width > 0.0 else 0.0)
        for kymin, kxmin, kymax, kxmax, karea in kept:
            inter_h = (y1 if y1 < kymax else kymax) - (y0 if y0 > kymin else kymin)
            if inter_h <= 0.0:
                continue
            inter_w = (x1 if x1 < kxmax else kxmax) - (x0 if x0 > kxmin else kxmin)
            if inter_w <= 0.0:
                continue
            inter = inter_h * inter_w
            union = (area + karea) - inter
            if union > 0.0 and inter / union > threshold:
                break
        else:
            kept.append((y0, x0, y1, x1, area))
            class_id = 1 if class_ids is None else class_ids[position]
            result.append(Detection(class_id, class_id - 1, -score, y0, x0, y1, x1))
            if len(result) >= max_detections:
                break
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%d candidates, %d detections after NMS", len(logits), len(result))
    return result


def _few_scores(logits, score_threshold):
    """[(-score, position)] of the logits whose sigmoid is above score_threshold, best
    first; equal scores keep their order (the positions ascend)."""
    exp = math.exp
    scored = []
    for position, logit in enumerate(logits):
        # sigmoid, stable for large negative logits (as _sigmoid).
        if logit >= 0.0:
            score = 1.0 / (1.0 + exp(-logit))
        else:
            e = exp(logit)
            score = e / (1.0 + e)
        if score > score_threshold:
            scored.append((-score, position))
    scored.sort()
    return scored


def _flat_floats(values):
    """A flat sequence of numbers as a tuple of Python floats, or None if it is not one
    (struct converts them all in C: numpy scalars and ints too)."""
    try:
        fmt = "{}d".format(len(values))
        return struct.unpack(fmt, struct.pack(fmt, *values))
    except (struct.error, TypeError, ValueError, OverflowError):
        return None


def _few_nms(boxes, threshold, max_detections):
    """_nms_ranked of boxes in score order as sequences of 4 floats in [0, 1] or NaN, with
    threshold >= 0; None if a box has NaN (Python's min and max do not propagate it as
    numpy's do: the IoU matrix must decide). The loop is _few_detections' too."""
    kept = []
    keep = []
    if max_detections < 1:
        return keep
    for position, (ymin, xmin, ymax, xmax) in enumerate(boxes):
        height = ymax - ymin
        width = xmax - xmin
        if height != height or width != width:  # noqa: PLR0124 - NaN, without a call
            return None
        area = (height if height > 0.0 else 0.0) * (width if width > 0.0 else 0.0)
        for kymin, kxmin, kymax, kxmax, karea in kept:
            # An empty intersection has IoU 0, not above threshold >= 0.
            inter_h = (ymax if ymax < kymax else kymax) - (ymin if ymin > kymin else kymin)
            if inter_h <= 0.0:
                continue
            inter_w = (xmax if xmax < kxmax else kxmax) - (xmin if xmin > kxmin else kxmin)
            if inter_w <= 0.0:
                continue
            inter = inter_h * inter_w
            union = (area + karea) - inter
            if union > 0.0 and inter / union > threshold:
                break
        else:
            kept.append((ymin, xmin, ymax, xmax, area))
            keep.append(position)
            if len(keep) >= max_detections:
                break
    return keep


def _logit_floor(score_threshold):
    """A logit at or below which no anchor scores above score_threshold, or None when
    there is no safe such bound (a threshold outside (0, 1), or so close to 1 that
    rounding decides).

    The bound is the threshold's logit minus a margin of one: sigmoid is monotonic, and a
    unit below the boundary it is clearly below the threshold. From 0.5 up, the bound is
    at least 0: the sigmoid of a logit <= 0 is <= 0.5 in floating point too."""
    try:
        threshold = float(score_threshold)
    except (TypeError, ValueError):
        return None
    if not 0.0 < threshold < 1.0 - 1e-9:
        return None
    floor = math.log(threshold / (1.0 - threshold)) - 1.0
    return max(floor, 0.0) if threshold >= 0.5 else floor


def _array_if_cheap(values):
    """values as an array when they convert to one cheaply (they have __array__, as the
    repeated fields of protobuf >= 4 do: a copy of their float32 buffer), else as given
    (a list, or the repeated field of an older protobuf, is read element by element)."""
    if hasattr(values, "__array__") and not isinstance(values, np.ndarray):
        return np.asarray(values)
    return values


def _best_logits(class_logits, count):
    """(best non-background logit per anchor, float64 [count]; the logits float64
    [count, 1 + C], or None for a one-class model). Of a flat list of a one-class
    model only the class column is converted."""
    if not isinstance(class_logits, np.ndarray):
        try:
            column = class_logits[1::2] if len(class_logits) == 2 * count else None
        except (TypeError, ValueError, KeyError):
            column = None
        best = None if column is None else _packed(column)
        if best is not None and best.shape[0] == count:
            return best, None
    logits = _class_logits(class_logits, count)
    if logits.shape[1] == 2:
        return logits[:, 1], None
    return logits[:, 1:].max(axis=1), logits


def decode_dense(box_encodings, class_logits, anchors, *, score_threshold=0.5,
                 iou_threshold=0.5, max_detections=100):
    """Detections, best score first, from the dense tensors: box_encodings [N, 4]
    (concat), class_logits [N, 1 + C] (concat_1), anchors [N, 4]. Flat sequences are
    accepted: pass a FloatTensor's repeated `data` as it is (list() first only costs
    time). An anchor is a candidate when its score is above score_threshold.

    Only candidates are decoded: the logits are compared with a bound below the
    threshold's logit first; the anchors above it get a score, and those above the
    threshold a box (only their encodings are read from a flat list) and NMS."""
    table = _anchor_table(anchors)
    count = table.shape[0]
    source = _encoding_source(_array_if_cheap(box_encodings), count)
    best, logits = _best_logits(_array_if_cheap(class_logits), count)
    floor = _logit_floor(score_threshold)
    if floor is None:
        candidates = np.arange(count)
        scores = _sigmoid(best)
    else:
        candidates = (best > floor).nonzero()[0]
        if not candidates.size:
            return []
        best = best.take(candidates)
        if candidates.size <= PYTHON_DECODE_LIMIT and max_detections <= PYTHON_NMS_LIMIT:
            class_ids = None
            if logits is not None:
                class_ids = (np.argmax(logits[candidates, 1:], axis=1) + 1).tolist()
            result = _few_detections(candidates.tolist(), class_ids, best.tolist(),
                                     lambda rows: _flat_encoding_rows(source, rows), table,
                                     score_threshold=score_threshold,
                                     iou_threshold=iou_threshold,
                                     max_detections=max_detections)
            if result is not None:
                return result
        scores = _positive_sigmoid(best) if floor >= 0.0 else _sigmoid(best)
    picked = np.nonzero(scores > score_threshold)[0]
    if picked.size < candidates.size:
        if not picked.size:
            return []
        candidates = candidates.take(picked)
        scores = scores.take(picked)
    class_ids = None
    if logits is not None:
        # The lowest class on a tie, as argmax.
        class_ids = np.argmax(logits[candidates, 1:], axis=1) + 1
    return _detections(candidates, class_ids, scores,
                       lambda rows: _encoding_rows(source, rows), table,
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
    if isinstance(box_encodings_by_anchor, dict):
        encodings = box_encodings_by_anchor
    else:
        try:
            encodings = dict(box_encodings_by_anchor)
        except (TypeError, ValueError) as exc:
            raise DecodeError("box_encodings_by_anchor: expected a mapping anchor -> (ty, tx, "
                              "th, tw) or (anchor, encoding) pairs ({})".format(exc)) from None
    best = _best_hits(hits, count)
    floor = _logit_floor(score_threshold)
    anchor_ids = sorted(a for a, (_, logit) in best.items() if floor is None or logit > floor)
    if not anchor_ids:
        return []
    options = dict(score_threshold=score_threshold, iou_threshold=iou_threshold,
                   max_detections=max_detections)
    if (floor is not None and len(anchor_ids) <= PYTHON_DECODE_LIMIT
            and max_detections <= PYTHON_NMS_LIMIT):
        result = _few_sparse(anchor_ids, best, encodings, table, options)
        if result is not None:
            return result
    logits = np.array([best[a][1] for a in anchor_ids], dtype=np.float64)
    scores = (_positive_sigmoid(logits) if floor is not None and floor >= 0.0
              else _sigmoid(logits))
    picked = np.nonzero(scores > score_threshold)[0]
    if not picked.size:
        return []
    ids = [anchor_ids[i] for i in picked.tolist()]
    for anchor in ids:
        if anchor not in encodings:
            _missing_encoding(anchor)
    classes = [best[a][0] for a in ids]
    class_ids = None if classes.count(1) == len(classes) else np.array(classes, dtype=np.int64)
    return _detections(np.array(ids, dtype=np.int64), class_ids, scores.take(picked),
                       lambda rows: _sparse_encodings(rows, [encodings[a] for a in rows]),
                       table, iou_threshold=iou_threshold, max_detections=max_detections)


def _best_hits(hits, count):
    """{anchor: (class, logit)} of the best non-background hit of each anchor; DecodeError
    names a hit that is not (anchor, class, logit) or whose anchor is out of range."""
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
    return best


def _few_sparse(anchor_ids, best, encodings, table, options):
    """_few_detections of the sparse candidates anchor_ids, best {anchor: (class, logit)}."""
    classes = [best[a][0] for a in anchor_ids]
    return _few_detections(anchor_ids, None if classes.count(1) == len(classes) else classes,
                           [best[a][1] for a in anchor_ids],
                           lambda rows: _sparse_flat_encodings(rows, encodings), table,
                           **options)


def _sparse_flat_encodings(ids, encodings):
    """The encodings of anchors ids as one flat tuple of Python floats; DecodeError names
    an anchor without one; None if one is not 4 numbers (_sparse_encodings says why)."""
    flat = []
    extend = flat.extend
    for anchor in ids:
        row = encodings.get(anchor)
        if row is None:
            _missing_encoding(anchor)
        try:
            if len(row) != 4:
                return None
        except TypeError:
            return None
        extend(row)
    return _flat_floats(flat)


def _missing_encoding(anchor):
    raise DecodeError("box_encodings_by_anchor: no encoding for anchor {}, which has a "
                      "class hit: the boxes' sparse config must select the same anchors "
                      "as the logits' thresholding".format(anchor))


def _sparse_encodings(ids, rows):
    """float64 [K, 4] of the encodings of anchors ids; DecodeError names an anchor whose
    encoding is not 4 floats."""
    try:
        fast = all(len(row) == 4 for row in rows)
    except TypeError:
        fast = False
    if fast:
        flat = []
        for row in rows:
            flat.extend(row)
        enc = _packed(flat)
        if enc is not None:
            return enc.reshape(-1, 4)
    checked = []
    for anchor, row in zip(ids, rows):
        encoding = np.asarray(row, dtype=np.float64).reshape(-1)
        if encoding.size != 4:
            raise DecodeError("box_encodings_by_anchor[{}]: expected 4 floats (ty, tx, th, tw), "
                              "got {}".format(anchor, encoding.size))
        checked.append(encoding)
    return np.array(checked)
