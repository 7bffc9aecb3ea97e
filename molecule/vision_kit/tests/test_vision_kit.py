"""The kit after converge (bundle 1), a preflight that finds too little free space, a refused
bundle 2 (rolled back) and bundle 3 deployed with vision_kit_keep_releases 2 (side_effect)."""

import json
import os

import pytest
import yaml

testinfra_hosts = ["podman://facekit-vision_kit"]

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(SCENARIO, "vars", "kit.yml")) as _handle:
    KIT = yaml.safe_load(_handle)
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
UNIT = "facekit-detector.service"
MODELS = "/opt/facekit/models"


@pytest.fixture(scope="module")
def versions():
    with open(os.path.join(EPHEMERAL, "kit_bundles.json")) as fh:
        return [b["version"] for b in json.load(fh)["bundles"]]


def _status(host):
    out = host.check_output(
        "python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
        "\"http://127.0.0.1:%s/status\", timeout=5).read().decode())'", str(KIT["kit_status_port"]))
    return json.loads(out)


def test_joy_demo_is_stopped_and_masked(host):
    assert host.run("systemctl is-enabled joy_detection_demo.service").stdout.strip() == "masked"
    assert host.run("systemctl is-active joy_detection_demo.service").stdout.strip() != "active"


def test_detector_runs_the_third_bundle_and_reports_faces(host, versions):
    assert host.service("facekit-detector").is_running
    assert host.file(MODELS + "/current").linked_to == MODELS + "/releases/" + versions[2]
    status = _status(host)
    assert status["healthy"] is True, status
    assert status["model"]["version"] == versions[2]
    assert status["frames"] > 0
    # The test bundles carry no evaluation: today's 0.5, said so.
    assert status["thresholds"] == {"face": {"score": 0.5, "from": "default"}}, status
    # The test graphs' random weights put scores above 0.5 on every frame of the held-out images.
    assert status["faces_seen"] > 0, status
    journal = host.check_output("journalctl -u %s -o cat --no-pager", UNIT)
    lines = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
    assert any(line["version"] == versions[2] and line["faces"] for line in lines)


def test_unit_is_hardened(host):
    wanted = ("User,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,DevicePolicy,"
              "DeviceAllow,CapabilityBoundingSet,RestartPreventExitStatus")
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show %s --property %s", UNIT, wanted).splitlines())
    assert props["User"] == "facekit"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["DevicePolicy"] == "closed"
    assert "/dev/vision_spicomm rw" in props["DeviceAllow"]
    assert props["CapabilityBoundingSet"] == ""
    assert props["RestartPreventExitStatus"].split() == ["3", "4"]
    user = host.user("facekit")
    assert user.shell == "/usr/sbin/nologin"
    process = host.process.get(user="facekit", comm="python")
    assert "facekit.detector" in process.args


def test_too_little_free_space_stops_the_kit_in_preflight():
    with open(os.path.join(EPHEMERAL, "free_space.json")) as fh:
        failure = json.load(fh)
    assert "Check the free space" in failure["task"], failure
    assert "MiB free" in failure["msg"], failure
    assert "vision_kit_min_free_mb (1073741824)" in failure["msg"], failure


def test_refused_model_rolled_back_to_the_release_current_named(host, versions):
    with open(os.path.join(EPHEMERAL, "rollback.json")) as fh:
        failure = json.load(fh)["msg"]
    assert versions[1] in failure, failure
    assert "refused" in failure, failure
    assert "back on " + versions[0] in failure, failure
    assert "healthy on it again" in failure, failure
    # The bonnet's own reason reached the play through the detector's error line.
    assert "did not load model" in failure, failure
    journal = host.check_output("journalctl -u %s -o cat --no-pager", UNIT)
    assert "did not load model face_ssd_embedded " + versions[1] in journal


def test_releases_are_verified_and_pruned(host, versions):
    releases = sorted(host.file(MODELS + "/releases").listdir())
    # keep 2: current (3) and the release current pointed to before it (1); the refused 2 is gone.
    assert releases == sorted([versions[0], versions[2]])
    for version in (versions[0], versions[2]):
        result = host.run("/opt/facekit/venv/bin/python -m facekit.detector.release %s",
                          MODELS + "/releases/" + version)
        assert result.rc == 0, result.stderr
        assert host.file(MODELS + "/releases/" + version).user == "root"


def test_venv_pulls_nothing_heavy(host):
    listing = host.check_output("/opt/facekit/venv/bin/python -m pip list --local --format=freeze")
    names = {line.split("==")[0].lower() for line in listing.splitlines()}
    assert "facekit" in names
    assert not names & {"pandas", "lxml", "tensorflow", "tensorflow-cpu", "numpy", "tqdm"}, names
