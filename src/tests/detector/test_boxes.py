"""The box coder (facekit.detector.boxes): encodings against anchors, clamped boxes."""

import math

import numpy as np

from facekit.detector.boxes import decode_boxes


def test_zero_encoding_gives_back_the_anchor():
    anchors = np.array([[0.1, 0.2, 0.5, 0.4], [0.3, 0.3, 0.9, 0.6]], dtype=np.float32)
    boxes = decode_boxes(np.zeros((2, 4)), anchors)
    np.testing.assert_allclose(boxes, anchors, atol=1e-7)


def test_encoding_moves_and_scales_the_anchor():
    anchor = [[0.2, 0.2, 0.6, 0.4]]  # centre (0.4, 0.3), h 0.4, w 0.2
    # ty=1 -> centre y + 0.1 * 0.4; th=5*ln 0.5 -> half the height
    box = decode_boxes([[1.0, 0.0, 5.0 * math.log(0.5), 0.0]], anchor)[0]
    np.testing.assert_allclose(box, [0.34, 0.2, 0.54, 0.4], atol=1e-12)


def test_boxes_are_clamped_to_the_image():
    anchors = [[-0.05, -0.05, 0.15, 0.15], [0.4, 0.4, 0.6, 0.6]]
    boxes = decode_boxes([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 500.0, 20.0]], anchors)
    np.testing.assert_allclose(boxes[0], [0.0, 0.0, 0.15, 0.15], atol=1e-7)
    np.testing.assert_allclose(boxes[1], [0.0, 0.0, 1.0, 1.0])
