"""facekit.eval.metrics: the kit's figures at a threshold (one number or one per class),
with VOC's difficult boxes neither found nor missed and their detections neither right nor
wrong, on hand-made images."""

import numpy as np
import pytest

from facekit.eval import metrics, records, runner

SIZE = (100, 100)


def result(gts, dets):
    """runner.ImageResult from [(box, label, difficult)] and [(box, score, label)], boxes
    normalised."""
    record = records.Record(0, "v.record", 0, "a.jpg", None, SIZE[0], SIZE[1],
                            np.array([b for b, _, _ in gts], dtype=np.float64).reshape(-1, 4),
                            np.array([c for _, c, _ in gts], dtype=np.int64),
                            np.array([d for _, _, d in gts], dtype=bool))
    return runner.ImageResult(
        record, SIZE, np.array([b for b, _, _ in dets], dtype=np.float64).reshape(-1, 4),
        np.array([s for _, s, _ in dets], dtype=np.float64),
        np.array([c for _, _, c in dets], dtype=np.int64))


FACE, HARD, OTHER = (0.0, 0.0, 0.5, 0.5), (0.6, 0.6, 0.9, 0.9), (0.0, 0.6, 0.3, 0.9)
STRAY = (0.5, 0.0, 0.6, 0.1)


def test_difficult_boxes_and_their_detections_are_counted_apart():
    results = [result([(FACE, 1, False), (HARD, 1, True), (OTHER, 1, False)],
                      [(FACE, 0.9, 1), (HARD, 0.8, 1), (HARD, 0.7, 1), (STRAY, 0.6, 1)])]
    figures, (_, matches) = metrics.at_threshold(results, [1], 0.5)
    assert figures["threshold"] == 0.5
    assert (figures["difficult"], figures["ignored"]) == (1, 2)
    assert (figures["true_positives"], figures["false_positives"], figures["missed"]) == (1, 1, 1)
    assert figures["recall"] == 0.5 and figures["precision"] == 0.5
    assert figures["false_positives_per_image"] == 1.0
    assert sum(s["faces"] for s in figures["recall_by_size"].values()) == 2
    assert matches[0].det_ignored.tolist() == [False, True, True, False]
    _, (images, matches) = metrics.at_threshold(results, [1], 0.5)
    assert metrics.class_points(images, matches, [1]) == {1: (0.5, 0.5)}


def test_a_threshold_per_class_and_the_lowest_for_a_class_not_named():
    results = [result([(FACE, 1, False), (OTHER, 2, False), (HARD, 3, False)],
                      [(FACE, 0.6, 1), (OTHER, 0.6, 2), (HARD, 0.35, 3)])]
    figures, (images, _) = metrics.at_threshold(results, [1, 2, 3], {1: 0.5, 2: 0.7, 4: 0.3})
    # Class 1 keeps 0.6 (> 0.5), class 2 drops it (not > 0.7), class 3 takes the lowest, 0.3.
    assert images[0].det_labels.tolist() == [1, 3]
    assert figures["threshold"] == {1: 0.5, 2: 0.7, 4: 0.3}
    assert (figures["true_positives"], figures["missed"]) == (2, 1)
    # A score equal to the threshold is dropped, as on the kit.
    assert len(metrics.image_detections(results, {1: 0.6, 2: 0.6, 3: 0.35})[0].det_scores) == 0
    with pytest.raises(ValueError, match="at least one"):
        metrics.image_detections(results, {})


def test_without_difficult_boxes_nothing_is_left_out():
    results = [result([(FACE, 1, False)], [(FACE, 0.9, 1), (HARD, 0.8, 1)])]
    figures, _ = metrics.at_threshold(results, [1], 0.5)
    assert (figures["difficult"], figures["ignored"]) == (0, 0)
    assert figures["precision"] == 0.5 and figures["recall"] == 1.0
