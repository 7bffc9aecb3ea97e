"""Run on the training host's stack (Python 3.6, TensorFlow 1.7.1, numpy 1.16) by
test_voc_py36.py: the AP at IoU 0.5 per class and the mean of the detections in the JSON
file argv[1], by facekit.eval.voc and by the Object Detection API's own
PascalDetectionEvaluator; prints both as one JSON object.

The file: {"classes": [{"id", "name"}], "images": [{"gt_boxes", "gt_labels", "det_boxes",
"det_scores", "det_labels", and optionally "gt_difficult"}]}, boxes as normalised (ymin,
xmin, ymax, xmax); difficult boxes go to the API as groundtruth_difficult.
"""

import json
import math
import sys

import numpy as np
from object_detection.core import standard_fields as fields
from object_detection.utils import object_detection_evaluation

from facekit.eval import voc


def _no_unicode(value, encoding):
    raise TypeError("already text")


def _clean(figures):
    """NaN (a class without ground truth) is not JSON: None."""
    return {k: None if math.isnan(v) else v for k, v in figures.items()}


def main(path):
    with open(path) as fh:
        doc = json.load(fh)
    classes = doc["classes"]
    images = [voc.ImageDetections(np.array(i["gt_boxes"]).reshape(-1, 4), i["gt_labels"],
                                  np.array(i["det_boxes"]).reshape(-1, 4), i["det_scores"],
                                  i["det_labels"], i.get("gt_difficult"))
              for i in doc["images"]]
    results, _ = voc.evaluate(images, [c["id"] for c in classes])
    ours = {c["name"]: results[c["id"]].ap for c in classes}
    ours["mean"] = voc.mean_ap(results)

    # The snapshot names its metrics with Python 2's unicode(), which Python 3 lacks (a
    # NameError, where its except clause expects a TypeError for a str): give it one
    # that raises that TypeError, so the name stays as it is. Its numbers are untouched.
    object_detection_evaluation.unicode = _no_unicode
    evaluator = object_detection_evaluation.PascalDetectionEvaluator(classes)
    inputs, outputs = fields.InputDataFields, fields.DetectionResultFields
    for number, image in enumerate(images):
        truth = {
            inputs.groundtruth_boxes: np.asarray(image.gt_boxes, np.float32).reshape(-1, 4),
            inputs.groundtruth_classes: np.asarray(image.gt_labels, np.int32).reshape(-1)}
        if image.gt_difficult is not None:
            truth[inputs.groundtruth_difficult] = np.asarray(image.gt_difficult, bool)
        evaluator.add_single_ground_truth_image_info(number, truth)
        evaluator.add_single_detected_image_info(number, {
            outputs.detection_boxes: np.asarray(image.det_boxes, np.float32).reshape(-1, 4),
            outputs.detection_scores: np.asarray(image.det_scores, np.float32).reshape(-1),
            outputs.detection_classes: np.asarray(image.det_labels, np.int32).reshape(-1)})
    metrics = evaluator.evaluate()
    # Names come out as "/b'face'" on Python 3 (the snapshot encodes them to bytes).
    prefix = "PascalBoxes_PerformanceByCategory/AP@0.5IOU/"
    theirs = {}
    for key, value in metrics.items():
        if key.startswith(prefix):
            name = key[len(prefix):]
            theirs[name[2:-1] if name.startswith("b'") else name] = float(value)
    theirs["mean"] = float(metrics["PascalBoxes_Precision/mAP@0.5IOU"])
    print(json.dumps({"facekit": _clean(ours), "object_detection": _clean(theirs)}))


if __name__ == "__main__":
    main(sys.argv[1])
