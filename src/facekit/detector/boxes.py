"""The Faster R-CNN box coder's decode: SSD box encodings against the anchor table.

An encoding (ty, tx, th, tw) moves an anchor's centre by ty / 10 and tx / 10 of its
height and width and scales them by exp(th / 5) and exp(tw / 5); the box is clamped to
[0, 1]. Python 3.5 and numpy only: this runs on the kit.
"""

import numpy as np

from facekit.detector.tensors import anchor_table, encodings_array

# The Faster R-CNN box coder's (y, x, h, w) scale factors of the Object Detection API's
# SSD configs; AIY's models and facekit's pipeline use the same.
SCALES = (10.0, 10.0, 5.0, 5.0)


def decode_boxes(encodings, anchors, scales=SCALES):
    """Boxes [N, 4] (ymin, xmin, ymax, xmax) clamped to [0, 1] from encodings [N, 4] as
    (ty, tx, th, tw) against anchors [N, 4] (the Faster R-CNN box coder's decode)."""
    table = np.asarray(anchor_table(anchors), dtype=np.float64)
    enc = encodings_array(encodings, table.shape[0])
    return np.ascontiguousarray(decode_coords(enc, table, scales).T)


def decode_coords(enc, anchors, scales=SCALES):
    """decode_boxes of float64 arrays [K, 4] already checked (encodings and their anchors'
    rows), as a new array [4, K]: a row per coordinate, as nms_ranked takes them."""
    size = anchors[:, 2:] - anchors[:, :2]                  # ha, wa
    centre = anchors[:, :2] + 0.5 * size                    # yca, xca
    # A huge th/tw overflows to inf: the box then covers the image after clamping. With
    # the default scales, encodings below 500 cannot overflow (a check cheaper than
    # np.errstate on old numpy); anything else decodes with the warnings silenced.
    if scales is SCALES and np.maximum.reduce(np.abs(enc), None) < 500.0:
        boxes = _corners(enc / _SCALES, size, centre)
    else:
        sy, sx, sh, sw = (float(s) for s in scales)
        with np.errstate(over="ignore", invalid="ignore"):
            boxes = _corners(enc / np.array([sy, sx, sh, sw]), size, centre)
    # np.clip(boxes, 0, 1) (NaN stays NaN) in two cheaper calls.
    return np.minimum(np.maximum(boxes, 0.0), 1.0)


def _corners(scaled, size, centre):
    """[4, K] corners from the encodings divided by the scales [K, 4], the anchors'
    sizes and centres [K, (y, x)]."""
    half = 0.5 * np.exp(scaled[:, 2:]) * size               # half height, half width
    mid = scaled[:, :2] * size + centre                     # yc, xc
    boxes = np.empty((4, scaled.shape[0]))
    np.subtract(mid, half, boxes[:2].T)
    np.add(mid, half, boxes[2:].T)
    return boxes


_SCALES = np.array(SCALES)
