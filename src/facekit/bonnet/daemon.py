"""`facekit bonnet serve --background` and `facekit bonnet stop`: a bonnet as a daemon.

The --state-file is the handle: the server writes its pid, address, options and
counters there (atomically) once it listens, again at each load/unload and report,
and with "running": false when it stops. start_background leaves a live, listening
server started with the same options alone (changed: false), replaces one started
with other options, and otherwise starts a detached child (own session, output
appended to the log file) and waits until it listens. stop sends SIGTERM (SIGKILL
after a grace period) to the pid in the state file, if that process is still a
bonnet; both are idempotent, for Ansible.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from facekit import files
from facekit.bonnet import BonnetError

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# serve options recorded in the state file and compared by start_background.
OPTION_FLAGS = (("host", "--host"), ("port", "--port"), ("models", "--models"),
                ("frames", "--frames"), ("fps", "--fps"), ("drop_after", "--drop-after"),
                ("delay_ms", "--delay-ms"), ("report_every", "--report-every"),
                ("state_file", "--state-file"))


def serve_argv(options):
    """`facekit bonnet serve` arguments for `options` (without --background)."""
    argv = []
    for key, flag in OPTION_FLAGS:
        if options.get(key) is not None:
            argv += [flag, str(options[key])]
    for rule in options.get("refuse") or []:
        argv += ["--refuse", rule]
    if options.get("log_file"):
        argv += ["--log-file", options["log_file"]]
    return argv


def signature(options):
    """The options a running server is compared on (all but where it logs)."""
    return {key: value for key, value in options.items() if key not in ("log_file",)}


def read_state(path):
    """The state file's JSON, or None when it is missing or unreadable."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _proc(pid, name):
    try:
        with open("/proc/{}/{}".format(pid, name), "rb") as fh:
            return fh.read()
    except OSError:
        return None


def is_bonnet(pid):
    """Whether `pid` is a live (not zombie) `facekit bonnet serve` process."""
    if not isinstance(pid, int) or not files.pid_alive(pid):
        return False
    cmdline = _proc(pid, "cmdline")
    if cmdline is None:
        return True  # no /proc (not Linux): existing is all we can tell
    parts = cmdline.split(b"\0")
    return b"bonnet" in parts and b"serve" in parts


def listening(host, port, timeout=1.0):
    """Whether something accepts TCP connections on host:port."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _mark_stopped(path):
    state = read_state(path)
    if state is not None and state.get("running"):
        state["running"] = False
        files.replace_json(path, state)


def stop(state_file, timeout=STOP_TIMEOUT):
    """Stop the bonnet of `state_file`; {"changed", "pid"} (changed false: none ran)."""
    state = read_state(state_file)
    pid = state.get("pid") if state else None
    if not is_bonnet(pid):
        if state is not None:
            _mark_stopped(state_file)
        return {"changed": False, "pid": pid}
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_bonnet(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_bonnet(pid):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while is_bonnet(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise BonnetError("{}: not allowed to stop the bonnet with pid {}: run this as its "
                          "user".format(state_file, pid)) from None
    if is_bonnet(pid):
        raise BonnetError("{}: the bonnet with pid {} did not stop after SIGKILL".format(
            state_file, pid))
    _mark_stopped(state_file)
    return {"changed": True, "pid": pid}


def _running_with(options):
    """The state of a live, listening bonnet of this state file, or None."""
    state = read_state(options["state_file"])
    if state and state.get("running") and is_bonnet(state.get("pid")) and \
            listening(state.get("host") or options["host"], state.get("port")):
        return state
    return None


def start_background(options, verbosity=(), timeout=START_TIMEOUT):
    """Start (or keep) a detached bonnet; {"pid", "host", "port", "changed"}."""
    state_file = options["state_file"]
    state = _running_with(options)
    if state is not None:
        if state.get("options") == signature(options):
            return {"pid": state["pid"], "host": state["host"], "port": state["port"],
                    "changed": False}
        stop(state_file)
    elif read_state(state_file) is not None:
        stop(state_file)  # a stale or broken one
    log_file = options["log_file"]
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    command = [sys.executable, "-m", "facekit.cli"] + list(verbosity) + \
        ["bonnet", "serve"] + serve_argv(options)
    with open(log_file, "ab") as log, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=log, env=env,
                                 start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(state_file)
        if state and state.get("pid") == child.pid and state.get("running"):
            return {"pid": child.pid, "host": state["host"], "port": state["port"],
                    "changed": True}
        status = child.poll()
        if status is not None:
            raise BonnetError("the bonnet exited with status {} before listening; the end of "
                              "{}:\n{}".format(status, log_file, files.tail(log_file)))
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            raise BonnetError("the bonnet did not listen within {:.0f} s (killed); the end of "
                              "{}:\n{}".format(timeout, log_file, files.tail(log_file)))
        time.sleep(0.05)
