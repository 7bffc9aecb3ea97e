"""Class logits to scores: the sigmoid, and the logit bound below which no anchor can
score above a threshold (so the decoder converts only the anchors past it).

sigmoid is for any caller; the other functions are the decoder's (facekit.detector.decode)
and take what it has at hand: float64 arrays, or Python floats. Python 3.5 and numpy
only: this runs on the kit.
"""

import math

import numpy as np


def sigmoid(logits):
    """1 / (1 + exp(-x)) elementwise, without overflow for large negative x."""
    return array_sigmoid(np.asarray(logits, dtype=np.float64))


def array_sigmoid(x):
    """sigmoid of a float64 array, without converting it first."""
    e = np.exp(-np.abs(x))
    d = 1.0 + e
    return np.where(x >= 0, 1.0 / d, e / d)


def positive_sigmoid(x):
    """array_sigmoid of a float64 array of positive numbers (the logits above a bound of
    at least 0): the same values in fewer steps
    (positional `out`: no keyword to parse)."""
    d = np.negative(x)
    np.exp(d, d)
    d += 1.0
    return np.divide(1.0, d, d)


def scores_above(logits, score_threshold):
    """[(-score, position)] of the logits (a sequence of Python floats) whose sigmoid is
    above score_threshold, best first; equal scores keep their order (the positions
    ascend). For few logits: math.exp on each, no numpy call."""
    exp = math.exp
    scored = []
    for position, logit in enumerate(logits):
        # sigmoid, stable for large negative logits (as array_sigmoid).
        if logit >= 0.0:
            score = 1.0 / (1.0 + exp(-logit))
        else:
            e = exp(logit)
            score = e / (1.0 + e)
        if score > score_threshold:
            scored.append((-score, position))
    scored.sort()
    return scored


def class_thresholds(score_threshold):
    """(lowest, per_class) of a decoder's score_threshold: a number for every class, or a
    sequence with one per class id (class_id - 1 its position). per_class is None when
    one number holds for all (the decoder's fast path), else a tuple of floats ending
    with the lowest, which serves any class past the sequence's end."""
    if isinstance(score_threshold, (int, float)):
        return score_threshold, None
    values = tuple(float(v) for v in score_threshold)
    if not values:
        raise ValueError("score_threshold: an empty sequence (give one score per class)")
    lowest = min(values)
    if all(v == lowest for v in values):
        return lowest, None
    return lowest, values + (lowest,)


def class_limit(per_class, class_id):
    """The threshold of class_id (1-based) in class_thresholds' per_class tuple."""
    return per_class[class_id - 1] if class_id < len(per_class) else per_class[-1]


def logit_floor(score_threshold):
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
