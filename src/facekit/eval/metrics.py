"""The figures of `facekit eval run`: AP at IoU 0.5 per class and their mean (facekit.eval.voc)
over every detection the decoder gives at the low export threshold, and what the kit
would report at a threshold (one number, or one per class): recall, precision, false
positives per image and recall by face size. VOC's difficult boxes count as neither found
nor missed and their detections as neither right nor wrong (facekit.eval.voc), as in AP.

Face size is the square root of the ground-truth box's area in the original image's
pixels (COCO's bounds): small below 32, medium 32 to below 96, large 96 and above. At the
kit's 256x256 input a 1024-pixel-wide frame shrinks 4x, so a small face there is under
8 pixels. Python 3.6; numpy.
"""

import math

import numpy as np

from facekit.eval import voc

SIZE_BOUNDS = (("small", 0.0, 32.0), ("medium", 32.0, 96.0), ("large", 96.0, math.inf))
# Points of each precision-recall curve kept in eval.json (the PNG uses them all).
CURVE_POINTS = 200


def pixel_boxes(boxes, size):
    """Normalised (ymin, xmin, ymax, xmax) -> pixels of an image of size (width, height)."""
    width, height = size
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * [height, width, height, width]


def _above(result, min_score):
    """Which detections of an ImageResult the kit keeps: a score above min_score, a number
    or {class id: score} (a class it does not name takes the lowest)."""
    if min_score is None:
        return np.ones(len(result.scores), dtype=bool)
    if not isinstance(min_score, dict):
        return result.scores > min_score
    if not min_score:
        raise ValueError("a score threshold per class needs at least one class's score")
    lowest = min(min_score.values())
    limits = np.array([min_score.get(int(c), lowest) for c in result.labels], dtype=np.float64)
    return result.scores > limits


def image_detections(results, min_score=None):
    """voc.ImageDetections in pixels of each ImageResult, detections with a score above
    `min_score` only when it is given (the kit keeps a score above its threshold): one
    number, or {class id: score}."""
    images = []
    for result in results:
        keep = _above(result, min_score)
        images.append(voc.ImageDetections(
            pixel_boxes(result.record.boxes, result.size), result.record.labels,
            pixel_boxes(result.boxes[keep], result.size), result.scores[keep],
            result.labels[keep], result.record.difficult))
    return images


def _ratio(numerator, denominator):
    return float(numerator) / denominator if denominator else None


def _sampled(values, count=CURVE_POINTS):
    values = np.asarray(values, dtype=np.float64)
    if len(values) > count:
        values = values[np.linspace(0, len(values) - 1, count).round().astype(np.int64)]
    return [None if math.isnan(v) else round(float(v), 6) for v in values]


def face_sizes(images):
    """sqrt(area) in pixels of every ground-truth box, image by image, concatenated."""
    boxes = [np.asarray(img.gt_boxes, dtype=np.float64).reshape(-1, 4) for img in images]
    allboxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    area = np.maximum(allboxes[:, 2] - allboxes[:, 0], 0) * np.maximum(
        allboxes[:, 3] - allboxes[:, 1], 0)
    return np.sqrt(area)


def at_threshold(results, classes, threshold):
    """The kit's view at a threshold (a number, or {class id: score}): (figures dict,
    per-image matches)."""
    images = image_detections(results, threshold)
    _, matches = voc.evaluate(images, classes)

    def joined(field):
        return (np.concatenate([getattr(m, field) for m in matches]) if matches
                else np.zeros(0, dtype=bool))

    # VOC's difficult boxes are neither to find nor to miss; a detection of one is neither
    # right nor wrong.
    difficult, ignored = joined("gt_difficult"), joined("det_ignored")
    found = joined("gt_found")[~difficult]
    hits = joined("det_true_positive")[~ignored]
    sizes = face_sizes(images)[~difficult]
    by_size = {}
    for name, low, high in SIZE_BOUNDS:
        inside = (sizes >= low) & (sizes < high)
        by_size[name] = {"recall": _ratio(found[inside].sum(), inside.sum()),
                         "faces": int(inside.sum()), "found": int(found[inside].sum()),
                         "min_px": low, "max_px": None if math.isinf(high) else high}
    false_positives = int(len(hits) - hits.sum())
    figures = {
        "threshold": threshold,
        "recall": _ratio(found.sum(), len(found)),
        "precision": _ratio(hits.sum(), len(hits)),
        "true_positives": int(hits.sum()),
        "false_positives": false_positives,
        "missed": int(len(found) - found.sum()),
        "false_positives_per_image": _ratio(false_positives, len(results)),
        "difficult": int(difficult.sum()),
        "ignored": int(ignored.sum()),
        "recall_by_size": by_size,
    }
    return figures, (images, matches)


def class_points(images, matches, classes):
    """{class id: (recall, precision)} of at_threshold's images and matches, class by class
    (None where the class has no ground truth, or no detection): where the kit's threshold
    sits on each class's precision-recall curve."""
    points = {}
    for c in classes:
        # Difficult boxes and the detections of them left out, as at_threshold does.
        rows = [((np.asarray(img.gt_labels) == c) & ~m.gt_difficult,
                 (np.asarray(img.det_labels) == c) & ~m.det_ignored, m)
                for img, m in zip(images, matches)]
        found = sum(int(m.gt_found[g].sum()) for g, _, m in rows)
        objects = sum(int(g.sum()) for g, _, _ in rows)
        hits = sum(int(m.det_true_positive[d].sum()) for _, d, m in rows)
        detections = sum(int(d.sum()) for _, d, _ in rows)
        points[c] = (_ratio(found, objects), _ratio(hits, detections))
    return points


def ap_figures(results, labels):
    """({"ap": {label: AP or None}, "mean_ap", "objects", "detections", "curves"},
    {class id: voc.ClassResult}) over every detection of `results`."""
    classes = list(range(1, len(labels) + 1))
    per_class, _ = voc.evaluate(image_detections(results), classes)
    mean = voc.mean_ap(per_class)
    doc = {
        "ap": {labels[c - 1]: None if math.isnan(r.ap) else r.ap for c, r in per_class.items()},
        "mean_ap": None if math.isnan(mean) else mean,
        "objects": {labels[c - 1]: r.objects for c, r in per_class.items()},
        "detections": int(sum(len(r.scores) for r in per_class.values())),
        "curves": {labels[c - 1]: {"recall": _sampled(r.recall),
                                   "precision": _sampled(r.precision),
                                   "score": _sampled(r.scores)}
                   for c, r in per_class.items()},
    }
    return doc, per_class
