"""The software Vision Bonnet (`facekit bonnet`): protocol classes, sparse outputs, the
server in-process through the protocol, AIY's real client library against it (.venv-kit,
Python 3.7 + protobuf 3.20) and the daemon commands.

The bundles hold a test frozen graph (src/tests/graphs.py) and, standing in for the
Bonnet compiler's output (Google's), a header line followed by the graph's bytes.
Expected outputs come from running the bundle's graph directly with TensorFlow here.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types

import graphs
import numpy as np
import pytest
from PIL import Image

from facekit import cli
from facekit.bonnet import BonnetError, frames, protocol, sparse
from facekit.bonnet.board import Bonnet
from facekit.bonnet.models import Registry
from facekit.bonnet.server import BonnetServer
from facekit.model.bundle import create_bundle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
KIT_PY = os.path.join(REPO, ".venv-kit", "bin", "python")
AIY_ANCHORS = os.path.join(REPO, "src", "tests", "data", "aiy_anchors_256.txt")
needs_kit = pytest.mark.skipif(
    not os.path.exists(KIT_PY),
    reason=".venv-kit/bin/python is missing: build the Vision Kit's stack (Python 3.7, "
           "protobuf 3.20, aiy-projects-python) with tools/kit-env.sh .venv-kit")

ANCHORS = graphs.anchor_count(256)  # 1278
P = protocol.load()


def _frame(seed, size=(640, 480)):
    """A camera frame with structure (noise, a bright block, a dark bar) differing by seed."""
    rng = np.random.RandomState(seed)
    pixels = (rng.rand(size[1], size[0], 3) * 255).astype(np.uint8)
    x, y = (80 + 60 * seed) % (size[0] // 2), (60 + 30 * seed) % (size[1] // 2)
    pixels[y:y + size[1] // 3, x:x + size[0] // 4] = (230, (200 + 40 * seed) % 256, 180)
    pixels[size[1] // 2:size[1] // 2 + size[1] // 12, :] = (20 * seed) % 256
    return Image.fromarray(pixels, "RGB")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Two bundles under models/ (face: 256 input, 1 class; wide: 2 classes), frames."""
    root = tmp_path_factory.mktemp("bonnet")
    config = root / "pipeline.config"
    config.write_text(graphs.pipeline_config())
    made = {}
    for name, classes, seed in (("face", 1, 3), ("wide", 2, 5)):
        graph = graphs.write_graph(root / (name + ".pb"), num_classes=classes, seed=seed)
        compiled = root / (name + ".binaryproto")
        compiled.write_bytes(b"facekit test stand-in for the Bonnet compiler's output\n" +
                             graph.read_bytes())
        made[name] = types.SimpleNamespace(
            bundle=create_bundle(name, str(root / "models"), graph=str(graph),
                                 compiled=str(compiled), config=str(config),
                                 anchors=AIY_ANCHORS, labels=["face"] * classes),
            graph=str(graph), compiled=compiled.read_bytes(), classes=classes)
    frame_dir = root / "frames"
    frame_dir.mkdir()
    images = [_frame(i) for i in range(3)]
    images[0].save(str(frame_dir / "a.png"))
    images[1].save(str(frame_dir / "b.png"))
    images[2].save(str(frame_dir / "c.PNG"))
    (frame_dir / "notes.txt").write_text("not a frame")
    anchors_dir = root / "aiy_models"
    anchors_dir.mkdir()
    shutil.copy(AIY_ANCHORS, str(anchors_dir /
                                 "mobilenet_ssd_256res_0.125_person_cat_dog_anchors.txt"))
    return types.SimpleNamespace(root=root, models=str(root / "models"), frames=str(frame_dir),
                                 images=images, anchors_dir=str(anchors_dir), **made)


_sessions = {}


def run_graph(graph_path, image, size=256, mean=128.0, stddev=128.0):
    """concat [N, 4] and concat_1 [N, 1 + C] of the frozen graph on `image`, with TF here."""
    v1 = graphs._tf()
    if graph_path not in _sessions:
        graph = v1.Graph()
        with graph.as_default():
            graph_def = v1.GraphDef()
            with open(graph_path, "rb") as fh:
                graph_def.ParseFromString(fh.read())
            v1.import_graph_def(graph_def, name="")
        _sessions[graph_path] = v1.Session(graph=graph)
    session = _sessions[graph_path]
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
    boxes, classes = session.run(["concat:0", "concat_1:0"], feed_dict={
        "Preprocessor/sub:0": ((pixels - mean) / stddev)[np.newaxis]})
    return boxes.reshape(-1, 4), classes.reshape(boxes.size // 4, -1)


def threshold_between(logits, count):
    """A threshold that lets exactly `count` class-1 logits through (midway in a gap)."""
    ranked = np.sort(logits[:, 1:].reshape(-1))[::-1]
    return float((ranked[count - 1] + ranked[count]) / 2)


def expected_sparse(boxes, logits, threshold):
    """(hits [(anchor, class, logit)], {anchor: 4 box encodings}) by thresholding here."""
    hits = [(i, c, float(logits[i, c])) for i in range(logits.shape[0])
            for c in range(1, logits.shape[1]) if logits[i, c] > threshold]
    hits.sort(key=lambda h: -h[2])
    return hits, {i: boxes[i].tolist() for i, _, _ in hits}


# -- in-process server ---------------------------------------------------------------------


@contextlib.contextmanager
def running(lab, refuse=(), fps=0, delay_ms=0, state_file=None, **options):
    bonnet = Bonnet(Registry(lab.models, refuse), frames.FrameSource(lab.frames), fps=fps,
                    state_file=state_file, proto=P, **options)
    server = BonnetServer(bonnet, "127.0.0.1", 0, delay_ms=delay_ms)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.close()
        thread.join(5)


def request(**fields):
    return P.Request(**fields)


def load_request(lab, name="face", model="face", shape=(1, 256, 256, 3), graph=None):
    return request(load_model=P.Request.LoadModel(
        model_name=name, input_shape=P.TensorShape(batch=shape[0], height=shape[1],
                                                   width=shape[2], depth=shape[3]),
        input_normalizer=P.TensorNormalizer(mean=128.0, stddev=128.0),
        compute_graph=getattr(lab, model).compiled if graph is None else graph))


def aiy_configs(threshold, classes=1):
    """AIY's object detection sparse configs, for a model of `classes` + background logits."""
    return {
        "concat_1": P.SparseConfig(
            logical_shape=P.Tuple(values=[ANCHORS, classes + 1]),
            thresholding=P.SparseConfig.Thresholding(
                threshold=threshold, top_k=ANCHORS,
                to_ignore=[P.SparseConfig.Thresholding.ToIgnore(dim=1, label=0)])),
        "concat": P.SparseConfig(
            logical_shape=P.Tuple(values=[ANCHORS]),
            from_sparse_tensor=P.SparseConfig.FromSparseTensor(tensor_name="concat_1",
                                                               squeeze_dims=[1])),
    }


def ok(response):
    """The response, after checking its status is set explicitly and OK."""
    assert response.HasField("status"), response
    assert response.status.code == P.OK, response.status.message
    return response


def error(response):
    assert response.HasField("status") and response.status.code == P.ERROR, response
    return response.status.message


def planar(image):
    r, g, b = image.convert("RGB").split()
    return P.ByteTensor(shape=P.TensorShape(batch=1, height=image.size[1], width=image.size[0],
                                            depth=3),
                        data=r.tobytes() + g.tobytes() + b.tobytes())


# -- protocol ------------------------------------------------------------------------------


def test_protocol_classes_from_aiy_descriptor():
    assert P.path.endswith(os.path.join("aiy", "vision", "proto", "protocol_pb2.py"))
    assert "aiy.vision.proto.protocol_pb2" not in sys.modules  # read, not imported
    assert P.Response.Status.OK == 0 and P.Response.Status.ERROR == 1
    config = P.SparseConfig.Thresholding(to_ignore=[P.SparseConfig.Thresholding.ToIgnore(
        dim=1, label=0)])
    assert config.to_ignore[0].dim == 1
    message = P.Request(get_firmware_info=P.Request.GetFirmwareInfo())
    parsed = P.Request()
    parsed.ParseFromString(message.SerializeToString())
    assert parsed.WhichOneof("request") == "get_firmware_info"
    assert protocol.load(P.path) is P


def test_protocol_errors(tmp_path, monkeypatch):
    with pytest.raises(BonnetError, match="no such file"):
        protocol.load(str(tmp_path / "protocol_pb2.py"))
    fake = tmp_path / "protocol_pb2.py"
    fake.write_text("X = 1\n")
    with pytest.raises(BonnetError, match="no serialized descriptor found"):
        protocol.load(str(fake))
    monkeypatch.setattr(protocol.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BonnetError) as info:
        protocol.find_protocol_file()
    assert "pip install --no-deps aiy-projects-python==1.4" in str(info.value)


@needs_kit
def test_protocol_under_protobuf_3_20_matches_aiy():
    """The classes built on the kit's protobuf 3.20 write what aiy's generated code reads."""
    code = """
import json
from facekit.bonnet import protocol
from aiy.vision.proto import protocol_pb2 as pb2
import google.protobuf
p = protocol.load()
req = p.Request(start_camera_inference=p.Request.StartCameraInference(model_name='m',
    sparse_configs={'t': p.SparseConfig(logical_shape=p.Tuple(values=[3, 2]),
        thresholding=p.SparseConfig.Thresholding(threshold=0.5, top_k=2,
            to_ignore=[p.SparseConfig.Thresholding.ToIgnore(dim=1, label=0)]))}))
theirs = pb2.Request()
theirs.ParseFromString(req.SerializeToString())
cfg = theirs.start_camera_inference.sparse_configs['t']
print(json.dumps([google.protobuf.__version__, theirs.start_camera_inference.model_name,
                  list(cfg.logical_shape.values), cfg.thresholding.top_k,
                  cfg.thresholding.to_ignore[0].dim]))
"""
    out = subprocess.run([KIT_PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=dict(os.environ, PYTHONPATH=os.path.join(
                             REPO, "src")), check=False)
    assert out.returncode == 0, out.stderr
    version, name, shape, top_k, dim = json.loads(out.stdout)
    assert version.startswith("3.") and (name, shape, top_k, dim) == ("m", [3, 2], 2, 1)


# -- sparse outputs ------------------------------------------------------------------------


def test_thresholding_and_blocks():
    logits = np.array([[5.0, 0.9, 0.1], [0.0, 0.2, 0.95], [9.0, 0.99, 0.97],
                       [0.3, 0.4, 0.1]], np.float32)
    boxes = np.arange(16, dtype=np.float32).reshape(4, 4)
    config = sparse.Thresholding([4, 3], 0.5, 0, [(1, 0)])
    found = sparse.threshold("concat_1", logits, config)
    assert found.indices.tolist() == [[2, 1], [2, 2], [1, 2], [0, 1]]  # best first
    assert found.values.tolist() == pytest.approx([0.99, 0.97, 0.95, 0.9])
    top = sparse.threshold("concat_1", logits, config._replace(top_k=2))
    assert top.indices.tolist() == [[2, 1], [2, 2]]
    blocks = sparse.select_blocks("concat", boxes, sparse.FromSparseTensor([4], "concat_1", [1]),
                                  found)
    assert blocks.indices.tolist() == [[2], [1], [0]]  # anchor 2 once, in hit order
    assert blocks.values.tolist() == boxes[[2, 1, 0]].reshape(-1).tolist()
    both = sparse.apply({"concat": boxes, "concat_1": logits},
                        {"concat_1": config,
                         "concat": sparse.FromSparseTensor([4], "concat_1", [1])})
    assert both["concat"].indices.tolist() == [[2], [1], [0]]
    none = sparse.apply({"concat": boxes, "concat_1": logits},
                        {"concat_1": config._replace(threshold=100.0),
                         "concat": sparse.FromSparseTensor([4], "concat_1", [1])})
    assert none["concat_1"].values.size == 0 and none["concat"].values.size == 0
    for bad, message in (
            ({"concat_1": config._replace(logical_shape=[5, 3])}, "has 15 elements"),
            ({"concat_1": config._replace(to_ignore=[(2, 0)])}, "outside logical_shape"),
            ({"concat": sparse.FromSparseTensor([4], "concat_1", [1])},
             "no thresholding config"),
            ({"scores": config}, "no such output"),
            ({"concat_1": config, "concat": sparse.FromSparseTensor([4], "concat_1", [0, 1])},
             "dimensions left")):
        with pytest.raises(BonnetError, match=message):
            sparse.check_configs(bad, {"concat": 16, "concat_1": 12})


# -- frames --------------------------------------------------------------------------------


def test_frames_cycle_and_errors(lab, tmp_path, monkeypatch):
    source = frames.FrameSource(lab.frames)
    assert source.names == ["a.png", "b.png", "c.PNG"] and source.size == (640, 480)
    assert source.frame(4)[1] == "b.png"
    assert np.array_equal(np.asarray(source.frame(3)[0]), np.asarray(lab.images[0]))
    monkeypatch.setattr(frames, "CACHE_BYTES", 640 * 480 * 3)  # one frame: read from disk
    uncached = frames.FrameSource(lab.frames)
    assert uncached._cache is None
    assert np.array_equal(np.asarray(uncached.frame(5)[0]), np.asarray(lab.images[2]))
    with pytest.raises(BonnetError, match="no such directory"):
        frames.FrameSource(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BonnetError, match="no .jpg, .jpeg or .png"):
        frames.FrameSource(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BonnetError, match="x.jpg: cannot read the image"):
        frames.FrameSource(str(tmp_path / "bad"))
    assert frames.FrameSource().size == frames.PATTERN_SIZE


# -- the server through the protocol -------------------------------------------------------


def test_information_requests(lab):
    with running(lab) as server, protocol.Client(port=server.port) as client:
        info = ok(client.call(request(get_firmware_info=P.Request.GetFirmwareInfo())))
        assert (info.firmware_info.major_version, info.firmware_info.minor_version) == (1, 2)
        system = ok(client.call(request(get_system_info=P.Request.GetSystemInfo())))
        assert system.HasField("system_info") and system.system_info.uptime_seconds >= 0
        camera = ok(client.call(request(get_camera_state=P.Request.GetCameraState())))
        assert (camera.camera_state.running, camera.camera_state.width,
                camera.camera_state.height) == (False, 640, 480)
        ok(client.call(request(imu_self_test=P.Request.ImuSelfTest())))
        state = ok(client.call(request(get_inference_state=P.Request.GetInferenceState())))
        assert list(state.inference_state.loaded_models) == []
        assert "empty request" in error(client.call(P.Request()))


def test_load_refusals(lab, tmp_path):
    face = lab.face.bundle
    other = b"another compiled graph"
    other_sha = hashlib.sha256(other).hexdigest()
    face_sha = hashlib.sha256(lab.face.compiled).hexdigest()
    cases = [
        (load_request(lab, graph=other), ["face", "unknown compiled graph", other_sha,
                                          lab.models]),
        (load_request(lab, shape=(1, 128, 128, 3)),
         ["face", "(1, 128, 128, 3)", "256x256", face["version"]]),
        (load_request(lab, shape=(2, 256, 256, 3)), ["face", "batch must be 1"]),
        (load_request(lab, shape=(1, 256, 256, 1)), ["face", "depth 3"]),
        (load_request(lab, graph=b""), ["face", "compute graph is empty"]),
        (load_request(lab, name="blocked"), ["blocked", "--refuse blocked"]),
        (load_request(lab, model="wide", name="w"), ["w", "--refuse " + lab.wide.bundle[
            "version"]]),
    ]
    with running(lab, refuse=["blocked", lab.wide.bundle["version"]]) as server, \
            protocol.Client(port=server.port) as client:
        for req, words in cases:
            message = error(client.call(req))
            assert message.startswith('Cannot load model "{}"'.format(words[0])), message
            for word in words[1:]:
                assert word in message, (word, message)
        state = ok(client.call(request(get_inference_state=P.Request.GetInferenceState())))
        assert list(state.inference_state.loaded_models) == []
    # By sha256 prefix: 12 hex digits at least (any case); 11 do not count.
    with running(lab, refuse=[face_sha[:11], face_sha[:12].upper()]) as server, \
            protocol.Client(port=server.port) as client:
        assert error(client.call(load_request(lab))) == \
            'Cannot load model "face": refused on purpose (--refuse {})'.format(
                face_sha[:12].upper())
    # A bundle that no longer verifies, and one whose graph TensorFlow cannot load.
    models = tmp_path / "models"
    shutil.copytree(face["path"], str(models / "face" / face["version"]))
    (models / "face" / face["version"] / "labels.txt").write_text("edited\n")
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x0a\x05not a graph at all")
    broken = create_bundle("broken", str(models), graph=str(junk), compiled=str(junk),
                           config=os.path.join(face["path"], "pipeline.config"),
                           anchors=AIY_ANCHORS)
    registry_lab = types.SimpleNamespace(models=str(models), frames=lab.frames)
    with running(registry_lab) as server, protocol.Client(port=server.port) as client:
        message = error(client.call(load_request(lab)))
        assert "does not verify" in message and "labels.txt" in message, message
        message = error(client.call(load_request(lab, name="junk", graph=junk.read_bytes())))
        assert message.startswith('Cannot load model "junk"') and broken["path"] in message
        assert "does not load or run" in message, message


def test_image_inference_matches_tensorflow(lab):
    image = _frame(7, size=(320, 240))
    boxes, logits = run_graph(lab.face.graph, image)
    with running(lab) as server, protocol.Client(port=server.port) as client:
        assert 'Model "face" is not loaded' == error(client.call(request(
            image_inference=P.Request.ImageInference(model_name="face",
                                                     tensor=planar(image)))))
        ok(client.call(load_request(lab)))
        ok(client.call(load_request(lab)))  # the same graph again: already loaded
        result = ok(client.call(request(image_inference=P.Request.ImageInference(
            model_name="face", tensor=planar(image))))).inference_result
        assert (result.model_name, result.width, result.height) == ("face", 320, 240)
        assert (result.window.x, result.window.y, result.window.width,
                result.window.height) == (0, 0, 320, 240)
        assert result.duration_ms >= 0
        assert sorted(result.tensors) == ["concat", "concat_1"]
        shape = result.tensors["concat_1"].shape
        assert (shape.batch, shape.height, shape.width, shape.depth) == (1, ANCHORS, 1, 2)
        np.testing.assert_allclose(result.tensors["concat"].data, boxes.reshape(-1),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(result.tensors["concat_1"].data, logits.reshape(-1),
                                   rtol=1e-4, atol=1e-4)
        # JPEG bytes (shape 0) and a gray image (depth 1).
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        jpeg = ok(client.call(request(image_inference=P.Request.ImageInference(
            model_name="face", tensor=P.ByteTensor(shape=P.TensorShape(batch=1),
                                                   data=buf.getvalue()))))).inference_result
        decoded = Image.open(io.BytesIO(buf.getvalue()))
        np.testing.assert_allclose(jpeg.tensors["concat_1"].data,
                                   run_graph(lab.face.graph, decoded)[1].reshape(-1),
                                   rtol=1e-4, atol=1e-4)
        gray = image.convert("L")
        result = ok(client.call(request(image_inference=P.Request.ImageInference(
            model_name="face", tensor=P.ByteTensor(
                shape=P.TensorShape(batch=1, height=240, width=320, depth=1),
                data=gray.tobytes()))))).inference_result
        np.testing.assert_allclose(result.tensors["concat"].data,
                                   run_graph(lab.face.graph, gray)[0].reshape(-1),
                                   rtol=1e-4, atol=1e-4)
        message = error(client.call(request(image_inference=P.Request.ImageInference(
            model_name="face", tensor=P.ByteTensor(
                shape=P.TensorShape(batch=1, height=240, width=320, depth=3), data=b"xx")))))
        assert "needs 230400 bytes, got 2" in message


def test_camera_inference_sparse_and_state(lab, tmp_path):
    state_file = str(tmp_path / "state.json")
    expected = [run_graph(lab.wide.graph, image) for image in lab.images]
    threshold = threshold_between(expected[0][1], 25)
    with running(lab, state_file=state_file, report_every=2) as server, \
            protocol.Client(port=server.port) as client:
        start = request(start_camera_inference=P.Request.StartCameraInference(
            model_name="wide", sparse_configs=aiy_configs(threshold, classes=2)))
        assert error(client.call(start)) == 'Model "wide" is not loaded'
        assert "not running" in error(client.call(request(
            camera_inference=P.Request.CameraInference())))
        ok(client.call(load_request(lab, name="wide", model="wide")))
        bad = request(start_camera_inference=P.Request.StartCameraInference(
            model_name="wide", sparse_configs=aiy_configs(threshold, classes=1)))
        assert "logical_shape [1278, 2] has 2556 elements, the tensor has 3834" in error(
            client.call(bad))
        ok(client.call(start))
        with protocol.Client(port=server.port) as other:  # state is shared
            state = ok(other.call(request(
                get_inference_state=P.Request.GetInferenceState()))).inference_state
            assert list(state.loaded_models) == ["wide"]
            assert list(state.processing_models) == ["wide"]
            assert ok(other.call(request(
                get_camera_state=P.Request.GetCameraState()))).camera_state.running
        for index in range(4):
            result = ok(client.call(request(
                camera_inference=P.Request.CameraInference()))).inference_result
            assert result.frame.index == index and result.frame.timestamp_us > 0
            assert (result.width, result.height, result.window.width,
                    result.window.height) == (640, 480, 640, 480)
            boxes, logits = expected[index % 3]
            hits, blocks = expected_sparse(boxes, logits, threshold)
            scores = result.tensors["concat_1"]
            assert [tuple(i.values) for i in scores.indices] == [h[:2] for h in hits]
            np.testing.assert_allclose(scores.data, [h[2] for h in hits], rtol=1e-4, atol=1e-4)
            anchors = list(dict.fromkeys(h[0] for h in hits))
            box = result.tensors["concat"]
            assert [tuple(i.values) for i in box.indices] == [(a,) for a in anchors]
            np.testing.assert_allclose(box.data, [v for a in anchors for v in blocks[a]],
                                       rtol=1e-4, atol=1e-4)
            if index == 0:
                assert len(hits) == 25 and 0 < len(anchors) <= 25
        state = json.load(open(state_file))
        assert state["frames_served"] == 4 and state["mean_ms"] > 0 and state["fps"] > 0
        assert state["camera"] == {"running": True, "model": "wide", "frame_index": 4}
        loaded = state["loaded_models"][0]
        assert (loaded["name"], loaded["version"], loaded["bundle"]) == (
            "wide", lab.wide.bundle["version"], lab.wide.bundle["path"])
        ok(client.call(request(stop_camera_inference=P.Request.StopCameraInference())))
        assert "not running" in error(client.call(request(
            camera_inference=P.Request.CameraInference())))
        assert error(client.call(request(unload_model=P.Request.UnloadModel(
            model_name="nope")))) == 'Model "nope" is not loaded'
        ok(client.call(request(reset=P.Request.Reset())))
        state = ok(client.call(request(
            get_inference_state=P.Request.GetInferenceState()))).inference_state
        assert list(state.loaded_models) == []
    assert json.load(open(state_file))["loaded_models"] == []


def test_pacing_delay_and_drop(lab):
    camera = request(camera_inference=P.Request.CameraInference())
    with running(lab, fps=20, delay_ms=30, drop_after=3) as server, \
            protocol.Client(port=server.port) as client:
        started = time.monotonic()
        ok(client.call(request(get_firmware_info=P.Request.GetFirmwareInfo())))
        assert time.monotonic() - started >= 0.03
        ok(client.call(load_request(lab)))
        ok(client.call(request(start_camera_inference=P.Request.StartCameraInference(
            model_name="face"))))
        started = time.monotonic()
        ok(client.call(camera))
        ok(client.call(camera))
        assert time.monotonic() - started >= 0.05 + 0.03  # 20 fps: 50 ms apart
        with pytest.raises(BonnetError, match="closed the connection without a reply"):
            client.call(camera)
    with running(lab, drop_after=1) as server:
        with protocol.Client(port=server.port) as client:
            ok(client.call(load_request(lab)))
            ok(client.call(request(start_camera_inference=P.Request.StartCameraInference(
                model_name="face"))))
            with pytest.raises(BonnetError):
                client.call(camera)
        with protocol.Client(port=server.port) as client:  # once per process
            # the dropped request never reached the camera: this is its first frame
            assert ok(client.call(camera)).inference_result.frame.index == 0


# -- AIY's own client library (.venv-kit) --------------------------------------------------

_KIT_PRELUDE = """
import json, logging, math, sys
from aiy.vision.inference import (CameraInference, FromSparseTensorConfig, ImageInference,
    InferenceEngine, InferenceException, ModelDescriptor, ThresholdingConfig)
warnings = []
class _Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger('aiy').addHandler(_Keep())
logging.getLogger('aiy').setLevel(logging.WARNING)
def descriptor(name, path):
    with open(path, 'rb') as fh:
        return ModelDescriptor(name=name, input_shape=(1, 256, 256, 3),
                               input_normalizer=(128.0, 128.0), compute_graph=fh.read())
def done(**out):
    out['warnings'] = warnings
    print(json.dumps(out))
"""


def kit(lab, server_port, code, *args):
    """Run `code` (after _KIT_PRELUDE) with AIY's library in .venv-kit; its JSON output."""
    env = dict(os.environ, VISION_BONNET_HOST="127.0.0.1", VISION_BONNET_PORT=str(server_port),
               VISION_BONNET_MODELS_PATH=lab.anchors_dir)
    env.pop("PYTHONPATH", None)  # AIY's library alone, no facekit
    out = subprocess.run([KIT_PY, "-c", _KIT_PRELUDE + code] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def compiled_files(lab):
    for name in ("face", "wide"):
        (lab.root / (name + ".compiled")).write_bytes(getattr(lab, name).compiled)
    (lab.root / "unknown.compiled").write_bytes(b"a graph no bundle holds")
    return {name: str(lab.root / (name + ".compiled")) for name in ("face", "wide", "unknown")}


@needs_kit
def test_aiy_camera_inference_sparse(lab, compiled_files):
    expected = [run_graph(lab.face.graph, image) for image in lab.images[:2]]
    threshold = threshold_between(expected[0][1], 12)
    with running(lab) as server:
        out = kit(lab, server.port, """
from aiy.vision.models import object_detection
n = 1278
configs = {
    'concat_1': ThresholdingConfig(logical_shape=[n, 2], threshold=float(sys.argv[2]),
                                   top_k=n, to_ignore=[(1, 0)]),
    'concat': FromSparseTensorConfig(logical_shape=[n], tensor_name='concat_1',
                                     squeeze_dims=[1])}
frames = []
with InferenceEngine() as engine:
    firmware = tuple(engine.get_firmware_info())
with CameraInference(descriptor('face', sys.argv[1]), sparse_configs=configs) as camera:
    for result in camera.run(2):
        objects = object_detection.get_objects_sparse(result)
        frames.append({
            'index': result.frame.index, 'size': [result.width, result.height],
            'window': [result.window.width, result.window.height],
            'hits': [list(i.values) for i in result.tensors['concat_1'].indices],
            'logits': list(result.tensors['concat_1'].data),
            'anchors': [list(i.values) for i in result.tensors['concat'].indices],
            'boxes': list(result.tensors['concat'].data),
            'objects': [[o.kind, o.score] + list(o.bounding_box) for o in objects]})
with InferenceEngine() as engine:
    loaded = list(engine.get_inference_state().loaded_models)
done(firmware=firmware, frames=frames, loaded_after=loaded)
""", compiled_files["face"], threshold)
    assert out["firmware"] == [1, 2]
    assert out["loaded_after"] == []  # CameraInference loaded it, so it unloaded it
    for index, frame in enumerate(out["frames"]):
        boxes, logits = expected[index]
        hits, blocks = expected_sparse(boxes, logits, threshold)
        assert frame["index"] == index and frame["size"] == frame["window"] == [640, 480]
        assert frame["hits"] == [[i, c] for i, c, _ in hits] and hits
        np.testing.assert_allclose(frame["logits"], [h[2] for h in hits], rtol=1e-4,
                                   atol=1e-4)
        anchors = list(dict.fromkeys(h[0] for h in hits))
        assert frame["anchors"] == [[a] for a in anchors]
        np.testing.assert_allclose(frame["boxes"], [v for a in anchors for v in blocks[a]],
                                   rtol=1e-4, atol=1e-4)
        # AIY's decoder took the result: one object per anchor, before its NMS.
        assert 1 <= len(frame["objects"]) <= len(anchors)
    assert len(out["frames"][0]["hits"]) == 12


@needs_kit
def test_aiy_image_inference_and_shared_state(lab, compiled_files):
    image = _frame(9, size=(320, 240))
    image.save(str(lab.root / "image.png"))
    boxes, logits = run_graph(lab.face.graph, image)
    with running(lab) as server:
        out = kit(lab, server.port, """
from PIL import Image
image = Image.open(sys.argv[2]).convert('RGB')
with InferenceEngine() as first:
    first.load_model(descriptor('face', sys.argv[1]))
with InferenceEngine() as second:  # another connection sees the loaded model
    loaded = list(second.get_inference_state().loaded_models)
with ImageInference(descriptor('face', sys.argv[1])) as inference:
    result = inference.run(image)
with InferenceEngine() as engine:
    engine.load_model(descriptor('stranger', sys.argv[3]))
    after = list(engine.get_inference_state().loaded_models)
    try:
        engine.start_camera_inference('stranger')
        started = 'started'
    except InferenceException as exc:
        started = str(exc)
done(loaded=loaded, after=after, started=started, size=[result.width, result.height],
     boxes=list(result.tensors['concat'].data), logits=list(result.tensors['concat_1'].data))
""", compiled_files["face"], lab.root / "image.png", compiled_files["unknown"])
    assert out["loaded"] == ["face"] and out["after"] == ["face"]
    assert out["size"] == [320, 240]
    np.testing.assert_allclose(out["boxes"], boxes.reshape(-1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["logits"], logits.reshape(-1), rtol=1e-4, atol=1e-4)
    sha = hashlib.sha256(b"a graph no bundle holds").hexdigest()
    assert any('"stranger"' in w and sha in w and "unknown compiled graph" in w
               for w in out["warnings"]), out["warnings"]
    assert out["started"] == 'Model "stranger" is not loaded'


@needs_kit
def test_aiy_refused_model_and_dropped_connection(lab, compiled_files):
    code = """
try:
    with CameraInference(descriptor('face', sys.argv[1])) as camera:
        for _ in camera.run(1):
            pass
    outcome = 'ran'
except InferenceException as exc:
    outcome = str(exc)
done(outcome=outcome)
"""
    with running(lab, refuse=["face"]) as server:
        out = kit(lab, server.port, code, compiled_files["face"])
    assert out["outcome"] == 'Model "face" is not loaded'
    assert any('Cannot load model "face": refused on purpose (--refuse face)' in w
               for w in out["warnings"]), out["warnings"]
    with running(lab, drop_after=3) as server:
        out = kit(lab, server.port, """
count = 0
try:
    camera = CameraInference(descriptor('face', sys.argv[1]))
    for _ in camera.run(10):
        count += 1
    failure = None
except Exception as exc:
    failure = type(exc).__name__
done(count=count, failure=failure)
""", compiled_files["face"])
    assert out == {"count": 2, "failure": "TypeError", "warnings": []}


# -- the command line ----------------------------------------------------------------------


def test_serve_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bonnet", "serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--models", "--frames", "--fps", "--refuse",
                 "--drop-after", "--delay-ms", "--report-every", "--state-file",
                 "--background", "--log-file"):
        assert flag in out, flag
    with pytest.raises(SystemExit):
        cli.main(["bonnet", "serve", "--models", "x", "--background"])
    assert "--background needs --state-file" in capsys.readouterr().err


def _facekit(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    out = subprocess.run([sys.executable, "-m", "facekit.cli"] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, timeout=90, check=False)
    return out.returncode, out.stdout, out.stderr


def test_background_and_stop_are_idempotent(lab, tmp_path):
    state_file = tmp_path / "bonnet.json"
    serve = ["bonnet", "serve", "--models", lab.models, "--frames", lab.frames, "--port", "0",
             "--state-file", state_file]
    status, out, err = _facekit(*serve + ["--background"])
    assert status == 0, err
    first = json.loads(out)
    assert first["changed"] is True and first["port"] > 0
    try:
        status, out, err = _facekit(*serve + ["--background"])
        assert status == 0 and json.loads(out) == dict(first, changed=False), err
        if os.path.exists(KIT_PY):
            got = kit(lab, first["port"], """
with InferenceEngine() as engine:
    done(firmware=list(engine.get_firmware_info()),
         camera=engine.get_camera_state().width)
""")
            assert got["firmware"] == [1, 2] and got["camera"] == 640
        status, out, err = _facekit(*serve + ["--background", "--fps", "5"])
        second = json.loads(out)
        assert status == 0 and second["changed"] is True and second["pid"] != first["pid"]
        with pytest.raises(ProcessLookupError):
            for _ in range(100):  # the first was stopped (reaped by init: not our child)
                os.kill(first["pid"], 0)
                time.sleep(0.05)
        state = json.loads(state_file.read_text())
        assert state["pid"] == second["pid"] and state["options"]["fps"] == 5.0
    finally:
        status, out, err = _facekit("bonnet", "stop", "--state-file", state_file)
    assert status == 0 and json.loads(out) == {"changed": True, "pid": second["pid"]}, err
    status, out, err = _facekit("bonnet", "stop", "--state-file", state_file)
    assert status == 0 and json.loads(out)["changed"] is False
    assert json.loads(state_file.read_text())["running"] is False
    log = (tmp_path / "bonnet.json.log").read_text()
    assert "stopped by SIGTERM" in log and "listening on 127.0.0.1:" in log


def test_serve_refuses_a_bad_frames_folder(lab, tmp_path):
    status, _, err = _facekit("bonnet", "serve", "--models", lab.models, "--frames",
                              tmp_path / "missing", "--port", "0")
    assert status == 1 and "--frames {}: no such directory".format(tmp_path / "missing") in err


def test_sigint_stops_a_foreground_server(lab, tmp_path):
    state_file = tmp_path / "fg.json"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    child = subprocess.Popen([sys.executable, "-m", "facekit.cli", "bonnet", "serve",
                              "--models", lab.models, "--port", "0", "--state-file",
                              str(state_file)], stderr=subprocess.PIPE,
                             universal_newlines=True, env=env)
    try:
        for _ in range(200):
            if state_file.exists():
                break
            time.sleep(0.05)
        port = json.loads(state_file.read_text())["port"]
        with protocol.Client(port=port) as client:
            ok(client.call(request(get_firmware_info=P.Request.GetFirmwareInfo())))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "stopped by SIGINT" in err
    assert json.loads(state_file.read_text())["running"] is False
