"""`facekit eval ...`: measuring a detector. Today `wider`, the WIDER FACE protocol's
easy / medium / hard AP of a prediction folder.

numpy and scipy (facekit.eval) are imported inside the command's function.
"""

import argparse
import json
import math

_EVAL_EPILOG = """\
typical use:
  facekit eval wider predictions/ --ground-truth eval_tools/ground_truth
  facekit eval wider predictions/ --ground-truth eval_tools/ground_truth --json wider.json

exit status: 0 scored, 1 bad input (a prediction file that is not in the WIDER format,
named with its line; unreadable ground truth), 2 usage error.
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


def add_group(groups):
    """The `eval` group and its commands, on the `facekit` parser's subparsers."""
    group = groups.add_parser(
        "eval", help="measure a detector: WIDER FACE easy/medium/hard AP",
        description="Evaluation tools: score a detector's predictions the way the field "
                    "reports face detectors.",
        epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = group.add_subparsers(dest="command", metavar="{wider}")
    commands.required = True
    _add_wider(commands)


def _add_wider(commands):
    wider_cmd = commands.add_parser(
        "wider", help="WIDER FACE val easy/medium/hard AP of a WIDER-format prediction folder",
        description="Score a prediction folder by the WIDER FACE protocol, as the official "
                    "evaluation tools and their widely used Python port do: scores min-max "
                    "normalised over the set, each prediction (file order) matched to the "
                    "face of highest IoU (inclusive pixel boxes), IoU >= 0.5 to a face the "
                    "setting does not count ignored, precision and recall at 1,000 score "
                    "thresholds, VOC all-point AP. Prints the easy, medium and hard APs. An "
                    "image of the ground truth with no prediction file counts as no "
                    "detections (reported with a count). Needs scipy for the .mat files.",
        epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    wider_cmd.add_argument(
        "pred_dir", metavar="PRED_DIR",
        help="the predictions: PRED_DIR/<event>/<image>.txt per image, each with the image "
             "name on line 1, the number of boxes on line 2, then one 'x y w h score' line "
             "per box (pixels; export at a low score threshold, e.g. 0.02, for a fair AP)")
    wider_cmd.add_argument(
        "--ground-truth", metavar="DIR", required=True,
        help="folder with the evaluation tools' wider_face_val.mat and "
             "wider_easy_val.mat, wider_medium_val.mat, wider_hard_val.mat "
             "(eval_tools.zip, ground_truth/)")
    wider_cmd.add_argument(
        "--json", metavar="PATH",
        help="also write PATH (replaced atomically): {\"easy\", \"medium\", \"hard\"} APs, "
             "the precision and recall curves per setting at the 1,000 thresholds "
             "(\"curves\", \"thresholds\"; null precision where nothing was proposed), face "
             "and prediction counts, and the images without a prediction file")
    wider_cmd.set_defaults(func=_cmd_eval_wider)
