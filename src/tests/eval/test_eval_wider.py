"""facekit.eval.wider: the WIDER FACE protocol, against hand-computed cases and against the
plain-loop reference (wider_plain) on generated prediction sets."""

import collections
import logging
import math

import numpy as np
import pytest
import wider_plain
import wider_synthetic

from facekit.eval import ap, wider
from facekit.eval.groundtruth import GroundTruth
from facekit.eval.predictions import Predictions

TOLERANCE = 1e-4


def _truth(images):
    """A GroundTruth from [(boxes, {setting: 0-based counted faces})]."""
    boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b, _ in images]
    start = np.cumsum([0] + [len(b) for b in boxes])
    kept = {s: np.zeros(start[-1], dtype=bool) for s in wider_plain.SETTINGS}
    counts = collections.Counter()
    for i, (_, counted) in enumerate(images):
        for s in wider_plain.SETTINGS:
            for k in counted.get(s, ()):
                kept[s][start[i] + k] = True
                counts[s] += 1
    return GroundTruth(["0--E"], [("0--E", "img{}".format(i)) for i in range(len(images))],
                       np.concatenate(boxes), start, kept, {s: counts[s] for s in kept})


def _preds(per_image):
    rows = [np.asarray(r, dtype=np.float64).reshape(-1, 5) for r in per_image]
    start = np.cumsum([0] + [len(r) for r in rows])
    allrows = np.concatenate(rows)
    return Predictions(allrows[:, :4], allrows[:, 4], start, [], [])


def _anchored(images, per_image):
    """Add an image without faces holding one prediction scored 0: it counts nowhere, but
    it is part of the normalisation, so a single prediction keeps its score (alone, its
    range would be empty)."""
    return _truth(images + [([], {})]), _preds(per_image + [[[0, 0, 9, 9, 0.0]]])


ALL = {"easy": [0, 1], "medium": [0, 1], "hard": [0, 1]}
TWO_FACES = [([[0, 0, 99, 99], [200, 0, 99, 99]], ALL)]


def test_one_of_two_faces_found_exactly_gives_ap_half():
    result = wider.evaluate(*_anchored(TWO_FACES, [[[0, 0, 99, 99, 0.9]]]))
    assert result.aps == {"easy": 0.5, "medium": 0.5, "hard": 0.5}


def test_a_duplicate_is_a_false_positive_and_lowers_precision():
    # Found at 0.9, the duplicate at 0.8 proposes without finding: the envelope keeps
    # precision 1 up to recall 0.5; the second face at 0.4 reaches recall 1 at 2/3.
    preds = [[[0, 0, 99, 99, 0.9], [2, 2, 99, 99, 0.8], [200, 0, 99, 99, 0.4]]]
    result = wider.evaluate(_truth(TWO_FACES), _preds(preds))
    assert result.aps["hard"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_a_prediction_on_a_face_the_setting_does_not_count_is_ignored():
    truth = _truth([([[0, 0, 99, 99], [200, 0, 99, 99]],
                     {"easy": [0], "medium": [0, 1], "hard": [0, 1]})])
    # The prediction on face 1 scores highest: in easy it is ignored (precision stays 1),
    # in medium it is found.
    preds = [[[200, 0, 99, 99, 0.9], [0, 0, 99, 99, 0.5]]]
    result = wider.evaluate(truth, _preds(preds))
    assert result.aps["easy"] == pytest.approx(1.0)
    assert result.aps["medium"] == pytest.approx(1.0)
    assert result.faces == {"easy": 1, "medium": 2, "hard": 2}


def test_iou_uses_inclusive_pixel_boxes():
    # 100 x 100 face (x 0..99 inclusive with w 99); a box shifted by 34 px overlaps
    # 66 x 100 of 134 x 100: IoU 0.4925, a miss. Exclusive boxes (w 99 -> 99 px) would make
    # it 65 / 133 = 0.4887, also a miss; a shift of 33 gives 67/133 = 0.5038: found.
    face = [([[0, 0, 99, 99]], {"hard": [0]})]
    miss = wider.evaluate(*_anchored(face, [[[34, 0, 99, 99, 1.0]]]))
    hit = wider.evaluate(*_anchored(face, [[[33, 0, 99, 99, 1.0]]]))
    assert miss.aps["hard"] == 0.0
    assert hit.aps["hard"] == 1.0


def test_file_order_not_score_order_decides_what_counts_at_a_threshold():
    # The low-scored false positive written first still counts at a high threshold once a
    # later, higher-scored prediction does: precision 1/2 at every threshold.
    truth = _truth([([[0, 0, 99, 99]], {"easy": [0], "medium": [0], "hard": [0]})])
    result = wider.evaluate(truth, _preds([[[500, 500, 20, 20, 0.1], [0, 0, 99, 99, 0.9]]]))
    assert result.aps["hard"] == pytest.approx(0.5)
    plain = wider_plain.evaluate(*wider_plain.from_arrays(truth, _preds(
        [[[500, 500, 20, 20, 0.1], [0, 0, 99, 99, 0.9]]])))[0]
    assert plain["hard"] == pytest.approx(0.5)


def test_predictions_on_images_without_faces_count_nowhere():
    truth = _truth([([[0, 0, 99, 99]], {"hard": [0]}), ([], {})])
    alone = wider.evaluate(truth, _preds([[[0, 0, 99, 99, 0.5], [0, 0, 99, 99, 0.2]], []]))
    with_noise = wider.evaluate(truth, _preds([[[0, 0, 99, 99, 0.5], [0, 0, 99, 99, 0.2]],
                                               [[5, 5, 50, 50, 0.9]] * 20]))
    assert alone.aps["hard"] == with_noise.aps["hard"] == 1.0


def test_scores_are_normalised_with_bounds_starting_at_min_1_and_max_0():
    scores, bounds = wider.normalise_scores([3.0, 5.0, 11.0])
    assert bounds == (1.0, 11.0)
    np.testing.assert_allclose(scores, [0.2, 0.4, 1.0])
    _, bounds = wider.normalise_scores([0.3, 0.6])
    assert bounds == (0.3, 0.6)


def test_identical_scores_score_nothing_and_say_why(caplog):
    truth = _truth(TWO_FACES)
    with caplog.at_level(logging.WARNING, logger="facekit.eval"):
        result = wider.evaluate(truth, _preds([[[0, 0, 99, 99, 0.7], [200, 0, 99, 99, 0.7]]]))
    assert result.aps == {"easy": 0.0, "medium": 0.0, "hard": 0.0}
    assert "every prediction scores 0.7" in caplog.text


def test_no_prediction_at_all_gives_zero_ap_and_nan_precision():
    result = wider.evaluate(_truth(TWO_FACES), _preds([[]]))
    assert result.aps["hard"] == 0.0
    assert np.isnan(result.precision["hard"]).all()
    assert not result.recall["hard"].any()


def test_thresholds_are_the_tools():
    values = wider.thresholds()
    assert len(values) == 1000
    assert [values[0], values[499], values[999]] == [1 - 1 / 1000, 1 - 500 / 1000, 0.0]
    assert all(values[t] == 1 - (t + 1) / 1000 for t in range(1000))


def test_voc_ap_takes_the_precision_envelope():
    # precision 0.5 at recall 0.5 is raised to 1.0 (reached later at recall 0.75).
    assert ap.voc_ap([0.25, 0.5, 0.75], [1.0, 0.5, 1.0]) == pytest.approx(0.75)
    assert wider_plain.voc_ap([0.25, 0.5, 0.75], [1.0, 0.5, 1.0]) == pytest.approx(0.75)


def _check_agreement(truth, preds):
    result = wider.evaluate(truth, preds)
    aps, curves = wider_plain.evaluate(*wider_plain.from_arrays(truth, preds))
    for setting in wider_plain.SETTINGS:
        assert abs(result.aps[setting] - aps[setting]) < TOLERANCE, setting
        precision, recall = curves[setting]
        np.testing.assert_allclose(result.recall[setting], recall, atol=1e-12)
        np.testing.assert_allclose(result.precision[setting], precision, atol=1e-12)
    return result


@pytest.mark.parametrize("seed,options", [
    (0, {}),
    (1, {"sort": False}),
    (2, {"score_scale": 40.0}),              # logits-like scores above 1
    (3, {"duplicates": 0.8, "false_positives": 8.0}),
    (4, {"recall": 0.3, "sort": False, "score_scale": 0.2}),
    (5, {"recall": 1.0, "duplicates": 0.0, "false_positives": 0.0}),
])
def test_vectorised_equals_the_plain_loop_on_generated_sets(synthetic_gt, seed, options):
    rng = np.random.default_rng(seed)
    rows = wider_synthetic.prediction_set(rng, synthetic_gt, **options)
    # Some images get no prediction at all (as a missing file reads).
    for index in rng.choice(len(rows), size=3, replace=False):
        rows[index] = (rows[index][0], np.zeros((0, 5)))
    per_image = [r for _, r in rows]
    result = _check_agreement(synthetic_gt, _preds(per_image))
    assert 0.0 < result.aps["hard"] <= 1.0


def test_negative_and_tiny_boxes_agree_with_the_plain_loop(synthetic_gt):
    rng = np.random.default_rng(11)
    rows = []
    for _, generated in wider_synthetic.prediction_set(rng, synthetic_gt):
        r = generated.copy()
        if len(r):
            r[::3, 2:4] *= -0.5           # negative sizes, as a broken detector writes
            r[1::4, 2:4] = 0.0
            r[:, 4] -= 0.3                # negative scores
        rows.append(r)
    _check_agreement(synthetic_gt, _preds(rows))


def test_crowded_and_gathered_paths_agree(synthetic_gt, monkeypatch):
    rng = np.random.default_rng(12)
    preds = _preds([r for _, r in wider_synthetic.prediction_set(rng, synthetic_gt,
                                                                 duplicates=0.5)])
    gathered = wider.evaluate(synthetic_gt, preds)
    monkeypatch.setattr(wider, "CROWDED_PAIRS", 1)
    crowded = wider.evaluate(synthetic_gt, preds)
    monkeypatch.setattr(wider, "CROWDED_PAIRS", 1 << 40)
    monkeypatch.setattr(wider, "PAIR_CHUNK", 7)     # many small chunks
    chunked = wider.evaluate(synthetic_gt, preds)
    assert gathered.aps == crowded.aps == chunked.aps


def test_real_ground_truth_agrees_with_the_plain_loop(real_gt):
    # Predictions for every 12th image of WIDER val (the rest have none): all 61 events,
    # crowded images included, in a few seconds of plain loop.
    rng = np.random.default_rng(3)
    rows = wider_synthetic.prediction_set(rng, real_gt, sort=True)
    per_image = [r if i % 12 == 0 else np.zeros((0, 5)) for i, (_, r) in enumerate(rows)]
    result = _check_agreement(real_gt, _preds(per_image))
    assert not math.isnan(result.aps["easy"])
