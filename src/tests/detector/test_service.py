"""facekit-detector, the service the Vision Kit runs.

Unit tests (this venv): the service loop against a stand-in for aiy.vision.inference
(this venv's protobuf cannot import the library's generated code): what it publishes, its
exit statuses, SIGTERM. End-to-end tests: the service under the kit's Python (.venv-kit,
AIY's real client library) against the software Vision Bonnet.
"""

import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import graphs
import pytest
from detector_fakes import (
    AIY_ANCHORS,
    KIT_PYTHON,
    SRC,
    FakeLibrary,
    FakeResult,
    FakeTensor,
    N,
    dense_outputs,
    deploy,
    free_port,
    get,
    kit_env,
    make_bundle,
    needs_bonnet,
    needs_kit,
    run_main,
    sparse_result,
)
from PIL import Image, ImageDraw

from facekit.detector import client, decode, outputs, service, signals


def test_a_taken_status_port_is_a_clear_error(deployed, capsys, quiet_root):
    models, _ = deployed
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        status, _, errors = run_main(capsys, "--models", models, "--status-port", str(port))
    assert status == 1
    assert errors == ["facekit-detector: error: cannot serve the status endpoint on "
                      "127.0.0.1:{}: Address already in use: choose another --status-port (0 "
                      "turns it off)".format(port)]


def test_bad_options_are_usage_errors(capsys):
    for argv in (["--threshold", "1"], ["--threshold", "x"], ["--status-port", "70000"],
                 ["--frames", "0"], ["--threshold", "=0.5"]):
        with pytest.raises(SystemExit) as info:
            service.build_parser().parse_args(argv)
        assert info.value.code == 2
    assert "outside (0.0, 1.0)" in capsys.readouterr().err


def test_service_publishes_faces_and_unloads(deployed, monkeypatch, capsys, quiet_root):
    models, made = deployed
    encodings, logits = dense_outputs(seed=5)
    empty = FakeResult({"concat_1": FakeTensor(), "concat": FakeTensor()})
    faces = sparse_result(encodings, logits, 0.7, window=(0, 0, 640, 480), duration_ms=41)
    library = FakeLibrary([empty, faces, empty, faces])
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, out, errors = run_main(capsys, "--models", models, "--threshold", "0.7",
                                   "--max-detections", "4", "--frames", "4")
    assert (status, errors) == (0, [])
    name = "faces-" + made["version"]
    descriptor = library.calls[0][1]
    assert descriptor._replace(compute_graph=None) == library.ModelDescriptor(
        name, (1, 256, 256, 3), (128.0, 128.0), None)
    assert descriptor.compute_graph == b"compiled model bytes"
    assert [c[0] for c in library.calls] == ["load", "start", "stop", "unload"]
    assert library.configs["concat_1"].threshold == pytest.approx(math.log(0.7 / 0.3))
    assert dict(library.configs, concat_1=library.configs["concat_1"]._replace(threshold=0)) == {
        "concat_1": library.ThresholdingConfig([N, 2], 0, N, [(1, 0)]),
        "concat": library.FromSparseTensorConfig([N], "concat_1", [1]),
    }
    assert all(engine.closed for engine in library.engines)
    lines = [json.loads(line) for line in out.splitlines()]
    expected = decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS),
                                   score_threshold=0.7, max_detections=4)
    assert [line["frame"] for line in lines] == [2, 4]
    assert len(expected) == 4
    for line in lines:
        assert list(line)[:7] == ["schema", "frame", "time", "model", "version", "detections",
                                  "faces"]
        assert line["faces"] == line["detections"] and line["schema"] == 2
        assert line["thresholds"] == {"face": {"score": 0.7, "from": "command line"}}
        assert (line["model"], line["version"], line["ms"]) == ("faces", made["version"], 41)
        assert abs(line["time"] - time.time()) < 60
        assert line["faces"] == [json.loads(json.dumps(outputs.face_record(
            det, ["face"], (0, 0, 640, 480)))) for det in expected]


def test_refused_model_is_exit_3_whatever_the_log_level(deployed, monkeypatch, capsys,
                                                        quiet_root):
    models, made = deployed
    library = FakeLibrary(refuse='Cannot load model: graph "x" is not a compiled model')
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, _, errors = run_main(capsys, "--models", models, "--log-level", "error")
    release = os.path.realpath(os.path.join(models, "current"))
    assert status == 3
    assert errors == ["facekit-detector: error: the Vision Bonnet did not load model faces {} "
                      "({}/model.binaryproto): Cannot load model: graph \"x\" is not a "
                      "compiled model".format(made["version"], release)]
    assert [c[0] for c in library.calls] == ["load"]
    assert all(engine.closed for engine in library.engines)
    assert not logging.getLogger("aiy.vision.inference").handlers


def test_unreachable_and_lost_bonnet_are_exit_5(deployed, monkeypatch, capsys, quiet_root):
    models, _ = deployed
    monkeypatch.setenv("VISION_BONNET_HOST", "127.0.0.1")
    monkeypatch.setenv("VISION_BONNET_PORT", "9")
    monkeypatch.setattr(client, "uses_spi", lambda: False)
    library = FakeLibrary(connect_error=ConnectionRefusedError(111, "Connection refused"))
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, _, errors = run_main(capsys, "--models", models)
    assert status == 5
    assert errors[0].startswith(
        "facekit-detector: error: cannot reach the Vision Bonnet at 127.0.0.1:9 "
        "(VISION_BONNET_HOST/VISION_BONNET_PORT): ConnectionRefusedError: Connection refused")

    def lost():
        raise TypeError("a bytes-like object is required, not 'NoneType'")

    empty = FakeResult({"concat_1": FakeTensor(), "concat": FakeTensor()})
    library = FakeLibrary([empty, empty, lost])
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, _, errors = run_main(capsys, "--models", models)
    assert status == 5
    assert errors[0].startswith("facekit-detector: error: lost the connection to the Vision "
                                "Bonnet at 127.0.0.1:9 (VISION_BONNET_HOST/VISION_BONNET_PORT) "
                                "while waiting for frame 3 (TypeError: ")
    # Nothing more is said on a broken connection: no stop, no unload.
    assert [c[0] for c in library.calls] == ["load", "start"]
    assert all(engine.closed for engine in library.engines)


def test_on_arm_the_spi_device_is_named(monkeypatch):
    monkeypatch.setattr(client, "uses_spi", lambda: True)
    monkeypatch.setenv("VISION_BONNET_HOST", "10.0.0.2")
    message = client._unreachable(FileNotFoundError(2, "No such file or directory"))
    assert message.startswith("cannot open the Vision Bonnet at SPI device /dev/vision_spicomm "
                              "(VISION_BONNET_HOST/VISION_BONNET_PORT are ignored: on ARM the "
                              "AIY library always uses SPI): FileNotFoundError: No such file")


def test_sigterm_stops_cleanly_and_a_stalled_bonnet_is_abandoned(deployed, monkeypatch, capsys,
                                                                 quiet_root):
    models, _ = deployed
    handler = signal.getsignal(signal.SIGTERM)
    empty = FakeResult({"concat_1": FakeTensor(), "concat": FakeTensor()})

    def sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        return empty

    library = FakeLibrary([empty, sigterm, empty, empty])
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    status, _, errors = run_main(capsys, "--models", models)
    assert (status, errors) == (0, [])
    assert [c[0] for c in library.calls] == ["load", "start", "stop", "unload"]

    def stall():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    library = FakeLibrary([empty, stall, empty])
    monkeypatch.setattr(client, "aiy_inference", lambda: library)
    monkeypatch.setattr(signals, "STOP_GRACE", 1)
    started = time.monotonic()
    status, _, errors = run_main(capsys, "--models", models)
    assert (status, errors) == (0, [])
    assert time.monotonic() - started < 10
    assert [c[0] for c in library.calls] == ["load", "start"]
    assert all(engine.closed for engine in library.engines)
    assert signal.getsignal(signal.SIGTERM) is handler


def run_detector(port, *argv, timeout=120):
    return subprocess.run([KIT_PYTHON, "-m", "facekit.detector"] + list(argv),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=kit_env(port), timeout=timeout,
                          check=False)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("facekit-detector: error:")]


class Bonnet(object):
    """`facekit bonnet serve` in the background on a free port."""

    def __init__(self, root, models, frames, *extra):
        self.port = free_port()
        self.state_file = os.path.join(root, "bonnet-{}.json".format(self.port))
        self.log_path = os.path.join(root, "bonnet-{}.log".format(self.port))
        env = dict(os.environ, PYTHONPATH=SRC)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "facekit.cli", "bonnet", "serve", "--models", models,
                 "--frames", frames, "--port", str(self.port), "--fps", "20",
                 "--state-file", self.state_file] + list(extra),
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("the bonnet exited: " + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("the bonnet did not listen: " + self.log()) from None
                time.sleep(0.2)

    def log(self):
        with open(self.log_path) as fh:
            return fh.read()

    def state(self):
        with open(self.state_file) as fh:
            return json.load(fh)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Bundles with a real frozen graph, a kit's model directory and camera frames."""
    root = str(tmp_path_factory.mktemp("kit"))
    graph = graphs.write_graph(os.path.join(root, "frozen.pb"), input_size=256, num_classes=1)
    made = {}
    for key, where in (("good", "a"), ("refused", "b"), ("unknown", "c")):
        made[key] = make_bundle(os.path.join(root, where),
                                compiled="compiled {} model".format(key).encode(), graph=graph)
    frames = os.path.join(root, "frames")
    os.makedirs(frames)
    for i in range(3):
        image = Image.new("RGB", (320, 240), (40 * i, 120, 200 - 50 * i))
        ImageDraw.Draw(image).ellipse((100 + 20 * i, 60, 200 + 20 * i, 190),
                                      fill=(230, 190, 160))
        image.save(os.path.join(frames, "frame{}.jpg".format(i)), quality=90)
    models = os.path.join(root, "kit", "models")
    deploy(made["good"], models)
    # The bonnet knows the good and refused bundles, not the unknown one.
    served = os.path.join(root, "served")
    for key in ("good", "refused"):
        shutil.copytree(made[key]["path"],
                        os.path.join(served, "faces", made[key]["version"]))
    return types.SimpleNamespace(root=root, made=made, frames=frames, models=models,
                                 served=served)


@pytest.fixture(scope="module")
def bonnet(world):
    server = Bonnet(world.root, world.served, world.frames, "--refuse",
                    world.made["refused"]["version"])
    yield server
    server.stop()


@needs_kit
def test_the_service_imports_nothing_heavy_on_the_kit():
    code = ("import sys, facekit.detector.service; "
            "heavy = {'tensorflow', 'pandas', 'lxml', 'PIL', 'aiy', 'google.protobuf', "
            "'facekit.cli', 'facekit.eval', 'facekit.dataset', 'facekit.bonnet'}; "
            "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))")
    result = subprocess.run([KIT_PYTHON, "-c", code], stdout=subprocess.PIPE,
                            universal_newlines=True, env=kit_env(9), check=True)
    assert result.stdout.strip() == "[]"


@needs_kit
def test_bonnet_not_listening_is_exit_5(world):
    port = free_port()
    result = run_detector(port, "--models", world.models, "--status-port", "0")
    assert result.returncode == 5, result.stderr
    assert error_lines(result.stderr) == [
        "facekit-detector: error: cannot reach the Vision Bonnet at 127.0.0.1:{} "
        "(VISION_BONNET_HOST/VISION_BONNET_PORT): ConnectionRefusedError: Connection refused: "
        "start the bonnet there (`facekit bonnet serve` for the software one), or fix the "
        "address".format(port)]


@needs_kit
@needs_bonnet
def test_the_service_publishes_faces_from_the_bonnet(world, bonnet):
    version = world.made["good"]["version"]
    result = run_detector(bonnet.port, "--models", world.models, "--frames", "6",
                          "--max-detections", "5", "--status-port", "0")
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    assert "model faces version {} from {}".format(
        version, os.path.realpath(os.path.join(world.models, "current"))) in result.stderr
    assert 'unloaded model faces-{} from the Vision Bonnet'.format(version) in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines, "the random-weight graph gives faces above 0.5 on every frame"
    assert [line["frame"] for line in lines] == sorted(set(line["frame"] for line in lines))
    for line in lines:
        assert list(line) == ["schema", "frame", "time", "model", "version", "detections",
                              "faces", "thresholds", "ms", "camera_frame"]
        # The bundle has no evaluation: today's 0.5.
        assert line["thresholds"] == {"face": {"score": 0.5, "from": "default"}}
        assert (line["model"], line["version"]) == ("faces", version)
        assert 1 <= line["frame"] <= 6 and isinstance(line["ms"], int)
        # The bonnet counts camera frames from 0 at start_camera_inference.
        assert line["camera_frame"] == line["frame"] - 1
        assert 1 <= len(line["faces"]) <= 5
        for face in line["faces"]:
            assert face["label"] == "face" and 0.5 < face["score"] < 1
            ymin, xmin, ymax, xmax = face["norm"]
            assert 0 <= ymin <= ymax <= 1 and 0 <= xmin <= xmax <= 1
            # The camera frames are 320x240 and the bonnet's window is the whole frame.
            x, y, w, h = face["box"]
            assert abs(x - xmin * 320) <= 0.5 and abs(y - ymin * 240) <= 0.5
            assert abs(x + w - xmax * 320) <= 1 and abs(y + h - ymax * 240) <= 1
    state = bonnet.state()
    assert state["loaded_models"] == [] and not state["camera"]["running"]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


@needs_kit
@needs_bonnet
def test_status_endpoint_reports_the_running_model_then_sigterm(world, bonnet, tmp_path):
    version = world.made["good"]["version"]
    port = free_port()
    with open(str(tmp_path / "out"), "w+") as out, open(str(tmp_path / "err"), "w+") as err:
        proc = subprocess.Popen(
            [KIT_PYTHON, "-m", "facekit.detector", "--models", world.models,
             "--status-port", str(port), "--threshold", "0.9999"],
            stdout=out, stderr=err, env=kit_env(bonnet.port))
        base = "http://127.0.0.1:{}".format(port)

        def status():
            try:
                doc = json.loads(get(base + "/status")[2])
            except (OSError, ValueError):
                return None
            return doc if doc["healthy"] and doc["frames"] >= 3 else None

        try:
            doc = wait_for(status, 60, "a healthy status with 3 frames")
            assert doc["model"] == {"name": "faces", "version": version,
                                    "path": os.path.realpath(os.path.join(world.models,
                                                                          "current"))}
            assert doc["error"] is None and doc["fps"] > 0
            assert doc["last"]["frame"] >= 3 and abs(doc["last"]["time"] - time.time()) < 30
            assert get(base + "/healthz")[::2] == (200, "ok\n")
            assert bonnet.state()["camera"]["model"] == "faces-" + version
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        err.seek(0)
        log = err.read()
        out.seek(0)
        assert out.read() == "", "no face scores above 0.9999"
    assert "stopping on SIGTERM after" in log and error_lines(log) == []
    assert "frames 1-1: no faces" in log
    state = bonnet.state()
    assert state["loaded_models"] == [] and not state["camera"]["running"]


@needs_kit
@needs_bonnet
@pytest.mark.parametrize("key, reason", [
    ("refused", "refused on purpose (--refuse {version})"),
    ("unknown", None),
])
def test_a_model_the_bonnet_does_not_load_is_exit_3(world, bonnet, key, reason):
    made = world.made[key]
    release = made["path"]
    result = run_detector(bonnet.port, "--release", release, "--status-port", "0")
    assert result.returncode == 3, result.stderr
    errors = error_lines(result.stderr)
    prefix = ("facekit-detector: error: the Vision Bonnet did not load model faces {} "
              "({}/model.binaryproto): ".format(made["version"], release))
    assert len(errors) == 1 and errors[0].startswith(prefix), errors
    said = errors[0][len(prefix):]
    if reason:
        assert reason.format(version=made["version"]) in said
    else:
        assert said and said != "it gave no reason"
    assert "faces-" + made["version"] not in [m["name"] if isinstance(m, dict) else m
                                              for m in bonnet.state()["loaded_models"]]


@needs_kit
@needs_bonnet
def test_a_dropped_connection_is_exit_5(world):
    server = Bonnet(world.root, world.served, world.frames, "--drop-after", "3")
    try:
        result = run_detector(server.port, "--models", world.models, "--status-port", "0")
    finally:
        server.stop()
    assert result.returncode == 5, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and re.match(
        r"facekit-detector: error: lost the connection to the Vision Bonnet at "
        r"127\.0\.0\.1:{} \(VISION_BONNET_HOST/VISION_BONNET_PORT\) while waiting for frame 3 "
        r"\(TypeError: ".format(server.port), errors[0]), errors
