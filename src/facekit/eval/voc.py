"""Detection matching and AP at an IoU threshold, as the Object Detection API's
PascalDetectionEvaluator computes them (VOC all-point AP per class, their mean).

Per image and class, the detections, best score first, are each matched to the
ground-truth box of highest IoU (the first such box on a tie); with IoU >= the threshold
and that box not yet found, the detection is a true positive and the box is found;
otherwise it is a false positive (also when its best box was already found: it does not
fall back to a second-best box). VOC's difficult boxes take part in that choice of the
best box, but a detection whose best box is a difficult one (IoU >= the threshold) is
ignored: neither a true nor a false positive, left out of the ranking, however many
detections found that box before; and difficult boxes are not counted among the class's
objects, so missing them costs nothing. IoU is on continuous coordinates (no +1 on sizes, unlike
the WIDER tools' pixel boxes). Then, per class, every image's detections are ranked by
score (a stable sort, highest first), precision and recall are cumulated down the list,
and the AP is the VOC all-point area under the precision envelope (facekit.eval.ap). A
class with no ground-truth box has no AP (NaN; left out of the mean).

numpy only; Python 3.6 (runs on the training host).
"""

import collections

import numpy as np

from facekit.eval.ap import voc_ap

IOU_THRESHOLD = 0.5

# One image: gt_boxes (g, 4) and det_boxes (d, 4) as (ymin, xmin, ymax, xmax) in any one
# unit; gt_labels (g,), det_labels (d,) ints; det_scores (d,) floats; gt_difficult (g,)
# bools, or None (the default) when no box is difficult.
ImageDetections = collections.namedtuple(
    "ImageDetections", "gt_boxes gt_labels det_boxes det_scores det_labels gt_difficult")
ImageDetections.__new__.__defaults__ = (None,)

# One image's matches: gt_found (g,) bool, det_true_positive (d,) bool, gt_difficult (g,)
# bool, det_ignored (d,) bool (a detection of a difficult box).
ImageMatch = collections.namedtuple(
    "ImageMatch", "gt_found det_true_positive gt_difficult det_ignored")

# ap: the class's AP (NaN without ground truth); precision, recall: the curve down the
# ranked detections; scores: those detections' scores (highest first); objects: the
# class's ground-truth boxes.
ClassResult = collections.namedtuple("ClassResult", "ap precision recall scores objects")


def _boxes(values):
    return np.asarray(values, dtype=np.float64).reshape(-1, 4)


def iou_matrix(first, second):
    """IoU of every box of `first` (n, 4) with every box of `second` (m, 4): (n, m)."""
    a, b = _boxes(first), _boxes(second)
    ymin = np.maximum(a[:, None, 0], b[None, :, 0])
    xmin = np.maximum(a[:, None, 1], b[None, :, 1])
    ymax = np.minimum(a[:, None, 2], b[None, :, 2])
    xmax = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(ymax - ymin, 0.0) * np.maximum(xmax - xmin, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    iou[~(union > 0)] = 0.0
    return iou


def match(det_boxes, det_scores, gt_boxes, iou_threshold=IOU_THRESHOLD, gt_difficult=None):
    """(true_positive (d,) bool, found (d,) int, ignored (d,) bool) of one image's
    detections of one class, in the order given: found is the index of the ground-truth box
    a true positive found, -1 otherwise; ignored marks a detection whose best box is a
    difficult one. Detections are matched best score first."""
    det_boxes = _boxes(det_boxes)
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    count = len(det_boxes)
    true_positive = np.zeros(count, dtype=bool)
    ignored = np.zeros(count, dtype=bool)
    found = np.full(count, -1, dtype=np.int64)
    gt_boxes = _boxes(gt_boxes)
    if not count or not len(gt_boxes):
        return true_positive, found, ignored
    difficult = (np.zeros(len(gt_boxes), dtype=bool) if gt_difficult is None
                 else np.asarray(gt_difficult, dtype=bool).reshape(-1))
    iou = iou_matrix(det_boxes, gt_boxes)
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(count), best]
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for i in np.argsort(-scores, kind="mergesort").tolist():
        gt = best[i]
        if best_iou[i] < iou_threshold:
            continue
        if difficult[gt]:
            ignored[i] = True
        elif not taken[gt]:
            taken[gt] = True
            true_positive[i] = True
            found[i] = gt
    return true_positive, found, ignored


def precision_recall(scores, true_positive, objects):
    """(precision, recall, ranked scores) down the detections ranked by score (stable,
    highest first); recall is NaN throughout when there are no objects."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.asarray(true_positive, dtype=bool).reshape(-1)[order]
    hits = np.cumsum(tp, dtype=np.float64)
    proposed = np.arange(1, len(tp) + 1, dtype=np.float64)
    precision = hits / proposed if len(tp) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = hits / float(objects) if objects else np.full(len(tp), np.nan)
    return precision, recall, scores[order]


def evaluate(images, classes, iou_threshold=IOU_THRESHOLD):
    """{class id: ClassResult} over `images` (ImageDetections) for each id of `classes`,
    and the per-image matches: a list of ImageMatch."""
    scores = {c: [] for c in classes}
    hits = {c: [] for c in classes}
    objects = dict.fromkeys(classes, 0)
    matches = []
    for image in images:
        gt_labels = np.asarray(image.gt_labels, dtype=np.int64).reshape(-1)
        det_labels = np.asarray(image.det_labels, dtype=np.int64).reshape(-1)
        det_scores = np.asarray(image.det_scores, dtype=np.float64).reshape(-1)
        gt_boxes, det_boxes = _boxes(image.gt_boxes), _boxes(image.det_boxes)
        difficult = (np.zeros(len(gt_labels), dtype=bool) if image.gt_difficult is None
                     else np.asarray(image.gt_difficult, dtype=bool).reshape(-1))
        gt_found = np.zeros(len(gt_labels), dtype=bool)
        det_tp = np.zeros(len(det_labels), dtype=bool)
        det_ignored = np.zeros(len(det_labels), dtype=bool)
        for c in classes:
            gt_rows = np.flatnonzero(gt_labels == c)
            det_rows = np.flatnonzero(det_labels == c)
            objects[c] += int((~difficult[gt_rows]).sum())
            tp, found, ignored = match(det_boxes[det_rows], det_scores[det_rows],
                                       gt_boxes[gt_rows], iou_threshold, difficult[gt_rows])
            det_tp[det_rows] = tp
            det_ignored[det_rows] = ignored
            gt_found[gt_rows[found[tp]]] = True
            scores[c].append(det_scores[det_rows][~ignored])
            hits[c].append(tp[~ignored])
        matches.append(ImageMatch(gt_found, det_tp, difficult, det_ignored))
    results = {}
    for c in classes:
        precision, recall, ranked = precision_recall(
            np.concatenate(scores[c]) if scores[c] else np.zeros(0),
            np.concatenate(hits[c]) if hits[c] else np.zeros(0, dtype=bool), objects[c])
        ap = voc_ap(recall, precision) if objects[c] else float("nan")
        results[c] = ClassResult(ap, precision, recall, ranked, objects[c])
    return results, matches


def mean_ap(results):
    """The mean of the classes' APs, classes without ground truth left out (NaN if none)."""
    aps = [r.ap for r in results.values() if r.objects]
    return float(np.mean(aps)) if aps else float("nan")
