"""facekit.eval.operating on hand-made rankings: max F1, min precision, no positives, ties,
and the threshold's place between two scores."""

import pytest

from facekit.eval import operating, voc


def ranking(rows, objects):
    """A ClassResult from (score, true positive) rows and the class's object count."""
    scores = [s for s, _ in rows]
    hits = [t for _, t in rows]
    precision, recall, ranked = voc.precision_recall(scores, hits, objects)
    return voc.ClassResult(float("nan"), precision, recall, ranked, objects)


# 4 objects; F1 after each cut: .4, .667, .571, .75, .667, .6
ROWS = [(0.95, True), (0.9, True), (0.8, False), (0.6, True), (0.4, False), (0.3, False)]


def test_max_f1_picks_the_best_cut_and_a_threshold_between_its_scores():
    point = operating.choose(ranking(ROWS, 4), floor=0.02)
    # top 4: 3 TP of 4 detections, 3 of 4 objects: F1 0.75, threshold in [0.4, 0.6)
    assert point["detections"] == 4 and point["true_positives"] == 3
    assert point["precision"] == 0.75 and point["recall"] == 0.75
    assert point["f1"] == pytest.approx(0.75)
    assert 0.4 <= point["threshold"] < 0.6
    assert point["threshold"] == 0.5  # the midpoint, one decimal


def test_the_threshold_keeps_exactly_the_chosen_detections():
    result = ranking(ROWS, 4)
    point = operating.choose(result, floor=0.02)
    kept = [s for s in result.scores if s > point["threshold"]]
    assert len(kept) == point["detections"]


def test_min_precision_takes_the_lowest_threshold_that_reaches_it():
    result = ranking(ROWS, 4)
    point = operating.choose(result, rule=operating.MIN_PRECISION, min_precision=0.7, floor=0.02)
    # precision by cut: 1, 1, .667, .75, .6, .5: the last cut at >= 0.7 keeps 4
    assert point["detections"] == 4 and point["precision"] == 0.75
    strict = operating.choose(result, rule=operating.MIN_PRECISION, min_precision=1.0, floor=0.02)
    assert strict["detections"] == 2 and strict["recall"] == 0.5
    assert 0.8 <= strict["threshold"] < 0.9


def test_min_precision_out_of_reach_gives_no_point_and_says_why():
    result = ranking([(0.9, False), (0.5, True)], 1)
    point = operating.choose(result, rule=operating.MIN_PRECISION, min_precision=0.9)
    assert point["threshold"] is None
    assert "never reaches 0.9" in point["reason"] and "0.5000" in point["reason"]


def test_a_class_without_positives_gets_no_operating_point():
    point = operating.choose(ranking([(0.9, False), (0.8, False)], 0))
    assert point == {"threshold": None,
                     "reason": "no ground-truth box of this class in the evaluated records"}


def test_no_detection_or_no_true_positive_gets_no_operating_point():
    assert "no detection" in operating.choose(ranking([], 3), floor=0.02)["reason"]
    assert "none of its 2 detections" in operating.choose(
        ranking([(0.9, False), (0.8, False)], 3))["reason"]


def test_equal_f1_takes_the_higher_threshold():
    # 2 objects: top 1 (1 TP): F1 2/3; top 2 (1 TP): 1/2; top 4 (2 TP): 2/3: a tie.
    rows = [(0.9, True), (0.7, False), (0.6, False), (0.5, True)]
    point = operating.choose(ranking(rows, 2), floor=0.02)
    assert point["detections"] == 1
    assert 0.7 <= point["threshold"] < 0.9


def test_equal_scores_are_kept_or_dropped_together():
    # Cutting inside the run of 0.6s would give F1 1.0 (2 TP); the kit cannot do that.
    rows = [(0.9, True), (0.6, True), (0.6, False), (0.6, False), (0.2, False)]
    result = ranking(rows, 2)
    point = operating.choose(result, floor=0.02)
    assert point["detections"] in (1, 4)
    kept = [s for s in result.scores if s > point["threshold"]]
    assert len(kept) == point["detections"]


def test_keeping_everything_never_goes_below_the_floor():
    point = operating.choose(ranking([(0.9, True), (0.04, True)], 2), floor=0.03)
    assert point["detections"] == 2
    assert 0.03 <= point["threshold"] < 0.04


def test_threshold_between_rounds_the_midpoint_to_few_decimals():
    assert operating.threshold_between(0.3099872, 0.3121) == 0.31
    assert operating.threshold_between(0.3101, 0.3121) == 0.311
    assert operating.threshold_between(0.1, 0.9) == 0.5
    low, high = 0.5, 0.5 + 1e-12
    assert operating.threshold_between(low, high) == low


def test_operating_points_per_label_and_the_kits_defaults():
    per_class = {1: ranking(ROWS, 4), 2: ranking([(0.7, False)], 0)}
    section = operating.operating_points(per_class, ["face", "mask"], floor=0.02)
    assert section["rule"] == "max_f1" and section["min_precision"] is None
    assert section["thresholds"] == {"face": 0.5, "mask": None}
    assert operating.class_thresholds(section, ["face", "mask"], 0.5) == {1: 0.5, 2: 0.5}
    assert operating.class_thresholds(None, ["face"], 0.5) == {1: 0.5}


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="rule"):
        operating.choose(ranking(ROWS, 4), rule="best")
    with pytest.raises(ValueError, match="min_precision"):
        operating.choose(ranking(ROWS, 4), rule=operating.MIN_PRECISION)
