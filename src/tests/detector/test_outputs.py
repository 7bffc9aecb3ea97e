"""facekit.detector.outputs: a frame's result (objects shaped like the library's protobuf
results) -> detections -> the JSON records the service publishes."""

import json

import pytest
from detector_fakes import (
    AIY_ANCHORS,
    FakeResult,
    FakeTensor,
    N,
    dense_outputs,
    fake_model,
    sparse_result,
)

from facekit.detector import decode, exits, outputs


def test_sparse_result_decodes_like_the_dense_tensors():
    encodings, logits = dense_outputs()
    result = sparse_result(encodings, logits)
    assert 5 < len(result.tensors["concat_1"].data) < 200
    got = outputs.result_detections(result, fake_model(), 0.5, 0.5, 100)
    expected = decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS))
    assert got == expected and len(got) > 1


def test_full_tensors_are_decoded_too():
    """A bonnet that ignores the sparse configs sends every anchor: same detections."""
    encodings, logits = dense_outputs(seed=3)
    result = FakeResult({"concat_1": FakeTensor(logits.reshape(-1).tolist()),
                         "concat": FakeTensor(encodings.reshape(-1).tolist())})
    got = outputs.result_detections(result, fake_model(), 0.6, 0.4, 3)
    assert got == decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS),
                                      score_threshold=0.6, iou_threshold=0.4,
                                      max_detections=3)
    assert len(got) == 3


def test_a_frame_without_hits_has_no_faces():
    result = FakeResult({"concat_1": FakeTensor(), "concat": FakeTensor()})
    assert outputs.result_detections(result, fake_model()) == []


def test_face_records_are_in_the_frame_window():
    det = decode.Detection(1, 0, 0.912345, 0.1, 0.2, 0.5, 0.6)
    face = outputs.face_record(det, ["face"], (10, 20, 200, 100))
    assert list(face.items()) == [("label", "face"), ("score", 0.9123),
                                  ("box", [50, 30, 80, 40]), ("norm", [0.1, 0.2, 0.5, 0.6])]
    record = outputs.frame_record(4, 1700000000.123, fake_model(), [face], 33, camera_frame=17,
                                  thresholds={"face": {"score": 0.31, "from": "bundle"}})
    listed = ('[{"label": "face", "score": 0.9123, "box": [50, 30, 80, 40], '
              '"norm": [0.1, 0.2, 0.5, 0.6]}]')
    # Schema 2: the neutral "detections", and "faces" (schema 1's name) for one release more.
    assert json.dumps(record) == (
        '{"schema": 2, "frame": 4, "time": 1700000000.123, "model": "faces", "version": "abc", '
        '"detections": ' + listed + ', "faces": ' + listed + ', '
        '"thresholds": {"face": {"score": 0.31, "from": "bundle"}}, "ms": 33, '
        '"camera_frame": 17}')


def test_window_falls_back_to_the_frame_then_the_input_size():
    model = fake_model()
    assert outputs.frame_window(FakeResult({}, window=(5, 6, 7, 8)), model) == (5, 6, 7, 8)
    assert outputs.frame_window(FakeResult({}, window=(0, 0, 0, 0), size=(640, 480)),
                                model) == (0, 0, 640, 480)
    assert outputs.frame_window(FakeResult({}, window=(0, 0, 0, 0), size=(0, 0)),
                                model) == (0, 0, 256, 256)


@pytest.mark.parametrize("tensors, message", [
    ({"concat_1": FakeTensor()}, "has no tensor concat (it has concat_1)"),
    ({"concat_1": FakeTensor([2.0], [(3, 1)]), "concat": FakeTensor([0.0] * 3, [(3,)])},
     "concat: 1 indices but 3 values"),
    ({"concat_1": FakeTensor([2.0], [(N + 5, 1)]),
      "concat": FakeTensor([0.0] * 4, [(N + 5,)])}, "anchor 1283 out of range"),
    ({"concat_1": FakeTensor([2.0], [(3,)]), "concat": FakeTensor([0.0] * 4, [(3,)])},
     "concat_1 index 0: expected 2 values"),
    ({"concat_1": FakeTensor([2.0], [(3, 2)]), "concat": FakeTensor([0.0] * 4, [(3,)])},
     "the model gave class 2 but"),
])
def test_outputs_that_do_not_fit_the_bundle_are_exit_3(tensors, message):
    with pytest.raises(outputs.OutputError) as info:
        outputs.result_detections(FakeResult(tensors), fake_model())
    assert message in str(info.value)
    assert info.value.exit_status == exits.EXIT_MODEL == 3
