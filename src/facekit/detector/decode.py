"""Decoding of the SSD output tensors the Vision Bonnet returns, on the Vision Kit.

The bonnet runs the compiled graph and returns two tensors per frame: `concat`, the box
encodings [N, 4] as (ty, tx, th, tw), and `concat_1`, the class logits [N, 1 + C] with
the background class first. This module turns them into detections the way the
Object Detection API's post-processing does: the Faster R-CNN box coder with scales
(10, 10, 5, 5) against the anchor table, boxes clamped to [0, 1], score = sigmoid of the
best non-background logit, then greedy, class-agnostic non-maximum suppression.

Its parts, one module each (their public names are importable from here too):
  tensors  the inputs read in every form (dense, flat, sparse), the anchor table, DecodeError
  boxes    the box coder (decode_boxes)
  scores   logits to scores (sigmoid) and the logit bound that picks the candidates
  nms      non-maximum suppression (nms), as an IoU matrix or on Python floats

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

import numpy as np

from facekit.detector.boxes import SCALES, decode_boxes, decode_coords
from facekit.detector.nms import nms, nms_floats, nms_ranked
from facekit.detector.scores import (
    array_sigmoid,
    class_limit,
    class_thresholds,
    logit_floor,
    positive_sigmoid,
    scores_above,
    sigmoid,
)
from facekit.detector.tensors import (
    DecodeError,
    anchor_table,
    best_hits,
    best_logits,
    encoding_rows,
    encoding_source,
    flat_encoding_rows,
    load_anchors,
    sparse_encodings,
    sparse_flat_encodings,
)

# The decoder's API, whichever module holds each part.
__all__ = ["DecodeError", "Detection", "SCALES", "decode_boxes", "decode_dense",
           "decode_sparse", "load_anchors", "nms", "sigmoid"]

log = logging.getLogger(__name__)

# The kit's defaults (facekit-detector --iou and --max-detections; facekit eval run decodes
# with them too).
IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100

Detection = collections.namedtuple(
    "Detection", ["class_id", "label_index", "score", "ymin", "xmin", "ymax", "xmax"])
Detection.__doc__ = """One detection.

class_id is the model's 1-based class id (the column of the logits tensor), label_index
is class_id - 1, the line of labels.txt (0-based). score is in (0, 1); the box is
normalised to [0, 1] in (ymin, xmin, ymax, xmax) order: multiply by the image's height
and width for pixels."""


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
    coords = decode_coords(enc, table.take(ranked, 0).astype(np.float64))
    threshold = float(iou_threshold)
    boxes = keep = None
    if min(coords.shape[1], max_detections) <= PYTHON_NMS_LIMIT and threshold >= 0.0:
        boxes = coords.T.tolist()
        keep = nms_floats(boxes, threshold, max_detections)
    if keep is None:
        keep = nms_ranked(coords, threshold, max_detections)
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


def _few_detections(ids, class_ids, logits, encodings, table, *, score_threshold,  # noqa: PLR0912, PLR0913, PLR0915 - one loop: a call per candidate costs
                    iou_threshold, max_detections, per_class=None):
    """The Detection list of few candidates, all on Python floats, or None where the numpy
    way must decide (a th or tw so large or NaN that exp could overflow; a NaN box).
    ids: anchor numbers (ascending); class_ids: their class ids or None (class 1 for
    all); logits: their best logits; encodings(rows): the (ty, tx, th, tw) of a list of
    anchors as one flat tuple of floats, or None if they are not numbers. per_class:
    class_thresholds' tuple when the classes' thresholds differ (score_threshold is then
    the lowest).

    Each candidate, best first, is decoded and compared with the boxes kept so far, as
    nms_floats does: the same IEEE operations in the same order as the numpy way; only the
    exponential is the C library's, which may differ from numpy's in the last bit. Dense
    and sparse frames with the same candidates take the same way: they agree to the bit."""
    threshold = float(iou_threshold)
    if not threshold >= 0.0 or max_detections < 1:  # NaN or negative: the IoU matrix
        return None
    scored = scores_above(logits, score_threshold)
    if per_class is not None:
        scored = [(score, position) for score, position in scored
                  if -score > class_limit(per_class, 1 if class_ids is None
                                          else class_ids[position])]
    if not scored:
        return []
    rows = [ids[position] for _, position in scored]
    flat = encodings(rows)
    if flat is None:
        return None
    boxes = []
    exp = math.exp
    quads = iter(flat)
    for (ymin, xmin, ymax, xmax), (ty, tx, th, tw) in zip(table.take(rows, 0).tolist(),
                                                          zip(quads, quads, quads, quads)):
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
        boxes.append((y0, x0, y1, x1))
    keep = nms_floats(boxes, threshold, max_detections)
    if keep is None:  # a NaN box
        return None
    result = []
    for position in keep:
        score, candidate = scored[position]
        class_id = 1 if class_ids is None else class_ids[candidate]
        result.append(Detection(class_id, class_id - 1, -score, *boxes[position]))
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%d candidates, %d detections after NMS", len(logits), len(result))
    return result


def decode_dense(box_encodings, class_logits, anchors, *, score_threshold=0.5,
                 iou_threshold=IOU_THRESHOLD, max_detections=MAX_DETECTIONS):
    """Detections, best score first, from the dense tensors: box_encodings [N, 4]
    (concat), class_logits [N, 1 + C] (concat_1), anchors [N, 4]. Flat sequences are
    accepted: pass a FloatTensor's repeated `data` as it is (list() first only costs
    time). An anchor is a candidate when its score is above score_threshold: one score
    for every class, or a sequence of one per class id in labels.txt's order (a class
    past its end takes the lowest), compared with the anchor's best class.

    Only candidates are decoded: the logits are compared with a bound below the
    threshold's logit first; the anchors above it get a score, and those above the
    threshold a box (only their encodings are read from a flat list) and NMS."""
    table = anchor_table(anchors)
    count = table.shape[0]
    source = encoding_source(box_encodings, count)
    best, logits = best_logits(class_logits, count)
    score_threshold, per_class = class_thresholds(score_threshold)
    floor = logit_floor(score_threshold)
    if floor is None:
        candidates = np.arange(count)
        scores = array_sigmoid(best)
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
                                     lambda rows: flat_encoding_rows(source, rows), table,
                                     score_threshold=score_threshold,
                                     iou_threshold=iou_threshold,
                                     max_detections=max_detections, per_class=per_class)
            if result is not None:
                return result
        scores = positive_sigmoid(best) if floor >= 0.0 else array_sigmoid(best)
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
    if per_class is not None:
        candidates, class_ids, scores = _above_own(per_class, candidates, class_ids, scores)
        if not candidates.size:
            return []
    return _detections(candidates, class_ids, scores,
                       lambda rows: encoding_rows(source, rows), table,
                       iou_threshold=iou_threshold, max_detections=max_detections)


def _above_own(per_class, candidates, class_ids, scores):
    """The candidates (and their class ids and scores) above their own class's threshold."""
    limits = np.array(per_class, dtype=np.float64)
    classes = np.ones(len(scores), dtype=np.int64) if class_ids is None else class_ids
    keep = np.nonzero(scores > limits.take(np.minimum(classes, len(limits)) - 1))[0]
    return (candidates.take(keep), None if class_ids is None else class_ids.take(keep),
            scores.take(keep))


def decode_sparse(hits, box_encodings_by_anchor, anchors, *, score_threshold=0.5,
                  iou_threshold=IOU_THRESHOLD, max_detections=MAX_DETECTIONS):
    """Detections, best score first, from the bonnet's sparse outputs.

    hits: (anchor, class, logit) triples from the logits' thresholding config, class being
    the column of concat_1 (0 = background, ignored). box_encodings_by_anchor: a mapping
    (or (anchor, encoding) pairs) anchor -> (ty, tx, th, tw) from the boxes'
    from_sparse_tensor config; only anchors with a hit need an entry. score_threshold as
    decode_dense's; the bonnet's own thresholding must use the lowest. Gives the same
    detections as decode_dense on the full tensors.
    """
    table = anchor_table(anchors)
    count = table.shape[0]
    if isinstance(box_encodings_by_anchor, dict):
        encodings = box_encodings_by_anchor
    else:
        try:
            encodings = dict(box_encodings_by_anchor)
        except (TypeError, ValueError) as exc:
            raise DecodeError("box_encodings_by_anchor: expected a mapping anchor -> (ty, tx, "
                              "th, tw) or (anchor, encoding) pairs ({})".format(exc)) from None
    best = best_hits(hits, count)
    score_threshold, per_class = class_thresholds(score_threshold)
    floor = logit_floor(score_threshold)
    anchor_ids = sorted(a for a, (_, logit) in best.items() if floor is None or logit > floor)
    if not anchor_ids:
        return []
    options = dict(score_threshold=score_threshold, iou_threshold=iou_threshold,
                   max_detections=max_detections, per_class=per_class)
    if (floor is not None and len(anchor_ids) <= PYTHON_DECODE_LIMIT
            and max_detections <= PYTHON_NMS_LIMIT):
        result = _few_sparse(anchor_ids, best, encodings, table, options)
        if result is not None:
            return result
    logits = np.array([best[a][1] for a in anchor_ids], dtype=np.float64)
    scores = (positive_sigmoid(logits) if floor is not None and floor >= 0.0
              else array_sigmoid(logits))
    picked = np.nonzero(scores > score_threshold)[0]
    if not picked.size:
        return []
    ids = np.array([anchor_ids[i] for i in picked.tolist()], dtype=np.int64)
    classes = [best[a][0] for a in ids.tolist()]
    class_ids = None if classes.count(1) == len(classes) else np.array(classes, dtype=np.int64)
    scores = scores.take(picked)
    if per_class is not None:
        ids, class_ids, scores = _above_own(per_class, ids, class_ids, scores)
        if not ids.size:
            return []
    return _detections(ids, class_ids, scores,
                       lambda rows: sparse_encodings(rows, encodings),
                       table, iou_threshold=iou_threshold, max_detections=max_detections)


def _few_sparse(anchor_ids, best, encodings, table, options):
    """_few_detections of the sparse candidates anchor_ids, best {anchor: (class, logit)}."""
    classes = [best[a][0] for a in anchor_ids]
    return _few_detections(anchor_ids, None if classes.count(1) == len(classes) else classes,
                           [best[a][1] for a in anchor_ids],
                           lambda rows: sparse_flat_encodings(rows, encodings), table,
                           **options)
