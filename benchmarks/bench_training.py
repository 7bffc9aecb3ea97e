"""Benchmark training: steps per second of the lab's training config on stock TensorFlow 1.7.1
and on intel-tensorflow 1.13.1 (MKL), and what the thread settings add.

Not part of pass/fail: prints the figures. See README.md here.

Every variant trains the same pipeline.config (roles/detector_training's template with the
lab's inventory values, --steps steps) on the same records (the lab's generated WIDER FACE
sample, converted by facekit) with the checkout's own trainer, from scratch, in a fresh
directory. The runs are alternated (stock, mkl, ..., stock, mkl, ...) so that a slower minute
of the machine does not fall on one variant only. A run's figure is the median of the
seconds per step the trainer logs for the steps from --steady-from on (graph building and the
first steps are left out); a variant's figure is the median over its runs. It prints a table,
the ratio of each variant to stock and the loss of the last step of every run. Then each
TensorFlow exports the checkpoint of its own last run (export_inference_graph.py, as the
training role does) and `facekit model check` compares the op counts on the Bonnet
compiler's path.

Variants (--variants picks and orders them):
  stock      the stock env, as the role leaves it (no thread settings)
  mkl        the mkl env as the role runs its trainer: the OpenMP variables of its environment
             file (OMP_NUM_THREADS = physical cores, plus training_host_tensorflow_mkl_omp_env)
             and the sessions' pools set by facekit.model.threads (intra-op = physical cores,
             inter-op = sockets; the checkout's trainer builds its own session config)
  mkl-bare   the mkl env without any thread setting (MKL's and TensorFlow's own choices)
  mkl-ops    the sessions' pools only
  mkl-intel  as mkl, plus Intel's usual OpenMP advice for TensorFlow on CPUs
             (KMP_BLOCKTIME=1, KMP_AFFINITY=granularity=fine,compact,1,0)

The envs are Python 3.6 virtualenvs: `make py36` builds .venv-py36 (stock) and
`make py36-mkl` .venv-py36-mkl. The models checkout is cloned from the lab's stand-in
repository (built by `make lab` or the test suite's stand-ins part) unless --research names
a checkout's research/ directory with compiled protos (a training host has one).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LAB = os.path.join(REPO, "molecule", "lab")
sys.path[:0] = [os.path.join(REPO, "src"), LAB]

import jinja2  # noqa: E402
import yaml  # noqa: E402

ROLE = os.path.join(REPO, "roles", "detector_training")
TRAINING_HOST_DEFAULTS = os.path.join(REPO, "roles", "training_host", "defaults", "main.yml")
LAB_VARS = os.path.join(REPO, "inventory", "lab", "group_vars", "training_hosts",
                        "detector_training.yml")
WORK = os.path.join(REPO, ".cache", "bench-training")
STANDIN_REPOS = [os.path.join(REPO, ".cache", d, "standins", "www", "git", "models.git")
                 for d in ("molecule", "lab")]
# protoc of the stand-ins' build (3.19.4: not newer than the envs' protobuf 3.19.6).
PROTOC = os.path.join(REPO, ".cache", "training_host", "protoc-bin", "3.19.4", "protoc")
# variant: (env, OpenMP variables, session pools)
VARIANTS = {"stock": ("stock", False, False), "mkl": ("mkl", True, True),
            "mkl-bare": ("mkl", False, False), "mkl-ops": ("mkl", False, True),
            "mkl-intel": ("mkl", True, True)}
INTEL_ADVICE = {"KMP_BLOCKTIME": "1", "KMP_AFFINITY": "granularity=fine,compact,1,0"}
STEP_RE = re.compile(r"global step (\d+): loss = ([0-9.naninf]+) \(([0-9.]+) sec/step\)")


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stock", default=os.path.join(REPO, ".venv-py36", "bin", "python"),
                        help="Python of the stock TensorFlow env (default: .venv-py36)")
    parser.add_argument("--mkl", default=os.path.join(REPO, ".venv-py36-mkl", "bin", "python"),
                        help="Python of the intel-tensorflow env (default: .venv-py36-mkl)")
    parser.add_argument("--research", metavar="DIR",
                        help="research/ of a models checkout with compiled protos (default: "
                             "a clone of the lab's stand-in repository under --work)")
    parser.add_argument("--steps", type=int, default=80, help="steps per run (default 80)")
    parser.add_argument("--steady-from", type=int, default=20,
                        help="first step counted (default 20)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each variant (default 2)")
    parser.add_argument("--variants", default="stock,mkl,mkl-bare,mkl-ops,mkl-intel",
                        help="comma-separated, in run order (default: all five)")
    parser.add_argument("--work", default=WORK, help="records, checkout and runs (default: "
                        ".cache/bench-training)")
    parser.add_argument("--no-export", dest="export", action="store_false",
                        help="skip exporting each TensorFlow's last checkpoint and comparing "
                             "the graphs' ops on the compiler's path (facekit model check)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown or not args.variants:
        parser.error("--variants: unknown {} (choose from {})".format(
            ", ".join(unknown) or "(none given)", ", ".join(VARIANTS)))
    if not 0 < args.steady_from < args.steps:
        parser.error("--steady-from must be between 1 and --steps - 1")
    for flag in ("stock", "mkl"):
        wanted = any(VARIANTS[v][0] == flag for v in args.variants)
        if wanted and not os.path.exists(getattr(args, flag)):
            parser.error("--{} {}: no such interpreter ({})".format(
                flag, getattr(args, flag), "make py36" if flag == "stock" else "make py36-mkl"))
    return args


def physical_cores():
    """(sockets, physical cores) from /proc/cpuinfo; (1, cpu count) where it says nothing."""
    cores, sockets = set(), set()
    with open("/proc/cpuinfo") as handle:
        entry = {}
        for line in handle.read().splitlines() + [""]:
            if not line.strip():
                if "core id" in entry:
                    cores.add((entry.get("physical id", "0"), entry["core id"]))
                    sockets.add(entry.get("physical id", "0"))
                entry = {}
                continue
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
    if not cores:
        return 1, os.cpu_count() or 1
    return len(sockets), len(cores)


def omp_env():
    """The OpenMP variables the role writes for the mkl env, for this machine."""
    with open(TRAINING_HOST_DEFAULTS) as handle:
        defaults = yaml.safe_load(handle)
    threads = defaults["training_host_tensorflow_mkl_threads"]
    env = {"OMP_NUM_THREADS": str(physical_cores()[1] if threads == "auto" else threads)}
    env.update({k: str(v) for k, v in defaults["training_host_tensorflow_mkl_omp_env"].items()})
    return env


def tensorflow_of(python):
    result = subprocess.run(
        [python, "-c", "from facekit.model.versions import tensorflow_build; "
         "print(tensorflow_build())"],
        env=trainer_env(PYTHONPATH=os.path.join(REPO, "src")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    return result.stdout.strip() or "unknown ({})".format(result.stderr.strip()[-200:])


def checkout(work):
    """research/ of the stand-in models repository at the lab's pin, protos compiled."""
    research = os.path.join(work, "models", "research")
    if os.path.exists(os.path.join(research, "object_detection", "protos", "pipeline_pb2.py")):
        return research
    source = next((r for r in STANDIN_REPOS if os.path.isdir(r)), None)
    if source is None or not os.path.exists(PROTOC):
        raise SystemExit(
            "bench_training: no models checkout. Give --research DIR (research/ of a checkout "
            "with compiled protos), or build the lab's stand-ins first (`make lab` or "
            "`python3 tools/suite.py standins`): looked for {} and {}".format(
                " and ".join(STANDIN_REPOS), PROTOC))
    import standins  # noqa: PLC0415 - molecule/lab, for the pinned commit

    target = os.path.join(work, "models")
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", source, target], check=True)
    subprocess.run(["git", "-C", target, "checkout", "--quiet", standins.PINNED_COMMIT],
                   check=True)
    protos = sorted(os.path.join("object_detection", "protos", name) for name in
                    os.listdir(os.path.join(research, "object_detection", "protos"))
                    if name.endswith(".proto"))
    subprocess.run([PROTOC, "--python_out=."] + protos, cwd=research, check=True)
    return research


def records(work):
    """Train records of the lab's WIDER FACE sample (molecule/lab/widerface_sample.py, the
    lab's sizes and seed), converted by facekit as the dataset stage converts them.

    The conversion runs in a child process (`facekit dataset convert` on this Python): this
    process must not import the controller's TensorFlow, whose import sets TF2_BEHAVIOR=1 in
    os.environ (TensorFlow 2.x does), which the trainers below would inherit (see
    trainer_env)."""
    out = os.path.join(work, "records")
    if os.path.exists(os.path.join(out, "dataset.json")):
        return out
    import widerface_sample  # noqa: PLC0415

    scratch = tempfile.mkdtemp(prefix="sample-", dir=work)
    try:
        widerface_sample.build(scratch, train=300, val=60, heldout=0, seed=0)
        for name in ("WIDER_train.zip", "WIDER_val.zip", "wider_face_split.zip"):
            with zipfile.ZipFile(os.path.join(scratch, name)) as archive:
                archive.extractall(scratch)
        for split in ("train", "val"):
            subprocess.run(
                [sys.executable, "-m", "facekit.cli", "--quiet", "dataset", "convert",
                 "--annotations", os.path.join(scratch, "wider_face_split",
                                               "wider_face_{}_bbx_gt.txt".format(split)),
                 "--images", os.path.join(scratch, "WIDER_{}".format(split), "images"),
                 "--output-dir", out + ".tmp", "--split", split,
                 "--shards", "2" if split == "train" else "1", "--no-progress"],
                env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "src")),
                stdout=subprocess.DEVNULL, check=True)
        os.rename(out + ".tmp", out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(out + ".tmp", ignore_errors=True)
    return out


def trainer_env(**extra):
    """The environment of a TensorFlow 1.x child: this one without TF2_BEHAVIOR (and without
    the OpenMP and MKL variables the variants set themselves), plus `extra`.

    intel-tensorflow 1.13 reads TF2_BEHAVIOR when it is imported and, when it is set, makes
    TensorShape's dimensions plain ints; the 2018 Object Detection API reads `.value` of them
    (embedded_ssd_mobilenet_v1_feature_extractor.py: "'int' object has no attribute
    'value'"). Stock 1.7.1 predates the variable and ignores it. A bench that had imported the
    controller's TensorFlow 2.x (which sets it in os.environ) failed on its first intel run
    that way, and only on its first: later runs reused the records and imported nothing."""
    env = {k: v for k, v in os.environ.items()
           if k != "TF2_BEHAVIOR" and not k.startswith(("OMP_", "KMP_", "MKL_"))}
    env.update(extra)
    return env


def pipeline_config(path, records_dir, steps):
    """roles/detector_training's template with its defaults and the lab's values."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        variables = yaml.safe_load(handle)
    with open(LAB_VARS) as handle:
        variables.update(yaml.safe_load(handle))
    variables.update({
        "detector_training_num_steps": steps,
        # The schedule wants total steps >= warmup steps; the rate does not change a step's time.
        "detector_training_warmup_steps": min(int(variables.get("detector_training_warmup_steps")
                                                  or 0), steps // 2),
        "detector_training_train_input_glob": os.path.join(records_dir,
                                                           "train.record-?????-of-00002"),
        "detector_training_val_input_glob": os.path.join(records_dir, "val.record*"),
        "detector_training_label_map_path": os.path.join(records_dir, "label_map.pbtxt"),
        "detector_training_fine_tune_checkpoint": "",
        "detector_training_num_classes": 1,
    })
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    with open(os.path.join(ROLE, "templates", "pipeline.config.j2")) as handle:
        text = env.from_string(handle.read()).render(**variables)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def entry_point(research):
    for name in ("object_detection/legacy/train.py", "object_detection/train.py"):
        if os.path.exists(os.path.join(research, name)):
            return os.path.join(research, name)
    raise SystemExit("bench_training: {} has no object_detection/(legacy/)train.py".format(
        research))


def run_once(variant, args, research, config, number, *, omp):
    which, with_omp, with_ops = VARIANTS[variant]
    python = args.stock if which == "stock" else args.mkl
    train_dir = os.path.join(args.work, "runs", "{}-{}".format(variant, number))
    shutil.rmtree(train_dir, ignore_errors=True)
    os.makedirs(train_dir)
    env = trainer_env(PYTHONPATH="{0}:{0}/slim".format(research), PYTHONUNBUFFERED="1")
    if with_omp:
        env.update(omp)
    if variant == "mkl-intel":
        env.update(INTEL_ADVICE)
    trainer = [entry_point(research), "--logtostderr", "--train_dir=" + train_dir,
               "--pipeline_config_path=" + config]
    if with_ops:
        # The launcher the training role runs the mkl trainer with (src/facekit/model/threads.py).
        sockets, cores = physical_cores()
        env["PYTHONPATH"] += ":" + os.path.join(REPO, "src")
        command = [python, "-m", "facekit.model.threads", "--intra-op", str(cores),
                   "--inter-op", str(sockets)] + trainer
    else:
        command = [python] + trainer
    started = time.time()
    result = subprocess.run(command, cwd=research, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    wall = time.time() - started
    with open(os.path.join(train_dir, "train.log"), "w") as handle:
        handle.write(result.stdout)
    steps = [(int(s), float(loss), float(sec)) for s, loss, sec in STEP_RE.findall(result.stdout)]
    if result.returncode != 0 or not steps:
        raise SystemExit("bench_training: {} run {} failed (exit {}); its log: {}\n{}".format(
            variant, number, result.returncode, os.path.join(train_dir, "train.log"),
            "\n".join(result.stdout.splitlines()[-15:])))
    steady = [sec for step, _, sec in steps if step >= args.steady_from]
    inter = re.search(r"default inter op setting: (\d+)", result.stdout)
    return {"variant": variant, "run": number, "sec_per_step": statistics.median(steady),
            "steady_steps": len(steady), "last_step": steps[-1][0], "last_loss": steps[-1][1],
            "wall_seconds": round(wall, 1),
            "tf_default_inter_op": int(inter.group(1)) if inter else None}


def export_and_check(python, research, config, train_dir, out_dir):
    """Export train_dir's last checkpoint with `python`'s TensorFlow, as the training role does,
    and run `facekit model check` on the graph there; returns the check's report."""
    with open(os.path.join(train_dir, "checkpoint")) as handle:
        checkpoint = handle.readline()
    prefix = os.path.join(train_dir, checkpoint.split('"')[1].split("/")[-1])
    shutil.rmtree(out_dir, ignore_errors=True)
    env = trainer_env(PYTHONPATH="{0}:{0}/slim:{1}".format(research, os.path.join(REPO, "src")),
                      TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([python, os.path.join(research, "object_detection",
                                         "export_inference_graph.py"),
                    "--input_type", "image_tensor", "--pipeline_config_path", config,
                    "--trained_checkpoint_prefix", prefix, "--output_directory", out_dir],
                   cwd=research, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   universal_newlines=True, check=True)
    result = subprocess.run(
        [python, "-m", "facekit.cli", "model", "check", "--json", "--config", config,
         os.path.join(out_dir, "frozen_inference_graph.pb")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        check=False)
    if not result.stdout.strip():
        raise SystemExit("bench_training: facekit model check failed on {}: {}".format(
            out_dir, result.stderr[-500:]))
    return json.loads(result.stdout)


def compare_exports(args, research, config):
    """Both TensorFlows' graphs from their own last runs: op counts on the compiler's path."""
    reports = {}
    for which in ("stock", "mkl"):
        runs = sorted(d for d in os.listdir(os.path.join(args.work, "runs"))
                      if VARIANTS.get(d.rsplit("-", 1)[0], ("",))[0] == which)
        if not runs:
            continue
        reports[which] = export_and_check(
            args.stock if which == "stock" else args.mkl, research, config,
            os.path.join(args.work, "runs", runs[-1]),
            os.path.join(args.work, "export-" + which))
    print("\nexport_inference_graph.py + facekit model check, each TensorFlow on its own "
          "checkpoint:")
    for which, report in reports.items():
        print("  {:5s} TensorFlow {}: {}, {} nodes on the path, {} in the graph; {}".format(
            which, report["tensorflow"], "ok" if report["ok"] else "REFUSED",
            report["path_nodes"], report["nodes"],
            ", ".join("{} {}".format(op, n) for op, n in sorted(report["ops"].items()))))
    if len(reports) == 2:
        same = reports["stock"]["ops"] == reports["mkl"]["ops"]
        print("  the op counts on the path are {}".format(
            "the same" if same else "DIFFERENT"))
    return reports


def main(argv=None):
    args = _arguments(argv)
    os.makedirs(args.work, exist_ok=True)
    research = os.path.abspath(args.research) if args.research else checkout(args.work)
    config = pipeline_config(os.path.join(args.work, "pipeline.config"), records(args.work),
                             args.steps)
    builds = {v: tensorflow_of(args.stock if VARIANTS[v][0] == "stock" else args.mkl)
              for v in args.variants}
    sockets, cores = physical_cores()
    print("bench_training: {} steps per run, median of steps {}-{}, {} run(s) per variant, "
          "alternated; {} ({} socket(s), {} physical cores), Python {}".format(
              args.steps, args.steady_from, args.steps, args.runs, platform.processor()
              or platform.machine(), sockets, cores, platform.python_version()))
    omp = omp_env()
    print("mkl's OpenMP variables: " + " ".join(
        "{}={}".format(k, v) for k, v in sorted(omp.items())))
    runs = []
    for number in range(1, args.runs + 1):
        for variant in args.variants:
            run = run_once(variant, args, research, config, number, omp=omp)
            runs.append(run)
            print("  {:9s} run {}: {:.3f} s/step (median of {} steps), step {} loss {:.3f}, "
                  "{:.0f} s wall".format(variant, number, run["sec_per_step"],
                                         run["steady_steps"], run["last_step"],
                                         run["last_loss"], run["wall_seconds"]), flush=True)
    table = []
    for variant in args.variants:
        mine = [r for r in runs if r["variant"] == variant]
        table.append({"variant": variant, "tensorflow": builds[variant],
                      "sec_per_step": statistics.median(r["sec_per_step"] for r in mine),
                      "runs": [r["sec_per_step"] for r in mine],
                      "last_losses": [r["last_loss"] for r in mine]})
    base = next((row for row in table if row["variant"] == "stock"), None)
    print("\n{:9s} {:28s} {:>9s} {:>8s} {:>9s}  {}".format(
        "variant", "tensorflow", "s/step", "steps/s", "vs stock", "runs (s/step); last loss"))
    for row in table:
        row["steps_per_sec"] = 1.0 / row["sec_per_step"]
        row["speedup"] = base["sec_per_step"] / row["sec_per_step"] if base else None
        print("{:9s} {:28s} {:9.3f} {:8.2f} {:>9s}  {}; {}".format(
            row["variant"], row["tensorflow"][:28], row["sec_per_step"], row["steps_per_sec"],
            "{:.2f}x".format(row["speedup"]) if base else "-",
            " ".join("{:.3f}".format(s) for s in row["runs"]),
            " ".join("{:.2f}".format(loss) for loss in row["last_losses"])))
    exports = compare_exports(args, research, config) if args.export else {}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"steps": args.steps, "steady_from": args.steady_from, "runs": runs,
                       "table": table, "omp_env": omp,
                       "cores": {"sockets": sockets, "physical": cores},
                       "exports": {k: {"tensorflow": v["tensorflow"], "ok": v["ok"],
                                       "ops": v["ops"], "path_nodes": v["path_nodes"]}
                                   for k, v in exports.items()}}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
