"""The lab's LabelImg stand-in: the same seed gives the same archive, every quirk is in it, and
the converter reads it back with the counts the sample says it holds."""

import json
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import voc_sample  # noqa: E402


def test_same_seed_same_bytes_and_every_quirk(tmp_path):
    one = voc_sample.build(str(tmp_path / "one"), train=60, heldout=4, seed=3)
    two = voc_sample.build(str(tmp_path / "two"), train=60, heldout=4, seed=3)
    assert one == two
    other = voc_sample.build(str(tmp_path / "other"), train=60, heldout=4, seed=4)
    assert other["archive"]["sha256"] != one["archive"]["sha256"]
    assert all(count > 0 for count in one["counts"]["quirks"].values()), one["counts"]["quirks"]
    assert one["counts"]["empty_images"] > 0
    assert sorted(one["counts"]["objects"]) == ["circle", "square", "triangle"]


def test_archive_layout_heldout_and_unknown_label(tmp_path):
    summary = voc_sample.build(str(tmp_path), train=20, heldout=3, seed=0)
    with zipfile.ZipFile(str(tmp_path / "voc_sample.zip")) as archive:
        names = archive.namelist()
        xml = [n for n in names if n.endswith(".xml")]
        assert len(xml) == 20 and all(n.startswith("shapes/batch") for n in xml)
        assert any(archive.read(n).startswith(b"\xef\xbb\xbf") for n in xml)
    with open(str(tmp_path / "heldout" / "ground_truth.json")) as fh:
        truth = json.load(fh)
    assert truth["labels"] == ["circle", "square", "triangle"] and len(truth["images"]) == 3
    assert all(box["label"] in truth["labels"] for i in truth["images"] for box in i["faces"])
    assert summary["heldout"]["images"] == 3
    unknown = tmp_path / "voc_quirks_unknown"
    texts = [(unknown / n).read_text(encoding="utf-8-sig") for n in sorted(os.listdir(
        str(unknown))) if n.endswith(".xml")]
    assert sum("<name>hexagon</name>" in t for t in texts) == 1


def test_kit_report_counts_per_class():
    import kit_report  # noqa: PLC0415 - next to the sample

    truth = {"images": [{"file": "a.jpg", "ignore": [], "faces": [
        {"box": [0, 0, 100, 100], "label": "circle"},
        {"box": [200, 200, 300, 300], "label": "square"}]}]}
    lines = [{"version": "v1", "camera_frame": 0, "faces": [
        # Right place, right class; right place, wrong class; a box on nothing.
        {"label": "circle", "score": 0.9, "box": [0, 0, 100, 100]},
        {"label": "triangle", "score": 0.8, "box": [200, 200, 100, 100]},
        {"label": "square", "score": 0.7, "box": [400, 0, 50, 50]}]}]
    result = kit_report.evaluate(lines, truth, ["a.jpg"], "v1")
    assert (result["true_positives"], result["false_positives"], result["faces"]) == (1, 2, 2)
    assert result["classes"]["circle"] == {"objects": 1, "true_positives": 1,
                                           "false_positives": 0, "recall": 1.0,
                                           "precision": 1.0}
    assert result["classes"]["square"]["recall"] == 0.0
    assert result["classes"]["square"]["precision"] == 0.0
    assert result["classes"]["triangle"]["objects"] == 0
    assert result["classes"]["triangle"]["recall"] is None
