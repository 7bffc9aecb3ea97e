"""Reading WIDER-format prediction folders and the ground truth's .mat files: what a user with
a broken file is told, and how missing files count."""

import os

import numpy as np
import pytest

from facekit.eval import groundtruth, predictions
from facekit.eval.errors import GroundTruthError, PredictionFileError


def _write(tmp_path, text, name="0_Parade_1"):
    path = tmp_path / "0--Parade" / (name + ".txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _read(tmp_path, text):
    path = _write(tmp_path, text)
    return predictions.read_prediction_file(path, "0_Parade_1"), path


def test_a_well_formed_file_reads_as_rows(tmp_path):
    rows, _ = _read(tmp_path, "0--Parade/0_Parade_1.jpg\n2\n1 2 3 4 0.9\n5 6.5 7 8 1e-2\n\n")
    np.testing.assert_array_equal(rows, [[1, 2, 3, 4, 0.9], [5, 6.5, 7, 8, 0.01]])


def test_line_one_may_be_a_bare_name_and_a_file_may_hold_no_box(tmp_path):
    rows, _ = _read(tmp_path, "0_Parade_1\n0\n")
    assert rows.shape == (0, 5)


@pytest.mark.parametrize("text,where,what", [
    ("0_Parade_1.jpg\n3\n1 2 3 4 0.9\n1 2 3 4 0.8\n", ":2:", "says 3 boxes, but 2 box lines"),
    ("0_Parade_1.jpg\n1\n1 2 3 4 0.9\n1 2 3 4 0.8\n", ":2:", "says 1 box, but 2 box lines"),
    ("0_Parade_1.jpg\n2\n1 2 3 4 0.9\n1 2 x 4 0.8\n", ":4:", "'x' is not a number"),
    ("0_Parade_1.jpg\n1\n1 2 3 4\n", ":3:", "found 4 fields"),
    ("0_Parade_1.jpg\n2\n1 2 3 4 0.9\n\n", ":2:", "says 2 boxes, but 1 box line follows"),
    ("0_Parade_1.jpg\n2\n\n1 2 3 4 0.9\n", ":3:", "found 0 fields"),
    ("0_Parade_1.jpg\n1\n1 2 3 4 nan\n", ":3:", "'nan' is not a finite number"),
    ("0_Parade_1.jpg\ntwo\n", ":2:", "'two' is not a number of boxes"),
    ("0_Parade_7.jpg\n0\n", ":1:", "names image '0_Parade_7.jpg'"),
    ("", "", "empty file"),
])
def test_a_broken_file_is_named_with_its_line(tmp_path, text, where, what):
    with pytest.raises(PredictionFileError) as caught:
        _read(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(os.path.join(str(tmp_path), "0--Parade", "0_Parade_1.txt") + where)
    assert what in message


def test_a_folder_reads_in_ground_truth_order_and_counts_missing_and_unexpected(tmp_path):
    _write(tmp_path, "0_Parade_1.jpg\n1\n1 2 3 4 0.5\n")
    _write(tmp_path, "0_Parade_3.jpg\n2\n1 2 3 4 0.7\n5 6 7 8 0.6\n", name="0_Parade_3")
    _write(tmp_path, "other.jpg\n0\n", name="other")
    images = [("0--Parade", "0_Parade_1"), ("0--Parade", "0_Parade_2"),
              ("0--Parade", "0_Parade_3"), ("1--Handshaking", "1_Handshaking_1")]
    preds = predictions.read_predictions(str(tmp_path), images)
    assert preds.pred_start.tolist() == [0, 1, 1, 3, 3]
    assert preds.scores.tolist() == [0.5, 0.7, 0.6]
    assert preds.missing == [("0--Parade", "0_Parade_2"), ("1--Handshaking", "1_Handshaking_1")]
    assert preds.unexpected == [os.path.join("0--Parade", "other.txt")]


def test_a_prediction_folder_that_is_not_a_folder_is_an_error(tmp_path):
    with pytest.raises(PredictionFileError, match="is not a directory"):
        predictions.read_predictions(str(tmp_path / "nope"), [("0--E", "a")])


def test_synthetic_ground_truth_reads_back_as_written(synthetic_gt):
    truth = synthetic_gt
    assert truth.events[0] == "0--Event0"
    names = [name for _, name in truth.images]
    assert "0_Event_0_noface" in names and "0_Event_0_tiny" in names
    noface = names.index("0_Event_0_noface")
    assert truth.face_start[noface] == truth.face_start[noface + 1]
    tiny = names.index("0_Event_0_tiny")
    lo = truth.face_start[tiny]
    assert truth.boxes[lo].tolist() == [10, 10, 5, 6]
    assert not any(truth.kept[s][lo:lo + 2].any() for s in groundtruth.SETTINGS)
    assert truth.face_counts["easy"] <= truth.face_counts["medium"] <= truth.face_counts["hard"]
    assert truth.face_counts["hard"] == int(truth.kept["hard"].sum())


def test_the_real_ground_truth_has_wider_vals_counts(real_gt):
    assert len(real_gt.events) == 61
    assert len(real_gt.images) == 3226
    assert len(real_gt.boxes) == 39708
    assert real_gt.face_counts["easy"] == 7211
    assert real_gt.face_counts["hard"] == 31958
    assert real_gt.images[0] == ("0--Parade", "0_Parade_marchingband_1_465")


def test_a_missing_ground_truth_file_says_what_the_folder_needs(tmp_path, scipy_io):
    with pytest.raises(GroundTruthError, match="wider_face_val.mat does not exist"):
        groundtruth.read_ground_truth(str(tmp_path))


def test_a_setting_that_names_a_face_the_image_lacks_is_an_error(tmp_path, scipy_io):
    import wider_synthetic  # noqa: PLC0415

    wider_synthetic.write_ground_truth(str(tmp_path), [
        ("0--E", [("a", np.array([[1, 2, 30, 30]]), {"easy": [2], "medium": [1], "hard": [1]})])])
    with pytest.raises(GroundTruthError, match=r"wider_easy_val.mat: event 0--E image 1 keeps "
                                               r"face 2 of 1"):
        groundtruth.read_ground_truth(str(tmp_path))


def test_a_file_that_is_not_a_mat_file_is_an_error(tmp_path, scipy_io):
    (tmp_path / "wider_face_val.mat").write_text("not MATLAB\n")
    with pytest.raises(GroundTruthError, match="is not a readable MATLAB file"):
        groundtruth.read_ground_truth(str(tmp_path))
