"""`facekit eval run`: a bundle on the images of TFRecord files, measured, into a folder.

Writes into the output folder:
- eval.json: AP at IoU 0.5 per class and the mean (facekit.eval.voc over every detection
  above the low export threshold), the operating point per class the kits will run
  (facekit.eval.operating: max F1, or the lowest threshold reaching --min-precision), the
  kit's view there and at the fixed --deploy-threshold side by side (recall, precision,
  false positives per image, recall by face size; facekit.eval.metrics), the
  bundle's name and version, each record file's sha256, the speed (images/s), and, for
  WIDER FACE records scored against the evaluation tools' ground truth, the easy, medium
  and hard APs; with the split's WIDER annotation file, the faces the records leave out
  (the dataset's filters dropped them) are not scored (facekit.eval.dropped);
- predictions/<event>/<image>.txt in the WIDER format when every record's image/filename
  is a WIDER FACE path (`0--Parade/0_Parade_marchingband_1_465.jpg`);
- pr.png, samples.png and report.html (facekit.eval.report).
Python 3.6.
"""

import logging
import os
import re
import shutil
import time

import numpy as np

from facekit import files
from facekit.bonnet import models
from facekit.detector import decode
from facekit.eval import dropped, metrics, operating, records, report, runner

log = logging.getLogger(__name__)

EVAL_JSON = "eval.json"
PR_PNG = "pr.png"
SAMPLES_PNG = "samples.png"
REPORT_HTML = "report.html"
PREDICTIONS = "predictions"
DEPLOY_THRESHOLD = 0.5
# A WIDER FACE image path: <n>--<Event>/<image>.jpg
_WIDER_NAME = re.compile(r"^(\d+--[^/]+)/([^/]+)\.jpg$", re.I)


def wider_name(filename):
    """(event, image stem) of a WIDER FACE image path, or None."""
    match = _WIDER_NAME.match(filename.replace("\\", "/"))
    return (match.group(1), match.group(2)) if match else None


def write_wider_predictions(results, directory):
    """<directory>/<event>/<image>.txt per result: x y w h score in the image's pixels."""
    for result in results:
        event, stem = wider_name(result.record.filename)
        boxes = metrics.pixel_boxes(result.boxes, result.size)
        lines = [stem, str(len(boxes))]
        lines += ["{:.1f} {:.1f} {:.1f} {:.1f} {:.6f}".format(
            xmin, ymin, xmax - xmin, ymax - ymin, score)
            for (ymin, xmin, ymax, xmax), score in zip(boxes.tolist(), result.scores.tolist())]
        folder = os.path.join(directory, event)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, stem + ".txt"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


def wider_aps(prediction_dir, ground_truth_dir):
    """{"easy", "medium", "hard", "missing_prediction_files"} by facekit.eval.wider."""
    from facekit.eval import groundtruth, predictions, wider  # noqa: PLC0415 - scipy

    truth = groundtruth.read_ground_truth(ground_truth_dir)
    preds = predictions.read_predictions(prediction_dir, truth.images)
    result = wider.evaluate(truth, preds)
    doc = {s: result.aps[s] for s in groundtruth.SETTINGS}
    doc["missing_prediction_files"] = len(preds.missing)
    doc["ground_truth_images"] = len(truth.images)
    if len(preds.missing) == len(truth.images):
        log.warning("none of the %d images of the ground truth in %s is in the records: the "
                    "easy/medium/hard APs are 0; are the records WIDER FACE val?",
                    len(truth.images), ground_truth_dir)
    elif preds.missing:
        log.warning("%d of %d WIDER FACE val images are not in the records: counted as no "
                    "detections in the easy/medium/hard APs", len(preds.missing),
                    len(truth.images))
    return doc


def _samples(tf, paths, results, checked, count):
    """The contact sheet's entries: the chosen images' bytes read again from the records."""
    images, matches = checked
    chosen = report.pick_samples(matches, count)
    wanted = set(chosen)
    encoded = {}
    for record in records.read_records(tf, paths):
        if record.index in wanted:
            encoded[record.index] = record.encoded
            if len(encoded) == len(wanted):
                break
    return [(encoded[i], results[i].record.filename or "{}: record {}".format(
        results[i].record.path, results[i].record.number), images[i], matches[i])
        for i in chosen]


def evaluate_bundle(bundle_dir, pattern, output_dir, *,  # noqa: PLR0914 - one run, its figures
                    deploy_threshold=DEPLOY_THRESHOLD, rule=operating.MAX_F1,
                    min_precision=None,
                    score_threshold=runner.SCORE_THRESHOLD, wider_ground_truth=None,
                    wider_annotations=None, samples=report.SAMPLES, threads=2):
    """Run, measure and write everything (see the module docstring); returns the eval.json
    document. FacekitError on a bundle, record or image that cannot be used."""
    paths = records.record_files(pattern)
    kit_model, graph = runner.open_model(bundle_dir, threads=threads)
    tf = models.load_tensorflow()[0]
    try:
        started = time.monotonic()
        results = list(runner.run(kit_model, graph, records.read_records(tf, paths),
                                  score_threshold=score_threshold, workers=threads))
        seconds = time.monotonic() - started
    finally:
        graph.close()
    if not results:
        raise records.RecordError("--records {}: the files hold no record ({}): convert a "
                                  "data set first".format(pattern, ", ".join(paths)))
    dropped_doc = None
    if wider_annotations:
        results, dropped_doc = dropped.with_dropped_faces(results, wider_annotations)
        log.info("%d faces of %s that the records leave out are not scored",
                 dropped_doc["faces"], wider_annotations)
    labels = kit_model.labels
    classes = list(range(1, len(labels) + 1))
    unknown = sorted(set(np.concatenate([r.record.labels for r in results]).tolist())
                     - set(classes))
    if unknown:
        log.warning("the records have class labels %s that bundle %s does not know (it has "
                    "%d: %s): those boxes count for no class", unknown, kit_model.path,
                    len(labels), ", ".join(labels))
    doc, per_class = metrics.ap_figures(results, labels)
    points = operating.operating_points(per_class, labels, rule=rule,
                                        min_precision=min_precision, floor=score_threshold)
    for label, point in sorted(points["classes"].items()):
        if point["threshold"] is None:
            log.warning("class %s has no operating point (%s): the kits use %g for it",
                        label, point["reason"], deploy_threshold)
    fixed, (images, matches) = metrics.at_threshold(results, classes, deploy_threshold)
    thresholds = operating.class_thresholds(points, labels, deploy_threshold)
    kit, (point_images, point_matches) = metrics.at_threshold(results, classes, thresholds)
    kit["threshold"] = {labels[c - 1]: t for c, t in sorted(thresholds.items())}
    os.makedirs(output_dir, exist_ok=True)
    doc.update({
        "bundle": {"path": os.path.abspath(kit_model.path), "name": kit_model.name,
                   "version": kit_model.version},
        "records": records.checksums(paths),
        "images": len(results),
        "input_size": [graph.height, graph.width],
        "batch": runner.BATCH if graph.batchable else 1,
        "score_threshold": score_threshold,
        "iou_threshold": 0.5,
        "nms_iou": decode.IOU_THRESHOLD,
        "max_detections": decode.MAX_DETECTIONS,
        "operating_point": points,
        "at_operating_point": kit,
        "at_deploy_threshold": fixed,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(results) / seconds, 2) if seconds > 0 else None,
        "wider": None,
        "dropped_faces": dropped_doc,
        "files": {"pr": PR_PNG, "samples": SAMPLES_PNG, "report": REPORT_HTML,
                  "predictions": None},
    })
    folder = os.path.join(output_dir, PREDICTIONS)
    if os.path.isdir(folder):
        # An earlier run's files would be scored as this run's (or mislead beside it).
        shutil.rmtree(folder)
    if all(wider_name(r.record.filename) for r in results):
        write_wider_predictions(results, folder)
        doc["files"]["predictions"] = PREDICTIONS
        if wider_ground_truth:
            doc["wider"] = wider_aps(folder, wider_ground_truth)
    elif wider_ground_truth:
        log.warning("--wider-ground-truth ignored: the records' image/filename values are not "
                    "WIDER FACE paths (<n>--<Event>/<image>.jpg), e.g. %r",
                    next(r.record.filename for r in results if not wider_name(r.record.filename)))
    report.draw_pr(per_class, labels, [
        ("operating point", metrics.class_points(point_images, point_matches, classes)),
        ("score > {:g}".format(deploy_threshold), metrics.class_points(images, matches,
                                                                        classes))],
        os.path.join(output_dir, PR_PNG))
    report.draw_samples(_samples(tf, paths, results, (point_images, point_matches), samples),
                        os.path.join(output_dir, SAMPLES_PNG))
    report.write_html(doc, os.path.join(output_dir, REPORT_HTML))
    files.write_json(os.path.join(output_dir, EVAL_JSON), doc, indent=1)
    return doc
