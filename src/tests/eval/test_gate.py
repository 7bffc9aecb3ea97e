"""`facekit eval gate`: the quality gate the kits' play runs before a rollout."""

import io
import json
import os

import pytest

from facekit import cli
from facekit.eval import gate


def evaluation(mean_ap, version="aaaaaaaaaaaa", records=("r1",), wider=None):
    return {"bundle": {"version": version}, "mean_ap": mean_ap, "wider": wider,
            "records": [{"path": "val.record-{}".format(i), "sha256": s}
                        for i, s in enumerate(records)]}


def bundle_dir(tmp_path, doc, version="aaaaaaaaaaaa", listed=True):
    """A directory with what the gate reads of a bundle: manifest.json and eval.json."""
    path = tmp_path / version
    path.mkdir()
    manifest = {"version": version, "files": {}}
    if listed:
        manifest["evaluation"] = {"files": {"eval.json": {"sha256": "0" * 64, "bytes": 1}}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    if doc is not None:
        (path / "eval.json").write_text(json.dumps(doc))
    return str(path)


def test_a_better_or_slightly_worse_bundle_passes():
    result = gate.decide(evaluation(0.61), evaluation(0.60), candidate_version="new",
                         deployed_version="old")
    assert (result["ok"], result["decision"]) == (True, "pass")
    assert (result["candidate"], result["deployed"]) == (0.61, 0.60)
    assert result["reason"] == ("bundle new: mean AP at IoU 0.5 0.6100 against 0.6000 on the "
                                "deployed release old (floor 0.0, allowed drop 0.02)")
    assert gate.decide(evaluation(0.585), evaluation(0.60), max_drop=0.02)["ok"]
    # No release on the kit yet: only the floor counts.
    first = gate.decide(evaluation(0.3), None, candidate_version="new", min_ap=0.25)
    assert first["ok"] and first["reason"].endswith("(floor 0.25; the kit runs no release yet)")


def test_a_drop_beyond_the_allowance_is_refused_naming_both_figures_and_the_variable():
    result = gate.decide(evaluation(0.41), evaluation(0.53), candidate_version="new",
                         deployed_version="old", max_drop=0.02, settings_prefix="vision_kit_")
    assert (result["ok"], result["decision"]) == (False, "refused")
    assert result["reason"] == (
        "bundle new: mean AP at IoU 0.5 0.4100 is 0.1200 below the deployed release old's "
        "0.5300, more than vision_kit_max_ap_drop 0.02: raise vision_kit_max_ap_drop or set "
        "vision_kit_force_deploy=true")
    forced = gate.decide(evaluation(0.41), evaluation(0.53), candidate_version="new",
                         deployed_version="old", force=True, settings_prefix="vision_kit_")
    assert (forced["ok"], forced["decision"]) == (True, "forced")
    assert forced["reason"].startswith("vision_kit_force_deploy is true, so deploying although "
                                       "bundle new: mean AP")


def test_the_floor_the_same_version_and_a_bundle_without_evaluation():
    low = gate.decide(evaluation(0.2), evaluation(0.1), candidate_version="new", min_ap=0.3)
    assert not low["ok"]
    assert low["reason"] == ("bundle new: mean AP at IoU 0.5 0.2000 is below --min-ap 0.3: "
                             "lower --min-ap or give --force-deploy")
    # At the floor exactly: passes.
    assert gate.decide(evaluation(0.3), None, min_ap=0.3)["ok"]
    same = gate.decide(None, None, candidate_version="v1", deployed_version="v1")
    assert (same["ok"], same["decision"]) == (True, "same")
    bare = gate.decide(None, evaluation(0.5), candidate_version="v2", deployed_version="v1")
    assert not bare["ok"] and bare["reason"].startswith(
        "bundle v2 has no evaluation (eval.json): `facekit eval run` it")


def test_wider_metrics_and_a_metric_the_evaluation_lacks():
    wider = {"easy": 0.7, "medium": 0.5, "hard": 0.2}
    result = gate.decide(evaluation(0.9, wider=wider), evaluation(0.5, wider=dict(wider, hard=0.3)),
                         metric="wider_hard", max_drop=0.05)
    assert not result["ok"] and (result["candidate"], result["deployed"]) == (0.2, 0.3)
    assert "WIDER FACE hard AP 0.2000 is 0.1000 below" in result["reason"]
    missing = gate.decide(evaluation(0.9), None, candidate_version="v", metric="wider_easy")
    assert not missing["ok"]
    assert "has no WIDER FACE easy AP (wider_easy): choose another --gate-metric" in \
        missing["reason"]
    with pytest.raises(gate.GateError, match="choose one of mean_ap, wider_easy"):
        gate.decide(evaluation(0.5), None, metric="map")


def test_other_records_are_noted():
    result = gate.decide(evaluation(0.6, records=("a",)), evaluation(0.6, records=("b",)),
                         candidate_version="new", deployed_version="old")
    assert result["ok"] and "measured on different records" in result["note"]
    assert not gate.decide(evaluation(0.6), evaluation(0.6))["note"]


def test_an_evaluation_that_set_dropped_faces_aside_is_noted():
    aside = dict(evaluation(0.62), dropped_faces={"annotations": {"sha256": "f" * 64},
                                                  "faces": 12})
    result = gate.decide(aside, evaluation(0.6), candidate_version="new",
                         deployed_version="old")
    assert result["ok"] and result["note"].startswith(
        "bundle new set aside the faces the dataset's filters dropped and the deployed release "
        "old did not")
    assert not gate.decide(aside, dict(aside), candidate_version="new",
                           deployed_version="old")["note"]


def test_cli_reads_the_bundle_and_the_deployed_evaluation_from_stdin(tmp_path, capsys,
                                                                    monkeypatch):
    path = bundle_dir(tmp_path, evaluation(0.4, version="bbbbbbbbbbbb"), version="bbbbbbbbbbbb")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(evaluation(0.6))))
    status = cli.main(["eval", "gate", path, "--deployed-eval", "-", "--deployed-version",
                       "aaaaaaaaaaaa", "--settings-prefix", "vision_kit_", "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert status == 1 and doc["decision"] == "refused"
    assert err.strip() == "facekit: error: " + doc["reason"]
    assert "vision_kit_max_ap_drop 0.02" in doc["reason"]
    # An empty stdin: the deployed release has no eval.json, so only the floor counts.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    status = cli.main(["eval", "gate", path, "--deployed-eval", "-", "--deployed-version",
                       "aaaaaaaaaaaa"])
    out, _ = capsys.readouterr()
    assert status == 0 and out.startswith("pass: bundle bbbbbbbbbbbb: mean AP at IoU 0.5 0.4000")


def test_cli_a_bundle_whose_manifest_lists_no_evaluation_is_refused(tmp_path, capsys):
    # eval.json lying in the bundle unlisted is not the bundle's evaluation.
    path = bundle_dir(tmp_path, evaluation(0.9), listed=False)
    assert cli.main(["eval", "gate", path]) == 1
    assert "has no evaluation" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    assert cli.main(["eval", "gate", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "{}: cannot read the bundle's manifest".format(
        os.path.join(str(broken), "manifest.json")) in err
