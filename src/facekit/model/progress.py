"""Where a training run is: the newest checkpoint, the last logged step and loss, and the
state of its systemd unit. `facekit model progress` prints it as JSON for the training role,
which polls it while it waits and decides from it whether to start, export or stop.

Standard library only (it runs in the training env before anything heavy is needed).
"""

import collections
import json
import os
import re
import subprocess
import time

# slim's trainer (train.py at the seeds' pin, legacy/train.py later):
#   INFO:tensorflow:global step 20: loss = 3.4567 (0.102 sec/step)
_SLIM_STEP = re.compile(
    r"global step (\d+): loss = ([-+0-9.eE]+|nan|inf) \(([0-9.]+) sec/step\)")
# The Estimator of model_main.py:  INFO:tensorflow:loss = 2.3, step = 100 (12.3 sec)
_ESTIMATOR_STEP = re.compile(r"loss = ([-+0-9.eE]+|nan|inf), step = (\d+)(?: \(([0-9.]+) sec\))?")
_RESTORE = re.compile(r"Restoring parameters from (\S*?model\.ckpt-(\d+))")
_CHECKPOINT_LINE = re.compile(r'^model_checkpoint_path:\s*"([^"]*)"', re.M)
_CKPT_INDEX = re.compile(r"^model\.ckpt-(\d+)\.index$")

# How much of the end of a long log is read: a training log grows by ~100 bytes a step.
_TAIL_BYTES = 256 * 1024


def checkpoint_step(train_dir):
    """Step of the newest checkpoint in train_dir, -1 when there is none.

    The `checkpoint` file is what the trainer restores from; when it is missing or names a
    checkpoint whose files are gone, the newest model.ckpt-N.index decides.
    """
    steps = []
    try:
        names = os.listdir(train_dir)
    except OSError:
        return -1
    for name in names:
        match = _CKPT_INDEX.match(name)
        if match:
            steps.append(int(match.group(1)))
    try:
        with open(os.path.join(train_dir, "checkpoint")) as handle:
            match = _CHECKPOINT_LINE.search(handle.read())
    except OSError:
        match = None
    if match:
        named = re.search(r"model\.ckpt-(\d+)$", match.group(1))
        if named and int(named.group(1)) in steps:
            return int(named.group(1))
    return max(steps) if steps else -1


def read_tail(path, size=_TAIL_BYTES):
    """The last `size` bytes of a text file as lines ([] when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(0, end - size))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if end > size else lines


def parse_log(lines):
    """(step, loss, seconds per step, restored checkpoint step) from trainer log lines."""
    step = loss = sec_per_step = restored = None
    recent = collections.deque(maxlen=20)
    for line in lines:
        match = _SLIM_STEP.search(line)
        if match:
            step, loss = int(match.group(1)), float(match.group(2))
            recent.append(float(match.group(3)))
            continue
        match = _ESTIMATOR_STEP.search(line)
        if match:
            loss, step = float(match.group(1)), int(match.group(2))
            continue
        match = _RESTORE.search(line)
        if match:
            restored = int(match.group(2))
    if recent:
        sec_per_step = sum(recent) / len(recent)
    return step, loss, sec_per_step, restored


def unit_state(unit):
    """ActiveState, SubState, Result and NRestarts of a systemd unit (empty without systemctl)."""
    if not unit:
        return {}
    try:
        out = subprocess.run(
            ["systemctl", "show", unit, "--property=ActiveState,SubState,Result,NRestarts"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
            check=False).stdout
    except OSError:
        return {}
    state = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        state[key] = value
    return state


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return "{}h{:02d}m".format(seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "{}m{:02d}s".format(seconds // 60, seconds % 60)
    return "{}s".format(seconds)


def progress(train_dir, log_path, unit=None, num_steps=None):
    """A dict describing the run (see `facekit model progress --help` for the keys)."""
    ckpt = checkpoint_step(train_dir)
    tail = read_tail(log_path)
    step, loss, sec_per_step, restored = parse_log(tail)
    state = unit_state(unit)
    active_state = state.get("ActiveState", "")
    result = {
        "checkpoint_step": ckpt,
        "step": step if step is not None else max(ckpt, 0),
        "loss": loss,
        "sec_per_step": sec_per_step,
        "restored_from": restored,
        "num_steps": num_steps,
        "done": num_steps is not None and ckpt >= num_steps,
        "state": "{}/{}".format(active_state, state.get("SubState", "")) if state else "unknown",
        "active": active_state in ("active", "activating", "reloading"),
        "failed": active_state == "failed",
        "restarts": int(state.get("NRestarts", "0") or 0),
        "log_tail": [line for line in tail[-15:] if line.strip()],
    }
    result["summary"] = summary(result)
    return result


def summary(result):
    """One line for a person watching the play."""
    parts = ["step {}".format(result["step"])]
    if result["num_steps"]:
        share = 100.0 * min(result["step"], result["num_steps"]) / result["num_steps"]
        parts[0] += " of {} ({:.0f}%)".format(result["num_steps"], share)
    if result["loss"] is not None:
        parts.append("loss {:.4f}".format(result["loss"]))
    if result["sec_per_step"]:
        parts.append("{:.3f} s/step".format(result["sec_per_step"]))
    parts.append("newest checkpoint {}".format(
        result["checkpoint_step"] if result["checkpoint_step"] >= 0 else "none yet"))
    if result["num_steps"] and result["sec_per_step"] and not result["done"]:
        left = max(0, result["num_steps"] - result["step"]) * result["sec_per_step"]
        parts.append("about {} left".format(_duration(left)))
    parts.append("unit {}".format(result["state"]))
    if result["restarts"]:
        parts.append("{} restart(s)".format(result["restarts"]))
    return ", ".join(parts)


def wait_for_change(train_dir, log_path, unit=None, num_steps=None, seconds=0, *, interval=2.0):
    """progress() once the newest checkpoint changed, the unit is no longer running, or
    `seconds` passed, whichever comes first."""
    first = progress(train_dir, log_path, unit, num_steps)
    deadline = time.time() + seconds
    current = first
    while time.time() < deadline:
        if current["done"] or current["failed"] or (unit and not current["active"]):
            break
        if current["checkpoint_step"] != first["checkpoint_step"]:
            break
        time.sleep(min(interval, max(0.0, deadline - time.time())))
        current = progress(train_dir, log_path, unit, num_steps)
    return current


def to_json(result):
    return json.dumps(result, sort_keys=True)
