"""Non-maximum suppression (facekit.detector.nms): what it keeps, and its two ways."""

from decode_reference import clustered_tensors

from facekit.detector import decode, nms


def test_nms_drops_an_overlapping_lower_score_box_and_keeps_a_distant_one():
    boxes = [[0.1, 0.1, 0.5, 0.5],     # best
             [0.12, 0.1, 0.52, 0.5],   # IoU ~0.9 with the best: dropped
             [0.6, 0.6, 0.9, 0.9]]     # far away: kept
    assert nms.nms(boxes, [0.9, 0.8, 0.6]) == [0, 2]
    assert nms.nms(boxes, [0.7, 0.8, 0.6]) == [1, 2]
    assert nms.nms(boxes, [0.9, 0.8, 0.6], iou_threshold=0.95) == [0, 1, 2]
    assert nms.nms(boxes, [0.9, 0.8, 0.6], max_detections=1) == [0]


def test_python_nms_and_the_iou_matrix_agree_to_the_bit(aiy_anchors, monkeypatch):
    """The Python NMS (few kept boxes) and the blockwise IoU matrix (many) keep the same
    boxes: the same IEEE operations, whichever way and however the blocks fall."""
    for seed in range(30, 36):
        encodings, logits = clustered_tensors(seed, 150)
        if seed % 2:
            encodings[:40] = 0.0  # identical boxes
        for iou_threshold in (0.0, 0.2, 0.5, 0.8):
            python_way = decode.decode_dense(encodings, logits, aiy_anchors,
                                             iou_threshold=iou_threshold)
            with monkeypatch.context() as patch:
                patch.setattr(decode, "PYTHON_NMS_LIMIT", 0)
                patch.setattr(nms, "NMS_BLOCK", 7)
                matrix_way = decode.decode_dense(encodings, logits, aiy_anchors,
                                                 iou_threshold=iou_threshold)
            assert python_way == matrix_way and python_way
