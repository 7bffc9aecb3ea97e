"""The kits after converge (site.yml, 20 steps, three kits) and side_effect (trained on to 120
steps, rolled out one kit at a time with no failure allowed while kit2's bonnet refuses it).
tests/test_training.py checks the training host's side."""

import json
import os
import subprocess
import sys

import pytest

testinfra_hosts = ["podman://facekit-site-kit1", "podman://facekit-site-kit2",
                   "podman://facekit-site-kit3"]

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
ARTIFACTS = os.path.join(EPHEMERAL, "artifacts", "face_ssd_embedded")
MODELS = "/opt/facekit/models"
STATUS_PORTS = {"facekit-site-kit1": 8201, "facekit-site-kit2": 8202, "facekit-site-kit3": 8203}


@pytest.fixture(scope="module")
def rollout():
    with open(os.path.join(EPHEMERAL, "rollout.json")) as fh:
        versions = json.load(fh)
    with open(os.path.join(EPHEMERAL, "rollout.log")) as fh:
        versions["log"] = fh.read()
    return versions


def _name(host):
    return host.backend.name


def _status(host):
    out = host.check_output(
        "python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
        "\"http://127.0.0.1:%s/status\", timeout=5).read().decode())'",
        str(STATUS_PORTS[_name(host)]))
    return json.loads(out)


def test_training_fetched_both_bundles(host, rollout):
    if _name(host) != "facekit-site-kit1":
        pytest.skip("controller-side check, once")
    with open(os.path.join(ARTIFACTS, "current.json")) as fh:
        assert json.load(fh)["version"] == rollout["new"]
    for version in (rollout["old"], rollout["new"]):
        result = subprocess.run([sys.executable, "-m", "facekit.cli", "model", "verify",
                                 os.path.join(ARTIFACTS, version)],
                                check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        assert result.returncode == 0, result.stderr


def test_each_kit_serves_what_the_rollout_left(host, rollout):
    expected = {"facekit-site-kit1": rollout["new"], "facekit-site-kit2": rollout["old"],
                "facekit-site-kit3": rollout["old"]}[_name(host)]
    assert host.file(MODELS + "/current").linked_to == MODELS + "/releases/" + expected
    assert host.service("facekit-detector").is_running
    status = _status(host)
    assert status["healthy"] is True, status
    assert status["model"]["version"] == expected
    assert status["frames"] > 0
    # The kit runs the operating point its release's own evaluation chose.
    doc = json.loads(host.file(MODELS + "/current/eval.json").content_string)
    chosen = doc["operating_point"]["thresholds"]["face"]
    assert status["thresholds"] == {"face": {"score": chosen, "from": "bundle"} if chosen
                                    else {"score": 0.5, "from": "default"}}, status


def test_refusing_kit_rolled_back(host, rollout):
    journal = host.check_output("journalctl -u facekit-detector -o cat --no-pager")
    refused = "did not load model face_ssd_embedded " + rollout["new"]
    if _name(host) == "facekit-site-kit2":
        assert refused in journal
        # The new release stays on disk for the next attempt; current went back.
        assert host.file(MODELS + "/releases/" + rollout["new"]).is_directory
    else:
        assert refused not in journal
    if _name(host) == "facekit-site-kit3":
        # Never reached: the rollout stopped after kit2's batch.
        assert not host.file(MODELS + "/releases/" + rollout["new"]).exists


def test_rollout_stopped_and_recap_names_each_kit(host, rollout):
    if _name(host) != "facekit-site-kit1":
        pytest.skip("controller-side check, once")
    log = rollout["log"]
    assert rollout["rc"] != 0
    assert "VISION KITS" in log
    recap = log[log.index("VISION KITS"):]
    lines = {line.split()[0]: line for line in recap.splitlines()
             if line.startswith("facekit-site-kit")}
    assert "face_ssd_embedded {}  updated from {}".format(
        rollout["new"], rollout["old"]) in lines["facekit-site-kit1"]
    assert "face_ssd_embedded {}  rolled back (wanted {})".format(
        rollout["old"], rollout["new"]) in lines["facekit-site-kit2"]
    assert "refused" in lines["facekit-site-kit2"]
    # kit3's batch never started (test_refusing_kit_rolled_back checks it has no new release).
    assert "not reached" in lines["facekit-site-kit3"]


@pytest.fixture(scope="module")
def gate():
    with open(os.path.join(EPHEMERAL, "gate.json")) as fh:
        doc = json.load(fh)
    for run in ("drop", "floor"):
        with open(os.path.join(EPHEMERAL, "gate-{}.log".format(run))) as fh:
            doc[run] = fh.read()
    return doc


def _recap(log):
    recap = log[log.index("VISION KITS"):]
    return {line.split()[0]: line for line in recap.splitlines()
            if line.startswith("facekit-site-kit")}


def test_quality_gate_held_back_the_worse_bundle_naming_both_figures(host, gate, rollout):
    if _name(host) != "facekit-site-kit1":
        pytest.skip("controller-side check, once")
    figures = {gate["old"]: gate["old_ap"], gate["new"]: gate["new_ap"]}
    worse, better = gate["worse"], gate["better"]
    assert figures[worse] < figures[better]
    lines = _recap(gate["drop"])
    # The kits that run the better bundle hold the worse one back, with both figures and the
    # variable; those that already run the worse one pass, and the deploy play never starts.
    for kit, line in lines.items():
        runs = gate["kits_before"][kit].rsplit("/", 1)[-1]
        if runs == better:
            assert "held back by the quality gate (wanted {})".format(worse) in line, line
            assert "mean AP at IoU 0.5 {:.4f} is".format(figures[worse]) in line, line
            assert "deployed release {}'s {:.4f}".format(better, figures[better]) in line, line
            assert "more than vision_kit_max_ap_drop" in line, line
        else:
            assert runs == worse and "not reached" in line, line
    assert any("held back" in line for line in lines.values())
    assert "Not deploying to any kit" in gate["drop"]


def test_quality_gate_floor_held_back_the_better_bundle_too(host, gate):
    if _name(host) != "facekit-site-kit1":
        pytest.skip("controller-side check, once")
    lines = _recap(gate["floor"])
    held = [kit for kit, line in lines.items() if "held back" in line]
    assert held and all("is below vision_kit_min_ap" in lines[kit] for kit in held)
    assert all(gate["kits_before"][kit].endswith(gate["worse"]) for kit in held)


def test_refused_gate_runs_left_each_kit_on_its_release(host, gate):
    # side_effect asserted it too; the kit's own link is read here again.
    assert host.file(MODELS + "/current").linked_to.endswith(
        gate["kits_before"][_name(host)].rsplit("/", 1)[-1])
    # A deployed release carries its evaluation, for the next gate.
    assert host.file(MODELS + "/current/eval.json").exists
