"""The quality gate before a rollout (playbooks/checks/vision_kits.yml, roles/vision_kit's
gate.yml), on real ansible-playbook runs against local-connection "kits".

Each kit is a directory standing in for vision_kit_root: models/current links to the release
it runs, whose eval.json the gate reads with a shell command; the bundle to deploy is a
directory with a manifest that lists its eval.json. Only the checks playbook runs here (it
touches nothing on a kit); molecule/site proves on kit containers that a refusal leaves
every kit's release as it was.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKS = os.path.join(ROOT, "playbooks", "checks", "vision_kits.yml")


def _evaluation(version, mean_ap):
    return {"bundle": {"name": "face_ssd_embedded", "version": version}, "mean_ap": mean_ap,
            "records": [{"path": "val.record-00000-of-00001", "sha256": "ab" * 32}]}


def _bundle(root, version, mean_ap):
    path = root / "bundles" / version
    path.mkdir(parents=True)
    (path / "eval.json").write_text(json.dumps(_evaluation(version, mean_ap)))
    (path / "manifest.json").write_text(json.dumps({
        "name": "face_ssd_embedded", "version": version, "files": {},
        "evaluation": {"files": {"eval.json": {"sha256": "0" * 64, "bytes": 1}}}}))
    return path


def _kit(root, name, version=None, mean_ap=None):
    models = root / name / "models"
    models.mkdir(parents=True)
    if version:
        release = models / "releases" / version
        release.mkdir(parents=True)
        if mean_ap is not None:
            (release / "eval.json").write_text(json.dumps(_evaluation(version, mean_ap)))
        os.symlink("releases/" + version, str(models / "current"))
    return root / name


def _run(tmp_path, bundle, kits, *extra):
    command = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable))
    if command is None:
        pytest.skip("ansible-playbook is not installed (make venv)")
    hosts = "\n".join("{} vision_kit_root={}".format(name, path) for name, path in kits)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(textwrap.dedent("""\
        [vision_kits]
        {}
        [vision_kits:vars]
        ansible_connection=local
        ansible_python_interpreter={}
        vision_kit_bundle_dir={}
        """).format(hosts, sys.executable, bundle))
    config = tmp_path / "ansible.cfg"
    config.write_text(
        "[defaults]\nroles_path = {}\ncallback_plugins = {}\ncallbacks_enabled = facekit_fleet\n"
        "local_tmp = {}\nnocolor = true\n".format(
            os.path.join(ROOT, "roles"), os.path.join(ROOT, "playbooks", "callback_plugins"),
            tmp_path / "tmp"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(config))
    result = subprocess.run([command, "-i", str(inventory), CHECKS] + list(extra), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=300, check=False)
    recap = result.stdout[result.stdout.index("VISION KITS"):] \
        if "VISION KITS" in result.stdout else ""
    lines = {line.split()[0]: line for line in recap.splitlines() if line.startswith("kit")}
    return result, lines


def test_a_worse_bundle_is_held_back_on_every_kit_with_both_figures(tmp_path):
    bundle = _bundle(tmp_path, "222222222222", 0.41)
    kits = [("kit1", _kit(tmp_path, "kit1", "111111111111", 0.53)),
            ("kit2", _kit(tmp_path, "kit2")),
            ("kit3", _kit(tmp_path, "kit3", "111111111111", 0.53))]
    result, lines = _run(tmp_path, bundle, kits)
    assert result.returncode != 0, result.stdout
    reason = ("bundle 222222222222: mean AP at IoU 0.5 0.4100 is 0.1200 below the deployed "
              "release 111111111111's 0.5300, more than vision_kit_max_ap_drop 0.02: raise "
              "vision_kit_max_ap_drop or set vision_kit_force_deploy=true")
    assert "Not deploying to any kit: on kit1, " + reason in result.stdout
    assert lines["kit1"].split(None, 1)[1] == (
        "face_ssd_embedded 111111111111  held back by the quality gate (wanted 222222222222): "
        + reason)
    assert lines["kit3"] == lines["kit1"].replace("kit1", "kit3", 1)
    # kit2 runs nothing, so it passes; the refusals end the run (any_errors_fatal) before the
    # deploy play: the recap lists it as not reached.
    assert "not reached" in lines["kit2"]


def test_a_better_bundle_passes_and_a_forced_one_says_what_it_overrode(tmp_path):
    bundle = _bundle(tmp_path, "222222222222", 0.55)
    kits = [("kit1", _kit(tmp_path, "kit1", "111111111111", 0.53)),
            ("kit2", _kit(tmp_path, "kit2")),
            ("kit3", _kit(tmp_path, "kit3", "000000000000"))]
    result, _ = _run(tmp_path, bundle, kits)
    assert result.returncode == 0, result.stdout
    assert ("pass: bundle 222222222222: mean AP at IoU 0.5 0.5500 against 0.5300 on the "
            "deployed release 111111111111") in result.stdout
    assert "the kit runs no release" in result.stdout
    # A release without an evaluation (deployed before the gate existed): the floor only.
    assert "the deployed release 000000000000 has no evaluation to compare" in result.stdout

    result, _ = _run(tmp_path, bundle, kits, "-e", "vision_kit_min_ap=0.6")
    assert result.returncode != 0
    assert "mean AP at IoU 0.5 0.5500 is below vision_kit_min_ap 0.6" in result.stdout
    result, _ = _run(tmp_path, bundle, kits, "-e", "vision_kit_min_ap=0.6",
                     "-e", "vision_kit_force_deploy=true")
    assert result.returncode == 0, result.stdout
    assert "forced: vision_kit_force_deploy is true, so deploying although" in result.stdout


def test_the_kit_that_already_runs_the_bundle_passes_and_unevaluated_bundles_are_refused(
        tmp_path):
    bundle = _bundle(tmp_path, "222222222222", 0.1)
    (bundle / "manifest.json").write_text(json.dumps({
        "name": "face_ssd_embedded", "version": "222222222222", "files": {}}))
    kits = [("kit1", _kit(tmp_path, "kit1", "222222222222", 0.9))]
    result, _ = _run(tmp_path, bundle, kits)
    assert result.returncode == 0, result.stdout
    assert "same: the kit already runs 222222222222" in result.stdout
    kits = [("kit2", _kit(tmp_path, "kit2", "111111111111", 0.2))]
    result, lines = _run(tmp_path, bundle, kits)
    assert result.returncode != 0
    assert "bundle 222222222222 has no evaluation (eval.json)" in lines["kit2"]
