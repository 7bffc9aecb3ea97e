"""Shared by the detector's tests: objects shaped like AIY's protobuf results, a stand-in
for aiy.vision.inference, model bundles deployed the kit's way, and the kit's Python.

Plain helpers, imported by the tests of this folder (pytest puts the folder on sys.path).
"""

import collections
import io
import logging
import math
import os
import shutil
import socket
import types
import urllib.error
import urllib.request

import numpy as np
import pytest

from facekit.detector import decode, release, service
from facekit.model import bundle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
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


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


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


def run_main(capsys, *argv):
    out = io.StringIO()
    if "--status-port" not in argv:
        argv += ("--status-port", "0")
    status = service.main(list(argv), stdout=out)
    err = capsys.readouterr().err
    return status, out.getvalue(), [line for line in err.splitlines()
                                    if line.startswith("facekit-detector: error:")]


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
