"""Operating points: the score threshold per class that the kits run, chosen on the
evaluated records' ranked detections (a facekit.eval.voc ClassResult).

Two rules:
- "max_f1" (the default): the threshold where F1 = 2PR / (P + R) is highest; of equal
  F1s the highest threshold (fewer detections for the same F1);
- "min_precision": the lowest threshold whose precision reaches the given P, the most
  recall at that precision; none when no threshold reaches it.

The kit keeps a detection whose score is above its class's threshold, so a threshold
keeps the top k detections of the ranking, detections of equal score together. For the
k that a rule picks, the threshold lies in [score k+1, score k): their midpoint rounded
to the fewest decimals that stay inside (0.31 rather than 0.3099872), the run's own
floor (the decoder's score threshold, below which the run saw nothing) taking the place
of score k+1 when every detection is kept. So no threshold below the floor is chosen.
A class without ground-truth boxes, without detections or without a true positive gets
no operating point, and a reason instead.

Python 3.6; numpy.
"""

import numpy as np

MAX_F1 = "max_f1"
MIN_PRECISION = "min_precision"
RULES = (MAX_F1, MIN_PRECISION)
# Decimals tried for the threshold's shortest form before the exact next score is used.
_DECIMALS = 9


def cut_ends(scores):
    """The k (1-based counts) at which a ranking of scores (highest first) can be cut: the
    last detection of each run of equal scores."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(scores):
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(scores[:-1] != scores[1:]) + 1
    return np.append(ends, len(scores)).astype(np.int64)


def threshold_between(low, high):
    """A threshold t with low <= t < high (a kit keeping scores above t keeps the score
    `high` and drops `low`): the midpoint of the two, rounded to the fewest decimals that
    stay between them (0.31, not 0.3099872); `low` itself when 9 decimals do not."""
    middle = (low + high) / 2.0
    for places in range(1, _DECIMALS + 1):
        candidate = round(middle, places)
        if low <= candidate < high:
            return candidate
    return float(low)


def _point(result, k, floor, scores):
    """The operating-point figures of keeping the top k of a class's ranking."""
    hits = int(round(float(result.precision[k - 1]) * k))
    low = float(scores[k]) if k < len(scores) else float(floor)
    threshold = threshold_between(low, float(scores[k - 1]))
    precision = hits / k
    recall = hits / result.objects
    return {"threshold": threshold, "precision": precision, "recall": recall,
            "f1": 2.0 * hits / (k + result.objects), "detections": int(k),
            "true_positives": hits}


def choose(result, *, rule=MAX_F1, min_precision=None, floor=0.0):
    """{"threshold", "precision", "recall", "f1", "detections", "true_positives"} of the
    class's operating point under `rule`, or {"threshold": None, "reason"} when it has
    none. `floor`: the run's own score threshold (no detection at or below it was seen)."""
    if rule not in RULES:
        raise ValueError("rule {!r}: one of {}".format(rule, ", ".join(RULES)))
    if rule == MIN_PRECISION and not (min_precision is not None and 0.0 < min_precision <= 1.0):
        raise ValueError("min_precision {!r}: a number in (0, 1]".format(min_precision))
    if not result.objects:
        return {"threshold": None,
                "reason": "no ground-truth box of this class in the evaluated records"}
    scores = np.asarray(result.scores, dtype=np.float64).reshape(-1)
    ends = cut_ends(scores)
    if not len(ends):
        return {"threshold": None,
                "reason": "no detection of this class scored above {:g}".format(floor)}
    precision = np.asarray(result.precision, dtype=np.float64)[ends - 1]
    hits = np.round(precision * ends)
    if not hits.max() > 0:
        return {"threshold": None, "reason": "none of its {} detections is a true "
                                             "positive".format(len(scores))}
    if rule == MAX_F1:
        # 2TP / (detections + objects): equal fractions give equal floats, so ties are exact.
        f1 = 2.0 * hits / (ends + result.objects)
        k = int(ends[int(np.argmax(f1))])
    else:
        reached = np.flatnonzero(precision >= min_precision)
        if not len(reached):
            best = int(np.argmax(precision))
            return {"threshold": None, "reason": "precision never reaches {:g} (at most "
                                                 "{:.4f}, keeping the top {} detections)".format(
                                                     min_precision, precision[best],
                                                     int(ends[best]))}
        k = int(ends[reached[-1]])
    return _point(result, k, floor, scores)


def operating_points(per_class, labels, *, rule=MAX_F1, min_precision=None, floor=0.0):
    """eval.json's "operating_point" section: {"rule", "min_precision", "floor", "classes":
    {label: choose(...)}, "thresholds": {label: threshold or None}} of
    {class id: voc.ClassResult}."""
    classes = {}
    for class_id, result in sorted(per_class.items()):
        classes[labels[class_id - 1]] = choose(result, rule=rule, min_precision=min_precision,
                                               floor=floor)
    return {"rule": rule, "min_precision": min_precision if rule == MIN_PRECISION else None,
            "floor": floor, "classes": classes,
            "thresholds": {label: point["threshold"] for label, point in classes.items()}}


def class_thresholds(section, labels, default):
    """{class id: threshold} for every label: the section's threshold, `default` for a
    class without one (the kit does the same)."""
    found = (section or {}).get("thresholds") or {}
    return {i + 1: (found.get(label) if found.get(label) is not None else default)
            for i, label in enumerate(labels)}
