"""`facekit model ...`: pipeline.config checks, anchors, frozen graph checks and model
bundles.

What a command needs (TensorFlow, the Object Detection API's protos) is imported inside
its _cmd_* function. The commands' options are tables (facekit.options) at the end.
"""

import json
import re
import sys

from facekit import argtypes
from facekit.model.errors import ModelError
from facekit.options import add_commands, command, flag, group, opt

_MODEL_EPILOG = """\
typical use (the training stage; config before training, the rest after
export_inference_graph.py):
  facekit model config pipeline.config
  facekit model anchors pipeline.config --output anchors.txt
  facekit model check frozen_inference_graph.pb --config pipeline.config --json
  (bonnet_model_compiler.par ... --output_graph_path model.binaryproto)
  facekit model bundle --name faces --output-root artifacts/models \\
      --graph frozen_inference_graph.pb --compiled model.binaryproto \\
      --config pipeline.config --anchors anchors.txt --dataset-manifest data/dataset.json \\
      --steps 20000 --checkpoint train/model.ckpt-20000
  facekit eval run artifacts/models/faces/<version> --records 'data/val.record*' \\
      --output eval/<version>
  facekit model attach-eval artifacts/models/faces/<version> eval/<version>
  facekit model verify artifacts/models/faces/<version>

exit status: 0 success, 1 bad input or a failed check / verification (one line per
problem on stderr), 2 usage error.
"""

def _pipeline_model(args):
    from facekit.model import config  # noqa: PLC0415

    # Before anything imports protobuf: the Object Detection API's generated protos
    # need the pure-Python implementation with protobuf >= 4.
    config.prefer_pure_python_protobuf()
    return config.load_ssd_model(args.config)


def _feature_map_sizes(args):
    from facekit.model.anchors import parse_feature_map_sizes  # noqa: PLC0415

    return parse_feature_map_sizes(args.feature_map_sizes) if args.feature_map_sizes else None


def _cmd_model_config(args):
    from facekit.model import config  # noqa: PLC0415

    config.prefer_pure_python_protobuf()
    # A parse error is a ConfigError naming PATH:LINE:COLUMN: main() prints it, exit 1.
    result = config.summary(config.read_pipeline_config(args.config), args.config)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    size = result["image_size"]
    print("ok: {}: {} model, {} class{}, {}{}, {} steps".format(
        args.config, result["model"] or "no", result["num_classes"],
        "" if result["num_classes"] == 1 else "es", result["image_resizer"] or "no resizer",
        " {}x{}".format(*size) if size else "", result["num_steps"]))
    return 0


def _cmd_model_anchors(args):
    from facekit import files  # noqa: PLC0415
    from facekit.model import anchors  # noqa: PLC0415

    model = _pipeline_model(args)
    table, sizes = anchors.model_anchors(model, _feature_map_sizes(args))
    text = anchors.format_anchors(table)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    with files.atomic_open(args.output, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print("wrote {} anchors ({}) to {}".format(
        len(table), anchors.layout(model.anchor_generator, sizes), args.output))
    return 0


def _cmd_model_check(args):
    from facekit.model import anchors, graphcheck  # noqa: PLC0415

    input_size, num_classes = args.input_size, args.num_classes
    num_anchors, anchors_from = args.anchors, "--anchors" if args.anchors else None
    if args.config:
        model = _pipeline_model(args)
        num_anchors = anchors.expected_anchor_count(model, _feature_map_sizes(args))
        anchors_from = "from {}".format(args.config)
        if input_size is None:
            if model.image_height != model.image_width:
                raise ModelError("{}: the fixed_shape_resizer is {}x{}; the Bonnet compiler "
                                 "takes square inputs only".format(
                                     args.config, model.image_height, model.image_width))
            input_size = model.image_height
        if num_classes is None:
            num_classes = model.num_classes
    elif args.feature_map_sizes:
        args.parser.error("--feature-map-sizes needs --config")
    elif num_anchors is None and input_size not in (None, 256):
        args.parser.error("--input-size {} needs --anchors N or --config: the anchor count is "
                          "known without them for the embedded SSD 256x256 config "
                          "only".format(input_size))
    result = graphcheck.check_graph(
        args.graph, input_size=256 if input_size is None else input_size,
        num_classes=1 if num_classes is None else num_classes,
        num_anchors=num_anchors, anchors_from=anchors_from)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif result["ok"]:
        print(graphcheck.summary(result))
    for problem in result["problems"]:
        sys.stderr.write("facekit: error: {}: {}\n".format(args.graph, problem))
    return 0 if result["ok"] else 1


# `num_classes: N` of the model in a pipeline.config (text format); the config was validated by the
# checkout's own pipeline_pb2 when it was rendered, so reading the one number needs no protobuf.
_NUM_CLASSES_RE = re.compile(r"^\s*num_classes\s*:\s*(\d+)\s*$", re.MULTILINE)


def _check_labels_fit(config, labels, labels_from):
    """ModelError when pipeline.config's num_classes is not the number of labels."""
    with open(config, "r", encoding="utf-8") as fh:
        found = set(int(n) for n in _NUM_CLASSES_RE.findall(fh.read()))
    if len(found) != 1:
        return  # no model section of the usual shape: the graph check covers the output width
    num_classes = found.pop()
    if num_classes != len(labels):
        raise ModelError(
            "{} has num_classes {} but {} gives {} label{} ({}): the model's class output "
            "would not match the names the kit reports; train with a config whose num_classes "
            "is the number of classes, or give the labels of this model".format(
                config, num_classes, labels_from or "the default", len(labels),
                "" if len(labels) == 1 else "s", ", ".join(labels)))


def _read_trained_with(path):
    """The TensorFlow builds a --trained-with file lists: one "name==version" a line, in the
    order they trained ('#' lines and blank lines skipped)."""
    builds = []
    with open(path, "r", encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            build = text.strip()
            if not build or build.startswith("#"):
                continue
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$", build):
                raise ModelError(
                    "{}:{}: {!r} is not a TensorFlow build (name==version, e.g. "
                    "intel-tensorflow==1.13.1): fix the line or remove it".format(
                        path, number, build))
            if build not in builds:
                builds.append(build)
    return builds


def _cmd_model_bundle(args):
    from facekit.model import bundle, versions  # noqa: PLC0415

    if args.labels_from:
        from facekit.model.labels import read_label_map  # noqa: PLC0415

        labels = read_label_map(args.labels_from)
    elif args.labels:
        labels = bundle.read_labels(args.labels)
    else:
        labels = ["face"]
    if args.config:
        _check_labels_fit(args.config, labels, args.labels_from or args.labels)
    result = bundle.create_bundle(
        args.name, args.output_root, graph=args.graph, compiled=args.compiled,
        config=args.config, anchors=args.anchors, labels=labels,
        dataset_manifest=args.dataset_manifest, steps=args.steps, checkpoint=args.checkpoint,
        models_version=args.models_version, compiler_sha256=args.compiler_sha256,
        tensorflow_version=args.tensorflow_version or versions.tensorflow_version(),
        tensorflow_build=args.tensorflow_build or versions.tensorflow_build(),
        trained_with=_read_trained_with(args.trained_with) if args.trained_with else None,
        extra=dict(args.extra))
    print(json.dumps(result, sort_keys=True))
    return 0


def _cmd_model_verify(args):
    from facekit.model.bundle import verify_bundle  # noqa: PLC0415

    result = verify_bundle(args.bundle)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif result["ok"]:
        print("ok: {}: bundle {} version {}, {} files match manifest.json".format(
            args.bundle, result["name"], result["version"], len(result["files"])))
    for problem in result["problems"]:
        sys.stderr.write("facekit: error: {}: {}\n".format(args.bundle, problem))
    return 0 if result["ok"] else 1


def _cmd_model_attach_eval(args):
    from facekit.model.bundle import attach_evaluation  # noqa: PLC0415

    print(json.dumps(attach_evaluation(args.bundle, args.eval_dir), sort_keys=True))
    return 0


def _cmd_model_progress(args):
    from facekit.model import progress  # noqa: PLC0415

    result = progress.wait_for_change(args.train_dir, args.log, unit=args.unit,
                                      num_steps=args.num_steps, seconds=args.wait)
    print(progress.to_json(result))
    return 0


# ---- the commands' options, each said once ---------------------------------------------

BUNDLE_DIR = opt("bundle", "BUNDLE_DIR", "a bundle directory, ROOT/NAME/VERSION, as `facekit model "
                                         "bundle` makes it (manifest.json and the files it lists)")
_FEATURE_MAP_SIZES = opt(
    "--feature-map-sizes", "LIST",
    "the SSD feature map sizes, finest first, as N or HxW, comma-separated (e.g. 16,8,4,2,1). "
    "Default: derived from the config's feature extractor and fixed_shape_resizer, which "
    "facekit knows for embedded_ssd_mobilenet_v1 (256x256 only), ssd_mobilenet_v1 and "
    "ssd_mobilenet_v2; other extractors need this flag")

_CONFIG = command(
    "config", _cmd_model_config,
    "check that a pipeline.config parses with the Object Detection API's protos",
    "Parse a pipeline.config (text protobuf) into the Object Detection API's "
    "TrainEvalPipelineConfig, as its trainer does (text_format.Merge with "
    "object_detection.protos.pipeline_pb2), and print a one-line summary. A misspelled or "
    "unknown field, or a value of the wrong type, exits 1 naming CONFIG:LINE:COLUMN and the "
    "field. Needs the generated protos importable (on the training host: the models "
    "checkout's research/ on PYTHONPATH); the training role validates the config it renders "
    "with this command.",
    opt("config", "CONFIG", "the pipeline.config to parse (any model kind)"),
    flag("--json", "print, as JSON on stdout, what the config trains: model kind, num_classes, "
                   "image_resizer and image_size, feature_extractor, num_steps, batch_size"))

_ANCHORS = command(
    "anchors", _cmd_model_anchors, "the SSD anchor table of a pipeline.config (anchors.txt)",
    "Compute the anchors of the config's ssd_anchor_generator, as the Object Detection API "
    "does, one 'ymin xmin ymax xmax' line each (normalised, not clipped), in the order of the "
    "model's outputs: layer by layer, then y, x, then the boxes of a cell. Needs the Object "
    "Detection API's generated protos (object_detection.protos.pipeline_pb2) importable.",
    opt("config", "CONFIG", "pipeline.config of an SSD model (text protobuf) with "
                            "ssd_anchor_generator and fixed_shape_resizer"),
    opt("--output", "FILE", "write the table to FILE (replaced atomically) and print a summary; "
                            "default: print the table to stdout"),
    _FEATURE_MAP_SIZES)

_CHECK = command(
    "check", _cmd_model_check, "check a frozen_inference_graph.pb before the Bonnet compiler runs",
    "Check that the graph has Preprocessor/sub [1,S,S,3], concat [1,N,1,4] (or [1,N,4]) and "
    "concat_1 [1,N,classes+1], and that every op between them is one the Bonnet compiler "
    "takes. Lists every problem found and exits 1, or prints a one-line summary. Graphs "
    "frozen with TensorFlow >= 1.15 contain AddV2, which the compiler rejects.",
    opt("graph", "GRAPH", "the frozen_inference_graph.pb that export_inference_graph.py wrote"),
    opt("--input-size", "S", "input side in pixels the compiler is told (--input_tensor_size); "
                             "default: the config's fixed_shape_resizer with --config, else 256",
        type=argtypes.positive),
    opt("--num-classes", "C", "classes besides background; default: the config's num_classes "
                              "with --config, else 1", type=argtypes.positive),
    group(None, opt("--anchors", "N", "expected anchor count N; default 1278, the embedded SSD "
                                      "256x256 config's (16x16x3 + (8x8+4x4+2x2+1x1)x6)",
                    type=argtypes.positive),
          opt("--config", "CONFIG", "the pipeline.config the graph was trained with: the anchor "
                                    "count, input size and classes are taken from it"),
          exclusive=True),
    _FEATURE_MAP_SIZES,
    flag("--json", "print the result as JSON on stdout (ok, problems, shapes, op counts); "
                   "problems still go to stderr and the exit status is the same"))

_BUNDLE = command(
    "bundle", _cmd_model_bundle,
    "collect a trained model into ROOT/NAME/VERSION/ with manifest.json",
    "Copy the model files into ROOT/NAME/VERSION/ under fixed names "
    "(frozen_inference_graph.pb, model.binaryproto, pipeline.config, anchors.txt, labels.txt) "
    "with a manifest.json of their sha256 and sizes, the training steps and checkpoint, the "
    "dataset and config hashes and tool versions. VERSION is the first 12 hex digits of a "
    "sha256 over the manifest's content, so the same inputs give the same version: an "
    "existing bundle that verifies is left untouched (created: false). Prints {\"name\", "
    "\"version\", \"path\", \"created\"} as JSON.",
    opt("--name", "NAME", "model name, the directory under --output-root (letters, digits, "
                          "'.', '_', '-')", required=True),
    opt("--output-root", "ROOT", "where bundles live, e.g. artifacts/models", required=True),
    opt("--graph", "FILE", "the exported frozen_inference_graph.pb", required=True),
    opt("--compiled", "FILE", "the Bonnet compiler's output (model.binaryproto)", required=True),
    opt("--config", "FILE", "the pipeline.config the model was trained with", required=True),
    opt("--anchors", "FILE", "anchors.txt from `facekit model anchors`", required=True),
    group(None, opt("--labels", "FILE", "labels.txt: one class name a line, class id 1 first "
                                        "(default: a single class 'face')"),
          opt("--labels-from", "PBTXT", "take the labels from a label_map.pbtxt (items with id, "
                                        "name, display_name) instead"),
          exclusive=True),
    opt("--dataset-manifest", "FILE", "the dataset stage's dataset.json: its sha256 and kept "
                                      "image/face counts per split go into the manifest"),
    opt("--steps", "N", "training steps the checkpoint was taken at", type=argtypes.nonnegative),
    opt("--checkpoint", "PREFIX", "the checkpoint prefix exported, e.g. train/model.ckpt-20000"),
    opt("--models-version", "SHA", "the tensorflow/models commit (or package version) used"),
    opt("--compiler-sha256", "HEX", "sha256 of the bonnet_model_compiler archive used"),
    opt("--tensorflow-version", "VERSION", "TensorFlow that exported the graph; default: the "
                                           "one installed where this runs (read from package "
                                           "metadata)"),
    opt("--tensorflow-build", "NAME==VERSION", "distribution of that TensorFlow, e.g. "
                                               "intel-tensorflow==1.13.1; default: the "
                                               "installed one"),
    opt("--trained-with", "FILE", "file of the TensorFlow builds that trained the checkpoint, "
                                  "one name==version a line (the training role appends one at "
                                  "each start of the trainer); recorded as training.tensorflow"),
    opt("--extra", "KEY=VALUE", "an extra string recorded under \"extra\" in the manifest "
                                "(repeatable)",
        type=argtypes.key_value, action="append", default=[]))

_ATTACH_EVAL = command(
    "attach-eval", _cmd_model_attach_eval,
    "put a bundle's evaluation (facekit eval run) into the bundle",
    "Copy eval.json, pr.png, samples.png and report.html from the output folder of `facekit "
    "eval run BUNDLE ...` into the bundle and list their sha256 and sizes under "
    "\"evaluation\" in its manifest.json, so that `facekit model verify` covers them and the "
    "kits' quality gate can read eval.json. The bundle's model files must verify and "
    "eval.json must be an evaluation of this bundle's version. The version does not change: "
    "it names the model, and the evaluation section is left out of it. An attached "
    "evaluation is replaced by a new one; the same files again change nothing. Prints "
    "{\"path\", \"version\", \"changed\", \"files\"} as JSON.",
    BUNDLE_DIR,
    opt("eval_dir", "EVAL_DIR", "the --output folder of `facekit eval run` on that bundle"))

_VERIFY = command(
    "verify", _cmd_model_verify, "check a bundle's files against its manifest.json",
    "Recompute the sha256 and size of every file of a bundle directory and compare them with "
    "manifest.json; report every changed, missing or extra file and an edited manifest, and "
    "exit 1 if there is any.",
    BUNDLE_DIR,
    flag("--json", "print the result as JSON on stdout: ok, problems, the status of each file "
                   "(files), and the sha256 and size of every file the manifest lists (listed, "
                   "bytes: what a copy of the bundle moves)"))

_PROGRESS = command(
    "progress", _cmd_model_progress,
    "where a training run is, as JSON (the training role polls it)",
    "Print, as one JSON object, where a training run of the Object Detection API is: "
    "checkpoint_step (newest model.ckpt-N in TRAIN_DIR, -1 for none), step, loss and "
    "sec_per_step (the trainer's last 'global step N: loss = X (S sec/step)' log line), "
    "restored_from (the checkpoint the last start restored), done (checkpoint_step >= "
    "--num-steps), the systemd unit's state, active, failed and restarts, log_tail and a "
    "one-line summary.",
    opt("--train-dir", "DIR", "the trainer's --train_dir (checkpoints and `checkpoint`)",
        required=True),
    opt("--log", "FILE", "the trainer's log file (its stdout and stderr)", required=True),
    opt("--unit", "NAME", "the systemd unit that runs the trainer (state, restarts)"),
    opt("--num-steps", "N", "the step count of the run, for done / percentages / time left",
        type=argtypes.positive),
    opt("--wait", "SECONDS", "wait up to SECONDS for a new checkpoint or for the unit to stop "
                             "before printing (default 0: print at once)",
        type=argtypes.nonnegative, default=0))


def add_group(groups):
    """The `model` group and its commands, on the `facekit` parser's subparsers."""
    add_commands(
        groups, "model",
        "pipeline.config checks, anchors, frozen graph checks and model bundles for the Vision "
        "Bonnet",
        "The training stage's model tools: a pipeline.config parsed as the trainer will parse "
        "it, the SSD anchor table of a pipeline.config, checks of an exported frozen graph "
        "before the Bonnet compiler, and the model bundle (with manifest.json) handed to the "
        "deploy stage.",
        (_CONFIG, _ANCHORS, _CHECK, _BUNDLE, _ATTACH_EVAL, _VERIFY, _PROGRESS),
        epilog=_MODEL_EPILOG)
