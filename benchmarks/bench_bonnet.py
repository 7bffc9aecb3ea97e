"""Benchmark the software Vision Bonnet: camera frames per second on a model bundle.

Not part of pass/fail: it prints a table. See README.md here.

It starts `facekit bonnet serve --fps 0 --port 0 --background` on the bundle's parent
directory, then runs AIY's own client library (aiy.vision.inference, in .venv-kit:
Python 3.7, protobuf 3.20, as on the Vision Kit) against it, once with the sparse
configs the detector service asks for (facekit.detector.outputs.sparse_configs) and
once dense, decoding every frame with facekit.detector.outputs.result_detections
(facekit.detector.decode). The two modes alternate in --rounds camera sessions, so
other load on the machine falls on both. The bonnet's own inference time per frame
comes from its state file (mean_ms over the measured frames) and from the results'
duration_ms. The bonnet is stopped at the end with `facekit bonnet stop`.

The client part is this file run again with Python 3.7 (--client, hidden), so the code
here must stay Python 3.7 compatible.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
sys.path.insert(0, SRC)

from facekit import files  # noqa: E402

DEFAULT_MODEL = os.path.join(ROOT, "artifacts", "models", "face_ssd_embedded")
DEFAULT_FRAMES = os.path.join(ROOT, ".cache", "lab", "standins", "www", "widerface", "heldout")
KIT_PYTHON = os.path.join(ROOT, ".venv-kit", "bin", "python")
CURRENT = "current.json"
MANIFEST = "manifest.json"
CLIENT_TIMEOUT = 900  # seconds; the default run takes well under a minute


class BenchError(Exception):
    """A setup problem; the message says what to do."""


# ---------------------------------------------------------------- the client (.venv-kit)

def _state_totals(path):
    """(inferences, total ms) the bonnet's state file has counted so far."""
    with open(path, "r", encoding="utf-8") as fh:
        state = json.load(fh)
    count = (state.get("frames_served") or 0) + (state.get("images_served") or 0)
    return count, (state.get("mean_ms") or 0.0) * count


def _new_totals():
    return {"frames": 0, "wall_s": 0.0, "frame_ms": [], "decode_ms": [], "duration_ms": [],
            "faces": 0, "reply_bytes": [], "bonnet_frames": 0, "bonnet_total_ms": 0.0}


def _session(kit, configs, count, args, totals):
    """One camera session of `count` frames, each fetched and decoded, added to totals.

    kit: (aiy.vision.inference, facekit.detector.outputs, ModelDescriptor, release.Model).
    """
    inference, outputs, descriptor, model = kit
    # The previous session's stop made the bonnet write its state file before it answered.
    before = _state_totals(args.state_file)
    with inference.CameraInference(descriptor, sparse_configs=configs) as camera:
        frames = camera.run()
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            result = next(frames)
            t1 = time.perf_counter()
            detections = outputs.result_detections(result, model, args.threshold)
            t2 = time.perf_counter()
            totals["frame_ms"].append((t2 - t0) * 1000.0)
            totals["decode_ms"].append((t2 - t1) * 1000.0)
            totals["duration_ms"].append(result.duration_ms)
            totals["faces"] += len(detections)
            if len(totals["reply_bytes"]) < 20:  # outside the timed part
                totals["reply_bytes"].append(result.ByteSize())
        totals["wall_s"] += time.perf_counter() - started
    after = _state_totals(args.state_file)
    totals["frames"] += count
    totals["bonnet_frames"] += after[0] - before[0]
    totals["bonnet_total_ms"] += after[1] - before[1]


def _measure(kit, modes, args):
    """--warmup frames, then --count frames per mode in --rounds alternating sessions,
    so that a neighbour's load on the machine falls on every mode alike."""
    inference, outputs, descriptor, model = kit
    with inference.CameraInference(descriptor, sparse_configs=modes[0][1]) as camera:
        for result in camera.run(args.warmup):
            outputs.result_detections(result, model, args.threshold)
    rounds = min(args.rounds, args.count)
    totals = {name: _new_totals() for name, _ in modes}
    for number in range(rounds):
        count = args.count // rounds + (1 if number < args.count % rounds else 0)
        for name, configs in modes:
            _session(kit, configs, count, args, totals[name])
    for each in totals.values():
        served = each.pop("bonnet_frames")
        total_ms = each.pop("bonnet_total_ms")
        each["bonnet_ms"] = total_ms / served if served else None
        replies = each["reply_bytes"]
        each["reply_bytes"] = sum(replies) / len(replies)
    return totals


def client(args):
    """Run both modes against VISION_BONNET_HOST:PORT; print one JSON document."""
    import numpy  # noqa: PLC0415
    from aiy.vision import inference  # noqa: PLC0415
    from google.protobuf import __version__ as protobuf_version  # noqa: PLC0415
    from google.protobuf.internal import api_implementation  # noqa: PLC0415

    from facekit.detector import client as kit_client  # noqa: PLC0415
    from facekit.detector import outputs, release  # noqa: PLC0415
    from facekit.detector.exits import DetectorError  # noqa: PLC0415

    try:
        model = release.open_bundle(args.bundle)
    except DetectorError as exc:
        raise BenchError(str(exc)) from None
    descriptor = inference.ModelDescriptor(
        name=model.bonnet_name, input_shape=(1, model.input_size, model.input_size, 3),
        input_normalizer=kit_client.INPUT_NORMALIZER, compute_graph=model.compute_graph)
    try:
        import pkg_resources  # noqa: PLC0415 - setuptools; no importlib.metadata on 3.7

        aiy_version = pkg_resources.get_distribution("aiy-projects-python").version
    except Exception:  # noqa: BLE001 - only a label in the report
        aiy_version = "unknown"
    doc = {"python": platform.python_version(), "numpy": numpy.__version__, "aiy": aiy_version,
           "protobuf": "{} ({})".format(protobuf_version, api_implementation.Type()),
           "model": model.name, "version": model.version, "anchors": model.num_anchors,
           "input_size": model.input_size}
    with inference.InferenceEngine() as engine:
        started = time.perf_counter()
        engine.load_model(descriptor)
        doc["load_s"] = time.perf_counter() - started
        if model.bonnet_name not in engine.get_inference_state().loaded_models:
            raise BenchError("the bonnet did not load model {} from {}: see its log".format(
                model.bonnet_name, args.bundle))
        try:
            modes = (("sparse", outputs.sparse_configs(model, args.threshold, inference)),
                     ("dense", None))
            doc["modes"] = _measure((inference, outputs, descriptor, model), modes, args)
        finally:
            engine.unload_model(model.bonnet_name)
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")
    return 0


# ---------------------------------------------------------------- the controller (.venv)

def resolve_bundle(path):
    """The bundle directory of --bundle: a bundle, or a directory with current.json."""
    if path is None:
        path = DEFAULT_MODEL
        if not os.path.isfile(os.path.join(path, CURRENT)):
            raise BenchError("{} does not exist: the lab's trained model is missing; run "
                             "`make lab` first, or pass --bundle DIR".format(
                                 os.path.join(path, CURRENT)))
    if not os.path.isdir(path):
        raise BenchError("--bundle {}: no such directory: give a model bundle (with {}) or "
                         "a model directory with {}".format(path, MANIFEST, CURRENT))
    if os.path.isfile(os.path.join(path, MANIFEST)):
        return os.path.realpath(path)
    current = os.path.join(path, CURRENT)
    if not os.path.isfile(current):
        raise BenchError("--bundle {}: neither {} nor {} is there: give a model bundle "
                         "directory, or run `make lab` to train one".format(
                             path, MANIFEST, CURRENT))
    try:
        with open(current, "r", encoding="utf-8") as fh:
            target = json.load(fh)["path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError("{}: cannot read the bundle path from it ({}): run `make lab` "
                         "again".format(current, exc)) from None
    if not os.path.isfile(os.path.join(target, MANIFEST)):
        raise BenchError("{} names {}, which holds no {}: run `make lab` again".format(
            current, target, MANIFEST))
    return os.path.realpath(target)


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [SRC] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra)
    return env


def _facekit(*argv):
    return [sys.executable, "-m", "facekit.cli"] + list(argv)


def _tail(path):
    return files.tail(path, 20, missing="(no log at {})".format(path))


def start_bonnet(models, frames, state_file):
    """`facekit bonnet serve --background`; its {"pid", "host", "port"}."""
    argv = ["bonnet", "serve", "--models", models, "--fps", "0", "--port", "0",
            "--background", "--state-file", state_file]
    if frames:
        argv += ["--frames", frames]
    run = subprocess.run(_facekit(*argv), env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if run.returncode != 0:
        raise BenchError("`facekit bonnet serve` failed (exit {}):\n{}".format(
            run.returncode, (run.stderr or run.stdout).strip()))
    return json.loads(run.stdout)


def stop_bonnet(state_file):
    run = subprocess.run(_facekit("bonnet", "stop", "--state-file", state_file), env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=False)
    if run.returncode != 0:
        sys.stderr.write("warning: `facekit bonnet stop --state-file {}` failed: {}\n".format(
            state_file, run.stderr.strip()))


def run_client(args, bundle, bonnet, state_file, log_file):
    argv = [KIT_PYTHON, os.path.abspath(__file__), "--client", "--bundle", bundle,
            "--count", str(args.count), "--warmup", str(args.warmup),
            "--rounds", str(args.rounds),
            "--threshold", repr(args.threshold), "--state-file", state_file]
    env = _env(VISION_BONNET_HOST=bonnet["host"], VISION_BONNET_PORT=str(bonnet["port"]),
               PYTHONDONTWRITEBYTECODE="1")
    try:
        run = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=CLIENT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("the AIY client did not finish within {} s; the end of the bonnet's "
                         "log {}:\n{}".format(CLIENT_TIMEOUT, log_file,
                                              _tail(log_file))) from None
    if run.returncode != 0:
        raise BenchError("the AIY client in .venv-kit failed (exit {}):\n{}\nthe end of the "
                         "bonnet's log {}:\n{}".format(run.returncode, run.stderr.strip(),
                                                       log_file, _tail(log_file)))
    return json.loads(run.stdout.strip().splitlines()[-1])


def _version(package, *others):
    from importlib import metadata  # noqa: PLC0415 # novermin - 3.8+: the controller only

    for name in (package,) + others:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def percentile(values, q):
    """The q-th percentile (0-100) of values, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def report(args, bundle, frames, doc, timings):
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    print("software Vision Bonnet benchmark")
    print("  bundle:   {} version {} ({} anchors, input {}x{}) at {}".format(
        doc["model"], doc["version"], doc["anchors"], doc["input_size"], doc["input_size"],
        bundle))
    print("  frames:   {}".format(frames or "the bonnet's generated 640x480 test pattern"))
    print("  bonnet:   Python {}, TensorFlow {}, numpy {}, protobuf {} (.venv; TF on the CPU, "
          "1 thread)".format(platform.python_version(), _version("tensorflow",
                                                                 "tensorflow-cpu"),
                             _version("numpy"), _version("protobuf")))
    print("  client:   Python {}, numpy {}, protobuf {} (.venv-kit, aiy-projects-python "
          "{})".format(doc["python"], doc["numpy"], doc["protobuf"], doc["aiy"]))
    print("  CPUs:     {} ({} usable)".format(cpus, usable))
    print("  setup:    bonnet listening in {:.1f} s, LoadModel (TensorFlow import + graph "
          "load) {:.1f} s".format(timings["start_s"], doc["load_s"]))
    print("  measured: {} frames per mode in {} alternating sessions after {} warm-up "
          "frames, score threshold {}".format(args.count, min(args.rounds, args.count),
                                              args.warmup, args.threshold))
    print("  load:     {:.2f} before the run (1-minute load average: other work on the "
          "machine slows every figure)".format(timings["load_before"]))
    print()
    header = ("mode", "client fps", "mean ms", "p50 ms", "p95 ms", "decode ms", "bonnet ms",
              "duration_ms", "other ms", "reply KB", "faces/frame")
    rows = []
    for name in ("sparse", "dense"):
        mode = doc["modes"][name]
        frame_ms = mode["frame_ms"]
        mean = _mean(frame_ms)
        decode = _mean(mode["decode_ms"])
        bonnet = mode["bonnet_ms"]
        rows.append((
            name, "{:.1f}".format(mode["frames"] / mode["wall_s"]), "{:.2f}".format(mean),
            "{:.2f}".format(percentile(frame_ms, 50)), "{:.2f}".format(percentile(frame_ms, 95)),
            "{:.3f}".format(decode),
            "{:.2f}".format(bonnet) if bonnet is not None else "-",
            "{:.1f}".format(_mean(mode["duration_ms"])),
            "{:.2f}".format(mean - decode - bonnet) if bonnet is not None else "-",
            "{:.1f}".format(mode["reply_bytes"] / 1024.0),
            "{:.2f}".format(mode["faces"] / float(mode["frames"]))))
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i])
                        for i, cell in enumerate(row)))
    print()
    for line in (
            "client fps:  frames / wall time of the measured sessions",
            "mean/p50/p95 ms: one frame at the client (camera_inference round trip + decode)",
            "decode ms:   outputs.result_detections (facekit.detector.decode) per frame",
            "bonnet ms:   the bonnet's inference per frame (resize, normalise, TensorFlow), "
            "from its state file's mean_ms",
            "duration_ms: the same as the results report it (whole ms)",
            "other ms:    mean - decode - bonnet: sparse selection, protobuf, TCP, the "
            "AIY library",
            "reply KB:    size of one serialized InferenceResult"):
        print(line)


def controller(args):
    if not os.path.isfile(KIT_PYTHON):
        raise BenchError("{} is missing: the AIY client runs in the Vision Kit's "
                         "environment; run `make kit-env` first".format(KIT_PYTHON))
    bundle = resolve_bundle(args.bundle)
    frames = args.frames
    if frames is None and os.path.isdir(DEFAULT_FRAMES):
        frames = DEFAULT_FRAMES
    elif frames is not None and not os.path.isdir(frames):
        raise BenchError("--frames {}: no such directory: give a folder of .jpg or .png "
                         "frames, or leave it out for the test pattern".format(frames))
    with tempfile.TemporaryDirectory(prefix="facekit-bench-bonnet-") as tmp:
        state_file = os.path.join(tmp, "bonnet.json")
        log_file = state_file + ".log"
        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        bonnet = start_bonnet(os.path.dirname(bundle), frames, state_file)
        timings = {"start_s": time.perf_counter() - started, "load_before": load_before}
        try:
            doc = run_client(args, bundle, bonnet, state_file, log_file)
        finally:
            stop_bonnet(state_file)
    report(args, bundle, frames, doc, timings)
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("{!r} is not a whole number".format(text)) from None
    if value < 1:
        raise argparse.ArgumentTypeError("{} is not positive".format(value))
    return value


def _score(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("{!r} is not a number".format(text)) from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError("{} is outside (0, 1)".format(value))
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        description="Camera frames per second of the software Vision Bonnet (`facekit "
                    "bonnet serve`) with AIY's real client library (in .venv-kit), sparse "
                    "(the detector service's configs) and dense, decoding every frame as "
                    "the detector does. Prints a table; not part of pass/fail.",
        epilog="Needs .venv-kit (`make kit-env`) and a trained model (`make lab`). The "
               "bonnet is started on the bundle's parent directory with --fps 0 --port 0 "
               "--background and stopped at the end.")
    parser.add_argument("--bundle", metavar="DIR",
                        help="a model bundle directory, or a model directory with "
                             "current.json (default: the bundle {} names: the lab's "
                             "trained model)".format(os.path.relpath(
                                 os.path.join(DEFAULT_MODEL, CURRENT), ROOT)))
    parser.add_argument("--frames", metavar="DIR",
                        help="camera frames for the bonnet (default: {} if present, else the "
                             "bonnet's generated test pattern)".format(
                                 os.path.relpath(DEFAULT_FRAMES, ROOT)))
    parser.add_argument("--count", type=_positive_int, default=300, metavar="N",
                        help="frames measured per mode (default %(default)s)")
    parser.add_argument("--warmup", type=_positive_int, default=10, metavar="N",
                        help="frames run before the measurement, in their own camera "
                             "session (default %(default)s)")
    parser.add_argument("--rounds", type=_positive_int, default=3, metavar="R",
                        help="split each mode's frames into R camera sessions, the modes "
                             "alternating (sparse, dense, sparse, ...), so that other load on "
                             "the machine falls on both alike (default %(default)s)")
    parser.add_argument("--threshold", type=_score, default=0.5, metavar="SCORE",
                        help="score threshold of the sparse configs and the decode "
                             "(default %(default)s)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state-file", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return client(args) if args.client else controller(args)
    except BenchError as exc:
        sys.stderr.write("bench_bonnet: error: {}\n".format(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
