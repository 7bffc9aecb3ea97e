"""Scores (facekit.detector.scores): the sigmoid, and the logit bound that picks the
candidates, which must not change which anchors pass a threshold."""

import numpy as np
import pytest
from decode_reference import assert_matches_reference, random_tensors, ref_decode

from facekit.detector import decode, scores


def test_score_threshold_is_strict_and_sigmoid_is_stable():
    anchors = [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]]
    assert decode.decode_dense(np.zeros((2, 4)), [[0.0, 0.0], [0.0, -1000.0]], anchors) == []
    np.testing.assert_allclose(scores.sigmoid([-1000.0, 0.0, 1000.0]), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("score_threshold", [0.0, 0.05, 0.3, 0.5, 0.9, 0.999999999999, 1.0])
def test_score_thresholds_without_and_with_the_logit_prefilter(aiy_anchors, score_threshold):
    encodings, logits = random_tensors(50, 1278)
    logits[:, 1] *= 4.0  # scores from ~0 to ~1
    reference = ref_decode(encodings.tolist(), logits.tolist(), aiy_anchors.tolist(),
                           score_threshold=score_threshold)
    dense = decode.decode_dense(encodings, logits, aiy_anchors,
                                score_threshold=score_threshold)
    assert_matches_reference(dense, reference)
