"""Synthetic WIDER FACE ground truth (.mat files) and prediction sets, for the eval tests and
benchmarks/bench_eval.py.

Predictions are built around real (or synthetic) faces: a found face gets a box jittered
in position and size, duplicates and false positives are added, scores loosely follow the
box's quality plus noise. Deterministic from a seed.
"""

import os

import numpy as np


def _cell(items):
    """A MATLAB cell column (n, 1) of objects, as savemat writes cell arrays."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def write_ground_truth(directory, events):
    """Write the four .mat files. `events`: [(event, [(image, boxes (n, 4), {setting: 1-based
    indices}), ...]), ...]."""
    from scipy.io import savemat  # noqa: PLC0415

    os.makedirs(directory, exist_ok=True)
    event_list = _cell([np.array([name]) for name, _ in events])
    file_list = _cell([_cell([np.array([img]) for img, _, _ in images]) for _, images in events])
    boxes = _cell([_cell([np.asarray(b, dtype=np.int32).reshape(-1, 4) for _, b, _ in images])
                   for _, images in events])
    savemat(os.path.join(directory, "wider_face_val.mat"),
            {"event_list": event_list, "file_list": file_list, "face_bbx_list": boxes})
    for setting in ("easy", "medium", "hard"):
        gt_list = _cell([_cell([np.asarray(keep.get(setting, []), dtype=np.uint16).reshape(-1, 1)
                                for _, _, keep in images]) for _, images in events])
        savemat(os.path.join(directory, "wider_{}_val.mat".format(setting)),
                {"event_list": event_list, "file_list": file_list, "gt_list": gt_list})


def random_ground_truth(rng, events=4, images=(2, 6), faces=(0, 12)):
    """A small ground truth like WIDER's: faces of 4-200 px, hard >= medium >= easy."""
    out = []
    for e in range(events):
        name = "{}--Event{}".format(e, e)
        imgs = []
        for i in range(rng.integers(*images, endpoint=True)):
            n = int(rng.integers(*faces, endpoint=True))
            size = np.exp(rng.uniform(np.log(4), np.log(200), n))
            boxes = np.stack([rng.integers(0, 800, n), rng.integers(0, 600, n),
                              np.round(size), np.round(size * rng.uniform(0.9, 1.4, n))],
                             axis=1).astype(np.int64)
            order = np.argsort(-size)
            keep = {"hard": sorted(int(k) + 1 for k in order[size[order] >= 8]),
                    "medium": sorted(int(k) + 1 for k in order[size[order] >= 20]),
                    "easy": sorted(int(k) + 1 for k in order[size[order] >= 50])}
            imgs.append(("{}_Event_{}_{}".format(e, e, i), boxes, keep))
        out.append((name, imgs))
    # WIDER's edge cases, always present: an image without faces, and one whose faces are
    # all too small for any setting (every prediction on them is ignored).
    out[0][1].append(("0_Event_0_noface", np.zeros((0, 4), dtype=np.int64), {}))
    out[0][1].append(("0_Event_0_tiny", np.array([[10, 10, 5, 6], [40, 12, 6, 6]]), {}))
    return out


def predictions_for(rng, gt_boxes, *, recall=0.8, false_positives=3.0, duplicates=0.2,
                    sort=True, score_scale=1.0):
    """(n, 5) x y w h score rows for one image with faces `gt_boxes` (n, 4) x y w h."""
    rows = []
    for x, y, w, h in np.asarray(gt_boxes, dtype=np.float64):
        copies = (rng.random() < recall) + (rng.random() < duplicates)
        for _ in range(copies):
            jitter = rng.normal(0, 0.15, 4)
            bw, bh = max(1.0, w * np.exp(jitter[2])), max(1.0, h * np.exp(jitter[3]))
            quality = float(np.exp(-np.abs(jitter).sum()))
            score = np.clip(0.6 * quality + 0.4 * rng.random() * min(1.0, w / 40.0), 0.0, 1.0)
            rows.append([round(x + jitter[0] * w, 1), round(y + jitter[1] * h, 1),
                         round(bw, 1), round(bh, 1), round(score * score_scale, 5)])
    for _ in range(rng.poisson(false_positives)):
        s = float(np.exp(rng.uniform(np.log(6), np.log(150))))
        rows.append([round(rng.uniform(0, 900), 1), round(rng.uniform(0, 700), 1),
                     round(s, 1), round(s * 1.2, 1), round(rng.random() * 0.5 * score_scale, 5)])
    rows = np.array(rows, dtype=np.float64).reshape(-1, 5)
    if len(rows):
        rows = rows[np.argsort(-rows[:, 4], kind="stable")] if sort else \
            rows[rng.permutation(len(rows))]
    return rows


def format_prediction_file(image, rows):
    lines = [image, str(len(rows))]
    lines.extend("{} {} {} {} {}".format(*(repr(float(v)) for v in row)) for row in rows)
    return "\n".join(lines) + "\n"


def write_predictions(directory, images_rows, skip=()):
    """Write `<directory>/<event>/<image>.txt` for each ((event, image), rows) but `skip`."""
    for (event, image), rows in images_rows:
        if (event, image) in skip:
            continue
        folder = os.path.join(directory, event)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, image + ".txt"), "w") as fh:
            fh.write(format_prediction_file(image, rows))


def prediction_set(rng, truth, **kwargs):
    """[((event, image), rows)] for every image of a facekit GroundTruth."""
    out = []
    for i, key in enumerate(truth.images):
        boxes = truth.boxes[truth.face_start[i]:truth.face_start[i + 1]]
        out.append((key, predictions_for(rng, boxes, **kwargs)))
    return out
