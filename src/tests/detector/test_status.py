"""facekit.detector.status: the status endpoint's health and its HTTP answers."""

import json
import urllib.error
import urllib.request

import pytest
from detector_fakes import (
    get,
)

from facekit.detector.status import Status, StatusServer


class Clock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_status_health_follows_loading_frames_and_errors():
    clock = Clock()
    status = Status(max_frame_age=5, fps_window=5, clock=clock, wall=lambda: 1000.0)
    assert status.health() == (False, "no model yet: the service is starting")
    status.set_model("faces", "abc", "/m/releases/abc")
    assert "not loaded" in status.health()[1]
    status.set_loaded(True)
    assert status.health() == (False, "no frame from the Vision Bonnet yet")
    face = {"label": "face", "score": 0.9, "box": [1, 2, 3, 4], "norm": [0, 0, 1, 1]}
    for frame in range(1, 11):
        clock.now += 0.5
        status.record_frame(frame, 1000.0 + frame, [face] if frame % 2 else [])
    assert status.health() == (True, None)
    snap = status.snapshot()
    assert snap == {"healthy": True, "reason": None,
                    "model": {"name": "faces", "version": "abc", "path": "/m/releases/abc"},
                    "thresholds": None, "frames": 10, "fps": 2.0,
                    "last": {"frame": 10, "time": 1010.0, "detections": [], "faces": []},
                    "detections_seen": 5, "faces_seen": 5, "started": 1000.0, "error": None}
    status.set_thresholds({"face": {"score": 0.31, "from": "bundle"}})
    assert status.snapshot()["thresholds"] == {"face": {"score": 0.31, "from": "bundle"}}
    clock.now += 6
    healthy, reason = status.health()
    assert not healthy and reason == ("no frame from the Vision Bonnet for 6.0 s "
                                      "(limit 5 s)")
    assert status.snapshot()["fps"] == 0.0
    clock.now -= 6
    status.set_error("lost the bonnet")
    assert status.health() == (False, "error: lost the bonnet")


def test_status_endpoint_serves_json_and_healthz():
    clock = Clock()
    status = Status({"name": "faces", "version": "abc", "path": "/p"}, clock=clock)
    server = StatusServer(status, "127.0.0.1", 0)
    try:
        base = "http://127.0.0.1:{}".format(server.address[1])
        code, kind, body = get(base + "/healthz")
        assert (code, body) == (503, "model faces abc is not loaded on the Vision Bonnet "
                                     "yet\n")
        status.set_loaded(True)
        status.record_frame(1, 5.0, [{"label": "face"}])
        code, kind, body = get(base + "/healthz")
        assert (code, kind, body) == (200, "text/plain; charset=utf-8", "ok\n")
        code, kind, body = get(base + "/status?pretty=no")
        doc = json.loads(body)
        assert (code, kind) == (200, "application/json")
        assert doc["healthy"] and doc["frames"] == 1 and doc["model"]["version"] == "abc"
        assert doc["last"] == {"frame": 1, "time": 5.0, "detections": [{"label": "face"}],
                               "faces": [{"label": "face"}]}
        clock.now += 5.5
        code, _, body = get(base + "/healthz")
        assert code == 503 and body.startswith("no frame from the Vision Bonnet for 5.5 s")
        assert json.loads(get(base + "/status")[2])["healthy"] is False
        code, _, body = get(base + "/metrics")
        assert code == 404 and "use /status or /healthz" in json.loads(body)["error"]
    finally:
        server.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/status", timeout=2)
