"""The model tools on the training host's own stack: Python 3.6 + TensorFlow 1.7.1.

Runs `facekit model` in the Python 3.6 env that tools/py36-env.sh builds (skipped without
it, like test_training_host_stack.py): graphs built there by TensorFlow 1.7 (graphs.py as
a script) and by this process's TensorFlow 2.x are checked there; the anchor table made
there must be byte-identical to this stack's. The config is read with the generated
protos of tensorflow-object-detection-api installed in the controller venv, put on the
3.6 PYTHONPATH (as research/ is on the training host's).
"""

import importlib.util
import json
import os
import subprocess

import graphs
import pytest
from helpers import REPO
from test_anchors import AIY_TABLE, needs_od_protos, run_facekit, write_config
from test_pipeline_template import render
from test_training_host_stack import PY36, PY36_VENV

pytestmark = pytest.mark.skipif(
    not os.path.exists(PY36),
    reason="no Python 3.6 env at {} (tools/py36-env.sh builds it when a Python 3.6 "
           "interpreter exists; set FACEKIT_PY36_VENV to use another)".format(PY36_VENV))

GRAPHS = os.path.join(REPO, "src", "tests", "graphs.py")


def run36(args, extra_path=None):
    paths = [os.path.join(REPO, "src")] + ([str(extra_path)] if extra_path else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    return subprocess.run([PY36] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env,
                          timeout=300, check=False)


def facekit36(*args, extra_path=None):
    return run36(["-m", "facekit.cli"] + list(args), extra_path)


def test_check_graphs_built_by_tensorflow_17(tmp_path):
    good, bad = tmp_path / "good.pb", tmp_path / "addv2.pb"
    for path, options in ((good, []), (bad, ["--add-v2", "--num-classes", "2"])):
        built = run36([GRAPHS, path] + options)
        assert built.returncode == 0, built.stderr
    result = facekit36("model", "check", good, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tensorflow"] == "1.7.1" and report["ok"] is True
    assert report["input"]["shape"] == [1, 256, 256, 3]
    assert report["outputs"] == {"concat": [1, 1278, 1, 4], "concat_1": [1, 1278, 2]}

    result = facekit36("model", "check", bad)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("facekit: error")]
    assert len(errors) == 2
    assert "op AddV2 (1 node, e.g. FeatureExtractor/extra_add)" in errors[0]
    assert errors[0].endswith("graphs frozen with TensorFlow >= 1.15 contain AddV2, which the "
                              "Bonnet compiler rejects: export with TensorFlow 1.7 - 1.14")
    assert "concat_1 (class scores) has shape [1, 1278, 3], expected [1, 1278, 2]" in errors[1]


def test_check_a_graph_built_by_the_modern_stack(tmp_path):
    path = graphs.write_graph(tmp_path / "modern.pb")
    result = facekit36("model", "check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: {}: input Preprocessor/sub [1, 256, 256, 3]; 1278 "
                                    "anchors; 1 class;".format(path))


def od_protos(tmp_path):
    """A directory holding only the controller venv's object_detection package, for the
    Python 3.6 PYTHONPATH (as research/ is on the training host's)."""
    protos = tmp_path / "od"
    protos.mkdir()
    package = os.path.dirname(importlib.util.find_spec("object_detection").origin)
    os.symlink(package, str(protos / "object_detection"))
    return protos


@needs_od_protos
def test_anchors_are_byte_identical_on_both_stacks(tmp_path):
    protos = od_protos(tmp_path)
    config = write_config(tmp_path)
    old, new = tmp_path / "anchors36.txt", tmp_path / "anchors.txt"
    result = facekit36("model", "anchors", config, "--output", old, extra_path=protos)
    assert result.returncode == 0, result.stderr
    assert run_facekit("model", "anchors", config, "--output", new).returncode == 0
    assert old.read_bytes() == new.read_bytes()
    rows = [[float(v) for v in line.split()] for line in old.read_text().splitlines()]
    with open(AIY_TABLE) as fh:
        aiy = [[float(v) for v in line.split()] for line in fh]
    assert len(rows) == len(aiy) == 1278
    assert max(abs(a - b) for r, s in zip(rows, aiy) for a, b in zip(r, s)) < 1e-6

    result = facekit36("model", "check", graphs.write_graph(tmp_path / "g.pb"), "--config",
                       config, extra_path=protos)
    assert result.returncode == 0, result.stderr


@needs_od_protos
def test_config_check_on_python36(tmp_path):
    """`facekit model config` as the training role's validate runs it there."""
    protos = od_protos(tmp_path)
    text = render()
    good = tmp_path / "pipeline.config"
    good.write_text(text)
    result = facekit36("model", "config", good, "--json", extra_path=protos)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] == "ssd" and summary["num_classes"] == 1
    assert summary["image_size"] == [256, 256]

    bad = tmp_path / "typo.config"
    bad.write_text(text.replace("depth_multiplier:", "depth_multiplyer:", 1))
    line = text[:text.index("depth_multiplier:")].count("\n") + 1
    result = facekit36("model", "config", bad, extra_path=protos)
    assert result.returncode == 1
    assert result.stderr.startswith("facekit: error: {}:{}:".format(bad, line)), result.stderr
    assert "depth_multiplyer" in result.stderr


def test_bundle_and_verify_on_python36(tmp_path):
    files = {}
    for name, data in (("g.pb", b"graph"), ("m.binaryproto", b"model"),
                       ("p.config", graphs.pipeline_config().encode("utf-8")),
                       ("a.txt", b"0.1 0.1 0.2 0.2\n")):
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    args = ["model", "bundle", "--name", "faces", "--output-root", tmp_path / "models",
            "--graph", files["g.pb"], "--compiled", files["m.binaryproto"],
            "--config", files["p.config"], "--anchors", files["a.txt"], "--steps", 5]
    first = facekit36(*args)
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["created"] is True
    with open(os.path.join(created["path"], "manifest.json")) as fh:
        manifest = json.load(fh)
    assert manifest["tools"]["tensorflow"] == "1.7.1"
    assert manifest["tools"]["python"].startswith("3.6.")
    again = json.loads(facekit36(*args).stdout)
    assert again == dict(created, created=False)
    verified = facekit36("model", "verify", created["path"])
    assert verified.returncode == 0, verified.stderr
    os.remove(os.path.join(created["path"], "labels.txt"))
    verified = facekit36("model", "verify", created["path"])
    assert verified.returncode == 1
    assert "missing file labels.txt (listed in manifest.json)" in verified.stderr
