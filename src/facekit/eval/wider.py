"""The WIDER FACE evaluation protocol (easy / medium / hard AP), vectorised.

The protocol, as the official tools and their widely used Python port score a set:

- Scores are min-max normalised over the whole set, the bounds starting from min 1 and
  max 0 (so scores already in [0, 1] are stretched only if they span less than it).
- Per image, the predictions in file order are each matched to the face of highest IoU
  (the first such face on a tie), IoU on inclusive pixel boxes (width and height + 1).
  With IoU >= 0.5: a face the setting does not count makes the prediction ignored; a
  counted face not yet found is found (a later match to it is a false positive).
  Images with no face or no prediction are skipped (their predictions count nowhere).
- At each of 1,000 thresholds `1 - (t + 1) / 1000`, an image contributes what its
  predictions up to the last one scoring at or above the threshold found (faces) and
  proposed (predictions not ignored). Precision = found / proposed, recall = found / the
  faces the setting counts, AP = VOC all-point AP of that curve.

Here every image is scored at once. IoUs of each prediction with its image's faces are
computed in chunks of a few million pairs; the per-image walk becomes cumulative sums
within images; and instead of asking, for each threshold and image, which prediction is
the last above it, each prediction adds its counts to the range of thresholds for which
it is that last one (from its own score's threshold index to the smallest index of any
later prediction of its image) through a difference array. The arithmetic (IoU, the
normalisation, the thresholds, the AP) is the tools', operation for operation.
"""

import collections
import logging

import numpy as np

from facekit.eval.ap import voc_ap
from facekit.eval.groundtruth import SETTINGS

LOG = logging.getLogger(__name__)

THRESHOLDS = 1000
IOU_THRESHOLD = 0.5
# Prediction-face pairs per IoU chunk (5 float64 arrays of this length at a time).
PAIR_CHUNK = 1 << 20
# An image with at least this many prediction-face pairs gets its own IoU matrix.
CROWDED_PAIRS = 1 << 14

# aps: setting -> AP; precision, recall: setting -> (THRESHOLDS,) arrays (precision NaN
# where nothing was proposed); thresholds: the (THRESHOLDS,) score thresholds, highest
# first; faces: setting -> the faces it counts; score_range: (min, max) the scores were
# normalised by.
WiderResult = collections.namedtuple(
    "WiderResult", "aps precision recall thresholds faces score_range")


def thresholds(count=THRESHOLDS):
    """The tools' score thresholds, highest first: 1 - (t + 1) / count."""
    return 1.0 - (np.arange(count, dtype=np.float64) + 1.0) / count


def normalise_scores(scores):
    """(normalised scores, (low, high)): min-max over the set, bounds from min 1 and max 0.
    With every score the same value in [0, 1] the range is empty and the scores become NaN,
    as in the tools: nothing passes any threshold (logged as a warning)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not scores.size:
        return scores.copy(), (1.0, 0.0)
    low = min(1.0, float(scores.min()))
    high = max(0.0, float(scores.max()))
    if high == low:
        LOG.warning("every prediction scores %r: normalised over an empty range, no "
                    "prediction passes any threshold (all APs 0); write the detector's "
                    "scores", high)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (scores - low) / (high - low), (low, high)


def _segment_starts(lengths):
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return starts


def _iou(pred, face):
    """IoU of inclusive pixel boxes (corners x2 = x + w, sizes + 1), elementwise or
    broadcast, from two (x1, y1, x2, y2, area) tuples as _corners gives them; 0 without
    overlap. The tools' operations in the tools' order."""
    px1, py1, px2, py2, parea = pred
    gx1, gy1, gx2, gy2, garea = face
    iw = np.minimum(px2, gx2) - np.maximum(px1, gx1) + 1
    ih = np.minimum(py2, gy2) - np.maximum(py1, gy1) + 1
    inter = iw * ih
    union = parea + garea - inter
    iou = np.zeros(np.broadcast(inter, union).shape)
    np.divide(inter, union, out=iou, where=(iw > 0) & (ih > 0))
    return iou


def _corners(boxes):
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    return x1, y1, x2, y2, (x2 - x1 + 1) * (y2 - y1 + 1)


def best_faces(boxes, image_of, gt_boxes, face_start, iou_threshold=IOU_THRESHOLD):
    """For each prediction (x, y, w, h rows of `boxes`, in image `image_of`, images in
    order), the global index of its image's face of highest IoU (the first on a tie) when
    that IoU is >= iou_threshold, else -1.

    Crowded images (many predictions times many faces: a few dozen images of WIDER val
    hold most of the pairs) get one prediction x face matrix each; the others share
    chunks of prediction-face pairs gathered across images."""
    n = len(boxes)
    best = np.full(n, -1, dtype=np.int64)
    if not n:
        return best
    pred = _corners(boxes)
    face = _corners(gt_boxes)
    faces = face_start[1:] - face_start[:-1]
    pred_start = np.searchsorted(image_of, np.arange(len(faces) + 1), side="left")
    pairs = faces * (pred_start[1:] - pred_start[:-1])
    for image in np.flatnonzero(pairs >= CROWDED_PAIRS):
        rows = slice(pred_start[image], pred_start[image + 1])
        cols = slice(face_start[image], face_start[image + 1])
        iou = _iou([c[rows, None] for c in pred], [c[None, cols] for c in face])
        chosen = np.argmax(iou, axis=1)
        hit = iou[np.arange(len(chosen)), chosen] >= iou_threshold
        best[rows] = np.where(hit, face_start[image] + chosen, -1)
    selected = np.flatnonzero((pairs[image_of] < CROWDED_PAIRS) & (faces[image_of] > 0))
    counts = faces[image_of[selected]]
    pair_start = _segment_starts(counts)
    first = 0
    while first < len(selected):
        # Whole predictions per chunk: their pairs end at most PAIR_CHUNK after the first's.
        last = int(np.searchsorted(pair_start, pair_start[first] + PAIR_CHUNK, side="right")) - 1
        last = min(max(last, first + 1), len(selected))
        chunk, chunk_counts = selected[first:last], counts[first:last]
        first = last
        offsets = _segment_starts(chunk_counts)
        p = np.repeat(chunk, chunk_counts)
        f = face_start[image_of[p]] + np.arange(offsets[-1]) - np.repeat(offsets[:-1],
                                                                       chunk_counts)
        iou = _iou([c[p] for c in pred], [c[f] for c in face])
        top = np.maximum.reduceat(iou, offsets[:-1])
        # The first face reaching the maximum, as argmax picks it.
        position = np.where(iou == np.repeat(top, chunk_counts), np.arange(len(p)), len(p))
        chosen = f[np.minimum.reduceat(position, offsets[:-1])]
        hit = top >= iou_threshold
        best[chunk[hit]] = chosen[hit]
    return best


def _within_image_cumsum(values, block_of, block_first):
    """Running sums of `values` restarting at each image (block_of: each element's block,
    block_first: each block's first element)."""
    total = np.cumsum(values)
    before = total[block_first] - values[block_first]
    return total - before[block_of]


def _last_index_ranges(scores, image_of, count):
    """Per prediction, the threshold indices [lo, hi) at which it is the last prediction of its
    image (in file order) scoring at or above the threshold; lo >= hi: never."""
    # thresholds are decreasing; their negatives increasing (negation is exact).
    lo = np.searchsorted(-thresholds(count), -scores, side="left").astype(np.int64)
    # hi = the smallest lo of any later prediction of the same image (count if none): a
    # reversed running minimum, the images kept apart by an offset larger than any lo.
    key = lo + image_of * (2 * count + 2)
    suffix_min = np.minimum.accumulate(key[::-1])[::-1]
    later = np.append(suffix_min[1:], np.iinfo(np.int64).max)
    hi = np.minimum(later - image_of * (2 * count + 2), count)
    return lo, hi


def pr_counts(best, kept, image_of, ranges, count):
    """(proposed, found) per threshold, summed over images, for one setting; `ranges` is
    _last_index_ranges' (lo, hi)."""
    lo, hi = ranges
    n = len(best)
    hit = best >= 0
    face = np.where(hit, best, 0)
    counted = hit & kept[face]
    proposed = (~(hit & ~kept[face])).astype(np.int64)
    found = np.zeros(n, dtype=np.int64)
    if counted.any():
        where = np.flatnonzero(counted)
        _, first = np.unique(best[where], return_index=True)
        found[where[first]] = 1
    starts = np.r_[True, image_of[1:] != image_of[:-1]] if n else np.zeros(0, dtype=bool)
    block_first = np.flatnonzero(starts)
    block_of = np.cumsum(starts) - 1
    proposed_cum = _within_image_cumsum(proposed, block_of, block_first)
    found_cum = _within_image_cumsum(found, block_of, block_first)
    active = lo < hi
    out = []
    for values in (proposed_cum, found_cum):
        weights = values[active].astype(np.float64)
        diff = (np.bincount(lo[active], weights, minlength=count + 1)
                - np.bincount(hi[active], weights, minlength=count + 1))
        out.append(np.cumsum(diff)[:count])
    return out[0], out[1]


def evaluate(ground_truth, predictions, iou_threshold=IOU_THRESHOLD, count=THRESHOLDS):
    """Score `predictions` (facekit.eval.predictions.Predictions, in the ground truth's image
    order) against `ground_truth` (facekit.eval.groundtruth.GroundTruth): a WiderResult."""
    pred_start = predictions.pred_start
    per_image = pred_start[1:] - pred_start[:-1]
    image_of = np.repeat(np.arange(len(per_image), dtype=np.int64), per_image)
    scores, score_range = normalise_scores(predictions.scores)
    # Images without faces are skipped by the tools, predictions and all.
    faces = ground_truth.face_start[1:] - ground_truth.face_start[:-1]
    keep = faces[image_of] > 0
    boxes, image_of, scores = predictions.boxes[keep], image_of[keep], scores[keep]
    best = best_faces(boxes, image_of, ground_truth.boxes, ground_truth.face_start,
                      iou_threshold)
    ranges = _last_index_ranges(scores, image_of, count)
    aps, precision, recall = {}, {}, {}
    for setting in SETTINGS:
        proposed, found = pr_counts(best, ground_truth.kept[setting], image_of, ranges, count)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision[setting] = found / proposed
            recall[setting] = found / ground_truth.face_counts[setting]
        aps[setting] = voc_ap(recall[setting], precision[setting])
    return WiderResult(aps, precision, recall, thresholds(count),
                       dict(ground_truth.face_counts), score_range)
