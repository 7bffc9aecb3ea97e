"""The deploy's health gate: has the detector come up on the expected model version?

roles/vision_kit runs it on the kit after it restarts the detector on a release
(`python -m facekit.detector.health --unit ... --port ... --version ... --since ...`). It
polls the detector's status endpoint (facekit.detector.status) until that reports frames
from the expected version, and stops early when systemd says the service has given up:
the detector exits with one of RESTART_PREVENT (a model the Vision Bonnet refused, a
release that does not verify), which the unit does not restart. It prints one JSON
object, which the role reads:

    {"ok": bool, "reason": text, "status": the endpoint's last answer or null,
     "unit": systemd's view of the unit, "errors": the detector's error lines since --since}

and exits 0 whatever it found (2 for a bad command line): the role decides what a failed
gate means (a rollback). Python 3.5, standard library only: it runs on the kit.
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

from facekit import argtypes
from facekit.detector.exits import RESTART_PREVENT
from facekit.options import add_options, opt

# Waiting on a unit that stopped with one of these is pointless: it will not be restarted.
FINAL_STATUSES = frozenset(str(status) for status in RESTART_PREVENT)
UNIT_PROPERTIES = ("ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")
# The detector's error lines start "facekit-detector: error:"; the last few say why it stopped.
ERROR_MARK = ": error:"
ERROR_LINES = 5


def parse_properties(text):
    """{name: value} of `systemctl show` output (NAME=value lines)."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def unit_state(unit):
    """systemd's view of `unit`: UNIT_PROPERTIES as strings."""
    out = subprocess.check_output(
        ["systemctl", "show", unit, "--property", ",".join(UNIT_PROPERTIES)],
        universal_newlines=True)
    return parse_properties(out)


def error_lines(unit, since):
    """The last ERROR_LINES error lines the unit logged since unix time `since`; [] when
    the journal cannot be read."""
    try:
        out = subprocess.check_output(
            ["journalctl", "--unit", unit, "--since", "@{}".format(int(since)), "--output",
             "cat", "--no-pager"], universal_newlines=True, stderr=subprocess.STDOUT)
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line for line in out.splitlines() if ERROR_MARK in line][-ERROR_LINES:]


def read_status(port, host="127.0.0.1"):
    """The status endpoint's JSON, or None when it does not answer with JSON."""
    url = "http://{}:{}/status".format(host, port)
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def judge(status, version, min_frames):
    """(healthy, reason) of one status answer (None: no answer) for the expected version."""
    if status is None:
        return False, None
    seen = (status.get("model") or {}).get("version")
    if seen != version:
        return False, "the status endpoint reports version {}, not {}".format(seen, version)
    if not status.get("healthy"):
        return False, "the detector reports unhealthy: {}".format(
            status.get("error") or "no frames yet")
    if int(status.get("frames") or 0) < min_frames:
        return False, "only {} frames so far".format(status.get("frames"))
    return True, "healthy: {} frames from version {}".format(status.get("frames"), version)


def gave_up(state):
    """Whether systemd has given up on the unit: failed, or stopped with a final status."""
    active = state.get("ActiveState")
    return active == "failed" or (active == "inactive"
                                  and state.get("ExecMainStatus") in FINAL_STATUSES)


def wait_healthy(args, clock=time.time, sleep=time.sleep):
    """(ok, reason, last status, last unit state) after polling every --interval seconds
    for at most --timeout seconds."""
    deadline = clock() + args.timeout
    while True:
        status = read_status(args.port)
        state = unit_state(args.unit)
        healthy, reason = judge(status, args.version, args.min_frames)
        if healthy:
            return True, reason, status, state
        if reason is None:
            reason = "no answer on 127.0.0.1:{} (service {}/{})".format(
                args.port, state.get("ActiveState"), state.get("SubState"))
        if gave_up(state):
            return False, "{} stopped with exit status {} ({})".format(
                args.unit, state.get("ExecMainStatus"), state.get("Result")), status, state
        if clock() >= deadline:
            return False, "no healthy answer within {} s: {}".format(
                args.timeout, reason), status, state
        sleep(args.interval)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m facekit.detector.health",
        description="Wait until the facekit detector's status endpoint reports frames from "
                    "the expected model version, or until systemd gives up on its unit; print "
                    "the verdict as one JSON object {ok, reason, status, unit, errors}. Exits "
                    "0 whatever the verdict (2 for bad options): the caller reads \"ok\".")
    add_options(parser, (
        opt("--unit", "NAME", "the detector's systemd unit, e.g. facekit-detector.service: its "
                              "state ends the wait early when it failed or stopped with exit "
                              "status {} (restarting cannot help)".format(
                                  " or ".join(sorted(FINAL_STATUSES))), required=True),
        opt("--port", "PORT", "the status endpoint's port on 127.0.0.1 (the detector's "
                              "--status-port)", type=argtypes.number(int, 1, 65535),
            required=True),
        opt("--version", "VERSION", "the model version that must answer (the release's "
                                    "manifest version)", required=True),
        opt("--since", "UNIX_TIME", "when the detector was restarted: only the journal's error "
                                    "lines from then on are reported",
            type=argtypes.nonnegative_float, required=True),
        opt("--timeout", "SECONDS", "how long to wait for a healthy answer (default "
                                    "%(default)s)", type=argtypes.nonnegative_float,
            default=90.0),
        opt("--interval", "SECONDS", "seconds between two polls (default %(default)s)",
            type=argtypes.seconds, default=1.0),
        opt("--min-frames", "N", "the endpoint must have counted at least N frames (default "
                                 "%(default)s)", type=argtypes.positive, default=1)))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    ok, reason, status, state = wait_healthy(args)
    json.dump({"ok": ok, "reason": reason, "status": status, "unit": state,
               "errors": error_lines(args.unit, args.since)}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
