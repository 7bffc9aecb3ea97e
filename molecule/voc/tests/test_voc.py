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


def test_kit_reports_the_class_names(host):
    _only(host, "facekit-voc-kit1")
    assert host.service("facekit-detector").is_running
    journal = host.check_output("journalctl -u facekit-detector -o cat --no-pager")
    lines = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
    seen = set(d["label"] for line in lines for d in line.get("faces", []))
    assert seen and seen <= set(LABELS), seen


def test_side_effect_refusals():
    with open(os.path.join(EPHEMERAL, "side_effect.json")) as handle:
        observed = json.load(handle)
    assert observed["labels"] == LABELS
    refusal = observed["training_refusal"]
    assert "triangle, square, circle" in refusal and "circle, square, triangle" in refusal
    conversion = observed["conversion_refusal"]
    assert "'triangle'" in conversion and ".xml:" in conversion
    assert observed["dataset_json_unchanged"] is True
