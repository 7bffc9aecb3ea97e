"""The thresholds the detector runs: the bundle's operating point, the default without
one, --threshold for every class or one, and what the service does with them."""

import json
import math

import pytest
from decode_reference import AIY_ANCHORS
from detector_fakes import (
    FakeLibrary,
    dense_outputs,
    deploy,
    make_bundle,
    run_main,
    sparse_result,
)

from facekit.detector import client, decode, thresholds
from facekit.detector.exits import DetectorError
from facekit.detector.release import open_bundle
from facekit.model import bundle


def evaluated(tmp_path, operating_point):
    """A bundle with an attached evaluation whose eval.json has `operating_point`."""
    made = make_bundle(tmp_path, extra={"input_size": "256"})
    results = tmp_path / "eval"
    results.mkdir()
    doc = {"bundle": {"name": "faces", "version": made["version"]}}
    if operating_point is not None:
        doc["operating_point"] = operating_point
    (results / "eval.json").write_text(json.dumps(doc))
    for name in ("pr.png", "samples.png", "report.html"):
        (results / name).write_bytes(b"picture")
    bundle.attach_evaluation(made["path"], str(results))
    return made


def test_the_bundles_operating_point_is_read_from_its_verified_eval_json(tmp_path):
    made = evaluated(tmp_path, {"rule": "max_f1", "thresholds": {"face": 0.31}})
    model = open_bundle(made["path"])
    assert model.operating_point == ("max_f1", {"face": 0.31})
    chosen = thresholds.in_force(model.labels, model.operating_point, None)
    assert chosen == {"face": {"score": 0.31, "from": "bundle"}}
    assert thresholds.scores(chosen) == 0.31 and thresholds.lowest(chosen) == 0.31


def test_no_evaluation_or_an_old_one_keeps_the_default(tmp_path):
    assert open_bundle(make_bundle(tmp_path / "a")["path"]).operating_point is None
    assert open_bundle(evaluated(tmp_path / "b", None)["path"]).operating_point is None
    assert thresholds.in_force(["face"], None, None) == {
        "face": {"score": 0.5, "from": "default"}}


def test_a_bad_threshold_in_the_evaluation_is_a_bundle_error(tmp_path):
    made = evaluated(tmp_path, {"rule": "max_f1", "thresholds": {"face": 1.5}})
    with pytest.raises(DetectorError, match="threshold 1.5, not a score in") as info:
        open_bundle(made["path"])
    assert info.value.exit_status == 4


def test_the_option_overrides_every_class_or_one():
    point = ("max_f1", {"cat": 0.3, "dog": None, "bird": 0.6})
    labels = ["cat", "dog", "bird"]
    chosen = thresholds.in_force(labels, point, [("dog", 0.45)], "inventory")
    assert list(chosen) == labels
    assert chosen == {"cat": {"score": 0.3, "from": "bundle"},
                      "dog": {"score": 0.45, "from": "inventory"},
                      "bird": {"score": 0.6, "from": "bundle"}}
    assert thresholds.scores(chosen) == (0.3, 0.45, 0.6) and thresholds.lowest(chosen) == 0.3
    every = thresholds.in_force(labels, point, [(None, 0.4), ("bird", 0.7)])
    assert [e["score"] for e in every.values()] == [0.4, 0.4, 0.7]
    assert {e["from"] for e in every.values()} == {"command line"}
    assert thresholds.in_force(labels, None, None)["dog"] == {"score": 0.5, "from": "default"}
    assert "cat 0.3 (bundle), dog 0.45 (inventory)" in thresholds.describe(chosen)


def test_a_label_the_model_lacks_is_a_usage_error():
    with pytest.raises(DetectorError, match="the model has no class 'mask'") as info:
        thresholds.in_force(["face"], None, [("mask", 0.4)])
    assert info.value.exit_status == 2


def test_the_service_runs_the_bundles_thresholds_and_the_bonnet_the_lowest(
        tmp_path, monkeypatch, capsys, quiet_root):
    made = evaluated(tmp_path, {"rule": "max_f1", "thresholds": {"face": 0.31}})
    models = str(tmp_path / "models")
    deploy(made, models)
    encodings, logits = dense_outputs(seed=5)
    frame = sparse_result(encodings, logits, 0.31, window=(0, 0, 640, 480))
    library = FakeLibrary([frame])
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, out, errors = run_main(capsys, "--models", models, "--frames", "1")
    assert (status, errors) == (0, [])
    assert library.configs["concat_1"].threshold == pytest.approx(math.log(0.31 / 0.69))
    line = json.loads(out.splitlines()[0])
    assert line["thresholds"] == {"face": {"score": 0.31, "from": "bundle"}}
    expected = decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS),
                                   score_threshold=0.31)
    assert len(line["detections"]) == len(expected) > 0
    assert min(d["score"] for d in line["detections"]) > 0.31

    # The inventory's value wins, and says where it came from.
    library = FakeLibrary([frame])
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, out, errors = run_main(capsys, "--models", models, "--frames", "1",
                                   "--threshold", "face=0.6", "--threshold-origin", "inventory")
    assert (status, errors) == (0, [])
    assert library.configs["concat_1"].threshold == pytest.approx(math.log(0.6 / 0.4))
    high = decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS),
                               score_threshold=0.6)
    assert 0 < len(high) < len(expected)
    line = json.loads(out.splitlines()[0])
    assert line["thresholds"] == {"face": {"score": 0.6, "from": "inventory"}}
    assert len(line["detections"]) == len(high)
