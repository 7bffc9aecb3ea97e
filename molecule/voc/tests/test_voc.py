"""Your own objects end to end: the lab's three-class LabelImg sample converted, trained, evaluated
per class, bundled and decoded by a kit with the class names; side_effect's refusals."""

import json
import os
import subprocess
import sys

import pytest

testinfra_hosts = ["podman://facekit-voc-train", "podman://facekit-voc-kit1"]

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
STANDINS = os.environ.get("FACEKIT_STANDINS_DIR", "")
MODEL = "objects_ssd_embedded"
ARTIFACTS = os.path.join(EPHEMERAL, "artifacts", MODEL)
DATASET = "/var/lib/facekit/dataset"
WORK = "/var/lib/facekit/training/" + MODEL
LABELS = ["circle", "square", "triangle"]


def _only(host, name):
    if host.backend.name != name:
        pytest.skip("checked on " + name)


def _dataset(host):
    return json.loads(host.file(DATASET + "/dataset.json").content_string)


def _current():
    with open(os.path.join(ARTIFACTS, "current.json")) as handle:
        return json.load(handle)


def _sample_counts():
    """What the stand-in server's build of the sample says it holds (per class, per quirk)."""
    with open(os.path.join(STANDINS, "server.json")) as handle:
        state = json.load(handle)
    return state["built"]["voc_counts"]


def test_dataset_json_has_the_classes_and_counts(host):
    _only(host, "facekit-voc-train")
    splits = _dataset(host)["splits"]
    for split in ("train", "val"):
        entry = splits[split]
        assert entry["format"] == "voc" and entry["labels"] == LABELS
        assert [entry["classes"][n]["id"] for n in LABELS] == [1, 2, 3]
        for what in ("images", "objects"):
            part = entry[what]
            assert part["kept"] + sum(part["dropped"].values()) == part["total"]
        assert all(entry["classes"][n]["objects"] > 0 for n in LABELS)
    both = {k: splits["train"]["objects"]["dropped"][k] + splits["val"]["objects"]["dropped"][k]
            for k in splits["train"]["objects"]["dropped"]}
    # The sample's zero-area boxes are dropped as degenerate, nothing else is lost.
    assert both["degenerate"] > 0 and both["unknown_label"] == 0
    warnings = splits["train"]["warnings"] + splits["val"]["warnings"]
    assert any("<size> says" in w for w in warnings)
    label_map = host.file(DATASET + "/label_map.pbtxt").content_string
    assert [line.split("'")[1] for line in label_map.splitlines() if "name:" in line] == LABELS


def test_dataset_counts_match_the_sample(host):
    _only(host, "facekit-voc-train")
    counts = _sample_counts()
    splits = _dataset(host)["splits"]
    total = splits["train"]["images"]["total"] + splits["val"]["images"]["total"]
    assert total == counts["images"]
    objects = splits["train"]["objects"]["total"] + splits["val"]["objects"]["total"]
    assert objects == sum(counts["objects"].values())


def test_pipeline_config_has_three_classes(host):
    _only(host, "facekit-voc-train")
    config = host.file(WORK + "/pipeline.config").content_string
    assert "num_classes: 3" in config


def test_bundle_carries_the_labels_and_per_class_ap():
    current = _current()
    bundle = os.path.join(ARTIFACTS, current["version"])
    with open(os.path.join(bundle, "labels.txt")) as handle:
        assert handle.read().splitlines() == LABELS
    verify = subprocess.run([sys.executable, "-m", "facekit.cli", "model", "verify", bundle],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    assert verify.returncode == 0, verify.stdout
    with open(os.path.join(bundle, "eval.json")) as handle:
        doc = json.load(handle)
    assert sorted(doc["ap"]) == LABELS
    assert all(doc["objects"][name] > 0 for name in LABELS)
    # Not a WIDER FACE data set: no annotation file to read dropped faces from.
    assert doc["dropped_faces"] is None


def test_kit_reports_the_class_names(host):
    _only(host, "facekit-voc-kit1")
    assert host.service("facekit-detector").is_running
    journal = host.check_output("journalctl -u facekit-detector -o cat --no-pager")
    lines = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
    assert lines and all(line["schema"] == 2 and line["faces"] == line["detections"]
                         for line in lines)
    seen = set(d["label"] for line in lines for d in line["detections"])
    assert seen and seen <= set(LABELS), seen


def test_kit_runs_the_inventorys_thresholds_and_the_bundles_for_the_rest(host):
    _only(host, "facekit-voc-kit1")
    status = json.loads(host.check_output(
        "python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
        "\"http://127.0.0.1:8301/status\", timeout=5).read().decode())'"))
    doc = json.loads(host.file("/opt/facekit/models/current/eval.json").content_string)
    triangle = doc["operating_point"]["thresholds"]["triangle"]
    assert status["thresholds"] == {
        "circle": {"score": 0.05, "from": "inventory"},
        "square": {"score": 0.05, "from": "inventory"},
        "triangle": ({"score": triangle, "from": "bundle"} if triangle is not None
                     else {"score": 0.5, "from": "default"})}, status
    unit = host.file("/etc/systemd/system/facekit-detector.service").content_string
    assert "--threshold circle=0.05 --threshold square=0.05 --threshold-origin inventory" in unit


def test_side_effect_refusals():
    with open(os.path.join(EPHEMERAL, "side_effect.json")) as handle:
        observed = json.load(handle)
    assert observed["labels"] == LABELS
    refusal = observed["training_refusal"]
    assert "triangle, square, circle" in refusal and "circle, square, triangle" in refusal
    conversion = observed["conversion_refusal"]
    assert "'triangle'" in conversion and ".xml:" in conversion
    assert observed["dataset_json_unchanged"] is True
    mkl = observed["mkl_refusal"]
    assert "lacks avx," in mkl and "training_host_tensorflow: stock" in mkl, mkl


def test_the_training_env_is_intel_tensorflow(host):
    _only(host, "facekit-voc-train")
    env = dict(line.split("=", 1) for line in
               host.file("/etc/facekit/training.env").content_string.splitlines()
               if line and not line.startswith("#"))
    assert env["FACEKIT_PYTHON"] == "/opt/facekit/venvs/tf-mkl/bin/python"
    assert env["FACEKIT_TENSORFLOW"] == "intel-tensorflow==1.13.1"
    cores = int(host.check_output("nproc --all"))
    assert 1 <= int(env["OMP_NUM_THREADS"]) <= cores
    assert env["FACEKIT_INTRA_OP_THREADS"] == env["OMP_NUM_THREADS"]
    assert env["FACEKIT_INTER_OP_THREADS"] == "1"
    unit = host.file("/etc/systemd/system/facekit-training-%s.service" % MODEL).content_string
    assert "-m facekit.model.threads --intra-op ${FACEKIT_INTRA_OP_THREADS}" in unit
    probe = host.check_output(
        env["FACEKIT_PYTHON"] + " -c 'import tensorflow as tf; print(tf.__version__, "
        "tf.pywrap_tensorflow.IsMklEnabled())' 2>/dev/null")
    assert probe.split() == ["1.13.1", "True"]
    # The stock env the image came with is still there, untouched: switching back costs nothing.
    assert host.file("/opt/facekit/venvs/tf-cpu/bin/python").exists


def test_the_manifest_says_which_tensorflow_trained_and_exported():
    current = _current()
    with open(os.path.join(ARTIFACTS, current["version"], "manifest.json")) as handle:
        manifest = json.load(handle)
    assert manifest["training"]["tensorflow"] == ["intel-tensorflow==1.13.1"]
    assert manifest["tools"]["tensorflow_build"] == "intel-tensorflow==1.13.1"
    assert manifest["tools"]["tensorflow"] == "1.13.1"


def test_the_graph_exported_by_intel_tensorflow_passes_the_compiler_check(host):
    """The check walks the compiler's path: only the ops TensorFlow 1.7 writes there (no AddV2)."""
    _only(host, "facekit-voc-train")
    graph = WORK + "/export/frozen_inference_graph.pb"
    result = host.run("set -a; . /etc/facekit/training.env; $FACEKIT_PYTHON -m facekit.cli model "
                      "check --json --config " + WORK + "/pipeline.config " + graph)
    assert result.rc == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["tensorflow"] == "1.13.1"
