"""The decoder's inputs (facekit.detector.tensors): the anchors file, every form the
tensors come in, and inputs that do not belong to the model, refused with a reason."""

import numpy as np
import pytest
from decode_reference import clustered_tensors, random_tensors, sparse_from_dense

from facekit.detector import decode, tensors
from facekit.detector.tensors import DecodeError
from facekit.model.errors import AnchorsFileError


def test_anchors_file_round_trip(tmp_path):
    path = tmp_path / "anchors.txt"
    path.write_text("0.1 0.2 0.3 0.4\n-0.5 0 1.5 1e-3\n")
    anchors = tensors.load_anchors(str(path))
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
        tensors.load_anchors(str(path))


def test_empty_anchors_file_fails(tmp_path):
    path = tmp_path / "anchors.txt"
    path.write_text("")
    with pytest.raises(AnchorsFileError, match="no anchors"):
        tensors.load_anchors(str(path))


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
