"""facekit.eval.dropped: the faces a WIDER FACE split's filters dropped, read back from its
annotation file and set aside on val (difficult: neither to find nor wrong to find), on
hand-made records and annotation files."""

import numpy as np
import pytest

from facekit.eval import dropped, metrics, records, runner

WIDTH, HEIGHT = 200, 100
ANNOTATIONS = (
    "0--Parade/0_Parade_a_1.jpg\n"
    "4\n"
    "10 10 60 60 0 0 0 0 0 0 \n"      # kept: the record's box
    "120 20 40 40 2 0 0 0 0 0 \n"     # blurred: dropped by the filters
    "180 60 40 60 0 0 0 1 2 0 \n"     # invalid, past the right and bottom edges: clipped
    "5 5 0 0 0 0 0 0 0 0 \n"          # zero-size: no region to set aside
    "1--Handshaking/1_Handshaking_b_2.jpg\n"
    "0\n"
    "0 0 0 0 0 0 0 0 0 0 \n"
)


def _result(filename, pixel_boxes, dets=()):
    """runner.ImageResult of a WIDTH x HEIGHT image: its record's boxes from (xmin, ymin, xmax,
    ymax) pixels, stored as the records store them (normalised float32); dets: (box, score)
    in the same pixels."""
    scale = np.array([HEIGHT, WIDTH, HEIGHT, WIDTH], dtype=np.float64)

    def norm(boxes):
        edges = np.array([[y0, x0, y1, x1] for x0, y0, x1, y1 in boxes],
                         dtype=np.float64).reshape(-1, 4)
        return (edges / scale).astype(np.float32).astype(np.float64)

    record = records.Record(0, "val.record", 3, filename, None, WIDTH, HEIGHT,
                            norm(pixel_boxes), np.ones(len(pixel_boxes), dtype=np.int64),
                            np.zeros(len(pixel_boxes), dtype=bool))
    return runner.ImageResult(record, (WIDTH, HEIGHT), norm([b for b, _ in dets]),
                              np.array([s for _, s in dets], dtype=np.float64),
                              np.ones(len(dets), dtype=np.int64))


@pytest.fixture()
def annotations(tmp_path):
    path = tmp_path / "wider_face_val_bbx_gt.txt"
    path.write_text(ANNOTATIONS)
    return str(path)


def test_dropped_faces_are_added_as_difficult_boxes(annotations):
    results = [_result("0--Parade/0_Parade_a_1.jpg", [(10, 10, 70, 70)]),
               _result("1--Handshaking/1_Handshaking_b_2.jpg", [])]
    out, doc = dropped.with_dropped_faces(results, annotations)
    record = out[0].record
    assert record.difficult.tolist() == [False, True, True]
    assert record.labels.tolist() == [1, 1, 1]
    pixels = record.boxes * [HEIGHT, WIDTH, HEIGHT, WIDTH]
    np.testing.assert_allclose(pixels[1], [20, 120, 60, 160])
    np.testing.assert_allclose(pixels[2], [60, 180, 100, 200])  # clipped to the image
    assert len(out[1].record.boxes) == 0
    assert doc["faces"] == 2 and doc["annotations"]["path"] == annotations
    assert len(doc["annotations"]["sha256"]) == 64
    assert doc["annotations"]["bytes"] == len(ANNOTATIONS)


def test_a_detection_on_a_dropped_face_is_neither_right_nor_wrong(annotations):
    face, blurred, stray = (10, 10, 70, 70), (121, 21, 160, 60), (80, 70, 100, 90)
    results = [_result("0--Parade/0_Parade_a_1.jpg", [face],
                       [(face, 0.9), (blurred, 0.8), (stray, 0.7)])]
    plain, _ = metrics.at_threshold(results, [1], 0.5)
    assert (plain["true_positives"], plain["false_positives"]) == (1, 2)
    out, _ = dropped.with_dropped_faces(results, annotations)
    aside, _ = metrics.at_threshold(out, [1], 0.5)
    assert (aside["true_positives"], aside["false_positives"], aside["missed"]) == (1, 1, 0)
    assert (aside["difficult"], aside["ignored"]) == (2, 1)
    assert aside["precision"] == 0.5 and aside["recall"] == 1.0


def test_records_the_file_does_not_list_are_named(annotations, tmp_path):
    results = [_result("9--Press/9_Press_c_7.jpg", [])]
    with pytest.raises(dropped.AnnotationsMismatch,
                       match=r"val.record: record 3 \(9--Press/9_Press_c_7.jpg\) is not listed "
                             r"in .*wider_face_val_bbx_gt.txt: give --wider-annotations"):
        dropped.with_dropped_faces(results, annotations)
    with pytest.raises(dropped.AnnotationsMismatch, match="no such file"):
        dropped.with_dropped_faces(results, str(tmp_path / "missing.txt"))
