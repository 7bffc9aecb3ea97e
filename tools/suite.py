#!/usr/bin/env python3
"""Runs facekit's test suite (`make test`) or a part of it (`make check`, `make molecule`), its
parts side by side where they do not depend on each other, and ends with a table of each part's
result and seconds.

    tools/suite.py                  every part: venvs, lab image, stand-ins, lint, pytest, scenarios
    tools/suite.py lint pytest      those parts and what they need (make check)
    tools/suite.py scenarios        every Molecule scenario and what they need (make molecule)
    tools/suite.py site             one scenario and what it needs

A part runs once all it needs has passed; a part whose need failed or was skipped is skipped with
that reason. Each part's output goes to .cache/suite/<part>.log and is printed, whole, when the part
ends. --jobs caps how many parts run at once (2 cores: the CPU-heavy parts already use both).

The training host that the training_host scenario provisions from bare (and proves idempotent) is
kept as an image named after what makes it (tools/suite.py's trainhost_tag: the lab image, the
training_host role, the scenario's variables, the stand-ins); the site scenario starts its
training host from that image instead of provisioning the same host again. A run that lacks it
(a cold one) starts site at once all the same, and site.yml provisions its training host from bare
beside the training_host scenario: waiting for the image would cost more (measured: 921 s for the
whole suite that way, against about 250 s of training_host and a commit before site could start).

Standard library only, Python 3.6+: it runs before any venv exists.
"""

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
LOGS = os.path.join(ROOT, ".cache", "suite")
LAB = os.path.join(ROOT, "molecule", "lab")
STANDINS_DIR = os.path.join(ROOT, ".cache", "molecule", "standins")
# Keep in step with FACEKIT_STANDINS_PORT in .config/molecule/config.yml.
STANDINS_PORT = "28180"
TRAINHOST_REPO = "localhost/facekit-lab-trainhost"
LAB_IMAGE = "localhost/facekit-lab:bookworm"

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
CHECKS = ("lint", "pytest")


class Part(object):
    """One line of the table: a command, what it needs, and (once run) its result."""

    def __init__(self, name, command, *, needs=(), about="", skip_reason=None, env=None):
        self.name = name
        self.command = command
        self.needs = list(needs)
        self.about = about
        self.skip_reason = skip_reason  # callable -> str or None, asked when the part is ready
        self.env = env  # callable -> dict of extra environment, asked when the part starts
        self.result = None
        self.reason = ""
        self.start = None
        self.end = None

    @property
    def seconds(self):
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


def _run_quiet(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, check=False)
    except OSError:
        return None


def find_python36():
    found = _run_quiet([os.path.join(ROOT, "tools", "find-python.sh"), "3.6"])
    return found.stdout.strip() if found and found.returncode == 0 else ""


def image_id(name):
    found = _run_quiet(["podman", "image", "inspect", "--format", "{{.Id}}", name])
    return found.stdout.strip() if found and found.returncode == 0 else ""


def _tree_files(path):
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            yield os.path.join(folder, name)


# `include_role:` / `import_role:` followed by its `name:` line, in a role's task files.
_ROLE_INCLUDE = re.compile(r"(?:include|import)_role:\s*\n\s*name:\s*([\w.]+)")


def role_and_includes(role):
    """`role` and every role its task files include, transitively, sorted: what a run of the
    role executes (training_host includes facekit_common for its downloads)."""
    found, stack = set(), [role]
    while stack:
        name = stack.pop()
        if name in found:
            continue
        found.add(name)
        for path in _tree_files(os.path.join(ROOT, "roles", name, "tasks")):
            with open(path, encoding="utf-8") as handle:
                stack += _ROLE_INCLUDE.findall(handle.read())
    return sorted(found)


def trainhost_tag(lab_image_id, python36):
    """The name of the provisioned training-host image: a digest of everything that shapes it.

    Any edit of the role (or a role it includes), the scenario's variables or the stand-ins
    (whose role variables carry every URL, checksum and pin the role installs from) names
    another image, so a stale one is never used; an unchanged tree finds the image of an
    earlier run."""
    digest = hashlib.sha256()
    digest.update(("%s\n%s\n" % (lab_image_id, python36)).encode())
    paths = [path for role in role_and_includes("training_host")
             for path in _tree_files(os.path.join(ROOT, "roles", role))]
    paths += [os.path.join(ROOT, "molecule", "training_host", name)
              for name in ("converge.yml", "molecule.yml", os.path.join("vars", "lab.yml"))]
    paths += [os.path.join(LAB, "prepare-python36.yml"), os.path.join(LAB, "Containerfile"),
              os.path.join(STANDINS_DIR, "role_vars.json")]
    for path in paths:
        digest.update(os.path.relpath(path, ROOT).encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
        digest.update(b"\0")
    return "%s:%s" % (TRAINHOST_REPO, digest.hexdigest()[:16])


class Suite(object):
    def __init__(self, parts, jobs, out=sys.stdout):
        self.parts = parts
        self.by_name = {part.name: part for part in parts}
        self.jobs = jobs
        self.out = out
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.running = {}
        self.t0 = None

    def _say(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def _ready(self, part):
        """None while waiting; else (result, reason) to record without running, or (None, "")."""
        for name in part.needs:
            need = self.by_name.get(name)
            if need is None:
                continue
            if need.result is None:
                return None
            if need.result != PASS:
                return SKIP, "needs %s (%s)" % (name, need.result)
        if part.skip_reason is not None:
            # Asked once: a scenario's reason may take a network probe.
            reason = part.skip_reason()
            part.skip_reason = None
            if reason:
                return SKIP, reason
        return None, ""

    def _start(self, part):
        os.makedirs(LOGS, exist_ok=True)
        log = open(os.path.join(LOGS, part.name + ".log"), "w")
        env = dict(os.environ)
        if part.env is not None:
            env.update(part.env())
        part.start = time.time()
        self._say("--- %s: started at %s (%s)" % (part.name, self._clock(part.start),
                                                 " ".join(part.command)))
        process = subprocess.Popen(part.command, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        self.running[part.name] = (part, process, log)

    def _clock(self, when):
        return "%4d s" % (when - self.t0)

    def _finish(self, part, process, log):
        part.end = time.time()
        log.close()
        part.result = PASS if process.returncode == 0 else FAIL
        if part.result == FAIL:
            part.reason = "exit status %d" % process.returncode
        with open(os.path.join(LOGS, part.name + ".log"), errors="replace") as handle:
            text = handle.read()
        self._say("=== %s: %s in %d s (log: %s)" % (
            part.name, part.result, part.seconds, os.path.relpath(handle.name, ROOT)))
        self.out.write(text if text.endswith("\n") or not text else text + "\n")
        self._say("=== end of %s" % part.name)

    def _schedule(self):
        """Records the parts that became ready without running and starts those that can run.
        Returns whether anything changed."""
        progressed = False
        for part in self.parts:
            if part.result is not None or part.name in self.running:
                continue
            state = self._ready(part)
            if state is None:
                continue
            result, reason = state
            if result is not None:
                part.result, part.reason = result, reason
                self._say("=== %s: %s: %s" % (part.name, result, reason))
                progressed = True
            elif len(self.running) < self.jobs:
                self._start(part)
                progressed = True
        return progressed

    def _reap(self):
        """Waits for one running part to end and records it."""
        while True:
            for name, (part, process, log) in list(self.running.items()):
                if process.poll() is not None:
                    del self.running[name]
                    self._finish(part, process, log)
                    return
            time.sleep(0.2)

    def run(self):
        self.t0 = time.time()
        try:
            while True:
                progressed = self._schedule()
                if not self.running and not progressed:
                    break
                if not progressed:
                    self._reap()
        except KeyboardInterrupt:
            for part, process, _log in self.running.values():
                os.killpg(process.pid, signal.SIGTERM)
                part.result, part.reason, part.end = FAIL, "interrupted", time.time()
            raise
        finally:
            self.total = time.time() - self.t0
        for part in self.parts:
            if part.result is None:
                part.result, part.reason = SKIP, "never became ready"
        return all(part.result != FAIL for part in self.parts)

    def table(self):
        rows = [("part", "result", "start", "seconds", "")]
        for part in self.parts:
            rows.append((
                part.name, part.result,
                "" if part.start is None else "%d" % (part.start - self.t0),
                "" if part.seconds is None else "%d" % part.seconds,
                part.reason or part.about,
            ))
        rows.append(("total", PASS if all(p.result != FAIL for p in self.parts) else FAIL, "",
                     "%d" % self.total, "wall time; parts overlap (start = seconds into the run)"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for number, row in enumerate(rows):
            line = "%-*s  %-*s  %*s  %*s  %s" % (widths[0], row[0], widths[1], row[1],
                                                 widths[2], row[2], widths[3], row[3], row[4])
            lines.append(line.rstrip())
            if number in (0, len(rows) - 2):
                lines.append("-" * max(len(line.rstrip()), 40))
        return "\n".join(lines)


def scenario_names():
    return sorted(name for name in os.listdir(os.path.join(ROOT, "molecule"))
                  if os.path.isfile(os.path.join(ROOT, "molecule", name, "molecule.yml")))


def unreachable_url(name):
    path = os.path.join(ROOT, "molecule", name, "requires-url")
    if not os.path.exists(path):
        return ""
    with open(path) as handle:
        for line in handle:
            url = line.split("#", 1)[0].strip()
            if not url:
                continue
            # A one-byte range GET: some download hosts refuse HEAD.
            probe = _run_quiet(["curl", "--silent", "--fail", "--location", "--output",
                                "/dev/null", "--range", "0-0", "--connect-timeout", "5",
                                "--max-time", "15", url])
            if probe is None or probe.returncode != 0:
                return url
    return ""


def build_parts(python36, state):
    """The suite's parts, in the order they are started when several are ready. state collects
    what the parts learn at run time (the provisioned training host's image: state["trainhost"])."""
    make = ["make", "--no-print-directory"]

    def lab_env():
        env = {
            "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
            "CONTAINERS_CONF": os.path.join(LAB, "containers.conf"),
            "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
        }
        if python36:
            env["FACEKIT_PY36"] = python36
            env["FACEKIT_PY36_PREFIX"] = os.path.dirname(os.path.dirname(python36))
        return env

    def trainhost():
        """(tag, exists) of the provisioned training-host image, once image and stand-ins ran."""
        if "trainhost" not in state:
            lab_id = image_id(LAB_IMAGE)
            if not lab_id or not os.path.exists(os.path.join(STANDINS_DIR, "role_vars.json")):
                # Unknown until the image and the stand-ins exist: ask again later.
                return ("", False)
            tag = trainhost_tag(lab_id, python36)
            state["trainhost"] = (tag, bool(image_id(tag)))
        return state["trainhost"]

    def scenario_env(name):
        def env():
            extra = lab_env()
            tag, exists = trainhost()
            if name == "training_host" and tag and not exists:
                extra["FACEKIT_TRAINHOST_IMAGE"] = tag  # commit-trainhost.yml keeps it
            if (name == "site" or starts_from_trainhost(name)) and tag and image_id(tag):
                extra["FACEKIT_TRAINHOST_IMAGE"] = tag
            return extra
        return env

    def scenario_skip(name):
        def reason():
            if os.path.exists(os.path.join(ROOT, "molecule", name, "requires-python36")) \
                    and not python36:
                return ("no Python 3.6 on this machine for the training host's TensorFlow 1.7.1 "
                        "(set PYTHON36=/path/to/python3.6, or `pyenv install 3.6.15`)")
            url = unreachable_url(name)
            return "%s is not reachable from this machine" % url if url else ""
        return reason

    parts = [
        Part("venv", make + ["venv"], about="controller venv (.venv): Ansible, Molecule, TF 2"),
        Part("lab-image", [os.path.join(LAB, "build-image.sh")], env=lab_env,
             about="podman, debootstrap, the lab image"),
        Part("standins", [os.path.join(VENV_BIN, "python"), os.path.join(LAB, "standins.py"),
                          "serve", "--dir", STANDINS_DIR, "--port", STANDINS_PORT,
                          "--background", "--restart", "--check-pin", "--defer-mkl",
                          "--python36", python36 or "none"],
             needs=["venv"], skip_reason=lambda: "" if python36 else "no Python 3.6",
             about="stand-in server: Python 3.6 wheelhouse, protoc, models, WIDER and VOC samples"),
        # Off the way of the scenarios that need only the stock wheels (about 150 s on 2 cores).
        Part("standins-mkl", [os.path.join(VENV_BIN, "python"), os.path.join(LAB, "standins.py"),
                              "mkl", "--dir", STANDINS_DIR],
             needs=["standins"], about="the intel-tensorflow wheels, into the stand-in server"),
        Part("venv-py36", make + ["py36"], needs=["venv"],
             about="the training host's stack on Python 3.6 (.venv-py36)"),
        Part("venv-kit", make + ["kit-env"], needs=["venv"],
             about="the Vision Kit's library stack (.venv-kit)"),
        Part("lint", make + ["lint"], needs=["venv"],
             about="ansible-lint, yamllint, ruff, vermin 3.6 / 3.5"),
        Part("pytest", [os.path.join(VENV_BIN, "pytest")], needs=["venv", "venv-py36", "venv-kit"],
             about="src/tests, molecule/lab/tests, playbooks/tests, tools/tests"),
    ]
    for name in scenario_names():
        needs = ["venv", "lab-image"]
        if os.path.exists(os.path.join(ROOT, "molecule", name, "requires-python36")):
            needs.append("standins")
        if os.path.exists(os.path.join(ROOT, "molecule", name, "requires-mkl-wheels")):
            needs.append("standins-mkl")
        if name == "vision_kit":
            needs.append("venv-kit")
        if starts_from_trainhost(name):
            needs.append("scenario:training_host")
        argv = ["flock", "/tmp/facekit-molecule-%s.lock" % name,
                os.path.join(VENV_BIN, "molecule"), "test", "-s", name]
        parts.append(Part("scenario:" + name, argv, needs=needs,
                          skip_reason=scenario_skip(name), env=scenario_env(name),
                          about="molecule test -s %s" % name))
    # When more parts are ready than may run, the earlier ones start first: site is the longest
    # part and training_host the next, so those go before standins-mkl (only voc, which waits for
    # training_host anyway, needs it), lint and pytest.
    first = ["scenario:site", "scenario:training_host"]
    later = ["standins-mkl"] + list(CHECKS)
    setup = [p for p in parts if not p.name.startswith("scenario:") and p.name not in later]
    return (setup + [p for p in parts if p.name in first]
            + [p for p in parts if p.name in later]
            + [p for p in parts if p.name.startswith("scenario:") and p.name not in first])


def starts_from_trainhost(name):
    """A scenario with a starts-from-trainhost file waits for the training_host scenario and starts
    its training host from the image that scenario provisioned (site does not wait: see the top)."""
    return os.path.exists(os.path.join(ROOT, "molecule", name, "starts-from-trainhost"))


def select(parts, wanted):
    """The parts named (or 'scenarios'), with everything they need, in the suite's order."""
    by_name = {part.name: part for part in parts}
    chosen = set()
    stack = []
    for word in wanted:
        if word == "scenarios":
            stack += [p.name for p in parts if p.name.startswith("scenario:")]
        elif word in by_name:
            stack.append(word)
        elif "scenario:" + word in by_name:
            stack.append("scenario:" + word)
        else:
            raise SystemExit("suite: no part '%s'; parts: %s, scenarios, or a scenario's name"
                             % (word, ", ".join(p.name for p in parts)))
    while stack:
        name = stack.pop()
        if name not in chosen:
            chosen.add(name)
            stack += by_name[name].needs
    return [part for part in parts if part.name in chosen]


def stop_standins():
    if os.path.exists(os.path.join(STANDINS_DIR, "server.json")):
        _run_quiet([os.path.join(VENV_BIN, "python"), os.path.join(LAB, "standins.py"), "stop",
                    "--dir", STANDINS_DIR])


def prune_trainhost_images(keep):
    """Drops provisioned training-host images of older trees (a container may still hold one)."""
    listed = _run_quiet(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"])
    if not listed or listed.returncode != 0:
        return
    old = [name for name in listed.stdout.split()
           if name.startswith(TRAINHOST_REPO + ":") and name != keep]
    if old:
        _run_quiet(["podman", "rmi"] + old)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*",
                        help="parts to run with what they need (default: all); 'scenarios' for "
                             "every Molecule scenario, or a scenario's name")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("SUITE_JOBS", "3")),
                        help="parts run at once at most (default 3, or $SUITE_JOBS)")
    parser.add_argument("--list", action="store_true", help="list the parts and exit")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    # A shell without job control starts background commands with SIGINT ignored, and children
    # inherit that: the tests of Ctrl-C (src/tests/test_signals.py) need it delivered.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    python36 = find_python36()
    state = {}
    parts = build_parts(python36, state)
    if args.list:
        for part in parts:
            print("%-28s needs %-40s %s" % (part.name, ",".join(part.needs) or "-", part.about))
        return 0
    if args.parts:
        parts = select(parts, args.parts)
    suite = Suite(parts, args.jobs)
    try:
        ok = suite.run()
    finally:
        if any(p.name == "standins" for p in parts):
            stop_standins()
    tag = state.get("trainhost", ("", False))[0]
    if tag and image_id(tag):
        prune_trainhost_images(tag)
    print()
    print(suite.table())
    os.makedirs(LOGS, exist_ok=True)
    with open(os.path.join(LOGS, "last.json"), "w") as handle:
        json.dump({"total": round(suite.total, 1), "parts": [
            {"name": p.name, "result": p.result, "seconds": p.seconds and round(p.seconds, 1),
             "reason": p.reason} for p in parts]}, handle, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
