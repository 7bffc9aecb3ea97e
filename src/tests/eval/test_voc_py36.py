"""facekit.eval.voc against the Object Detection API's own PascalDetectionEvaluator, on the
training host's stack (Python 3.6, TensorFlow 1.7.1; skipped without it, see
test_training_host_stack.py): the same detections give the same AP at IoU 0.5 per class
and the same mean, to 1e-4. The API's package (the controller venv's
tensorflow-object-detection-api) is put on the 3.6 PYTHONPATH, as in model/test_py36.py."""

import importlib.util
import json
import os
import subprocess

import numpy as np
import pytest
from helpers import REPO
from test_training_host_stack import PY36, PY36_VENV

pytestmark = pytest.mark.skipif(
    not os.path.exists(PY36),
    reason="no Python 3.6 env at {} (tools/py36-env.sh builds it when a Python 3.6 "
           "interpreter exists; set FACEKIT_PY36_VENV to use another)".format(PY36_VENV))

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "od_agreement.py")
CLASSES = [{"id": 1, "name": "face"}, {"id": 2, "name": "mask"}, {"id": 3, "name": "none"}]


def _box(rng, y, x, h, w):
    return [float(v) for v in np.clip([y, x, y + h, x + w], 0.0, 1.0)]


def _images(rng, count):
    """Faces of both classes, each found 0-2 times with jitter, plus stray boxes; class 3
    has detections but no ground truth. Scores continuous (no ties: the API breaks ties in
    reverse order, a stable sort in order)."""
    images = []
    for _ in range(count):
        gt_boxes, gt_labels, det_boxes, det_scores, det_labels = [], [], [], [], []
        for _ in range(rng.randint(0, 7)):
            y, x = rng.uniform(0, 0.8, 2)
            h, w = rng.uniform(0.02, 0.2, 2)
            label = int(rng.randint(1, 3))
            gt_boxes.append(_box(rng, y, x, h, w))
            gt_labels.append(label)
            for _ in range(rng.randint(0, 3)):
                dy, dx = rng.normal(0, 0.08 * h), rng.normal(0, 0.08 * w)
                det_boxes.append(_box(rng, y + dy, x + dx, h * rng.uniform(0.85, 1.15),
                                      w * rng.uniform(0.85, 1.15)))
                det_scores.append(float(rng.uniform(0.3, 1.0)))
                det_labels.append(label if rng.uniform() < 0.9 else 3 - label)
        for _ in range(rng.randint(0, 4)):
            y, x = rng.uniform(0, 0.9, 2)
            det_boxes.append(_box(rng, y, x, 0.1, 0.1))
            det_scores.append(float(rng.uniform(0.02, 0.8)))
            det_labels.append(int(rng.randint(1, 4)))
        images.append({"gt_boxes": gt_boxes, "gt_labels": gt_labels, "det_boxes": det_boxes,
                       "det_scores": det_scores, "det_labels": det_labels})
    return images


def _agreement(tmp_path, images):
    """facekit's and the API's figures of `images`, from the Python 3.6 stack."""
    od = tmp_path / "od"
    od.mkdir(parents=True)
    spec = importlib.util.find_spec("object_detection")
    if spec is None:
        pytest.skip("tensorflow-object-detection-api is not installed here (requirements.txt)")
    os.symlink(os.path.dirname(spec.origin), str(od / "object_detection"))
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"classes": CLASSES, "images": images}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "src"), str(od)]),
               TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    done = subprocess.run([PY36, SCRIPT, str(cases)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["facekit"], result["object_detection"]


def test_ap_agrees_with_the_object_detection_apis_pascal_evaluator(tmp_path):
    ours, theirs = _agreement(tmp_path, _images(np.random.RandomState(11), 300))
    assert ours["none"] is None and theirs["none"] is None
    for name in ("face", "mask", "mean"):
        assert 0.1 < theirs[name] < 0.9
        assert ours[name] == pytest.approx(theirs[name], abs=1e-4)


def test_difficult_boxes_score_as_the_pascal_evaluator_scores_them(tmp_path):
    """About 15% of the boxes difficult, with their detections: neither true nor false
    positives, not counted as objects, in both."""
    rng = np.random.RandomState(12)
    images = _images(rng, 300)
    flagged = 0
    for image in images:
        image["gt_difficult"] = [bool(rng.uniform() < 0.15) for _ in image["gt_labels"]]
        flagged += sum(image["gt_difficult"])
    assert flagged > 100
    ours, theirs = _agreement(tmp_path, images)
    plain, _ = _agreement(tmp_path / "plain", [dict(i, gt_difficult=None) for i in images])
    for name in ("face", "mask", "mean"):
        assert 0.1 < theirs[name] < 0.9
        assert ours[name] == pytest.approx(theirs[name], abs=1e-4)
        # The flags do change the figure: the test would see them ignored.
        assert abs(ours[name] - plain[name]) > 1e-3
