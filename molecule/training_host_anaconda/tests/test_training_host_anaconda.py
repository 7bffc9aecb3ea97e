"""The seeds' training host: Anaconda, conda env tf-cpu with Python 3.6 and TensorFlow 1.7.1."""

import json
import os

import yaml

testinfra_hosts = ["podman://facekit-training_host_anaconda"]

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(SCENARIO, "vars", "lab.yml")) as _handle:
    LAB = yaml.safe_load(_handle)
ROLE_DEFAULTS = os.path.join(SCENARIO, "..", "..", "roles", "training_host", "defaults", "main.yml")
with open(ROLE_DEFAULTS) as _handle:
    PINS = dict(p.split("==") for p in yaml.safe_load(_handle)["training_host_conda_packages"])

ENV = "/opt/anaconda3/envs/tf-cpu"
PYTHON = ENV + "/bin/python"
RESEARCH = "/opt/facekit/tensorflow-models/research"
ENV_FILE = "/etc/facekit/training.env"


def test_conda_env_is_python_36(host):
    assert host.check_output("%s -c 'import sys; print(sys.version_info[:2])'", PYTHON) == "(3, 6)"
    assert "tf-cpu" in host.check_output("/opt/anaconda3/bin/conda env list")


def test_env_has_the_seed_packages_at_their_pins(host):
    code = (
        "import json, tensorflow, lxml.etree, pandas, PIL, numpy, google.protobuf, cv2, matplotlib,"
        " pycocotools.coco, Cython, contextlib2;"
        "print(json.dumps({'tensorflow': tensorflow.__version__, 'lxml': lxml.etree.__version__,"
        " 'pandas': pandas.__version__, 'pillow': PIL.__version__, 'numpy': numpy.__version__,"
        " 'protobuf': google.protobuf.__version__, 'matplotlib': matplotlib.__version__,"
        " 'Cython': Cython.__version__}))"
    )
    result = host.run("%s -c %s", PYTHON, code)
    assert result.rc == 0, result.stderr
    versions = json.loads(result.stdout.strip().splitlines()[-1])
    for name, version in versions.items():
        assert version == PINS[name], "%s is %s in the env, pinned %s" % (name, version, PINS[name])


def test_tensorflow_1_runs_a_graph(host):
    code = "import tensorflow as tf; print(tf.Session().run(tf.reduce_sum(tf.constant([1, 2, 3]))))"
    result = host.run("%s -c %s", PYTHON, code)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "6"


def test_protoc_and_generated_protos(host):
    assert host.check_output("protoc --version") == "libprotoc " + LAB["standins_protoc_version"]
    protos = host.check_output("cd %s && ls object_detection/protos/*.proto", RESEARCH).split()
    modules = [p[: -len(".proto")].replace("/", ".") + "_pb2" for p in protos]
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    # testinfra shell-quotes the arguments of run(): pass them raw.
    result = host.run(
        "cd / && set -a && . %s && python -c %s" + " %s" * len(modules), ENV_FILE, code, *modules
    )
    assert result.rc == 0, result.stderr


def test_login_shell_activates_the_env(host):
    assert host.check_output("bash -lc 'command -v python'") == PYTHON
    assert host.check_output("bash -lc 'echo $PYTHONPATH'").split(":")[:2] == [
        RESEARCH,
        RESEARCH + "/slim",
    ]
