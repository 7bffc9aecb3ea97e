"""facekit.detector.health: the deploy's health gate, against a real status endpoint and
stand-ins for systemd (unit_state, error_lines)."""

import io
import json
import types

import pytest

from facekit.detector import exits, health
from facekit.detector.status import Status, StatusServer


@pytest.fixture
def endpoint():
    """A detector's status endpoint on a free port: (Status, port)."""
    status = Status({"name": "faces", "version": "abc", "path": "/m/releases/abc"})
    server = StatusServer(status, "127.0.0.1", 0)
    yield status, server.address[1]
    server.close()


def args(port, **options):
    values = dict(unit="facekit-detector.service", port=port, version="abc", since=0.0,
                  timeout=5.0, interval=0.01, min_frames=1)
    values.update(options)
    return types.SimpleNamespace(**values)


class Clock(object):
    """time.time and time.sleep that only move when slept."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = 0

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps += 1
        self.now += seconds


def active(monkeypatch, *states):
    """unit_state answers these states in turn (the last one from then on)."""
    answers = list(states)
    monkeypatch.setattr(health, "unit_state",
                        lambda unit: answers.pop(0) if len(answers) > 1 else answers[0])


RUNNING = {"ActiveState": "active", "SubState": "running", "Result": "success",
           "ExecMainStatus": "0", "NRestarts": "0"}


def test_the_final_statuses_are_the_units_restart_prevent_statuses():
    assert health.FINAL_STATUSES == {"3", "4"} == {str(s) for s in exits.RESTART_PREVENT}


def test_frames_from_the_expected_version_pass(endpoint, monkeypatch):
    status, port = endpoint
    active(monkeypatch, RUNNING)
    clock = Clock()
    status.set_loaded(True)
    status.record_frame(1, 5.0, [])
    ok, reason, seen, state = health.wait_healthy(args(port), clock.time, clock.sleep)
    assert (ok, reason) == (True, "healthy: 1 frames from version abc")
    assert seen["model"]["version"] == "abc" and state == RUNNING and clock.sleeps == 0


def test_it_waits_for_the_frames_it_asks_for(endpoint, monkeypatch):
    status, port = endpoint
    active(monkeypatch, RUNNING)
    status.set_loaded(True)
    clock = Clock()

    def sleep(seconds):
        clock.sleep(seconds)
        status.record_frame(clock.sleeps, 5.0, [])

    ok, reason, _, _ = health.wait_healthy(args(port, min_frames=3), clock.time, sleep)
    assert (ok, reason, clock.sleeps) == (True, "healthy: 3 frames from version abc", 3)


def test_another_version_is_not_healthy_until_the_timeout(endpoint, monkeypatch):
    status, port = endpoint
    active(monkeypatch, RUNNING)
    status.set_model("faces", "old", "/m/releases/old")
    status.set_loaded(True)
    status.record_frame(1, 5.0, [])
    clock = Clock()
    ok, reason, seen, _ = health.wait_healthy(args(port, timeout=1.0, interval=0.25),
                                              clock.time, clock.sleep)
    assert not ok and seen["model"]["version"] == "old"
    assert reason == ("no healthy answer within 1.0 s: the status endpoint reports version "
                      "old, not abc")
    assert clock.sleeps == 4


def test_an_unhealthy_detector_says_why(endpoint, monkeypatch):
    status, port = endpoint
    active(monkeypatch, RUNNING)
    status.set_loaded(True)
    status.set_error("lost the bonnet")
    clock = Clock()
    ok, reason, _, _ = health.wait_healthy(args(port, timeout=0.0), clock.time, clock.sleep)
    assert not ok and reason == ("no healthy answer within 0.0 s: the detector reports "
                                 "unhealthy: lost the bonnet")


@pytest.mark.parametrize("state, stops", [
    ({"ActiveState": "inactive", "ExecMainStatus": "3", "Result": "exit-code"}, True),
    ({"ActiveState": "inactive", "ExecMainStatus": "4", "Result": "exit-code"}, True),
    ({"ActiveState": "failed", "ExecMainStatus": "5", "Result": "exit-code"}, True),
    ({"ActiveState": "activating", "ExecMainStatus": "5", "Result": "exit-code"}, False),
    ({"ActiveState": "inactive", "ExecMainStatus": "5", "Result": "exit-code"}, False),
])
def test_a_unit_systemd_gave_up_on_ends_the_wait(monkeypatch, state, stops):
    """Nothing answers (the detector stopped): exit 3 or 4, or a failed unit, end the wait
    at once; a unit systemd restarts is waited for."""
    active(monkeypatch, dict(state, SubState="dead"))
    clock = Clock()
    ok, reason, seen, _ = health.wait_healthy(args(9, timeout=1.0), clock.time, clock.sleep)
    assert not ok and seen is None
    if stops:
        assert reason == "facekit-detector.service stopped with exit status {} ({})".format(
            state["ExecMainStatus"], state["Result"])
        assert clock.sleeps == 0
    else:
        assert reason == ("no healthy answer within 1.0 s: no answer on 127.0.0.1:9 (service "
                          "{}/dead)".format(state["ActiveState"]))


def test_main_prints_one_json_verdict(endpoint, monkeypatch):
    status, port = endpoint
    status.set_loaded(True)
    status.record_frame(1, 5.0, [])
    active(monkeypatch, RUNNING)
    monkeypatch.setattr(health, "error_lines", lambda unit, since: ["x: error: old news"])
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert health.main(["--unit", "facekit-detector.service", "--port", str(port),
                        "--version", "abc", "--since", "1700000000"]) == 0
    verdict = json.loads(out.getvalue())
    assert sorted(verdict) == ["errors", "ok", "reason", "status", "unit"]
    assert verdict["ok"] and verdict["unit"] == RUNNING
    assert verdict["errors"] == ["x: error: old news"]


def test_systemctl_show_output_is_parsed():
    assert health.parse_properties("ActiveState=failed\nResult=exit-code\nNoise\n"
                                   "Description=a=b\n") == {
        "ActiveState": "failed", "Result": "exit-code", "Description": "a=b"}


def test_every_flag_is_explained(capsys):
    parser = health.build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--unit", "u", "--port", "0", "--version", "v", "--since", "1"])
    assert info.value.code == 2
    assert "--port: 0 is outside [1, 65535]" in capsys.readouterr().err
