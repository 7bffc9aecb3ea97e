"""The Vision Kit's SSD output decoder against a plain per-anchor reference, and its fast
paths (few candidates on Python floats, many with numpy) against the plain ones."""

import math
import warnings

import numpy as np
import pytest
from decode_reference import (
    assert_matches_reference,
    clustered_tensors,
    random_tensors,
    ref_decode,
    ref_sigmoid,
    sparse_from_dense,
)

from facekit.detector import decode
from facekit.detector.decode import DecodeError, Detection

# ---- equivalence with the reference on AIY's 1278 anchors -------------------------------

@pytest.mark.parametrize("seed,classes,score_threshold,iou_threshold", [
    (0, 1, 0.5, 0.5),
    (1, 1, 0.3, 0.3),
    (2, 2, 0.5, 0.5),
    (3, 3, 0.7, 0.6),
    (4, 1, 0.5, 0.1),
])
def test_dense_and_sparse_match_the_reference(aiy_anchors, seed, classes, score_threshold,
                                              iou_threshold):
    assert aiy_anchors.shape == (1278, 4)
    encodings, logits = random_tensors(seed, 1278, classes)
    reference = ref_decode(encodings.tolist(), logits.tolist(), aiy_anchors.tolist(),
                           score_threshold=score_threshold, iou_threshold=iou_threshold)
    assert len(reference) >= 5  # the random tensors do exercise NMS and scores

    dense = decode.decode_dense(encodings, logits, aiy_anchors,
                                score_threshold=score_threshold, iou_threshold=iou_threshold)
    assert_matches_reference(dense, reference)
    assert [d.score for d in dense] == sorted((d.score for d in dense), reverse=True)

    hits, boxes = sparse_from_dense(encodings, logits, score_threshold, seed)
    sparse = decode.decode_sparse(hits, boxes, aiy_anchors, score_threshold=score_threshold,
                                  iou_threshold=iou_threshold)
    assert_matches_reference(sparse, reference)


def test_flat_tensor_data_decodes_like_arrays(aiy_anchors):
    encodings, logits = random_tensors(5, 1278)
    arrays = decode.decode_dense(encodings, logits, aiy_anchors)
    flat = decode.decode_dense(encodings.ravel().tolist(), logits.ravel().tolist(),
                               aiy_anchors)
    assert flat == arrays and arrays


def test_max_detections_caps_the_result(aiy_anchors):
    encodings, logits = random_tensors(6, 1278)
    reference = ref_decode(encodings.tolist(), logits.tolist(), aiy_anchors.tolist(),
                           max_detections=3)
    dense = decode.decode_dense(encodings, logits, aiy_anchors, max_detections=3)
    assert len(dense) == 3
    assert_matches_reference(dense, reference)


@pytest.mark.parametrize("case", [
    # seed, classes, thresholds, candidates
    (80, 2, (0.3, 0.6), 20),     # few candidates: Python floats
    (81, 3, (0.7, 0.4, 0.55), 30),
    (82, 2, (0.6, 0.35), 200),   # many: numpy
    (83, 2, (0.5, 0.5), 40),     # equal: the one-threshold path
])
def test_per_class_thresholds_match_the_reference(aiy_anchors, monkeypatch, case):
    seed, classes, thresholds, candidates = case
    encodings, logits = clustered_tensors(seed, candidates, classes)
    reference = ref_decode(encodings.tolist(), logits.tolist(), aiy_anchors.tolist(),
                           score_threshold=list(thresholds))
    assert reference
    assert {c for c, _, _ in reference} == set(range(1, classes + 1))
    for class_id, score, _ in reference:
        assert score > thresholds[class_id - 1]
    # The bonnet thresholds at the lowest of them.
    hits, boxes = sparse_from_dense(encodings, logits, min(thresholds), seed)
    for limit in (decode.PYTHON_DECODE_LIMIT, 0):
        with monkeypatch.context() as patch:
            patch.setattr(decode, "PYTHON_DECODE_LIMIT", limit)
            dense = decode.decode_dense(encodings, logits, aiy_anchors,
                                        score_threshold=thresholds)
            sparse = decode.decode_sparse(hits, boxes, aiy_anchors, score_threshold=thresholds)
        assert_matches_reference(dense, reference)
        assert sparse == dense


def test_a_box_below_its_own_classs_threshold_suppresses_nothing():
    anchors = [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5]]
    logits = [[0.0, -0.4, -5.0],   # class 1, score 0.40: above class 1's 0.3
              [0.0, -5.0, 0.0]]    # class 2, score 0.50: below class 2's 0.6, dropped first
    dets = decode.decode_dense(np.zeros((2, 4)), logits, anchors, score_threshold=(0.3, 0.6))
    assert [(d.class_id, round(d.score, 2)) for d in dets] == [(1, 0.4)]
    both = decode.decode_dense(np.zeros((2, 4)), logits, anchors, score_threshold=0.3)
    assert [d.class_id for d in both] == [2]  # one threshold: class 2 wins the NMS
    hits = [(0, 1, -0.4), (1, 2, 0.0)]
    assert decode.decode_sparse(hits, {0: (0.0,) * 4, 1: (0.0,) * 4}, anchors,
                                score_threshold=(0.3, 0.6)) == dets


# ---- hand-checked cases -----------------------------------------------------------------

def test_dense_nms_suppression_end_to_end():
    anchors = [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]]
    logits = [[0.0, 2.0], [0.0, 3.0], [0.0, 1.0]]
    dets = decode.decode_dense(np.zeros((3, 4)), logits, anchors)
    assert [d.ymin for d in dets] == pytest.approx([0.12, 0.6])
    assert [d.score for d in dets] == pytest.approx([ref_sigmoid(3.0), ref_sigmoid(1.0)])


def test_two_class_model_picks_the_best_non_background_class():
    anchors = [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7], [0.3, 0.0, 0.4, 0.1]]
    logits = [[9.0, 1.0, 2.0],    # background is high but ignored: class 2 wins
              [0.0, 4.0, -1.0],   # class 1
              [5.0, -3.0, -4.0]]  # nothing above 0.5
    dets = decode.decode_dense(np.zeros((3, 4)), logits, anchors)
    assert [(d.class_id, d.label_index) for d in dets] == [(1, 0), (2, 1)]
    assert dets[0] == Detection(1, 0, pytest.approx(ref_sigmoid(4.0)), 0.5, 0.5, 0.7, 0.7)
    assert dets[1].score == pytest.approx(ref_sigmoid(2.0))

    hits = [(0, 0, 9.0), (0, 1, 1.0), (0, 2, 2.0), (1, 1, 4.0), (2, 0, 5.0)]
    boxes = {0: (0.0, 0.0, 0.0, 0.0), 1: (0.0, 0.0, 0.0, 0.0), 2: (0.0, 0.0, 0.0, 0.0)}
    assert decode.decode_sparse(hits, boxes, anchors) == dets


# ---- the fast paths give the same detections as the plain ones ----------------------------

@pytest.mark.parametrize("seed,candidates,iou_threshold,max_detections", [
    (20, 12, 0.5, 100),
    (21, 60, 0.3, 100),
    (22, 200, 0.5, 100),
    (23, 200, 0.5, 1000),   # more than PYTHON_NMS_LIMIT can be kept: the IoU matrix
    (24, 40, 0.0, 5),
    (25, 40, 1.0, 100),
])
def test_fast_paths_match_the_reference(aiy_anchors, seed, candidates, iou_threshold,
                                        max_detections):
    encodings, logits = clustered_tensors(seed, candidates)
    kwargs = dict(iou_threshold=iou_threshold, max_detections=max_detections)
    reference = ref_decode(encodings.tolist(), logits.tolist(), aiy_anchors.tolist(),
                           **kwargs)
    assert reference
    dense = decode.decode_dense(encodings.ravel().tolist(), logits.ravel().tolist(),
                                aiy_anchors, **kwargs)
    assert_matches_reference(dense, reference)
    hits, boxes = sparse_from_dense(encodings, logits, 0.5, seed)
    assert decode.decode_sparse(hits, boxes, aiy_anchors, **kwargs) == dense


def test_nan_and_huge_encodings_decode_without_warnings(aiy_anchors):
    encodings, logits = clustered_tensors(40, 30)
    candidates = np.nonzero(logits[:, 1] > 0)[0]
    encodings[candidates[0], 1] = np.nan    # a NaN box: NMS the numpy way
    encodings[candidates[1], 2:] = 4000.0   # exp overflows: the box covers the image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense = decode.decode_dense(encodings, logits, aiy_anchors)
        nan_free = decode.decode_dense(np.where(np.isnan(encodings), 0.0, encodings),
                                       logits, aiy_anchors)
    assert len(dense) >= 2 and nan_free
    whole = [d for d in dense if (d.ymin, d.xmin, d.ymax, d.xmax) == (0.0, 0.0, 1.0, 1.0)]
    assert len(whole) == 1


# ---- few candidates on Python floats, many with numpy --------------------------------------

@pytest.mark.parametrize("case", [
    # seed, candidates, classes, iou_threshold, max_detections
    (70, 8, 1, 0.5, 100),
    (71, 30, 1, 0.3, 100),
    (72, 60, 2, 0.5, 100),
    (73, 40, 1, 0.0, 3),
    (74, 25, 3, 0.7, 100),
])
def test_python_floats_and_numpy_give_the_same_detections(aiy_anchors, monkeypatch, case):
    """Few candidates are decoded with math.exp, many with np.exp: the same operations
    otherwise, so the same boxes are kept in the same order, with the same classes and
    (up to the exponential's last bit) the same scores and corners."""
    seed, candidates, classes, iou_threshold, max_detections = case
    encodings, logits = clustered_tensors(seed, candidates, classes)
    kwargs = dict(iou_threshold=iou_threshold, max_detections=max_detections)
    hits, boxes = sparse_from_dense(encodings, logits, 0.5, seed)
    python_dense = decode.decode_dense(encodings, logits, aiy_anchors, **kwargs)
    python_sparse = decode.decode_sparse(hits, boxes, aiy_anchors, **kwargs)
    assert python_dense == python_sparse and python_dense
    with monkeypatch.context() as patch:
        patch.setattr(decode, "PYTHON_DECODE_LIMIT", 0)
        numpy_dense = decode.decode_dense(encodings, logits, aiy_anchors, **kwargs)
        numpy_sparse = decode.decode_sparse(hits, boxes, aiy_anchors, **kwargs)
    assert numpy_dense == numpy_sparse
    assert [d.class_id for d in python_dense] == [d.class_id for d in numpy_dense]
    for python_way, numpy_way in zip(python_dense, numpy_dense):
        assert max(abs(a - b) for a, b in zip(python_way[2:], numpy_way[2:])) <= 1e-12


def test_python_floats_leave_nan_boxes_and_non_numbers_to_numpy(aiy_anchors):
    encodings, logits = clustered_tensors(75, 20)
    first = int(np.nonzero(logits[:, 1] > 0)[0][0])
    flat = encodings.ravel().tolist()
    flat[4 * first] = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_list = decode.decode_dense(flat, logits, aiy_anchors)
        from_array = decode.decode_dense(np.array(flat, dtype=np.float32), logits, aiy_anchors)
    # NaN != NaN: compare the detections' text.
    assert any(math.isnan(d.ymin) for d in from_list)
    assert repr(from_list) == repr(from_array)
    hits, boxes = sparse_from_dense(encodings, logits, 0.5, 75)
    boxes[first] = (0.0, 0.0, 0.0)
    with pytest.raises(DecodeError, match=r"box_encodings_by_anchor\[{}\]".format(first)):
        decode.decode_sparse(hits, boxes, aiy_anchors)
    del boxes[first]
    with pytest.raises(DecodeError, match="no encoding for anchor {}".format(first)):
        decode.decode_sparse(hits, boxes, aiy_anchors)
