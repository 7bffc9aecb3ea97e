"""Greedy non-maximum suppression of decoded boxes, best score first.

Class-agnostic (as AIY's own decoder): a face model has a single class, and for several
classes one object should not come back once per class. Two ways keep the same boxes:
the IoU matrix, a block of rows at a time (many boxes kept), and a loop on Python floats
that compares a box with the kept ones only (few kept; nms_floats). They do the same IEEE
operations in the same order, so they agree to the bit.

nms takes boxes and scores in any order; nms_ranked and nms_floats are the two ways on
boxes already in score order, which the decoder (facekit.detector.decode) calls. Python
3.5 and numpy only: this runs on the kit.
"""

import math

import numpy as np

from facekit.detector.tensors import DecodeError


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
    return [int(order[i]) for i in nms_ranked(ranked, iou_threshold, max_detections)]


# Rows of the IoU matrix computed at a time: bounds its memory (NMS_BLOCK x candidates)
# when many anchors pass the score threshold.
NMS_BLOCK = 128


def nms_ranked(coords, iou_threshold, max_detections):
    """Greedy NMS of boxes already in score order, best first, given as float64
    [4, K] (a row per coordinate, as decode_coords gives them): the positions kept, at
    most max_detections.

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


def nms_floats(boxes, threshold, max_detections):
    """nms_ranked of few boxes in score order, best first, as sequences of 4 Python floats
    (ymin, xmin, ymax, xmax) in [0, 1] or NaN, with threshold >= 0 (a float): the positions
    kept. Each box is compared with the kept ones only, which costs less than an IoU matrix
    while few are kept. None if a box has NaN (Python's min and max do not propagate it as
    numpy's do: the IoU matrix must decide)."""
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
