"""Health gate of roles/vision_kit, run on the kit after a release switch (Python 3.5+).

Waits until the detector's status endpoint reports frames from the expected model version,
and stops early when systemd says the service has given up (a model the Vision Bonnet
refused makes the detector exit 3, which the unit does not restart). Prints one JSON object:
{"ok": bool, "reason": text, "status": the endpoint's last answer or null,
 "unit": systemd's view, "errors": the detector's error lines since --since}.
"""

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Exit statuses the unit does not restart (RestartPreventExitStatus): waiting is pointless.
FINAL_STATUSES = {"3", "4"}


def unit_state(unit):
    out = subprocess.check_output(
        ["systemctl", "show", unit, "--property",
         "ActiveState,SubState,Result,ExecMainStatus,NRestarts"],
        universal_newlines=True)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def error_lines(unit, since):
    try:
        out = subprocess.check_output(
            ["journalctl", "--unit", unit, "--since", "@{}".format(int(since)), "--output",
             "cat", "--no-pager"], universal_newlines=True, stderr=subprocess.STDOUT)
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line for line in out.splitlines() if ": error:" in line][-5:]


def read_status(port):
    url = "http://127.0.0.1:{}/status".format(port)
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def check(args):
    deadline = time.time() + args.timeout
    status = None
    state = {}
    reason = "no answer"
    while True:
        status = read_status(args.port)
        state = unit_state(args.unit)
        if status is not None:
            version = (status.get("model") or {}).get("version")
            if version != args.version:
                reason = "the status endpoint reports version {}, not {}".format(
                    version, args.version)
            elif not status.get("healthy"):
                reason = "the detector reports unhealthy: {}".format(
                    status.get("error") or "no frames yet")
            elif int(status.get("frames") or 0) < args.min_frames:
                reason = "only {} frames so far".format(status.get("frames"))
            else:
                return True, "healthy: {} frames from version {}".format(
                    status.get("frames"), version), status, state
        else:
            reason = "no answer on 127.0.0.1:{} (service {}/{})".format(
                args.port, state.get("ActiveState"), state.get("SubState"))
        if state.get("ActiveState") == "failed" or (
                state.get("ActiveState") in ("inactive", "failed")
                and state.get("ExecMainStatus") in FINAL_STATUSES):
            return False, "{} stopped with exit status {} ({})".format(
                args.unit, state.get("ExecMainStatus"), state.get("Result")), status, state
        if time.time() >= deadline:
            return False, "no healthy answer within {} s: {}".format(
                args.timeout, reason), status, state
        time.sleep(args.interval)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True, help="the model version that must answer")
    parser.add_argument("--since", type=float, required=True,
                        help="unix time of the restart: journal lines before it are old news")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--min-frames", type=int, default=1)
    args = parser.parse_args(argv)
    ok, reason, status, state = check(args)
    json.dump({"ok": ok, "reason": reason, "status": status, "unit": state,
               "errors": error_lines(args.unit, args.since)}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
