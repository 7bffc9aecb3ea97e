"""A plain per-anchor reference decoder and the test tensors the decoder's tests share.

Not via helpers (which imports TensorFlow): these tests also run under old numpy without it.
"""

import math
import os
import random

import numpy as np

AIY_ANCHORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                           "aiy_anchors_256.txt")


# ---- the reference: one anchor at a time, plain Python floats and math.exp -----------

def ref_sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def ref_decode_box(encoding, anchor):
    ty, tx, th, tw = encoding
    ymin, xmin, ymax, xmax = anchor
    ha, wa = ymax - ymin, xmax - xmin
    yca, xca = ymin + ha / 2.0, xmin + wa / 2.0
    yc, xc = ty / 10.0 * ha + yca, tx / 10.0 * wa + xca
    h, w = math.exp(th / 5.0) * ha, math.exp(tw / 5.0) * wa
    box = (yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0)
    return tuple(min(max(v, 0.0), 1.0) for v in box)


def ref_iou(a, b):
    inter_h = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    inter_w = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = inter_h * inter_w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_decode(encodings, logits, anchors, *, score_threshold=0.5, iou_threshold=0.5,
               max_detections=100):
    """[(class_id, score, box)] best first, from nested lists. score_threshold: one for all
    classes, or a list with one per class id (class_id - 1 its place): an anchor is a
    candidate when its best class's score is above that class's own."""
    if isinstance(score_threshold, (int, float)):
        score_threshold = [score_threshold] * (len(logits[0]) - 1 if logits else 1)
    candidates = []
    for i, anchor in enumerate(anchors):
        best_class, best_logit = None, None
        for c in range(1, len(logits[i])):
            if best_logit is None or logits[i][c] > best_logit:
                best_class, best_logit = c, logits[i][c]
        score = ref_sigmoid(best_logit)
        if score > score_threshold[best_class - 1]:
            candidates.append((best_class, score, ref_decode_box(encodings[i], anchor)))
    candidates.sort(key=lambda cand: -cand[1])
    kept = []
    for cand in candidates:
        if len(kept) == max_detections:
            break
        if all(ref_iou(cand[2], other[2]) <= iou_threshold for other in kept):
            kept.append(cand)
    return kept


# ---- tensors ----------------------------------------------------------------------------

def random_tensors(seed, count, classes=1):
    rng = np.random.RandomState(seed)
    encodings = rng.normal(0.0, 1.0, size=(count, 4)).astype(np.float32)
    logits = rng.normal(-2.0, 2.0, size=(count, 1 + classes)).astype(np.float32)
    return encodings, logits


def sparse_from_dense(encodings, logits, score_threshold, seed):
    """What the bonnet sends in sparse mode: hits above the logit threshold (background
    included, as a config without to_ignore would), boxes of the hit anchors only."""
    limit = math.log(score_threshold / (1.0 - score_threshold))
    hits = [(a, c, float(logits[a, c])) for a in range(logits.shape[0])
            for c in range(logits.shape[1]) if logits[a, c] > limit]
    random.Random(seed).shuffle(hits)
    boxes = dict((a, tuple(float(v) for v in encodings[a])) for a, _, _ in hits)
    return hits, boxes


def clustered_tensors(seed, candidates, classes=1):
    """Logits far below the threshold except for `candidates` anchors of a few
    neighbourhoods, so that their boxes overlap and NMS has work to do."""
    rng = np.random.RandomState(seed)
    encodings = rng.normal(0.0, 0.5, size=(1278, 4)).astype(np.float32)
    logits = np.full((1278, 1 + classes), -6.0, dtype=np.float32)
    picked = rng.choice(np.arange(0, 768), candidates, replace=False)  # the 16x16 layer
    logits[picked, 1:] = rng.uniform(-0.5, 4.0, size=(candidates, classes))
    logits[picked[:candidates // 4], 1] = 2.0  # equal scores keep anchor order
    return encodings, logits


def assert_matches_reference(detections, reference):
    assert len(detections) == len(reference)
    for det, (class_id, score, box) in zip(detections, reference):
        assert det.class_id == class_id
        assert det.label_index == class_id - 1
        assert abs(det.score - score) <= 1e-6
        got = (det.ymin, det.xmin, det.ymax, det.xmax)
        assert max(abs(g - r) for g, r in zip(got, box)) <= 1e-5, (got, box)
