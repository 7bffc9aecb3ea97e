"""facekit.eval.voc: the AP at IoU 0.5 of `facekit eval run`, against hand-computed cases
and a plain-loop reference written from the definitions (voc_plain.py)."""

import math

import numpy as np
import pytest
import voc_plain

from facekit.eval import voc


def image(gts, dets):
    """voc.ImageDetections from [(box, label)] and [(box, score, label)]."""
    return voc.ImageDetections(
        [b for b, _ in gts], [c for _, c in gts],
        [b for b, _, _ in dets], [s for _, s, _ in dets], [c for _, _, c in dets])


def ap_of(images, cls=1):
    results, _ = voc.evaluate(images, [cls])
    return results[cls].ap


def test_duplicate_detection_is_a_false_positive_after_the_hit():
    gt = [([0, 0, 10, 10], 1)]
    dets = [([0, 0, 10, 12], 0.9, 1), ([0, 0, 10, 11], 0.8, 1)]
    results, matches = voc.evaluate([image(gt, dets)], [1])
    assert results[1].precision.tolist() == [1.0, 0.5]
    assert results[1].recall.tolist() == [1.0, 1.0]
    assert results[1].ap == 1.0
    assert matches[0][0].tolist() == [True] and matches[0][1].tolist() == [True, False]


def test_false_positive_ranked_first_costs_the_envelope():
    # Ranked: FP, TP, TP over 2 faces: precision 0, 1/2, 2/3; recall 0, 1/2, 1.
    # Envelope at recall 1/2 and 1 is 2/3: AP = 2/3.
    gts = [([0, 0, 10, 10], 1), ([20, 20, 30, 30], 1)]
    dets = [([50, 50, 60, 60], 0.9, 1), ([0, 0, 10, 10], 0.8, 1), ([20, 20, 30, 30], 0.7, 1)]
    assert ap_of([image(gts, dets)]) == pytest.approx(2.0 / 3.0, abs=1e-12)


def test_no_fallback_to_a_second_box_and_iou_without_plus_one():
    # The second detection overlaps both faces equally (IoU 9/11); its best is the first
    # face (first on a tie), already found: a false positive, not a hit on the second.
    gts = [([0, 0, 10, 10], 1), ([0, 2, 10, 12], 1)]
    dets = [([0, 0, 10, 10], 0.9, 1), ([0, 1, 10, 11], 0.8, 1)]
    assert ap_of([image(gts, dets)]) == pytest.approx(0.5, abs=1e-12)
    # IoU exactly 0.5 on continuous coordinates counts (>=); with +1 it would be 11/21.
    assert ap_of([image([([0, 0, 10, 10], 1)], [([0, 0, 10, 20], 0.5, 1)])]) == 1.0


def test_classes_apart_and_the_mean_leaves_out_classes_without_faces():
    gts = [([0, 0, 10, 10], 1), ([20, 20, 30, 30], 2)]
    dets = [([0, 0, 10, 10], 0.9, 2), ([20, 20, 30, 30], 0.8, 2), ([0, 0, 10, 10], 0.5, 1),
            ([40, 40, 50, 50], 0.6, 3)]
    results, _ = voc.evaluate([image(gts, dets)], [1, 2, 3])
    assert results[1].ap == 1.0
    # Class 2: FP (wrong class's face) then TP: precision 0, 1/2 at recall 0, 1.
    assert results[2].ap == pytest.approx(0.5)
    assert math.isnan(results[3].ap) and results[3].objects == 0
    assert voc.mean_ap(results) == pytest.approx(0.75)


def test_missed_faces_and_empty_images():
    images = [image([([0, 0, 10, 10], 1), ([20, 20, 30, 30], 1)], [([0, 0, 10, 10], 0.9, 1)]),
              image([], [([0, 0, 5, 5], 0.95, 1)]), image([([0, 0, 5, 5], 1)], [])]
    # Ranked: FP (0.95), TP (0.9) over 3 faces: AP = 1/3 * 1/2.
    assert ap_of(images) == pytest.approx(1.0 / 6.0)
    assert ap_of([image([([0, 0, 5, 5], 1)], [])]) == 0.0


def _random_images(rng, count):
    images = []
    for _ in range(count):
        faces = rng.randint(0, 6)
        gts = []
        for _ in range(faces):
            y, x = rng.uniform(0, 200, 2)
            h, w = rng.uniform(4, 60, 2)
            gts.append(([y, x, y + h, x + w], int(rng.randint(1, 3))))
        dets = []
        for box, label in gts:
            for _ in range(rng.randint(0, 3)):
                jitter = rng.normal(0, 4, 4)
                dets.append(([float(v) for v in np.array(box) + jitter],
                             float(rng.choice([rng.uniform(), 0.5])), label))
        for _ in range(rng.randint(0, 4)):
            y, x = rng.uniform(0, 200, 2)
            dets.append(([y, x, y + 20, x + 20], float(rng.uniform()),
                         int(rng.randint(1, 3))))
        images.append((gts, dets))
    return images


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_plain_loop_reference(seed):
    rng = np.random.RandomState(seed)
    plain = _random_images(rng, 40)
    results, _ = voc.evaluate([image(g, d) for g, d in plain], [1, 2])
    for cls in (1, 2):
        expected = voc_plain.class_ap(plain, cls)
        assert results[cls].ap == pytest.approx(expected, abs=1e-12)


# ---- VOC's difficult boxes: neither found nor missed, their detections neither right nor wrong

def hard_image(gts, dets):
    """image() with a difficult flag per box: gts as [(box, label, difficult)]."""
    return voc.ImageDetections(
        [b for b, _, _ in gts], [c for _, c, _ in gts],
        [b for b, _, _ in dets], [s for _, s, _ in dets], [c for _, _, c in dets],
        [d for _, _, d in gts])


def test_detections_of_a_difficult_box_are_ignored_even_the_second():
    gts = [([0, 0, 10, 10], 1, False), ([20, 20, 30, 30], 1, True)]
    dets = [([20, 20, 30, 30], 0.95, 1), ([20, 20, 30, 31], 0.9, 1), ([0, 0, 10, 10], 0.8, 1)]
    results, matches = voc.evaluate([hard_image(gts, dets)], [1])
    # Only the normal box counts: one object, one ranked detection, a hit.
    assert results[1].objects == 1
    assert results[1].scores.tolist() == [0.8] and results[1].ap == 1.0
    assert matches[0].det_ignored.tolist() == [True, True, False]
    assert matches[0].det_true_positive.tolist() == [False, False, True]
    assert matches[0].gt_difficult.tolist() == [False, True]


def test_a_missed_difficult_box_costs_nothing():
    gts = [([0, 0, 10, 10], 1, False), ([20, 20, 30, 30], 1, True)]
    results, matches = voc.evaluate([hard_image(gts, [([0, 0, 10, 10], 0.9, 1)])], [1])
    assert results[1].objects == 1 and results[1].recall.tolist() == [1.0]
    assert matches[0].gt_found.tolist() == [True, False]


def test_best_overlap_with_a_difficult_box_ignores_it_despite_a_normal_one():
    # The detection overlaps the normal box at IoU 0.6 but the difficult one more: the API
    # picks the best box over all of them, so the detection is ignored, not a hit.
    gts = [([0, 0, 10, 10], 1, False), ([0, 2, 10, 12], 1, True)]
    dets = [([0, 2, 10, 12], 0.9, 1)]
    results, matches = voc.evaluate([hard_image(gts, dets)], [1])
    assert matches[0].det_ignored.tolist() == [True]
    assert results[1].objects == 1 and len(results[1].scores) == 0 and results[1].ap == 0.0


def test_ap_with_difficult_boxes_counts_only_the_others():
    # Ranked without the ignored one: TP 0.9, FP 0.7, TP 0.6 over 2 objects.
    gts = [([0, 0, 10, 10], 1, False), ([20, 20, 30, 30], 1, False), ([40, 40, 50, 50], 1, True)]
    dets = [([0, 0, 10, 10], 0.9, 1), ([40, 40, 50, 50], 0.8, 1), ([60, 60, 70, 70], 0.7, 1),
            ([20, 20, 30, 30], 0.6, 1)]
    results, _ = voc.evaluate([hard_image(gts, dets)], [1])
    assert results[1].precision.tolist() == pytest.approx([1.0, 0.5, 2.0 / 3.0])
    assert results[1].ap == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 / 3.0)
    # Without the flag the 0.8 detection is a hit and the box an object.
    gts[2] = ([40, 40, 50, 50], 1, False)
    assert voc.evaluate([hard_image(gts, dets)], [1])[0][1].objects == 3
