"""`facekit eval ...`: measuring a detector. `wider`, the WIDER FACE protocol's
easy / medium / hard AP of a prediction folder; `run`, a bundle run on TFRecord files as
the kit runs it, measured, with a report.

numpy, scipy and TensorFlow (facekit.eval) are imported inside the commands' functions.
"""

import json
import math
import os

from facekit import argtypes
from facekit.cli.model import BUNDLE_DIR
from facekit.eval import gate
from facekit.options import add_commands, command, flag, opt

_EVAL_EPILOG = """\
typical use:
  facekit eval wider predictions/ --ground-truth eval_tools/ground_truth
  facekit eval wider predictions/ --ground-truth eval_tools/ground_truth --json wider.json
  facekit eval run artifacts/models/face/1a2b3c4d5e6f --records 'data/val.record*' \
      --output eval/ --wider-ground-truth eval_tools/ground_truth \
      --wider-annotations wider_face_split/wider_face_val_bbx_gt.txt
  facekit eval gate artifacts/models/face/1a2b3c4d5e6f --deployed-eval deployed/eval.json \
      --deployed-version 0f9e8d7c6b5a --min-ap 0.3 --max-ap-drop 0.02

exit status: 0 scored (gate: may deploy), 1 bad input (a prediction file that is not in
the WIDER format, named with its line; unreadable ground truth; a bundle that does not
verify; a missing or corrupt record or image, named with its file and record; gate:
refused, with the reason), 2 usage error.
"""

# How many missing prediction files the warning names before it only counts.
_MISSING_NAMED = 5


def _curve(values):
    # NaN (no prediction at or above that threshold) is not JSON: null.
    return [None if math.isnan(v) else round(float(v), 10) for v in values]


def _cmd_eval_wider(args):
    import logging  # noqa: PLC0415

    from facekit import files  # noqa: PLC0415
    from facekit.eval import groundtruth, predictions, wider  # noqa: PLC0415

    log = logging.getLogger("facekit.eval")
    truth = groundtruth.read_ground_truth(args.ground_truth)
    preds = predictions.read_predictions(args.pred_dir, truth.images)
    if preds.missing:
        named = ", ".join("{}/{}.txt".format(e, i) for e, i in preds.missing[:_MISSING_NAMED])
        more = len(preds.missing) - _MISSING_NAMED
        log.warning("%d of %d images have no prediction file, counted as no detections: %s%s",
                    len(preds.missing), len(truth.images), named,
                    " and {} more".format(more) if more > 0 else "")
    if preds.unexpected:
        # The official tools read only the ground truth's images; the Python port reads every
        # file, so extra files' scores would shift its normalisation (here they do not).
        log.warning("%d .txt files in %s name no image of the ground truth and were not read "
                    "(their scores do not enter the normalisation), e.g. %s",
                    len(preds.unexpected), args.pred_dir, preds.unexpected[0])
    result = wider.evaluate(truth, preds)
    print("WIDER FACE: {} images, {} predictions, {} image{} without a prediction file "
          "(no detections)".format(len(truth.images), len(preds.scores), len(preds.missing),
                                   "" if len(preds.missing) == 1 else "s"))
    for setting in groundtruth.SETTINGS:
        print("{:<6} AP {:.4f}  ({} faces)".format(setting, result.aps[setting],
                                                   result.faces[setting]))
    if args.json:
        doc = dict(result.aps)
        doc.update({
            "images": len(truth.images),
            "predictions": int(len(preds.scores)),
            "missing_prediction_files": len(preds.missing),
            "missing": ["{}/{}".format(e, i) for e, i in preds.missing],
            "unexpected_files": preds.unexpected,
            "faces": result.faces,
            "score_range": list(result.score_range),
            "iou_threshold": wider.IOU_THRESHOLD,
            "thresholds": _curve(result.thresholds),
            "curves": {s: {"precision": _curve(result.precision[s]),
                           "recall": _curve(result.recall[s])}
                       for s in groundtruth.SETTINGS},
        })
        with files.atomic_open(args.json, "w", encoding="utf-8") as fh:
            # One line: the curves are 6,000 numbers.
            json.dump(doc, fh, sort_keys=True)
            fh.write("\n")
        print("wrote {}".format(args.json))
    return 0


def _cmd_eval_run(args):
    from facekit.eval import operating, run  # noqa: PLC0415

    doc = run.evaluate_bundle(
        args.bundle, args.records, args.output, deploy_threshold=args.deploy_threshold,
        rule=operating.MAX_F1 if args.min_precision is None else operating.MIN_PRECISION,
        min_precision=args.min_precision, score_threshold=args.score_threshold,
        wider_ground_truth=args.wider_ground_truth, wider_annotations=args.wider_annotations,
        threads=args.threads)
    fixed, kit = doc["at_deploy_threshold"], doc["at_operating_point"]

    def figure(value):
        return "n/a" if value is None else "{:.4f}".format(value)

    print("{} {}: {} images at {} images/s".format(
        doc["bundle"]["name"], doc["bundle"]["version"], doc["images"],
        doc["images_per_second"]))
    print("AP@0.5 " + "  ".join("{} {}".format(label, figure(ap))
                                for label, ap in sorted(doc["ap"].items())) +
          "  mean {}".format(figure(doc["mean_ap"])))
    rule = doc["operating_point"]["rule"]
    print("operating point ({}): {}".format(
        "max F1" if rule == operating.MAX_F1 else "precision >= {:g}".format(args.min_precision),
        ", ".join("{} score > {}".format(label, "{} (none: {})".format(
            fixed["threshold"], point["reason"]) if point["threshold"] is None
            else point["threshold"])
            for label, point in sorted(doc["operating_point"]["classes"].items()))))
    for words, view in (("at the operating point", kit),
                        ("at score > {}".format(fixed["threshold"]), fixed)):
        print("{}: recall {}, precision {}, {} false positives per image".format(
            words, figure(view["recall"]), figure(view["precision"]),
            figure(view["false_positives_per_image"])))
    if doc["dropped_faces"]:
        print("not scored: {} faces of {} that the records leave out".format(
            doc["dropped_faces"]["faces"], doc["dropped_faces"]["annotations"]["path"]))
    if doc["wider"]:
        print("WIDER FACE easy {} medium {} hard {}".format(
            *(figure(doc["wider"][s]) for s in ("easy", "medium", "hard"))))
    print("wrote {}".format(", ".join(os.path.join(args.output, name) for name in sorted(
        [run.EVAL_JSON, run.PR_PNG, run.SAMPLES_PNG, run.REPORT_HTML] +
        ([run.PREDICTIONS + "/"] if doc["files"]["predictions"] else [])))))
    return 0


def _cmd_eval_gate(args):
    import sys  # noqa: PLC0415

    version, candidate = gate.read_bundle_evaluation(args.bundle)
    deployed = None
    if args.deployed_eval == "-":
        deployed = gate.parse_evaluation(sys.stdin.read(), "the deployed eval.json (stdin)")
    elif args.deployed_eval:
        deployed = gate.parse_evaluation(gate.read_text(args.deployed_eval), args.deployed_eval)
    result = gate.decide(candidate, deployed, candidate_version=version,
                         deployed_version=args.deployed_version, metric=args.gate_metric,
                         min_ap=args.min_ap, max_drop=args.max_ap_drop,
                         force=args.force_deploy, settings_prefix=args.settings_prefix)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print("{}: {}".format(result["decision"], result["reason"]))
        if result["note"]:
            print("note: " + result["note"])
    if not result["ok"]:
        sys.stderr.write("facekit: error: {}\n".format(result["reason"]))
        return 1
    return 0


# ---- the commands' options, each said once ---------------------------------------------

_WIDER = command(
    "wider", _cmd_eval_wider,
    "WIDER FACE val easy/medium/hard AP of a WIDER-format prediction folder",
    "Score a prediction folder by the WIDER FACE protocol, as the official evaluation tools "
    "and their widely used Python port do: scores min-max normalised over the set, each "
    "prediction (file order) matched to the face of highest IoU (inclusive pixel boxes), IoU "
    ">= 0.5 to a face the setting does not count ignored, precision and recall at 1,000 score "
    "thresholds, VOC all-point AP. Prints the easy, medium and hard APs. An image of the "
    "ground truth with no prediction file counts as no detections (reported with a count). "
    "Needs scipy for the .mat files.",
    opt("pred_dir", "PRED_DIR",
        "the predictions: PRED_DIR/<event>/<image>.txt per image, each with the image name on "
        "line 1, the number of boxes on line 2, then one 'x y w h score' line per box (pixels; "
        "export at a low score threshold, e.g. 0.02, for a fair AP)"),
    opt("--ground-truth", "DIR",
        "folder with the evaluation tools' wider_face_val.mat and wider_easy_val.mat, "
        "wider_medium_val.mat, wider_hard_val.mat (eval_tools.zip, ground_truth/)",
        required=True),
    opt("--json", "PATH",
        "also write PATH (replaced atomically): {\"easy\", \"medium\", \"hard\"} APs, the "
        "precision and recall curves per setting at the 1,000 thresholds (\"curves\", "
        "\"thresholds\"; null precision where nothing was proposed), face and prediction "
        "counts, and the images without a prediction file"),
    epilog=_EVAL_EPILOG)

_RUN = command(
    "run", _cmd_eval_run, "run a bundle on TFRecord files as the kit does; AP, recall, report",
    "Run a model bundle's frozen graph on every image of TFRecord files (the Object Detection "
    "API's format, as `facekit dataset convert` writes them) the way the Vision Kit runs it: "
    "the whole image resized to the bundle's input size, normalised (x - 128) / 128, the "
    "output tensors decoded by the kit's own decoder (facekit.detector) at a low score "
    "threshold. Writes into OUTPUT: eval.json (AP at IoU 0.5 per class and mean; the "
    "operating point per class, the score threshold the kits will run: where F1 is highest, "
    "or the lowest reaching --min-precision; recall, precision, false positives per image "
    "and recall by face size there and at --deploy-threshold; "
    "the bundle's version, the records' sha256s, images/s), pr.png (precision-recall "
    "curves), samples.png (true positives green, false positives red, missed faces blue, "
    "faces not scored grey), "
    "report.html (both pictures and the figures; reads offline) and, for WIDER FACE records, "
    "predictions/<event>/<image>.txt in the WIDER format. Face sizes: the square root of a "
    "box's area in the original image's pixels; small < 32, medium 32-96, large >= 96. Needs "
    "TensorFlow and Pillow; scipy for --wider-ground-truth.",
    BUNDLE_DIR,
    opt("--records", "PATTERN",
        "a TFRecord file or a glob of them (quote it), e.g. 'data/val.record*'; every image of "
        "every file is run, in file name order", required=True),
    opt("--output", "DIR", "the folder to write into (created; files of an earlier run are "
                           "replaced)", required=True),
    opt("--min-precision", "P",
        "choose each class's operating point as the lowest score threshold whose precision "
        "reaches P, in (0, 1] (default: where F1 is highest)", type=argtypes.precision),
    opt("--deploy-threshold", "SCORE",
        "a fixed score shown beside the operating point (recall, precision, false positives "
        "per image), and the threshold of a class without one; the kits' threshold when a "
        "bundle has no evaluation (default %(default)s)",
        type=argtypes.score, default=0.5),
    opt("--score-threshold", "SCORE",
        "the decoder's threshold for the AP's ranking: low, so the AP sees the whole "
        "precision-recall curve (default %(default)s)", type=argtypes.score, default=0.02),
    opt("--wider-ground-truth", "DIR",
        "the WIDER FACE evaluation tools' ground-truth folder (wider_face_val.mat, "
        "wider_{easy,medium,hard}_val.mat): adds the easy/medium/hard APs of predictions/ to "
        "eval.json (WIDER FACE val records only; val images missing from the records count as "
        "no detections)"),
    opt("--wider-annotations", "FILE",
        "the records' WIDER FACE annotation file (wider_face_val_bbx_gt.txt): the faces it "
        "lists that the records leave out (blurred, invalid or small faces the dataset's "
        "filters dropped) are not scored, as WIDER FACE's evaluation sets aside faces outside "
        "its setting: a detection on one is neither a true nor a false positive"),
    opt("--threads", "N", "threads for decoding images and for TensorFlow's ops (default "
                          "%(default)s, the training host's cores)",
        type=argtypes.positive, default=2),
    epilog=_EVAL_EPILOG)

_GATE = command(
    "gate", _cmd_eval_gate,
    "may a bundle replace a deployed release? (its eval.json against the release's and a "
    "floor)",
    "The quality gate the kits' play runs before a rollout. A bundle passes when its gate "
    "metric (from the eval.json its manifest lists: `facekit eval run` then `facekit model "
    "attach-eval`) is at least --min-ap and, when the deployed release has an eval.json, not "
    "below that release's by more than --max-ap-drop. A kit that already runs the bundle's "
    "version passes; a bundle without an evaluation is refused. --force-deploy lets a refused "
    "bundle through and says so. Prints the decision (pass, same, refused, forced) and why, "
    "and notes when the two were measured on different records; exit status 1 when refused.",
    BUNDLE_DIR,
    opt("--deployed-eval", "FILE",
        "the deployed release's eval.json, or - to read it from stdin (empty: the release has "
        "none); leave out when the kit runs no release"),
    opt("--deployed-version", "VERSION", "the version the kit runs (equal to the bundle's: "
                                         "pass)"),
    opt("--gate-metric", None,
        "the figure compared (default %(default)s: the mean over the classes of AP at IoU 0.5; "
        "wider_*: the WIDER FACE protocol's, when eval run was given --wider-ground-truth)",
        choices=sorted(gate.METRICS), default=gate.DEFAULT_METRIC),
    opt("--min-ap", "AP", "the floor: a bundle below it is refused (default %(default)s)",
        type=argtypes.fraction, default=gate.DEFAULT_MIN),
    opt("--max-ap-drop", "AP", "how far below the deployed release's figure a bundle may be "
                               "(default %(default)s)",
        type=argtypes.fraction, default=gate.DEFAULT_MAX_DROP),
    flag("--force-deploy", "let a refused bundle through (the decision says forced, and why)"),
    opt("--settings-prefix", "PREFIX",
        "name the settings in the sentences as variables with this prefix (the kits' play "
        "gives vision_kit_: vision_kit_min_ap ...) instead of as this command's flags",
        default=""),
    flag("--json", "print the decision as JSON: ok, decision, reason, note, metric, candidate "
                   "and deployed figures and versions"),
    epilog=_EVAL_EPILOG)


def add_group(groups):
    """The `eval` group and its commands, on the `facekit` parser's subparsers."""
    add_commands(groups, "eval",
                 "measure a detector: WIDER FACE easy/medium/hard AP; a bundle on records",
                 "Evaluation tools: score a detector's predictions the way the field reports "
                 "face detectors.",
                 (_WIDER, _RUN, _GATE), epilog=_EVAL_EPILOG)
