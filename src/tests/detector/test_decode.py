"""The Vision Kit's SSD output decoder against a plain per-anchor reference."""

import math
import os
import random
import warnings

import numpy as np
import pytest

from facekit.detector import decode
from facekit.detector.decode import DecodeError, Detection
from facekit.model.errors import AnchorsFileError

# Not via helpers (which imports TensorFlow): this test also runs under old numpy without it.
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
    """[(class_id, score, box)] best first, from nested lists."""
    candidates = []
    for i, anchor in enumerate(anchors):
        best_class, best_logit = None, None
        for c in range(1, len(logits[i])):
            if best_logit is None or logits[i][c] > best_logit:
                best_class, best_logit = c, logits[i][c]
        score = ref_sigmoid(best_logit)
        if score > score_threshold:
            candidates.append((best_class, score, ref_decode_box(encodings[i], anchor)))
    candidates.sort(key=lambda cand: -cand[1])
    kept = []
    for cand in candidates:
        if len(kept) == max_detections:
            break
        if all(ref_iou(cand[2], other[2]) <= iou_threshold for other in kept):
            kept.append(cand)
    return kept


# ---- helpers ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aiy_anchors():
    return decode.load_anchors(AIY_ANCHORS)


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


def assert_matches_reference(detections, reference):
    assert len(detections) == len(reference)
    for det, (class_id, score, box) in zip(detections, reference):
        assert det.class_id == class_id
        assert det.label_index == class_id - 1
        assert abs(det.score - score) <= 1e-6
        got = (det.ymin, det.xmin, det.ymax, det.xmax)
        assert max(abs(g - r) for g, r in zip(got, box)) <= 1e-5, (got, box)


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


# ---- hand-checked cases -----------------------------------------------------------------

def test_zero_encoding_gives_back_the_anchor():
    anchors = np.array([[0.1, 0.2, 0.5, 0.4], [0.3, 0.3, 0.9, 0.6]], dtype=np.float32)
    boxes = decode.decode_boxes(np.zeros((2, 4)), anchors)
    np.testing.assert_allclose(boxes, anchors, atol=1e-7)


def test_encoding_moves_and_scales_the_anchor():
    anchor = [[0.2, 0.2, 0.6, 0.4]]  # centre (0.4, 0.3), h 0.4, w 0.2
    # ty=1 -> centre y + 0.1 * 0.4; th=5*ln 0.5 -> half the height
    box = decode.decode_boxes([[1.0, 0.0, 5.0 * math.log(0.5), 0.0]], anchor)[0]
    np.testing.assert_allclose(box, [0.34, 0.2, 0.54, 0.4], atol=1e-12)


def test_boxes_are_clamped_to_the_image():
    anchors = [[-0.05, -0.05, 0.15, 0.15], [0.4, 0.4, 0.6, 0.6]]
    boxes = decode.decode_boxes([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 500.0, 20.0]], anchors)
    np.testing.assert_allclose(boxes[0], [0.0, 0.0, 0.15, 0.15], atol=1e-7)
    np.testing.assert_allclose(boxes[1], [0.0, 0.0, 1.0, 1.0])


def test_nms_drops_an_overlapping_lower_score_box_and_keeps_a_distant_one():
    boxes = [[0.1, 0.1, 0.5, 0.5],     # best
             [0.12, 0.1, 0.52, 0.5],   # IoU ~0.9 with the best: dropped
             [0.6, 0.6, 0.9, 0.9]]     # far away: kept
    assert decode.nms(boxes, [0.9, 0.8, 0.6]) == [0, 2]
    assert decode.nms(boxes, [0.7, 0.8, 0.6]) == [1, 2]
    assert decode.nms(boxes, [0.9, 0.8, 0.6], iou_threshold=0.95) == [0, 1, 2]
    assert decode.nms(boxes, [0.9, 0.8, 0.6], max_detections=1) == [0]


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


def test_score_threshold_is_strict_and_sigmoid_is_stable():
    anchors = [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]]
    assert decode.decode_dense(np.zeros((2, 4)), [[0.0, 0.0], [0.0, -1000.0]], anchors) == []
    np.testing.assert_allclose(decode.sigmoid([-1000.0, 0.0, 1000.0]), [0.0, 0.5, 1.0])


def test_anchors_file_round_trip(tmp_path):
    path = tmp_path / "anchors.txt"
    path.write_text("0.1 0.2 0.3 0.4\n-0.5 0 1.5 1e-3\n")
    anchors = decode.load_anchors(str(path))
    assert anchors.dtype == np.float32
    np.testing.assert_allclose(anchors, [[0.1, 0.2, 0.3, 0.4], [-0.5, 0.0, 1.5, 1e-3]])


@pytest.mark.parametrize("bad,line", [
    ("0.1 0.2 0.3 0.4\n0.1 0.2 0.3\n", 2),
    ("0.1 0.2 0.3 0.4\n0.1 0.2 0.3 0.4\n0.1 x 0.3 0.4\n", 3),
    ("0.1 0.2 0.3 0.4 0.5\n", 1),
    ("0.1 0.2 0.3 0.4\n\n0.1 0.2 0.3 0.4\n", 2),
    ("0.1 nan 0.3 0.4\n", 1),
])
def test_bad_anchors_line_is_named(tmp_path, bad, line):
    path = tmp_path / "anchors.txt"
    path.write_text(bad)
    with pytest.raises(AnchorsFileError,
                       match=r"anchors\.txt:{}: expected 4 finite".format(line)):
        decode.load_anchors(str(path))


def test_empty_anchors_file_fails(tmp_path):
    path = tmp_path / "anchors.txt"
    path.write_text("")
    with pytest.raises(AnchorsFileError, match="no anchors"):
        decode.load_anchors(str(path))


def test_mismatched_anchor_count_fails_clearly(aiy_anchors):
    encodings, logits = random_tensors(7, 1917)
    with pytest.raises(DecodeError, match=r"box_encodings: expected shape \(1278, 4\).*"
                                          r"got shape \(1917, 4\)"):
        decode.decode_dense(encodings, logits, aiy_anchors)
    with pytest.raises(DecodeError, match=r"class_logits: expected shape \(1278, "):
        decode.decode_dense(encodings[:1278], logits, aiy_anchors)
    with pytest.raises(DecodeError, match="box_encodings"):
        decode.decode_boxes(encodings, aiy_anchors)
    with pytest.raises(DecodeError, match=r"hits\[0\]: anchor 1500 out of range.*1278 rows"):
        decode.decode_sparse([(1500, 1, 3.0)], {1500: (0, 0, 0, 0)}, aiy_anchors)


def test_sparse_without_the_box_of_a_hit_fails(aiy_anchors):
    with pytest.raises(DecodeError, match="no encoding for anchor 7"):
        decode.decode_sparse([(7, 1, 3.0)], {8: (0, 0, 0, 0)}, aiy_anchors)
    with pytest.raises(DecodeError, match=r"hits\[1\]: expected \(anchor, class, logit\)"):
        decode.decode_sparse([(7, 1, 3.0), (7, 1)], {7: (0, 0, 0, 0)}, aiy_anchors)
    assert decode.decode_sparse([], {}, aiy_anchors) == []


# ---- the fast paths give the same detections as the plain ones ----------------------------

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


def test_python_nms_and_the_iou_matrix_agree_to_the_bit(aiy_anchors, monkeypatch):
    """The Python NMS (few kept boxes) and the blockwise IoU matrix (many) keep the same
    boxes: the same IEEE operations, whichever way and however the blocks fall."""
    for seed in range(30, 36):
        encodings, logits = clustered_tensors(seed, 150)
        if seed % 2:
            encodings[:40] = 0.0  # identical boxes
        for iou_threshold in (0.0, 0.2, 0.5, 0.8):
            python_way = decode.decode_dense(encodings, logits, aiy_anchors,
                                             iou_threshold=iou_threshold)
            with monkeypatch.context() as patch:
                patch.setattr(decode, "PYTHON_NMS_LIMIT", 0)
                patch.setattr(decode, "NMS_BLOCK", 7)
                matrix_way = decode.decode_dense(encodings, logits, aiy_anchors,
                                                 iou_threshold=iou_threshold)
            assert python_way == matrix_way and python_way


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


@pytest.mark.parametrize("score_threshold", [0.0, 0.05, 0.3, 0.5, 0.9, 0.999999999999, 1.0])
def test_score_thresholds_without_and_with_the_logit_prefilter(aiy_anchors, score_threshold):
    encodings, logits = random_tensors(50, 1278)
    logits[:, 1] *= 4.0  # scores from ~0 to ~1
    reference = ref_decode(encodings.tolist(), logits.tolist(), aiy_anchors.tolist(),
                           score_threshold=score_threshold)
    dense = decode.decode_dense(encodings, logits, aiy_anchors,
                                score_threshold=score_threshold)
    assert_matches_reference(dense, reference)


class HasArray(object):
    """A sequence that converts to an array through __array__, as protobuf 4's
    repeated fields do."""

    def __init__(self, values):
        self.values = values

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        return self.values.tolist()[index]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=dtype)


def test_every_input_form_gives_the_same_detections(aiy_anchors):
    encodings, logits = clustered_tensors(60, 25, classes=2)
    expected = decode.decode_dense(encodings, logits, aiy_anchors)
    assert expected
    forms = [
        (encodings.astype(np.float64), logits.astype(np.float64), aiy_anchors),
        (encodings.ravel(), logits.ravel(), aiy_anchors.astype(np.float64)),
        (encodings.tolist(), logits.tolist(), aiy_anchors.tolist()),
        (tuple(encodings.ravel().tolist()), tuple(logits.ravel().tolist()), aiy_anchors),
        (list(encodings.ravel()), list(logits.ravel()), aiy_anchors),  # numpy scalars
        (HasArray(encodings.ravel()), HasArray(logits.ravel()), aiy_anchors),  # protobuf 4+
    ]
    for box_encodings, class_logits, anchors in forms:
        assert decode.decode_dense(box_encodings, class_logits, anchors) == expected
    hits, boxes = sparse_from_dense(encodings, logits, 0.5, 60)
    for encodings_by_anchor in (boxes, list(boxes.items()),
                                dict((a, encodings[a]) for a in boxes)):
        assert decode.decode_sparse(hits, encodings_by_anchor, aiy_anchors) == expected


def test_a_non_number_in_a_flat_list_still_fails(aiy_anchors):
    encodings, logits = random_tensors(61, 1278)
    flat_logits = logits.ravel().tolist()
    flat_logits[5] = "x"
    with pytest.raises(ValueError):
        decode.decode_dense(encodings, flat_logits, aiy_anchors)
    flat_encodings = encodings.ravel().tolist()
    candidate = int(np.nonzero(logits[:, 1] > 0)[0][0])
    flat_encodings[4 * candidate] = "x"
    with pytest.raises(ValueError):
        decode.decode_dense(flat_encodings, logits, aiy_anchors)


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
