"""The WIDER FACE evaluation tools' ground truth, read into flat arrays.

`wider_face_val.mat` holds, per event, the image names and each image's face boxes
(x, y, w, h in pixels); `wider_{easy,medium,hard}_val.mat` hold, per event and image, the
1-based indices of the faces that setting counts. The faces a setting does not count are
still matched against (a prediction on one is ignored, not a false positive).

Everything is flattened once: images in the files' order (event by event), faces in image
order, so the scorer can work on whole arrays instead of nested cell arrays.
"""

import collections
import logging
import os

import numpy as np

from facekit.eval.errors import GroundTruthError

LOG = logging.getLogger(__name__)

SETTINGS = ("easy", "medium", "hard")
BOXES_FILE = "wider_face_val.mat"
SETTING_FILE = "wider_{}_val.mat"

# events: event folder names; images: (event, image name) per image; boxes: (faces, 4)
# float64 x, y, w, h; face_start: (images + 1,) offsets of each image's faces in boxes;
# kept: setting -> (faces,) bool, the faces the setting counts; face_counts: setting -> the
# number of faces it counts (the recall's denominator, as the tools count them).
GroundTruth = collections.namedtuple(
    "GroundTruth", "events images boxes face_start kept face_counts")


def _loadmat(path):
    try:
        from scipy.io import loadmat  # noqa: PLC0415
    except ImportError:
        raise GroundTruthError(
            "reading {} needs scipy (scipy.io.loadmat), which is not installed: "
            "pip install 'facekit[eval]' (or scipy)".format(path)) from None
    if not os.path.isfile(path):
        raise GroundTruthError(
            "{} does not exist: --ground-truth must be the folder of the WIDER FACE "
            "evaluation tools' {} and wider_{{easy,medium,hard}}_val.mat "
            "(eval_tools.zip, ground_truth/)".format(path, BOXES_FILE))
    try:
        return loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError...
        raise GroundTruthError("{} is not a readable MATLAB file: {}".format(path, exc)) from None


def _field(mat, name, path):
    if name not in mat:
        raise GroundTruthError("{} has no '{}' variable: is it one of the WIDER FACE "
                               "evaluation tools' ground-truth files?".format(path, name))
    return mat[name]


def _text(cell):
    """A MATLAB char cell as loadmat gives it (a 1-element array of str) -> str."""
    value = np.asarray(cell).ravel()
    return str(value[0]) if value.size else ""


def read_ground_truth(directory):
    """Read the four .mat files of `directory` into a GroundTruth (GroundTruthError if not)."""
    boxes_path = os.path.join(directory, BOXES_FILE)
    mat = _loadmat(boxes_path)
    event_list = _field(mat, "event_list", boxes_path)
    file_list = _field(mat, "file_list", boxes_path)
    box_list = _field(mat, "face_bbx_list", boxes_path)
    if not len(event_list) == len(file_list) == len(box_list):
        raise GroundTruthError("{}: event_list, file_list and face_bbx_list have {}, {} and {} "
                               "events".format(boxes_path, len(event_list), len(file_list),
                                               len(box_list)))
    events, event_sizes, images, boxes, counts = [], [], [], [], []
    for e in range(len(event_list)):
        event = _text(event_list[e][0])
        names = file_list[e][0].ravel()
        per_image = box_list[e][0].ravel()
        if len(names) != len(per_image):
            raise GroundTruthError("{}: event {} lists {} images and {} box lists".format(
                boxes_path, event, len(names), len(per_image)))
        events.append(event)
        event_sizes.append(len(names))
        for name, image_boxes in zip(names, per_image):
            array = np.asarray(image_boxes, dtype=np.float64).reshape(-1, 4)
            images.append((event, _text(name)))
            boxes.append(array)
            counts.append(len(array))
    face_start = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum(counts, out=face_start[1:])
    all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    kept, face_counts = {}, {}
    for setting in SETTINGS:
        kept[setting], face_counts[setting] = _read_setting(
            os.path.join(directory, SETTING_FILE.format(setting)), events, event_sizes, counts,
            face_start)
    LOG.debug("ground truth %s: %d events, %d images, %d faces", directory, len(events),
              len(images), len(all_boxes))
    return GroundTruth(events, images, all_boxes, face_start, kept, face_counts)


def _read_setting(path, events, event_sizes, counts, face_start):
    gt_list = _field(_loadmat(path), "gt_list", path)
    if len(gt_list) != len(events):
        raise GroundTruthError("{}: gt_list has {} events, {} has {}".format(
            path, len(gt_list), BOXES_FILE, len(events)))
    kept = np.zeros(int(face_start[-1]), dtype=bool)
    total = 0
    image = 0
    for e, event in enumerate(events):
        per_image = gt_list[e][0].ravel()
        if len(per_image) != event_sizes[e]:
            raise GroundTruthError("{}: event {} has {} images, {} lists {}".format(
                path, event, len(per_image), BOXES_FILE, event_sizes[e]))
        for keep in per_image:
            index = np.asarray(keep, dtype=np.int64).ravel()
            if index.size and (index.min() < 1 or index.max() > counts[image]):
                raise GroundTruthError(
                    "{}: event {} image {} keeps face {} of {} (indices are 1-based)".format(
                        path, event, image + 1, int(index.max()), counts[image]))
            kept[face_start[image] + index - 1] = True
            # The tools divide recall by the number of listed indices; so does this.
            total += index.size
            image += 1
    return kept, total
