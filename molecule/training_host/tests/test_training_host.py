"""What the later stages rely on after roles/training_host ran in the lab (venv flavour)."""

import json
import os

import yaml

testinfra_hosts = ["podman://facekit-training_host"]

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(SCENARIO, "vars", "lab.yml")) as _handle:
    LAB = yaml.safe_load(_handle)
with open(
    os.path.join(SCENARIO, "..", "..", "roles", "training_host", "defaults", "main.yml")
) as _handle:
    PINS = dict(p.split("==") for p in yaml.safe_load(_handle)["training_host_venv_packages"])

ENV = "/opt/facekit/venvs/tf-cpu"
PYTHON = ENV + "/bin/python"
MODELS = "/opt/facekit/tensorflow-models"
RESEARCH = MODELS + "/research"
PROTOS = RESEARCH + "/object_detection/protos"
ENV_FILE = "/etc/facekit/training.env"


def _python(host, code):
    # testinfra shell-quotes the arguments of run(): pass them raw.
    return host.run("%s -c %s", PYTHON, code)


def test_env_imports_the_pinned_packages(host):
    code = (
        "import json, tensorflow, lxml.etree, pandas, PIL, numpy, google.protobuf, Cython,"
        " contextlib2,"
        " matplotlib, cv2, pycocotools.coco, jupyter_core;"
        "print(json.dumps({'tensorflow-cpu': tensorflow.__version__,"
        " 'lxml': lxml.etree.__version__,"
        " 'pandas': pandas.__version__, 'pillow': PIL.__version__, 'numpy': numpy.__version__,"
        " 'protobuf': google.protobuf.__version__, 'Cython': Cython.__version__,"
        " 'matplotlib': matplotlib.__version__}))"
    )
    result = _python(host, code)
    assert result.rc == 0, result.stderr
    versions = json.loads(result.stdout.strip().splitlines()[-1])
    for name, version in versions.items():
        assert version == PINS[name], "%s is %s in the env, pinned %s" % (name, version, PINS[name])


def test_tensorflow_computes(host):
    result = _python(
        host, "import tensorflow as tf; print(int(tf.reduce_sum(tf.constant([1, 2, 3]))))"
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "6"


def test_protoc_is_the_requested_release_behind_a_stable_link(host):
    version = LAB["standins_protoc_version"]
    assert host.check_output("protoc --version") == "libprotoc " + version
    link = host.file("/usr/local/bin/protoc")
    assert link.is_symlink
    assert link.linked_to == "/opt/protoc/%s/bin/protoc" % version
    assert host.file("/opt/protoc/%s/include/google/protobuf/descriptor.proto" % version).exists


def test_checkout_is_at_the_pinned_commit_not_the_branch_head(host):
    head = host.check_output("git -C %s rev-parse HEAD", MODELS)
    assert head == LAB["training_host_models_version"]
    # The commit after the pin added KeepAspectRatioResizer.
    assert "KeepAspectRatioResizer" not in host.file(PROTOS + "/image_resizer.proto").content_string


def test_every_proto_has_a_generated_module_that_imports(host):
    protos = host.check_output("cd %s && ls object_detection/protos/*.proto", RESEARCH).split()
    assert len(protos) >= 8
    modules = [p[: -len(".proto")].replace("/", ".") + "_pb2" for p in protos]
    for proto in protos:
        generated = host.file("%s/%s_pb2.py" % (RESEARCH, proto[: -len(".proto")]))
        assert generated.exists, proto
        # Made by the installed protoc (30.x writes the runtime version it targets).
        assert (
            "Protobuf Python Version: 6.%s" % LAB["standins_protoc_version"]
            in generated.content_string
        )
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    result = host.run(
        "cd %s && PYTHONPATH=%s %s -c %s" + " %s" * len(modules),
        RESEARCH,
        RESEARCH,
        PYTHON,
        code,
        *modules,
    )
    assert result.rc == 0, result.stderr


def test_login_shells_get_pythonpath_and_the_env(host):
    pythonpath = host.check_output("bash -lc 'echo $PYTHONPATH'").split(":")
    assert pythonpath[:2] == [RESEARCH, RESEARCH + "/slim"]
    assert host.check_output("bash -lc 'command -v python'") == PYTHON
    # What PYTHONPATH is for: slim's nets/deployment and the compiled protos, from any directory.
    result = host.run(
        "cd / && bash -lc 'python -c \"import nets.mobilenet_v1, deployment.model_deploy, "
        "object_detection.protos.pipeline_pb2\"'"
    )
    assert result.rc == 0, result.stderr


def test_systemd_units_get_pythonpath_from_the_environment_file(host):
    env = dict(
        line.split("=", 1)
        for line in host.file(ENV_FILE).content_string.splitlines()
        if line and not line.startswith("#")
    )
    assert env["PYTHONPATH"] == "%s:%s/slim" % (RESEARCH, RESEARCH)
    assert env["PATH"].startswith(ENV + "/bin:")
    assert env["FACEKIT_PYTHON"] == PYTHON
    # A transient unit loads the file the way later stages' units will.
    # /bin/sh finds `python` through the file's PATH, as a unit's ExecStart=/bin/sh -c would.
    script = "exec python -c 'import sys, nets.mobilenet_v1; print(sys.executable)'"
    result = host.run(
        "systemd-run --quiet --wait --pipe -p EnvironmentFile=%s -p WorkingDirectory=/"
        " /bin/sh -c %s",
        ENV_FILE,
        script,
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == PYTHON


def test_smoke_test_passes_with_the_env(host):
    result = host.run(
        "cd %s && set -a && . %s && python object_detection/builders/model_builder_test.py",
        RESEARCH,
        ENV_FILE,
    )
    assert result.rc == 0, result.stderr
    assert "OK" in result.stderr
