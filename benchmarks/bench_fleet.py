"""Benchmark the deploy stage on a fleet of kit containers: cold deploy, no-op, model rollout.

Not part of pass/fail: it prints a table. See README.md here.

For each fleet size N (--sizes) and each serial (--serial) it starts N lab containers
facekit-bench-kit1..N (localhost/facekit-lab:bookworm, systemd as PID 1, the host's
network), writes an inventory of them, makes two test bundles with
molecule/lab/kit_bundles.py (seeds 1 and 2; current.json names seed 1) and camera frames,
starts one software Vision Bonnet per kit with molecule/lab/bonnets.yml, and times three
runs of playbooks/vision_kits.yml with time.monotonic():

1. cold: packages, venv, aiy from PyPI, the facekit wheel, the release, the service and
   its health gate, on fresh containers;
2. no-op: the same again, which must change nothing (the PLAY RECAP's changed= summed);
3. rollout: the seed-2 bundle (-e vision_kit_model_version=...), what operators repeat.

After each run the VISION KITS recap and every kit's status endpoint say whether the kit
runs the expected version and is healthy. At the end (also on errors and Ctrl-C) the
bonnets are stopped (bonnets.yml bonnet_state=stopped) and the containers removed, unless
--keep. Every ansible-playbook output is kept under --log-dir.
"""

import argparse
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

from facekit import files

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
LAB = os.path.join(ROOT, "molecule", "lab")
PLAYBOOK = os.path.join(ROOT, "playbooks", "vision_kits.yml")
BONNETS_PLAYBOOK = os.path.join(LAB, "bonnets.yml")
KIT_BUNDLES = os.path.join(LAB, "kit_bundles.py")
BUILD_IMAGE = "molecule/lab/build-image.sh"

IMAGE = "localhost/facekit-lab:bookworm"
KIT_PREFIX = "facekit-bench-kit"
LABEL = "owner=facekit-bench"
BONNET_PORT_BASE = 26000
STATUS_PORT_BASE = 8300
MAX_KITS = 99  # ports 26001-26099 and 8301-8399
MODEL = "face_ssd_embedded"
ARCHITECTURES = ["armv6l", "armv7l", "aarch64", "x86_64"]
# VISION KITS recap states of a kit that runs what it was asked to run.
GOOD_STATES = ("updated from ", "unchanged", "restarted")
RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


class BenchError(Exception):
    """A setup problem; the message says what to do."""


class Interrupted(Exception):
    """SIGTERM, handled like Ctrl-C."""


def _say(text):
    print(text, flush=True)


# ---------------------------------------------------------------- processes

def child_env(extra=None):
    """The environment of podman and ansible-playbook: the lab's podman settings, the
    repository's ansible.cfg, the controller venv first on PATH, no colours."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", os.path.join(LAB, "containers.conf"))
    # The repository's own: its callbacks print the VISION KITS recap read here.
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    env["PATH"] = os.pathsep.join([VENV_BIN] + [p for p in env.get("PATH", "").split(os.pathsep)
                                                if p and p != VENV_BIN])
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _stop_group(proc):
    """SIGTERM to the process group we created for `proc`, SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_logged(argv, log_path, env, timeout):
    """Run argv in its own process group with stdout+stderr to log_path.

    Returns (exit status or None on timeout, wall seconds, controller CPU seconds: user +
    system of argv and the children it waited for; a container's own processes are not
    among them)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ {}\n\n".format(" ".join(argv)))
        log.flush()
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            rc = None
        except BaseException:
            _stop_group(proc)
            raise
        seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rc, seconds, cpu


def podman(*args, check=True, timeout=120):
    try:
        run = subprocess.run(["podman"] + list(args), env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                             check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("`podman {}` did not finish within {} s: check `podman ps` and "
                         "the machine's load".format(" ".join(args), timeout)) from None
    if check and run.returncode != 0:
        raise BenchError("`podman {}` failed (exit {}): {}".format(
            " ".join(args), run.returncode, (run.stderr or run.stdout).strip()))
    return run


def _tail(path):
    return files.tail(path, missing="(no log at {})".format(path))


# ---------------------------------------------------------------- checks and facts

def check_tools():
    """podman, the lab image, the controller venv and the podman collection, or BenchError."""
    if shutil.which("podman") is None:
        raise BenchError("podman is not installed: the kits are podman containers "
                         "(`apt-get install podman`, see molecule/lab/README.md)")
    playbook = os.path.join(VENV_BIN, "ansible-playbook")
    if not os.access(playbook, os.X_OK):
        raise BenchError("{} is missing: create the controller venv with `make venv`".format(
            os.path.relpath(playbook, ROOT)))
    if importlib.util.find_spec("ansible_collections.containers.podman") is None:
        raise BenchError("the containers.podman collection is not importable from {}: run "
                         "this script with .venv/bin/python (`make venv` installs the "
                         "`ansible` bundle that has it)".format(sys.executable))
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        raise BenchError("the lab image {} does not exist: build it with {} (`make lab` "
                         "does too) and run the benchmark again".format(IMAGE, BUILD_IMAGE))


def _first_line(argv):
    try:
        out = subprocess.run(argv, env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=60,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.strip().splitlines() or ["unknown"])[0]


def machine_facts():
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    memory = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory = "{:.1f} GiB".format(int(line.split()[1]) / 1048576.0)
    except OSError:
        pass
    others = podman("ps", "--format", "{{.Names}}", check=False).stdout.split()
    others = [name for name in others if not name.startswith(KIT_PREFIX)]
    ansible = _first_line([os.path.join(VENV_BIN, "ansible-playbook"), "--version"])
    match = re.search(r"core ([0-9][^\]\s]*)", ansible)
    return {
        "cpus": "{} ({} usable)".format(cpus, usable),
        "memory": memory,
        "ansible-core": match.group(1) if match else ansible,
        "podman": _first_line(["podman", "--version"]).replace("podman version ", ""),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "others": others,
        "load": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- the fleet

def kit_names(size):
    return ["{}{}".format(KIT_PREFIX, k) for k in range(1, size + 1)]


def _kit_number(name):
    return int(name[len(KIT_PREFIX):])


def bench_containers():
    """Names of existing containers of this benchmark (label and name both ours)."""
    run = podman("ps", "-a", "--filter", "label=" + LABEL, "--format", "{{.Names}}",
                 check=False)
    return [name for name in run.stdout.split()
            if re.match(r"^" + re.escape(KIT_PREFIX) + r"[0-9]+$", name)]


def remove_containers(names):
    if names:
        podman("rm", "--force", "--time", "3", *names, check=False, timeout=300)


def _port_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def check_ports(size):
    """The kits' bonnet and status ports must be free on the loopback the kits share."""
    taken = []
    for k in range(1, size + 1):
        for port, what in ((BONNET_PORT_BASE + k, "bonnet"), (STATUS_PORT_BASE + k, "status")):
            if _port_taken(port):
                taken.append("{} ({} port of {}{})".format(port, what, KIT_PREFIX, k))
    if taken:
        raise BenchError("something already listens on 127.0.0.1 port {}: a bonnet or kit "
                         "left by an earlier run (--keep, or one that was killed)? Stop it "
                         "(`ss -ltnp` names the process; `podman rm -f {}<K>` for a kit) and "
                         "run again".format(", ".join(taken), KIT_PREFIX))


def start_kits(names, boot_timeout):
    """podman run each kit as the lab runs its hosts; wait for systemd; the boot seconds."""
    started = time.monotonic()
    for name in names:
        podman("run", "--detach", "--name", name, "--hostname", name, "--label", LABEL,
               "--systemd", "always", "--network", "host", IMAGE, "/lib/systemd/systemd",
               timeout=180)
    pending = list(names)
    states = {}
    deadline = time.monotonic() + boot_timeout
    while pending:
        for name in list(pending):
            run = podman("exec", name, "systemctl", "is-system-running", check=False,
                         timeout=30)
            states[name] = run.stdout.strip() or run.stderr.strip()
            if states[name] in ("running", "degraded"):
                pending.remove(name)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise BenchError("systemd in {} did not finish booting within {} s ({}): see "
                             "`podman logs {}`".format(
                                 ", ".join(pending), boot_timeout,
                                 ", ".join("{}: {}".format(n, states.get(n)) for n in pending),
                                 pending[0]))
        time.sleep(0.5)
    return time.monotonic() - started


def write_inventory(path, names, artifacts):
    kits = {}
    for name in names:
        k = _kit_number(name)
        kits[name] = {"vision_kit_bonnet_host": "127.0.0.1",
                      "vision_kit_bonnet_port": BONNET_PORT_BASE + k,
                      "vision_kit_status_port": STATUS_PORT_BASE + k}
    doc = {"all": {"children": {"vision_kits": {
        "hosts": kits,
        "vars": {"ansible_connection": "containers.podman.podman",
                 "vision_kit_architectures": ARCHITECTURES,
                 "vision_kit_artifacts_dir": artifacts}}}}}
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# Written by benchmarks/bench_fleet.py: the benchmark's kit containers.\n")
        yaml.safe_dump(doc, fh, default_flow_style=False, sort_keys=False)


def make_bundles(artifacts, frames, log_path):
    """Seeds 1 and 2 (current.json names 1) and the camera's frames; their versions."""
    argv = [os.path.join(VENV_BIN, "python"), KIT_BUNDLES, "--artifacts", artifacts,
            "--frames", frames, "--seed", "1", "--seed", "2"]
    rc, _, _ = run_logged(argv, log_path, child_env(), timeout=600)
    if rc != 0:
        raise BenchError("molecule/lab/kit_bundles.py failed (exit {}); the end of {}:\n{}"
                         .format(rc, log_path, _tail(log_path)))
    with open(log_path, encoding="utf-8") as fh:
        lines = [line for line in fh.read().splitlines() if line.startswith("{")]
    doc = json.loads(lines[-1])
    return [b["version"] for b in doc["bundles"]]


# ---------------------------------------------------------------- ansible-playbook runs

def parse_recap(text):
    """PLAY RECAP: {host: {"ok": n, "changed": n, ...}}."""
    hosts = {}
    in_recap = False
    for line in text.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            match = RECAP_LINE.match(line.strip())
            if match:
                hosts[match.group(1)] = {key: int(value) for key, value in
                                         re.findall(r"(\w+)=(\d+)", match.group(2))}
            elif hosts:
                in_recap = False
    return hosts


def parse_fleet(text, names):
    """The VISION KITS recap: {kit: the rest of its line}."""
    lines = text.splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("VISION KITS")),
                default=None)
    if start is None:
        return {}
    found = {}
    for line in lines[start + 1:]:
        head, _, rest = line.partition(" ")
        if head in names:
            found[head] = rest.strip()
    return found


def _fleet_ok(line, version):
    """A recap line `model version state...` says the kit runs `version`, healthy."""
    parts = line.split(None, 2)
    if len(parts) < 3 or parts[0] != MODEL or parts[1] != version:
        return False
    return parts[2].startswith(GOOD_STATES) and "(wanted" not in parts[2]


def read_status(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:{}/status".format(port),
                                    timeout=3) as response:
            return json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def check_fleet(text, names, version):
    """(kits healthy on `version` by both the recap and the status endpoint, problems)."""
    fleet = parse_fleet(text, names)
    good = 0
    problems = []
    for name in names:
        line = fleet.get(name)
        status = read_status(STATUS_PORT_BASE + _kit_number(name))
        running = ((status or {}).get("model") or {}).get("version")
        if line is None:
            problems.append("{}: not in the VISION KITS recap".format(name))
        elif not _fleet_ok(line, version):
            problems.append("{}: recap says {}".format(name, line))
        elif status is None:
            problems.append("{}: no answer on 127.0.0.1:{}/status".format(
                name, STATUS_PORT_BASE + _kit_number(name)))
        elif running != version or not status.get("healthy"):
            problems.append("{}: status endpoint: version {}, healthy {} ({})".format(
                name, running, status.get("healthy"), status.get("reason")))
        else:
            good += 1
    return good, problems


class Run(object):
    """One ansible-playbook run of the deploy."""

    def __init__(self, rc, seconds, cpu, recap, log_path):
        self.rc = rc
        self.seconds = seconds
        self.cpu = cpu
        self.recap = recap
        self.log_path = log_path
        self.healthy = 0
        self.problems = []

    @property
    def changed(self):
        return sum(host.get("changed", 0) for host in self.recap.values())

    def outcome(self):
        if self.rc is None:
            return "timed out"
        if self.rc != 0:
            failed = sorted(h for h, c in self.recap.items()
                            if c.get("failed") or c.get("unreachable"))
            return "exit {}{}".format(self.rc, (": failed " + ", ".join(failed)) if failed
                                      else "")
        return "ok"


def deploy(case, stage, extra, timeout):
    log_path = os.path.join(case["log_dir"], "{}-{}.log".format(case["id"], stage))
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", case["inventory"], PLAYBOOK,
            "-f", str(case["forks"]), "-e", "vision_kits_serial=" + case["serial"],
            "-e", "facekit_common_wheel_build_dir=" + case["wheel_dir"],
            # kit_bundles.py's bundles are not evaluated (untrained graphs): the quality gate
            # still runs on every kit and is timed, then lets them through.
            "-e", "vision_kit_force_deploy=true"] + extra
    rc, seconds, cpu = run_logged(argv, log_path, child_env(), timeout)
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    run = Run(rc, seconds, cpu, parse_recap(text), log_path)
    run.healthy, run.problems = check_fleet(text, case["names"], case["expect"])
    _say("    {:<8} {:8.1f} s  {}, changed={}, healthy {}/{}, controller CPU {:.1f} s  "
         "({})".format(stage, seconds, run.outcome(), run.changed, run.healthy,
                       len(case["names"]), cpu, os.path.basename(log_path)))
    return run


def bonnets(case, state, timeout=600):
    log_path = os.path.join(case["log_dir"], "{}-bonnets-{}.log".format(case["id"], state))
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", case["inventory"],
            BONNETS_PLAYBOOK, "-e", "bonnet_state=" + state,
            "-e", "bonnet_fps=" + str(case["bonnet_fps"])]
    env = child_env({"FACEKIT_LAB_BONNETS": case["bonnet_dir"],
                     "FACEKIT_LAB_MODELS": case["artifacts"],
                     "FACEKIT_LAB_FRAMES": case["frames"]})
    rc, seconds, _ = run_logged(argv, log_path, env, timeout)
    return rc, seconds, log_path


def stop_bonnets(case):
    """bonnets.yml bonnet_state=stopped; `facekit bonnet stop` per state file if it fails."""
    try:
        rc, _, log_path = bonnets(case, "stopped")
    except OSError as exc:
        rc, log_path = None, str(exc)
    if rc == 0:
        return
    sys.stderr.write("bench_fleet: warning: stopping the bonnets with bonnets.yml failed "
                     "(see {}); stopping each by its state file\n".format(log_path))
    try:
        state_files = sorted(f for f in os.listdir(case["bonnet_dir"]) if f.endswith(".json"))
    except OSError:
        return
    for name in state_files:
        subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "facekit.cli", "bonnet", "stop",
                        "--state-file", os.path.join(case["bonnet_dir"], name)],
                       env=child_env({"PYTHONPATH": os.path.join(ROOT, "src")}), cwd=ROOT,
                       stdout=subprocess.DEVNULL, check=False)


# ---------------------------------------------------------------- one case

def batch_size(serial, size):
    """Kits per batch, as Ansible computes it from `serial` for `size` hosts."""
    if serial.endswith("%"):
        value = int(int(serial[:-1]) / 100.0 * size) or 1
    else:
        value = int(serial)
    return size if value <= 0 else min(value, size)


def run_case(args, shared, size, serial):
    names = kit_names(size)
    case = {
        "id": "n{:02d}-serial{}".format(size, serial.replace("%", "pct")),
        "names": names, "serial": serial, "forks": args.forks,
        "log_dir": args.log_dir, "artifacts": shared["artifacts"], "frames": shared["frames"],
        "wheel_dir": shared["wheel_dir"], "bonnet_fps": args.bonnet_fps,
        "expect": shared["versions"][0],
    }
    work = os.path.join(shared["work"], case["id"])
    os.makedirs(work, exist_ok=True)
    case["inventory"] = os.path.join(work, "inventory.yml")
    case["bonnet_dir"] = os.path.join(work, "bonnets")
    write_inventory(case["inventory"], names, shared["artifacts"])
    row = {"size": size, "serial": serial, "batch": batch_size(serial, size), "runs": {},
           "case": case}
    shared["cases"].append(case)

    _say("\n{} kits, serial {} ({} per batch), forks {}:".format(
        size, serial, row["batch"], args.forks))
    remove_containers(bench_containers())
    check_ports(size)
    row["boot"] = start_kits(names, args.boot_timeout)
    _say("    {:<8} {:8.1f} s  {} containers up, systemd running".format("boot", row["boot"],
                                                                        size))
    case["bonnets_started"] = True
    rc, seconds, log_path = bonnets(case, "started")
    if rc != 0:
        raise BenchError("starting the bonnets with molecule/lab/bonnets.yml failed (exit "
                         "{}); the end of {}:\n{}".format(rc, log_path, _tail(log_path)))
    _say("    {:<8} {:8.1f} s  {} software bonnets at {} fps".format(
        "bonnets", seconds, size, args.bonnet_fps))

    stages = (("cold", [], shared["versions"][0]),
              ("noop", [], shared["versions"][0]),
              ("rollout", ["-e", "vision_kit_model_version=" + shared["versions"][1]],
               shared["versions"][1]))
    for stage, extra, version in stages:
        case["expect"] = version
        run = deploy(case, stage, extra, args.timeout)
        row["runs"][stage] = run
        if stage == "cold" and run.rc != 0:
            _say("    the cold deploy failed: the no-op and rollout runs are skipped; see {}"
                 .format(run.log_path))
            break
    return row


def cleanup_case(case, keep):
    if keep:
        return
    if case.get("bonnets_started"):
        stop_bonnets(case)
        case["bonnets_started"] = False
    remove_containers([n for n in bench_containers() if n in case["names"]])


# ---------------------------------------------------------------- report

def _fmt(value, spec="{:.1f}"):
    return "-" if value is None else spec.format(value)


def report(args, facts, shared, rows):
    print()
    print("deploy stage on a fleet of kit containers (playbooks/vision_kits.yml)")
    print("  machine:  {} CPUs, {} RAM, Linux {}, load {:.2f} before the run".format(
        facts["cpus"], facts["memory"], facts["kernel"], facts["load"]))
    print("  tools:    ansible-core {}, podman {}, Python {} (controller)".format(
        facts["ansible-core"], facts["podman"], facts["python"]))
    print("  others:   {}".format(
        "{} other containers running ({}): their work shares the CPUs".format(
            len(facts["others"]), ", ".join(facts["others"])) if facts["others"]
        else "no other containers running"))
    print("  kits:     {} containers of {}, one software bonnet each at {} fps on the "
          "controller".format(KIT_PREFIX + "<K>", IMAGE, args.bonnet_fps))
    print("  bundles:  {} (cold, no-op) -> {} (rollout)".format(*shared["versions"]))
    print("  logs:     {}".format(args.log_dir))
    print()
    header = ("kits", "forks", "serial", "batch", "boot s", "cold s", "no-op s", "changed",
              "rollout s", "s/kit", "ctl CPU s", "healthy")
    table = []
    notes = []
    for row in rows:
        runs = row["runs"]
        cold, noop, roll = runs.get("cold"), runs.get("noop"), runs.get("rollout")
        last = roll or noop or cold
        healthy = "{}/{}".format(last.healthy, row["size"]) if last else "-"
        table.append((
            row["size"], min(args.forks, row["size"]), row["serial"], row["batch"],
            _fmt(row.get("boot")), _fmt(cold and cold.seconds), _fmt(noop and noop.seconds),
            _fmt(noop and noop.changed, "{}"), _fmt(roll and roll.seconds),
            _fmt(roll and roll.seconds / row["size"]), _fmt(roll and roll.cpu), healthy))
        for stage in ("cold", "noop", "rollout"):
            run = runs.get(stage)
            if run is None:
                continue
            label = "{} kits, serial {}, {}".format(row["size"], row["serial"], stage)
            if run.outcome() != "ok":
                notes.append("{}: {} (see {})".format(label, run.outcome(), run.log_path))
            for problem in run.problems:
                notes.append("{}: {}".format(label, problem))
    widths = [max(len(str(r[i])) for r in [header] + table) for i in range(len(header))]
    for r in [header] + table:
        print("  ".join(str(cell).rjust(widths[i]) for i, cell in enumerate(r)))
    print()
    for line in (
            "forks/batch: parallel connections (ansible -f, at most the kits) / kits per "
            "serial batch",
            "boot s:     podman run + systemd booted in every container (not part of a deploy)",
            "cold s:     first deploy on fresh containers: apt, venv, aiy from PyPI, wheel, "
            "release, service, health gate",
            "no-op s:    the same run again; changed = the PLAY RECAP's changed= summed over "
            "all hosts (0 expected)",
            "rollout s:  deploy of the second bundle (what operators repeat); s/kit = "
            "rollout s / kits",
            "ctl CPU s:  controller CPU (user+sys) of the rollout: ansible-playbook, its forks, "
            "podman exec",
            "healthy:    kits on the expected version after the last run, by the VISION KITS "
            "recap and the kit's /status"):
        print(line)
    if notes:
        print()
        for note in notes:
            print("note: " + note)


# ---------------------------------------------------------------- CLI

def _sizes(text):
    sizes = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError("{!r} is not a whole number".format(part)) \
                from None
        if not 1 <= value <= MAX_KITS:
            raise argparse.ArgumentTypeError(
                "{} kits: give 1 to {} (ports {}-{})".format(
                    value, MAX_KITS, BONNET_PORT_BASE + 1, BONNET_PORT_BASE + MAX_KITS))
        if value not in sizes:
            sizes.append(value)
    return sizes


def _serials(text):
    serials = []
    for raw in text.split(","):
        part = raw.strip()
        match = re.match(r"^([0-9]+)(%?)$", part)
        if not match or int(match.group(1)) < 1 or (match.group(2) and
                                                    int(match.group(1)) > 100):
            raise argparse.ArgumentTypeError(
                "{!r}: give a number of kits (1, 5) or a percentage of the fleet "
                "(1%-100%)".format(part))
        if part not in serials:
            serials.append(part)
    return serials


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("{!r} is not a number".format(text)) from None
        if value <= 0:
            raise argparse.ArgumentTypeError("{} is not positive".format(text))
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        description="Wall time of the deploy stage (playbooks/vision_kits.yml) on fleets of "
                    "kit containers: the cold first deploy, a run with nothing to do and the "
                    "rollout of a new model, per fleet size and serial batch size. Prints a "
                    "table; not part of pass/fail.",
        epilog="Needs podman, the lab image {} ({}) and the controller venv (`make venv`). "
               "Containers are named {}1..N, bonnet ports {}+K and status ports {}+K on "
               "the loopback; each (size, serial) gets fresh containers, so every cold run "
               "is cold. Expect minutes per cold run: every kit runs apt-get update and "
               "pip install.".format(IMAGE, BUILD_IMAGE, KIT_PREFIX, BONNET_PORT_BASE,
                                     STATUS_PORT_BASE))
    parser.add_argument("--sizes", type=_sizes, default=[2, 5, 10], metavar="N,N,...",
                        help="fleet sizes, in kits (default 2,5,10; at most {})".format(
                            MAX_KITS))
    parser.add_argument("--forks", type=_positive(int), default=10, metavar="F",
                        help="ansible-playbook -f: kits worked on at once (default "
                             "%(default)s, the largest default fleet)")
    parser.add_argument("--serial", type=_serials, default=["100%"], metavar="S,S,...",
                        help="vision_kits_serial values to compare: kits per batch (3) or a "
                             "share of the fleet (25%%); default 100%% (one batch)")
    parser.add_argument("--bonnet-fps", type=_positive(float), default=2.0, metavar="FPS",
                        help="camera rate of each software bonnet (default %(default)s). The "
                             "bonnets run TensorFlow on the controller, which a real fleet "
                             "does not; the health gate needs only a few frames")
    parser.add_argument("--timeout", type=_positive(int), default=1800, metavar="S",
                        help="seconds one ansible-playbook run may take (default "
                             "%(default)s)")
    parser.add_argument("--boot-timeout", type=_positive(int), default=120, metavar="S",
                        help="seconds for systemd to boot in the containers (default "
                             "%(default)s)")
    parser.add_argument("--log-dir", metavar="DIR",
                        help="where every ansible-playbook output is kept (default: a new "
                             "temporary directory, printed)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the last fleet's containers, bonnets and work directory "
                             "for debugging (earlier fleets are always removed: the next "
                             "one reuses their names)")
    return parser


def _on_sigterm(signum, frame):
    raise Interrupted()


def main(argv=None):
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    rows = []
    shared = {"cases": []}
    facts = None
    status = 0
    try:
        check_tools()
        args.log_dir = os.path.abspath(args.log_dir or tempfile.mkdtemp(
            prefix="facekit-bench-fleet-logs-"))
        os.makedirs(args.log_dir, exist_ok=True)
        facts = machine_facts()
        _say("bench_fleet: logs in {}".format(args.log_dir))
        _say("  CPUs {}, ansible-core {}, load {:.2f}".format(
            facts["cpus"], facts["ansible-core"], facts["load"]))
        shared["work"] = tempfile.mkdtemp(prefix="facekit-bench-fleet-")
        shared["artifacts"] = os.path.join(shared["work"], "artifacts")
        shared["frames"] = os.path.join(shared["work"], "frames")
        shared["wheel_dir"] = os.path.join(shared["work"], "wheel")
        started = time.monotonic()
        shared["versions"] = make_bundles(shared["artifacts"], shared["frames"],
                                          os.path.join(args.log_dir, "kit_bundles.log"))
        _say("  bundles {} and {} in {:.1f} s".format(
            shared["versions"][0], shared["versions"][1], time.monotonic() - started))
        cases = [(size, serial) for size in args.sizes for serial in args.serial]
        for number, (size, serial) in enumerate(cases):
            rows.append(run_case(args, shared, size, serial))
            if number < len(cases) - 1:
                cleanup_case(shared["cases"][-1], keep=False)
    except BenchError as exc:
        sys.stderr.write("bench_fleet: error: {}\n".format(exc))
        status = 1
    except (KeyboardInterrupt, Interrupted):
        sys.stderr.write("bench_fleet: interrupted; cleaning up\n")
        status = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        keep = args.keep and status != 130 and bool(shared["cases"])
        if shared["cases"]:
            cleanup_case(shared["cases"][-1], keep=keep)
        kept = ""
        if keep:
            case = shared["cases"][-1]
            kept = ("\nkept (--keep): {} and their bonnets; work directory {}. To remove "
                    "them:\n  FACEKIT_LAB_BONNETS={} .venv/bin/ansible-playbook -i {} "
                    "molecule/lab/bonnets.yml -e bonnet_state=stopped\n  podman rm -f {}"
                    .format(", ".join(case["names"]), shared["work"], case["bonnet_dir"],
                            case["inventory"], " ".join(case["names"])))
        elif shared.get("work"):
            shutil.rmtree(shared["work"], ignore_errors=True)
    if rows and facts is not None:
        report(args, facts, shared, rows)
    if kept:
        print(kept)
    return status


if __name__ == "__main__":
    sys.exit(main())
