"""`facekit` command line: one subcommand group per pipeline stage (`dataset`, `model`),
and `bonnet`, the software Vision Bonnet the detector is tested against."""

import argparse
import json
import logging
import os
import sys

import facekit
from facekit import interrupts
from facekit.dataset.filters import FilterConfig
from facekit.errors import FacekitError
from facekit.model.errors import ModelError

# The command implementations (pandas, lxml, TensorFlow behind them) are imported
# inside each _cmd_* function: `facekit --help` stays fast, and so does the start
# of every --workers process, which re-imports this module as its main module.

log = logging.getLogger("facekit")

_DATASET_EPILOG = """\
typical use (what the dataset stage runs):
  facekit dataset convert --annotations wider_face_split/wider_face_train_bbx_gt.txt \\
      --images WIDER_train/images --output-dir data --shards 10 --workers 2
  facekit dataset convert --annotations wider_face_split/wider_face_val_bbx_gt.txt \\
      --images WIDER_val/images --output-dir data

the seed tutorial's steps, one at a time (same TFRecords as convert):
  facekit dataset to-voc --annotations .../wider_face_val_bbx_gt.txt --images WIDER_val/images \\
      --output-dir data/val_voc
  facekit dataset to-csv --voc-dir data/val_voc --output data/val_labels.csv
  facekit dataset to-tfrecord --csv data/val_labels.csv --images WIDER_val/images \\
      --output-dir data --split val

exit status: 0 success, 1 bad input (the message names the file and line), 2 usage error,
130 / 143 / 129 stopped by Ctrl-C / SIGTERM / SIGHUP (temporary files removed, earlier
outputs unchanged; a later run also removes what a SIGKILLed run left behind).
"""

_SHARDS_HELP = (
    "number of TFRecord shards (default 1). One shard is written as <split>.record; N > 1 as "
    "<split>.record-00000-of-0000N ... (the Object Detection API's naming), read in a "
    "pipeline config with input_path: \"<dir>/<split>.record-?????-of-0000N\". Image i goes "
    "to shard i %% N. Shards of an earlier run with another count are removed."
)


def _nonnegative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got {}".format(value))
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1, got {}".format(value))
    return value


def _add_filter_flags(parser):
    group = parser.add_argument_group(
        "filters (defaults are the seed tutorial's: valid, clear, >= 50 px faces)")
    group.add_argument(
        "--max-blur", type=int, default=0, choices=(0, 1, 2), metavar="{0,1,2}",
        help="keep faces whose WIDER blur label is at most this: 0 clear (default), "
             "1 also normal blur, 2 also heavy blur")
    group.add_argument(
        "--min-size", type=_nonnegative, default=50, metavar="PX",
        help="keep faces whose longer annotated side is at least PX pixels (default 50)")
    group.add_argument(
        "--keep-invalid", action="store_true",
        help="keep faces WIDER marks invalid (dropped by default)")
    group.add_argument(
        "--keep-empty", action="store_true",
        help="keep images left without faces as negative examples (no boxes). By default "
             "they are dropped and counted under images.dropped.no_faces in dataset.json")


def _add_image_flags(parser, strict_what="a missing or corrupt image"):
    group = parser.add_argument_group("images and speed")
    group.add_argument(
        "--workers", type=_positive, default=1, metavar="N",
        help="processes that read images and check their headers (default 1). Writing stays in "
             "one process and follows annotation order, so any N gives identical output")
    group.add_argument(
        "--strict", action="store_true",
        help="fail on {} instead of logging it, skipping it and counting it in "
             "dataset.json".format(strict_what))
    group.add_argument(
        "--no-progress", action="store_true",
        help="no progress bar (on a terminal) or periodic progress log lines (otherwise)")


def _source(text):
    name, sep, checksum = text.partition("=")
    if not sep or not name or not checksum:
        raise argparse.ArgumentTypeError(
            "expected NAME=CHECKSUM (e.g. WIDER_val.zip=sha256:...), got {!r}".format(text))
    return name, checksum


def _filters(args):
    return FilterConfig(max_blur=args.max_blur, min_size=args.min_size,
                        keep_invalid=args.keep_invalid, keep_empty=args.keep_empty)


def _drops(part):
    nonzero = ["{} {}".format(k, v) for k, v in part["dropped"].items() if v]
    return ", ".join(nonzero) if nonzero else "none"


def _print_counts(name, entry):
    images, faces = entry["images"], entry["faces"]
    print("{}: images kept {} of {} (dropped: {})".format(
        name, images["kept"], images["total"], _drops(images)))
    print("{}: faces kept {} of {} (dropped: {})".format(
        name, faces["kept"], faces["total"], _drops(faces)))


def _print_outputs(output_dir, entry):
    tfrecord = entry["outputs"].get("tfrecord")
    if tfrecord:
        print("wrote {} record(s) in {} shard(s): {}/{}".format(
            tfrecord["records"], len(tfrecord["shards"]), output_dir, tfrecord["glob"]))
    print("manifest: {}/dataset.json".format(output_dir))


def _cmd_inspect(args):
    from facekit.dataset.convert import inspect_annotations  # noqa: PLC0415

    stats = inspect_annotations(args.annotations, _filters(args))
    _print_counts(args.annotations, stats)
    return 0


def _cmd_convert(args):
    from facekit.dataset.convert import convert  # noqa: PLC0415

    entry = convert(args.annotations, args.images, args.output_dir, split=args.split,
                    config=_filters(args), shards=args.shards, workers=args.workers,
                    strict=args.strict, voc=not args.no_voc, csv=not args.no_csv,
                    progress=not args.no_progress, sources=dict(args.source or []))
    _print_counts(entry["split"], entry)
    _print_outputs(args.output_dir, entry)
    return 0


def _cmd_to_voc(args):
    from facekit.dataset.steps import to_voc  # noqa: PLC0415

    entry = to_voc(args.annotations, args.images, args.output_dir, split=args.split,
                   config=_filters(args), workers=args.workers, strict=args.strict,
                   progress=not args.no_progress)
    _print_counts(entry["split"], entry)
    print("wrote {} VOC XML files under {}/Annotations".format(
        entry["outputs"]["voc"]["annotations"], args.output_dir))
    return 0


def _cmd_to_csv(args):
    from facekit.dataset.steps import to_csv  # noqa: PLC0415

    counts = to_csv(args.voc_dir, args.output, split=args.split)
    print("wrote {}: {} rows ({} boxes) from {} XML files".format(
        args.output, counts["rows"], counts["objects"], counts["xml_files"]))
    return 0


def _cmd_to_tfrecord(args):
    from facekit.dataset.steps import to_tfrecord  # noqa: PLC0415

    entry = to_tfrecord(args.csv, args.images, args.output_dir, args.split, shards=args.shards,
                        workers=args.workers, strict=args.strict, progress=not args.no_progress)
    _print_counts(args.split, entry)
    _print_outputs(args.output_dir, entry)
    return 0


def _annotation_flags(parser):
    parser.add_argument(
        "--annotations", required=True, metavar="FILE",
        help="WIDER FACE annotation file, e.g. wider_face_split/wider_face_val_bbx_gt.txt")
    parser.add_argument(
        "--images", required=True, metavar="DIR",
        help="folder holding the event folders the annotation paths start with, "
             "e.g. WIDER_val/images")
    parser.add_argument(
        "--split", metavar="NAME",
        help="split name used in output names (default: taken from the annotation file name, "
             "wider_face_<split>_bbx_gt.txt)")


_MODEL_EPILOG = """\
typical use (the training stage, after export_inference_graph.py):
  facekit model anchors pipeline.config --output anchors.txt
  facekit model check frozen_inference_graph.pb --config pipeline.config --json
  (bonnet_model_compiler.par ... --output_graph_path model.binaryproto)
  facekit model bundle --name faces --output-root artifacts/models \\
      --graph frozen_inference_graph.pb --compiled model.binaryproto \\
      --config pipeline.config --anchors anchors.txt --dataset-manifest data/dataset.json \\
      --steps 20000 --checkpoint train/model.ckpt-20000
  facekit model verify artifacts/models/faces/<version>

exit status: 0 success, 1 bad input or a failed check / verification (one line per
problem on stderr), 2 usage error.
"""


def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected key=value, got {!r}".format(text))
    return key, value


def _pipeline_model(args):
    from facekit.model import config  # noqa: PLC0415

    # Before anything imports protobuf: the Object Detection API's generated protos
    # need the pure-Python implementation with protobuf >= 4.
    config.prefer_pure_python_protobuf()
    return config.load_ssd_model(args.config)


def _feature_map_sizes(args):
    from facekit.model.anchors import parse_feature_map_sizes  # noqa: PLC0415

    return parse_feature_map_sizes(args.feature_map_sizes) if args.feature_map_sizes else None


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


def _cmd_model_bundle(args):
    from facekit.model import bundle, versions  # noqa: PLC0415

    if args.labels_from:
        from facekit.model.labels import read_label_map  # noqa: PLC0415

        labels = read_label_map(args.labels_from)
    elif args.labels:
        labels = bundle.read_labels(args.labels)
    else:
        labels = ["face"]
    result = bundle.create_bundle(
        args.name, args.output_root, graph=args.graph, compiled=args.compiled,
        config=args.config, anchors=args.anchors, labels=labels,
        dataset_manifest=args.dataset_manifest, steps=args.steps, checkpoint=args.checkpoint,
        models_version=args.models_version, compiler_sha256=args.compiler_sha256,
        tensorflow_version=args.tensorflow_version or versions.tensorflow_version(),
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


def _cmd_model_progress(args):
    from facekit.model import progress  # noqa: PLC0415

    result = progress.wait_for_change(args.train_dir, args.log, unit=args.unit,
                                      num_steps=args.num_steps, seconds=args.wait)
    print(progress.to_json(result))
    return 0


def _feature_map_flag(parser):
    parser.add_argument(
        "--feature-map-sizes", metavar="LIST",
        help="the SSD feature map sizes, finest first, as N or HxW, comma-separated (e.g. "
             "16,8,4,2,1). Default: derived from the config's feature extractor and "
             "fixed_shape_resizer, which facekit knows for embedded_ssd_mobilenet_v1 "
             "(256x256 only), ssd_mobilenet_v1 and ssd_mobilenet_v2; other extractors "
             "need this flag")


def _add_model_group(groups):
    model = groups.add_parser(
        "model", help="anchors, frozen graph checks and model bundles for the Vision Bonnet",
        description="The training stage's model tools: the SSD anchor table of a "
                    "pipeline.config, checks of an exported frozen graph before the Bonnet "
                    "compiler, and the model bundle (with manifest.json) handed to the "
                    "deploy stage.",
        epilog=_MODEL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = model.add_subparsers(dest="command",
                                    metavar="{anchors,check,bundle,verify,progress}")
    commands.required = True

    anchors_cmd = commands.add_parser(
        "anchors", help="the SSD anchor table of a pipeline.config (anchors.txt)",
        description="Compute the anchors of the config's ssd_anchor_generator, as the Object "
                    "Detection API does, one 'ymin xmin ymax xmax' line each (normalised, "
                    "not clipped), in the order of the model's outputs: layer by layer, "
                    "then y, x, then the boxes of a cell. Needs the Object Detection API's "
                    "generated protos (object_detection.protos.pipeline_pb2) importable.")
    anchors_cmd.add_argument("config", metavar="CONFIG",
                             help="pipeline.config of an SSD model (text protobuf) with "
                                  "ssd_anchor_generator and fixed_shape_resizer")
    anchors_cmd.add_argument("--output", metavar="FILE",
                             help="write the table to FILE (replaced atomically) and print a "
                                  "summary; default: print the table to stdout")
    _feature_map_flag(anchors_cmd)
    anchors_cmd.set_defaults(func=_cmd_model_anchors)

    check_cmd = commands.add_parser(
        "check", help="check a frozen_inference_graph.pb before the Bonnet compiler runs",
        description="Check that the graph has Preprocessor/sub [1,S,S,3], concat [1,N,1,4] "
                    "(or [1,N,4]) and concat_1 [1,N,classes+1], and that every op between "
                    "them is one the Bonnet compiler takes. Lists every problem found and "
                    "exits 1, or prints a one-line summary. Graphs frozen with TensorFlow "
                    ">= 1.15 contain AddV2, which the compiler rejects.")
    check_cmd.add_argument("graph", metavar="GRAPH", help="the frozen_inference_graph.pb "
                                                          "that export_inference_graph.py wrote")
    check_cmd.add_argument("--input-size", type=_positive, metavar="S",
                           help="input side in pixels the compiler is told "
                                "(--input_tensor_size); default: the config's "
                                "fixed_shape_resizer with --config, else 256")
    check_cmd.add_argument("--num-classes", type=_positive, metavar="C",
                           help="classes besides background; default: the config's "
                                "num_classes with --config, else 1")
    expected = check_cmd.add_mutually_exclusive_group()
    expected.add_argument("--anchors", type=_positive, metavar="N",
                          help="expected anchor count N; default 1278, the embedded SSD "
                               "256x256 config's (16x16x3 + (8x8+4x4+2x2+1x1)x6)")
    expected.add_argument("--config", metavar="CONFIG",
                          help="the pipeline.config the graph was trained with: the anchor "
                               "count, input size and classes are taken from it")
    _feature_map_flag(check_cmd)
    check_cmd.add_argument("--json", action="store_true",
                           help="print the result as JSON on stdout (ok, problems, shapes, "
                                "op counts); problems still go to stderr and the exit "
                                "status is the same")
    check_cmd.set_defaults(func=_cmd_model_check, parser=check_cmd)

    bundle_cmd = commands.add_parser(
        "bundle", help="collect a trained model into ROOT/NAME/VERSION/ with manifest.json",
        description="Copy the model files into ROOT/NAME/VERSION/ under fixed names "
                    "(frozen_inference_graph.pb, model.binaryproto, pipeline.config, "
                    "anchors.txt, labels.txt) with a manifest.json of their sha256 and "
                    "sizes, the training steps and checkpoint, the dataset and config "
                    "hashes and tool versions. VERSION is the first 12 hex digits of a "
                    "sha256 over the manifest's content, so the same inputs give the same "
                    "version: an existing bundle that verifies is left untouched "
                    "(created: false). Prints {\"name\", \"version\", \"path\", \"created\"} "
                    "as JSON.")
    bundle_cmd.add_argument("--name", required=True,
                            help="model name, the directory under --output-root (letters, "
                                 "digits, '.', '_', '-')")
    bundle_cmd.add_argument("--output-root", required=True, metavar="ROOT",
                            help="where bundles live, e.g. artifacts/models")
    bundle_cmd.add_argument("--graph", required=True, metavar="FILE",
                            help="the exported frozen_inference_graph.pb")
    bundle_cmd.add_argument("--compiled", required=True, metavar="FILE",
                            help="the Bonnet compiler's output (model.binaryproto)")
    bundle_cmd.add_argument("--config", required=True, metavar="FILE",
                            help="the pipeline.config the model was trained with")
    bundle_cmd.add_argument("--anchors", required=True, metavar="FILE",
                            help="anchors.txt from `facekit model anchors`")
    labels = bundle_cmd.add_mutually_exclusive_group()
    labels.add_argument("--labels", metavar="FILE",
                        help="labels.txt: one class name a line, class id 1 first "
                             "(default: a single class 'face')")
    labels.add_argument("--labels-from", metavar="PBTXT",
                        help="take the labels from a label_map.pbtxt (items with id, name, "
                             "display_name) instead")
    bundle_cmd.add_argument("--dataset-manifest", metavar="FILE",
                            help="the dataset stage's dataset.json: its sha256 and kept "
                                 "image/face counts per split go into the manifest")
    bundle_cmd.add_argument("--steps", type=_nonnegative, metavar="N",
                            help="training steps the checkpoint was taken at")
    bundle_cmd.add_argument("--checkpoint", metavar="PREFIX",
                            help="the checkpoint prefix exported, e.g. train/model.ckpt-20000")
    bundle_cmd.add_argument("--models-version", metavar="SHA",
                            help="the tensorflow/models commit (or package version) used")
    bundle_cmd.add_argument("--compiler-sha256", metavar="HEX",
                            help="sha256 of the bonnet_model_compiler archive used")
    bundle_cmd.add_argument("--tensorflow-version", metavar="VERSION",
                            help="TensorFlow that exported the graph; default: the one "
                                 "installed where this runs (read from package metadata)")
    bundle_cmd.add_argument("--extra", type=_key_value, action="append", default=[],
                            metavar="KEY=VALUE",
                            help="an extra string recorded under \"extra\" in the manifest "
                                 "(repeatable)")
    bundle_cmd.set_defaults(func=_cmd_model_bundle)

    verify_cmd = commands.add_parser(
        "verify", help="check a bundle's files against its manifest.json",
        description="Recompute the sha256 and size of every file of a bundle directory and "
                    "compare them with manifest.json; report every changed, missing or "
                    "extra file and an edited manifest, and exit 1 if there is any. Runs "
                    "on Python 3.5 with the standard library only.")
    verify_cmd.add_argument("bundle", metavar="BUNDLE_DIR",
                            help="a bundle directory, ROOT/NAME/VERSION")
    verify_cmd.add_argument("--json", action="store_true",
                            help="print the result as JSON on stdout (ok, problems, the "
                                 "status of each file)")
    verify_cmd.set_defaults(func=_cmd_model_verify)

    progress_cmd = commands.add_parser(
        "progress", help="where a training run is, as JSON (the training role polls it)",
        description="Print, as one JSON object, where a training run of the Object Detection "
                    "API is: checkpoint_step (newest model.ckpt-N in TRAIN_DIR, -1 for none), "
                    "step, loss and sec_per_step (the trainer's last 'global step N: loss = X "
                    "(S sec/step)' log line), restored_from (the checkpoint the last start "
                    "restored), done (checkpoint_step >= --num-steps), the systemd unit's "
                    "state, active, failed and restarts, log_tail and a one-line summary.")
    progress_cmd.add_argument("--train-dir", required=True, metavar="DIR",
                              help="the trainer's --train_dir (checkpoints and `checkpoint`)")
    progress_cmd.add_argument("--log", required=True, metavar="FILE",
                              help="the trainer's log file (its stdout and stderr)")
    progress_cmd.add_argument("--unit", metavar="NAME",
                              help="the systemd unit that runs the trainer (state, restarts)")
    progress_cmd.add_argument("--num-steps", type=_positive, metavar="N",
                              help="the step count of the run, for done / percentages / time left")
    progress_cmd.add_argument("--wait", type=_nonnegative, default=0, metavar="SECONDS",
                              help="wait up to SECONDS for a new checkpoint or for the unit "
                                   "to stop before printing (default 0: print at once)")
    progress_cmd.set_defaults(func=_cmd_model_progress)


_BONNET_EPILOG = """\
typical use (tests, the lab, Ansible):
  facekit bonnet serve --models artifacts/models --frames frames/ --state-file bonnet.json \\
      --background
  (then any AIY client, such as the detector, with VISION_BONNET_HOST=127.0.0.1
   VISION_BONNET_PORT=35000 in its environment)
  facekit bonnet stop --state-file bonnet.json

the state file (JSON, replaced atomically) holds pid, host, port, running, options,
models_dir, loaded_models (name, bundle, version, sha256, input_shape, ...), camera
(running, model, frame_index), frames_served, images_served, mean_ms, fps and
last_report; it is written when the server listens, at each load / unload / camera
start / stop, at every report and when it stops (running: false).

exit status: 0 success (also when stopped by SIGTERM or Ctrl-C), 1 bad option or
a server that cannot start, 2 usage error.
"""

_SERVE_DESCRIPTION = """\
Serve the Vision Bonnet protocol (4-byte big-endian length + spacepark.vision.Request,
the Response framed the same way) with one state shared by every connection, as the
board keeps it: the loaded models and the camera.

A LoadModel's compute_graph is matched by sha256 to the model.binaryproto of a bundle
under --models (searched again at each load; the bundle must verify), and the bundle's
frozen_inference_graph.pb runs with TensorFlow on the CPU from Preprocessor/sub (the
frame resized to the input_shape and normalised with input_normalizer) to concat and
concat_1, dense or as asked by the request's sparse configs. Unknown graphs, input
shapes the graph does not take, batch != 1, depth != 3 and --refuse'd models are
refused with a message naming the model. Camera frames cycle through --frames.
Firmware 1.2.

Needs aiy-projects-python for the protocol's descriptor (`pip install --no-deps
aiy-projects-python==1.4`; it is read, not imported, so any protobuf 3.20 - 7 works)
and TensorFlow from the first LoadModel on.
"""


def _nonnegative_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be >= 0, got {}".format(text))
    return value


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0 - 65535, got {}".format(value))
    return value


def _bonnet_options(args):
    """The serve options as the state file records them (paths absolute)."""

    def absolute(path):
        return None if path is None else os.path.abspath(path)

    log_file = args.log_file
    if log_file is None and args.background:
        log_file = args.state_file + ".log"
    return {"host": args.host, "port": args.port, "models": absolute(args.models),
            "frames": absolute(args.frames), "fps": args.fps, "refuse": list(args.refuse),
            "drop_after": args.drop_after, "delay_ms": args.delay_ms,
            "report_every": args.report_every, "state_file": absolute(args.state_file),
            "log_file": absolute(log_file)}


def _cmd_bonnet_serve(args):
    from facekit.bonnet import daemon  # noqa: PLC0415

    if args.background and not args.state_file:
        args.parser.error("--background needs --state-file PATH: `facekit bonnet stop` finds "
                          "the server through it")
    options = _bonnet_options(args)
    for key in ("state_file", "log_file"):
        folder = os.path.dirname(options[key] or "")
        if folder and not os.path.isdir(folder):
            args.parser.error("--{} {}: the folder {} does not exist".format(
                key.replace("_", "-"), options[key], folder))
    if args.background:
        verbosity = ["--verbose"] if args.verbose else ["--quiet"] if args.quiet else []
        print(json.dumps(daemon.start_background(options, verbosity), sort_keys=True))
        return 0
    # A server's log needs times; --log-file sends it to a file instead of stderr.
    handler = logging.FileHandler(options["log_file"]) if options["log_file"] else \
        logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s facekit: %(levelname)s: %(message)s"))
    logging.getLogger("facekit").handlers[:] = [handler]
    from facekit.bonnet import server  # noqa: PLC0415

    return server.serve(host=options["host"], port=options["port"], models=options["models"],
                        frames=options["frames"], fps=options["fps"], refuse=options["refuse"],
                        drop_after=options["drop_after"], delay_ms=options["delay_ms"],
                        report_every=options["report_every"],
                        state_file=options["state_file"], options=daemon.signature(options))


def _cmd_bonnet_stop(args):
    from facekit.bonnet import daemon  # noqa: PLC0415

    result = daemon.stop(os.path.abspath(args.state_file), timeout=args.timeout)
    print(json.dumps(result, sort_keys=True))
    return 0


def _add_bonnet_group(groups):
    bonnet = groups.add_parser(
        "bonnet", help="a software Vision Bonnet on loopback, for AIY's client library",
        description="A TCP server speaking the Vision Bonnet's protocol as AIY's client "
                    "library does off a Pi (VISION_BONNET_HOST / VISION_BONNET_PORT): it "
                    "runs the frozen graph of the model bundle whose model.binaryproto a "
                    "client loads, with TensorFlow on the CPU, so the real library and the "
                    "detector run without hardware.",
        epilog=_BONNET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = bonnet.add_subparsers(dest="command", metavar="{serve,stop}")
    commands.required = True

    serve_cmd = commands.add_parser(
        "serve", help="run the software bonnet (in the foreground, or --background)",
        description=_SERVE_DESCRIPTION,
        epilog=_BONNET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve_cmd.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=_port, default=35000,
                           help="TCP port (default 35000, AIY's VISION_BONNET_PORT default; "
                                "0 picks a free one, see the state file or --background's "
                                "output)")
    serve_cmd.add_argument("--models", required=True, metavar="DIR",
                           help="directory searched (recursively) for model bundles with "
                                "manifest.json, e.g. artifacts/models")
    serve_cmd.add_argument("--frames", metavar="DIR",
                           help="camera frames: the .jpg/.jpeg/.png files of DIR, sorted by "
                                "name and cycled (default: a generated 640x480 test "
                                "pattern)")
    serve_cmd.add_argument("--fps", type=_nonnegative_float, default=10.0,
                           help="serve camera frames at most this often per second "
                                "(default 10; 0: as fast as inference runs)")
    rehearsal = serve_cmd.add_argument_group("failure rehearsal")
    rehearsal.add_argument("--refuse", action="append", default=[], metavar="MODEL",
                           help="refuse to load MODEL: a LoadModel's model name, a bundle "
                                "version, or a sha256 prefix (>= 12 hex digits) of the "
                                "compiled graph (repeatable)")
    rehearsal.add_argument("--drop-after", type=_positive, metavar="N",
                           help="close the client's connection without a reply at the Nth "
                                "camera_inference request (once per server process)")
    rehearsal.add_argument("--delay-ms", type=_nonnegative, default=0, metavar="MS",
                           help="answer every request MS milliseconds late (default 0)")
    report = serve_cmd.add_argument_group("reporting and daemon mode")
    report.add_argument("--report-every", type=_positive, default=50, metavar="N",
                        help="log frames, mean / max ms per frame and fps every N "
                             "inferences (default 50)")
    report.add_argument("--state-file", metavar="PATH",
                        help="JSON state kept up to date for tests and Ansible (see below)")
    report.add_argument("--background", action="store_true",
                        help="start the server as a detached process, wait until it "
                             "listens and print {\"pid\", \"host\", \"port\", \"changed\"}; "
                             "a live server of the same --state-file and options is left "
                             "alone (changed: false), one with other options is replaced. "
                             "Needs --state-file")
    report.add_argument("--log-file", metavar="PATH",
                        help="append the server's log to PATH instead of stderr (default "
                             "with --background: the state file's path + .log)")
    serve_cmd.set_defaults(func=_cmd_bonnet_serve, parser=serve_cmd)

    stop_cmd = commands.add_parser(
        "stop", help="stop a bonnet started with --state-file",
        description="Send SIGTERM to the bonnet whose pid the state file holds (SIGKILL after "
                    "--timeout), if it still runs, and print {\"changed\", \"pid\"}: changed "
                    "is false when no such server was running.")
    stop_cmd.add_argument("--state-file", required=True, metavar="PATH",
                          help="the state file the server was started with")
    stop_cmd.add_argument("--timeout", type=_nonnegative_float, default=15.0,
                          metavar="SECONDS",
                          help="how long to wait after SIGTERM before SIGKILL (default 15)")
    stop_cmd.set_defaults(func=_cmd_bonnet_stop)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="facekit",
        description="Tools for the AIY Vision Kit face detector pipeline.")
    parser.add_argument("--version", action="version",
                        version="facekit {}".format(facekit.__version__))
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true",
                           help="also log debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true",
                           help="log only errors (no skipped-image warnings, no progress lines)")
    groups = parser.add_subparsers(dest="group", metavar="{dataset,model,bonnet}")
    groups.required = True

    dataset = groups.add_parser(
        "dataset", help="convert WIDER FACE into Object Detection API training data",
        description="Convert WIDER FACE annotations and images into Pascal VOC XML, the seed "
                    "tutorial's CSV, TFRecord shards for the TensorFlow Object Detection API, "
                    "label_map.pbtxt and a dataset.json manifest.",
        epilog=_DATASET_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = dataset.add_subparsers(dest="command",
                                      metavar="{inspect,convert,to-voc,to-csv,to-tfrecord}")
    commands.required = True

    inspect_cmd = commands.add_parser(
        "inspect", help="count images and faces per filter reason, without opening images",
        description="Parse an annotation file and report how many images and faces the filters "
                    "keep and drop, by reason. Reads no image, so clipping and unreadable "
                    "images are not counted here.")
    inspect_cmd.add_argument("annotations", metavar="FILE",
                         help="WIDER FACE annotation file (wider_face_<split>_bbx_gt.txt)")
    _add_filter_flags(inspect_cmd)
    inspect_cmd.set_defaults(func=_cmd_inspect)

    convert_cmd = commands.add_parser(
        "convert", help="WIDER -> VOC XML + CSV + TFRecord + label map + dataset.json, one pass",
        description="Convert one WIDER FACE split in a single pass over its images. Writes, in "
                    "--output-dir: <split>.record (or shards), <split>_labels.csv, "
                    "<split>_voc/ (VOC XML), label_map.pbtxt and dataset.json (one entry per "
                    "split; counts per drop reason, filters, input checksums, shards). Every "
                    "file is written under a hidden temporary name and renamed when complete.")
    _annotation_flags(convert_cmd)
    convert_cmd.add_argument("--output-dir", required=True, metavar="DIR",
                         help="where the outputs go (created if missing)")
    convert_cmd.add_argument("--shards", type=_positive, default=1, metavar="N", help=_SHARDS_HELP)
    convert_cmd.add_argument("--no-voc", action="store_true",
                         help="do not write the <split>_voc/ XML tree")
    convert_cmd.add_argument("--no-csv", action="store_true",
                         help="do not write <split>_labels.csv")
    convert_cmd.add_argument(
        "--source", action="append", type=_source, metavar="NAME=CHECKSUM",
        help="record a source archive and its checksum (e.g. WIDER_val.zip=sha256:f9ef...) "
             "under inputs.sources in dataset.json; repeatable. The dataset stage passes the "
             "archives it downloaded, and converts again only when they change")
    _add_filter_flags(convert_cmd)
    _add_image_flags(convert_cmd)
    convert_cmd.set_defaults(func=_cmd_convert)

    to_voc_cmd = commands.add_parser(
        "to-voc", help="seed step 1: WIDER -> one VOC XML per image",
        description="Write one Pascal VOC XML per kept image into --output-dir/Annotations "
                    "(mirroring the event folders), the image order into "
                    "ImageSets/Main/<split>.txt and a dataset.json with the counts. Same "
                    "filters and drop counting as convert.")
    _annotation_flags(to_voc_cmd)
    to_voc_cmd.add_argument("--output-dir", required=True, metavar="DIR",
                        help="VOC directory to (re)create; refused if it holds files facekit "
                             "did not write")
    _add_filter_flags(to_voc_cmd)
    _add_image_flags(to_voc_cmd)
    to_voc_cmd.set_defaults(func=_cmd_to_voc)

    to_csv_cmd = commands.add_parser(
        "to-csv", help="seed step 2 (xml_to_csv): VOC XML directory -> box CSV",
        description="Collect VOC XML files into a CSV with the header "
                    "filename,width,height,class,xmin,ymin,xmax,ymax (one row per box). Uses "
                    "ImageSets/Main/<split>.txt for the order when present, else every .xml "
                    "file sorted by path.")
    to_csv_cmd.add_argument("--voc-dir", required=True, metavar="DIR",
                        help="VOC directory (with Annotations/) or a flat folder of XML files")
    to_csv_cmd.add_argument("--output", required=True, metavar="CSV", help="CSV file to write")
    to_csv_cmd.add_argument("--split", metavar="NAME",
                        help="image set to read (ImageSets/Main/NAME.txt); needed only when "
                             "the VOC directory holds several")
    to_csv_cmd.set_defaults(func=_cmd_to_csv)

    to_tfrecord_cmd = commands.add_parser(
        "to-tfrecord", help="seed step 3 (generate_tfrecord): box CSV + images -> TFRecord",
        description="Build TFRecord shards, label_map.pbtxt and a dataset.json entry from the "
                    "box CSV. Rows of one image must be consecutive. Each image is opened for "
                    "its bytes and its header size is checked against the CSV.")
    to_tfrecord_cmd.add_argument("--csv", required=True, metavar="CSV", help="box CSV (to-csv's)")
    to_tfrecord_cmd.add_argument("--images", required=True, metavar="DIR",
                             help="folder the CSV's filename column is relative to")
    to_tfrecord_cmd.add_argument("--output-dir", required=True, metavar="DIR",
                             help="where the records, label map and dataset.json go")
    to_tfrecord_cmd.add_argument("--split", required=True, metavar="NAME",
                             help="split name for the record file names, e.g. train or val")
    to_tfrecord_cmd.add_argument("--shards", type=_positive, default=1, metavar="N",
                             help=_SHARDS_HELP)
    _add_image_flags(to_tfrecord_cmd,
                     strict_what="a missing or corrupt image or one whose size differs from "
                                 "the CSV")
    to_tfrecord_cmd.set_defaults(func=_cmd_to_tfrecord)
    _add_model_group(groups)
    _add_bonnet_group(groups)
    return parser


def _configure_logging(args):
    level = logging.INFO
    if args.verbose:
        level = logging.DEBUG
    elif args.quiet:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("facekit: %(levelname)s: %(message)s"))
    root = logging.getLogger("facekit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv=None):
    """Entry point; returns the exit status (0 ok, 1 bad input, 2 usage, 128 + signal)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        if args.group != "dataset":
            return args.func(args)
        # SIGTERM (systemd, `timeout`, Ansible) and SIGHUP take Ctrl-C's path below, at
        # the points where the dataset commands check for them (interrupts.check).
        with interrupts.stop_signals():
            return args.func(args)
    except FacekitError as exc:
        sys.stderr.write("facekit: error: {}\n".format(exc))
        return 1
    except OSError as exc:
        # A missing or unreadable input given on the command line.
        where = " {}".format(exc.filename) if exc.filename else ""
        sys.stderr.write("facekit: error: cannot use{}: {}\n".format(
            where, exc.strerror or exc))
        return 1
    except KeyboardInterrupt as exc:
        sys.stderr.write("facekit: stopped by {}; no partial output was kept\n".format(
            interrupts.signal_name(exc)))
        return interrupts.exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
