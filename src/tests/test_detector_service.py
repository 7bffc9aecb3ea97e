"""facekit-detector, the service the Vision Kit runs.

Unit tests (this venv): frame decoding from objects shaped like the library's protobuf
results, the status endpoint, the LEDs, the release checks (exit 4) and the service
loop against a stand-in for aiy.vision.inference (this venv's protobuf cannot import the
library's generated code). End-to-end tests: the service under the kit's Python
(.venv-kit, AIY's real client library) against the software Vision Bonnet.
"""

import collections
import io
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
import urllib.error
import urllib.request

import graphs
import numpy as np
import pytest
from aiy import leds
from PIL import Image, ImageDraw

from facekit.detector import client, decode, exits, outputs, release, service, signals
from facekit.detector.lights import Lights
from facekit.detector.status import Status, StatusServer
from facekit.model import bundle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(REPO, "src")
AIY_ANCHORS = os.path.join(REPO, "src", "tests", "data", "aiy_anchors_256.txt")
KIT_PYTHON = os.environ.get("FACEKIT_KIT_PYTHON",
                            os.path.join(REPO, ".venv-kit", "bin", "python"))
N = 1278

try:
    import facekit.bonnet  # noqa: F401
    HAVE_BONNET = True
except ImportError:
    HAVE_BONNET = False

needs_kit = pytest.mark.skipif(
    not os.path.exists(KIT_PYTHON),
    reason="no Vision Kit environment at {}: build it with `tools/kit-env.sh .venv-kit` (or "
           "set FACEKIT_KIT_PYTHON)".format(KIT_PYTHON))
needs_bonnet = pytest.mark.skipif(
    not HAVE_BONNET, reason="facekit.bonnet (the software Vision Bonnet) cannot be imported")


# ---- objects shaped like the library's protobuf results -------------------------------

class FakeTuple(object):
    def __init__(self, values):
        self.values = list(values)


class FakeTensor(object):
    def __init__(self, data=(), indices=()):
        self.data = list(data)
        self.indices = [FakeTuple(i) for i in indices]


class FakeResult(object):
    def __init__(self, tensors, window=(0, 0, 256, 256), size=None, duration_ms=7):
        self.tensors = tensors
        self.window = types.SimpleNamespace(x=window[0], y=window[1], width=window[2],
                                            height=window[3])
        self.width, self.height = size or (window[0] + window[2], window[1] + window[3])
        self.duration_ms = duration_ms


def dense_outputs(seed=0, positive=-2.5):
    rng = np.random.RandomState(seed)
    encodings = rng.standard_normal((N, 4)) * 0.5
    logits = np.stack([rng.standard_normal(N), rng.standard_normal(N) * 2 + positive], axis=1)
    return encodings, logits


def sparse_result(encodings, logits, threshold=0.5, **kwargs):
    """What the bonnet sends for the configs the service asks for: (anchor, class) hits
    of the non-background column above logit(threshold), and those anchors' encodings."""
    cut = math.log(threshold / (1 - threshold))
    hits = [a for a in range(N) if logits[a, 1] > cut]
    return FakeResult({
        "concat_1": FakeTensor([float(logits[a, 1]) for a in hits], [(a, 1) for a in hits]),
        "concat": FakeTensor([float(v) for a in hits for v in encodings[a]],
                             [(a,) for a in hits]),
    }, **kwargs)


def fake_model(labels=("face",)):
    return release.Model("/opt/facekit/models/releases/abc", name="faces",
                         version="abc", labels=list(labels),
                         anchors=decode.load_anchors(AIY_ANCHORS), input_size=256,
                         compute_graph=b"compiled")


def test_sparse_result_decodes_like_the_dense_tensors():
    encodings, logits = dense_outputs()
    result = sparse_result(encodings, logits)
    assert 5 < len(result.tensors["concat_1"].data) < 200
    got = outputs.result_detections(result, fake_model(), 0.5, 0.5, 100)
    expected = decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS))
    assert got == expected and len(got) > 1


def test_full_tensors_are_decoded_too():
    """A bonnet that ignores the sparse configs sends every anchor: same detections."""
    encodings, logits = dense_outputs(seed=3)
    result = FakeResult({"concat_1": FakeTensor(logits.reshape(-1).tolist()),
                         "concat": FakeTensor(encodings.reshape(-1).tolist())})
    got = outputs.result_detections(result, fake_model(), 0.6, 0.4, 3)
    assert got == decode.decode_dense(encodings, logits, decode.load_anchors(AIY_ANCHORS),
                                      score_threshold=0.6, iou_threshold=0.4,
                                      max_detections=3)
    assert len(got) == 3


def test_a_frame_without_hits_has_no_faces():
    result = FakeResult({"concat_1": FakeTensor(), "concat": FakeTensor()})
    assert outputs.result_detections(result, fake_model()) == []


def test_face_records_are_in_the_frame_window():
    det = decode.Detection(1, 0, 0.912345, 0.1, 0.2, 0.5, 0.6)
    face = outputs.face_record(det, ["face"], (10, 20, 200, 100))
    assert list(face.items()) == [("label", "face"), ("score", 0.9123),
                                  ("box", [50, 30, 80, 40]), ("norm", [0.1, 0.2, 0.5, 0.6])]
    record = outputs.frame_record(4, 1700000000.123, fake_model(), [face], 33, camera_frame=17)
    assert json.dumps(record) == (
        '{"frame": 4, "time": 1700000000.123, "model": "faces", "version": "abc", '
        '"faces": [{"label": "face", "score": 0.9123, "box": [50, 30, 80, 40], '
        '"norm": [0.1, 0.2, 0.5, 0.6]}], "ms": 33, "camera_frame": 17}')


def test_window_falls_back_to_the_frame_then_the_input_size():
    model = fake_model()
    assert outputs.frame_window(FakeResult({}, window=(5, 6, 7, 8)), model) == (5, 6, 7, 8)
    assert outputs.frame_window(FakeResult({}, window=(0, 0, 0, 0), size=(640, 480)),
                                model) == (0, 0, 640, 480)
    assert outputs.frame_window(FakeResult({}, window=(0, 0, 0, 0), size=(0, 0)),
                                model) == (0, 0, 256, 256)


@pytest.mark.parametrize("tensors, message", [
    ({"concat_1": FakeTensor()}, "has no tensor concat (it has concat_1)"),
    ({"concat_1": FakeTensor([2.0], [(3, 1)]), "concat": FakeTensor([0.0] * 3, [(3,)])},
     "concat: 1 indices but 3 values"),
    ({"concat_1": FakeTensor([2.0], [(N + 5, 1)]),
      "concat": FakeTensor([0.0] * 4, [(N + 5,)])}, "anchor 1283 out of range"),
    ({"concat_1": FakeTensor([2.0], [(3,)]), "concat": FakeTensor([0.0] * 4, [(3,)])},
     "concat_1 index 0: expected 2 values"),
    ({"concat_1": FakeTensor([2.0], [(3, 2)]), "concat": FakeTensor([0.0] * 4, [(3,)])},
     "the model gave class 2 but"),
])
def test_outputs_that_do_not_fit_the_bundle_are_exit_3(tensors, message):
    with pytest.raises(outputs.OutputError) as info:
        outputs.result_detections(FakeResult(tensors), fake_model())
    assert message in str(info.value)
    assert info.value.exit_status == exits.EXIT_MODEL == 3


# ---- status endpoint ------------------------------------------------------------------

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
                    "frames": 10, "fps": 2.0,
                    "last": {"frame": 10, "time": 1010.0, "faces": []},
                    "faces_seen": 5, "started": 1000.0, "error": None}
    clock.now += 6
    healthy, reason = status.health()
    assert not healthy and reason == ("no frame from the Vision Bonnet for 6.0 s "
                                      "(limit 5 s)")
    assert status.snapshot()["fps"] == 0.0
    clock.now -= 6
    status.set_error("lost the bonnet")
    assert status.health() == (False, "error: lost the bonnet")


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


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
        assert doc["last"] == {"frame": 1, "time": 5.0, "faces": [{"label": "face"}]}
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


# ---- the release: exit 4 --------------------------------------------------------------

def make_bundle(root, compiled=b"compiled model bytes", anchors=AIY_ANCHORS, graph=None,
                extra=None):
    """A bundle under root/artifacts; returns create_bundle's result."""
    inputs = os.path.join(str(root), "inputs")
    os.makedirs(inputs, exist_ok=True)

    def write(name, data):
        path = os.path.join(inputs, name)
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    graph = graph or write("graph.pb", b"\x0a\x05graph" * 20)
    config = write("pipeline.config", b"model { ssd { num_classes: 1 } }\n")
    compiled_path = write("model.binaryproto", compiled)
    return bundle.create_bundle("faces", os.path.join(str(root), "artifacts"), graph=graph,
                                compiled=compiled_path, config=config, anchors=anchors,
                                extra=extra)


def deploy(made, models):
    """The kit's layout: MODELS/releases/VERSION and MODELS/current -> releases/VERSION."""
    release = os.path.join(models, "releases", made["version"])
    shutil.copytree(made["path"], release)
    os.symlink(os.path.join("releases", made["version"]), os.path.join(models, "current"))
    return release


@pytest.fixture
def quiet_root():
    """main() sets the root logger's level: put it back."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def run_main(capsys, *argv):
    out = io.StringIO()
    if "--status-port" not in argv:
        argv += ("--status-port", "0")
    status = service.main(list(argv), stdout=out)
    err = capsys.readouterr().err
    return status, out.getvalue(), [line for line in err.splitlines()
                                    if line.startswith("facekit-detector: error:")]


def test_missing_current_link_says_who_makes_it(tmp_path, capsys, quiet_root):
    models = str(tmp_path / "models")
    status, out, errors = run_main(capsys, "--models", models)
    assert (status, out) == (4, "")
    assert errors == ["facekit-detector: error: {0}/current does not exist: the vision_kit "
                      "role creates it as a link to a release under {0}/releases when it "
                      "deploys a model; deploy one, or pass --models DIR or --release DIR"
                      .format(models)]


def test_dangling_current_link_names_its_target(tmp_path, capsys, quiet_root):
    models = tmp_path / "models"
    models.mkdir()
    os.symlink("releases/0123456789ab", str(models / "current"))
    status, _, errors = run_main(capsys, "--models", str(models))
    assert status == 4
    assert errors[0].startswith("facekit-detector: error: {}/current points to "
                                "releases/0123456789ab, which does not exist".format(models))


def test_a_release_that_does_not_verify_is_exit_4(tmp_path, capsys, quiet_root):
    release = deploy(make_bundle(tmp_path), str(tmp_path / "models"))
    with open(os.path.join(release, "model.binaryproto"), "ab") as fh:
        fh.write(b"tampered")
    os.remove(os.path.join(release, "labels.txt"))
    status, _, errors = run_main(capsys, "--models", str(tmp_path / "models"))
    assert status == 4 and len(errors) == 1
    assert errors[0].startswith("facekit-detector: error: the model bundle {} does not verify "
                                "against its manifest.json: ".format(release))
    assert "missing file labels.txt" in errors[0]
    assert "model.binaryproto has 28 bytes, manifest.json says 20" in errors[0]
    status, _, errors = run_main(capsys, "--release", str(tmp_path / "nowhere"))
    assert status == 4 and "--release {}: no such directory".format(
        tmp_path / "nowhere") in errors[0]


def test_anchor_count_must_match_the_manifest(tmp_path, capsys, quiet_root):
    made = make_bundle(tmp_path)
    manifest_path = os.path.join(made["path"], "manifest.json")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    manifest["anchors"] = 1917
    manifest["version"] = bundle.content_version(manifest)
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh)
    assert bundle.verify_bundle(made["path"])["ok"]
    status, _, errors = run_main(capsys, "--release", made["path"])
    assert status == 4
    assert "anchors.txt has 1278 anchors but manifest.json says 1917" in errors[0]


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
                 ["--frames", "0"]):
        with pytest.raises(SystemExit) as info:
            service.build_parser().parse_args(argv)
        assert info.value.code == 2
    assert "outside (0.0, 1.0)" in capsys.readouterr().err


# ---- the service loop against a stand-in for aiy.vision.inference --------------------

class FakeLibrary(object):
    """Stands in for aiy.vision.inference (whose protobuf code this venv cannot import):
    the same names, a board holding loaded models, and a camera yielding `results`.
    load_model logs a refusal as the library does (a warning on its logger)."""

    def __init__(self, results=(), refuse=None, connect_error=None):
        inference = self
        self.__name__ = "aiy.vision.inference"
        self.results = list(results)
        self.loaded = set()
        self.calls = []
        self.configs = None
        self.engines = []
        self.ModelDescriptor = collections.namedtuple(
            "ModelDescriptor", ("name", "input_shape", "input_normalizer", "compute_graph"))
        self.ThresholdingConfig = collections.namedtuple(
            "ThresholdingConfig", ("logical_shape", "threshold", "top_k", "to_ignore"))
        self.FromSparseTensorConfig = collections.namedtuple(
            "FromSparseTensorConfig", ("logical_shape", "tensor_name", "squeeze_dims"))
        self.InferenceException = type("InferenceException", (Exception,), {})
        self.FirmwareVersionException = type("FirmwareVersionException", (Exception,), {})

        class Engine(object):
            def __init__(self):
                if connect_error is not None:
                    raise connect_error
                self.closed = False
                inference.engines.append(self)

            def get_inference_state(self):
                return types.SimpleNamespace(loaded_models=sorted(inference.loaded))

            def load_model(self, descriptor):
                inference.calls.append(("load", descriptor))
                if refuse:
                    logging.getLogger("aiy.vision.inference").warning(refuse)
                else:
                    inference.loaded.add(descriptor.name)
                return descriptor.name

            def unload_model(self, name):
                inference.calls.append(("unload", name))
                inference.loaded.discard(name)

            def close(self):
                self.closed = True

        class Camera(object):
            def __init__(self, descriptor, params=None, sparse_configs=None):
                inference.configs = sparse_configs
                self.engine = Engine()
                inference.calls.append(("start", descriptor.name))

            def run(self, count=None):
                for item in inference.results:
                    yield item() if callable(item) else item

            def close(self):
                inference.calls.append(("stop",))
                self.engine.close()

        self.InferenceEngine = Engine
        self.CameraInference = Camera


@pytest.fixture
def deployed(tmp_path):
    models = str(tmp_path / "models")
    made = make_bundle(tmp_path, extra={"input_size": "256"})
    deploy(made, models)
    return models, made


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
        assert list(line)[:6] == ["frame", "time", "model", "version", "faces", "ms"]
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


# ---- LEDs -----------------------------------------------------------------------------

def test_lights_follow_the_state_and_never_stop_the_service(tmp_path, monkeypatch, caplog):
    device = tmp_path / "led1" / "device"
    device.mkdir(parents=True)
    monkeypatch.setattr(leds, "_DEVICE_PATH", str(device) + "/")
    registers = device / "registers"
    lights = Lights()
    assert lights.available and (device / "reset").read_text() == "1"
    lights.show(lights.FACES)
    # Each update writes the file anew: the last one is the privacy LED.
    assert registers.read_text() == "led4=32;ch4_enable=1;"
    registers.write_text("")
    lights.show(lights.FACES)
    assert registers.read_text() == "", "an unchanged state is not written again"
    lights.show(lights.ERROR)
    assert registers.read_text() == "led4=0;ch4_enable=0;"
    registers.unlink()
    registers.mkdir()  # writes now fail
    with caplog.at_level(logging.WARNING):
        lights.show(lights.IDLE)
    assert not lights.available
    assert "LED update failed (IsADirectoryError" in caplog.text
    lights.show(lights.FACES)

    monkeypatch.setattr(leds, "_DEVICE_PATH", str(tmp_path / "none") + "/")
    with caplog.at_level(logging.INFO):
        assert not Lights().available
    assert "no LEDs on this board (no LED driver at {})".format(tmp_path / "none") in caplog.text


def test_lights_colours(tmp_path, monkeypatch):
    device = tmp_path / "device"
    device.mkdir()
    monkeypatch.setattr(leds, "_DEVICE_PATH", str(device) + "/")
    written = []
    monkeypatch.setattr(leds, "_write", lambda path, data: written.append(
        (os.path.basename(path), str(data))))
    lights = Lights()
    for state in (lights.FACES, lights.IDLE, lights.ERROR, lights.OFF):
        lights.show(state)
    assert written == [
        ("reset", "1"),
        ("registers", "led1=0;ch1_enable=1;led2=255;ch2_enable=1;led3=0;ch3_enable=1;"),
        ("registers", "led4=32;ch4_enable=1;"),
        ("registers", "led1=0;ch1_enable=1;led2=0;ch2_enable=1;led3=32;ch3_enable=1;"),
        ("registers", "led4=32;ch4_enable=1;"),
        ("registers", "tflash=2;pwm1=128;trise=0;tfall=0;"),
        ("registers", "led1=255;ch1_enable=2;led2=0;ch2_enable=2;led3=0;ch3_enable=2;"),
        ("registers", "led4=0;ch4_enable=0;"),
        ("registers", "led1=0;ch1_enable=0;led2=0;ch2_enable=0;led3=0;ch3_enable=0;"),
        ("registers", "led4=0;ch4_enable=0;"),
    ]


# ---- end to end: the kit's Python and AIY's library against the software bonnet -------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kit_env(port):
    env = dict(os.environ, PYTHONPATH=SRC, VISION_BONNET_HOST="127.0.0.1",
               VISION_BONNET_PORT=str(port))
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    return env


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
            "'facekit.cli.dataset', 'facekit.cli.model', 'facekit.cli.bonnet', "
            "'facekit.dataset', 'facekit.bonnet'}; "
            "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))")
    result = subprocess.run([KIT_PYTHON, "-c", code], stdout=subprocess.PIPE,
                            universal_newlines=True, env=kit_env(9), check=True)
    assert result.stdout.strip() == "[]"


@needs_kit
def test_tensor_values_reads_aiy_float_tensors_from_their_wire_form():
    """Under the kit's protobuf (C++ implementation), wire.tensor_values gives the floats
    of AIY's own FloatTensor as an array read from the message's bytes."""
    code = "\n".join([
        "import json, numpy as np",
        "from google.protobuf.internal import api_implementation",
        "from aiy.vision.proto import protocol_pb2",
        "from facekit.detector import wire",
        "values = np.random.RandomState(7).normal(size=2556).astype(np.float32)",
        "tensor = protocol_pb2.FloatTensor()",
        "tensor.shape.batch, tensor.shape.height, tensor.shape.depth = 1, 1278, 2",
        "tensor.data.extend(values.tolist())",
        "tensor.indices.add().values.extend([3, 1])",
        "got = wire.tensor_values(protocol_pb2.FloatTensor.FromString(",
        "    tensor.SerializeToString()))",
        "print(json.dumps([api_implementation.Type(), type(got).__name__, str(got.dtype),",
        "                  bool(np.array_equal(got, values))]))",
    ])
    result = subprocess.run([KIT_PYTHON, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=kit_env(9),
                            check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["cpp", "ndarray", "float32", True]


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
        assert list(line) == ["frame", "time", "model", "version", "faces", "ms",
                              "camera_frame"]
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
