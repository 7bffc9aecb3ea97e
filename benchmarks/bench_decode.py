"""Benchmark the Vision Kit's SSD output decoder against a plain per-anchor Python loop.

Not part of pass/fail: prints a table of per-frame times and ratios. See README.md here.

The anchors are the 1278 of the embedded 256x256 config (facekit.model.anchors, no
pipeline config needed). Frames are built deterministically from --seed: a realistic
frame (a few faces, each with a handful of overlapping anchors above the score
threshold), a crowded one (~180 candidates, the stress case for NMS), and the sparse
form of both (what the bonnet sends with a thresholding config). Inputs are given as
the kit receives them, flat lists of Python floats as from the FloatTensors' repeated
`data` fields (the dense frames are also timed as float32 arrays). Before timing,
every decoder's detections are checked against the plain loop's; a mismatch stops
the run. Runs on Python 3.5+ with numpy only, like the decoder.
"""

import argparse
import math
import os
import platform
import statistics
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import numpy as np  # noqa: E402

from facekit.detector import decode  # noqa: E402
from facekit.model.anchors import model_anchors  # noqa: E402
from facekit.model.config import EMBEDDED_SSD_256  # noqa: E402

SCORE_THRESHOLD = 0.5
IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100
TOLERANCE = 1e-6


# ---------------------------------------------------------------- the plain loop

def plain_sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def plain_box(encoding, anchor):
    """The box coder's decode, scales 10/10/5/5, clamped to [0, 1]."""
    ty, tx, th, tw = encoding
    ymin, xmin, ymax, xmax = anchor
    ha, wa = ymax - ymin, xmax - xmin
    yc = ty / 10.0 * ha + ymin + ha / 2.0
    xc = tx / 10.0 * wa + xmin + wa / 2.0
    h, w = math.exp(th / 5.0) * ha, math.exp(tw / 5.0) * wa
    return [min(max(v, 0.0), 1.0)
            for v in (yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0)]


def plain_iou(a, b):
    inter_h = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    inter_w = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = inter_h * inter_w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0.0 else 0.0


def plain_nms(candidates):
    """Greedy NMS over [(score, class_id, box)]: [(class_id, score, box)] best first."""
    candidates.sort(key=lambda c: -c[0])
    kept = []
    for score, class_id, box in candidates:
        if len(kept) == MAX_DETECTIONS:
            break
        if all(plain_iou(box, other[2]) <= IOU_THRESHOLD for other in kept):
            kept.append((class_id, score, box))
    return kept


def plain_dense(encodings, logits, anchors):
    """Flat encodings (4 per anchor) and logits (1 + C per anchor), one anchor at a time."""
    width = len(logits) // len(anchors)
    candidates = []
    for i, anchor in enumerate(anchors):
        base = i * width
        best_class, best_logit = 1, logits[base + 1]
        for c in range(2, width):
            if logits[base + c] > best_logit:
                best_class, best_logit = c, logits[base + c]
        score = plain_sigmoid(best_logit)
        if score > SCORE_THRESHOLD:
            candidates.append((score, best_class,
                               plain_box(encodings[4 * i:4 * i + 4], anchor)))
    return plain_nms(candidates)


def plain_sparse(hits, boxes, anchors):
    """(anchor, class, logit) hits and {anchor: encoding}, one hit at a time."""
    best = {}
    for anchor, class_id, logit in hits:
        if class_id < 1:
            continue
        current = best.get(anchor)
        if current is None or logit > current[1] or (logit == current[1]
                                                      and class_id < current[0]):
            best[anchor] = (class_id, logit)
    candidates = []
    for anchor in sorted(best):
        class_id, logit = best[anchor]
        score = plain_sigmoid(logit)
        if score > SCORE_THRESHOLD:
            candidates.append((score, class_id, plain_box(boxes[anchor], anchors[anchor])))
    return plain_nms(candidates)


# ---------------------------------------------------------------- frames

def encode_box(box, anchor):
    """The box coder's encode: (ty, tx, th, tw) of box relative to anchor."""
    ymin, xmin, ymax, xmax = box
    aymin, axmin, aymax, axmax = anchor
    ha, wa = aymax - aymin, axmax - axmin
    return ((ymin + ymax - aymin - aymax) / 2.0 / ha * 10.0,
            (xmin + xmax - axmin - axmax) / 2.0 / wa * 10.0,
            math.log((ymax - ymin) / ha) * 5.0,
            math.log((xmax - xmin) / wa) * 5.0)


def ious(table, box):
    """IoU of every anchor (clipped to the image) with box."""
    clipped = np.clip(table, 0.0, 1.0)
    inter_h = np.maximum(np.minimum(clipped[:, 2], box[2]) - np.maximum(clipped[:, 0], box[0]),
                         0.0)
    inter_w = np.maximum(np.minimum(clipped[:, 3], box[3]) - np.maximum(clipped[:, 1], box[1]),
                         0.0)
    inter = inter_h * inter_w
    areas = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    return inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)


class Frame(object):
    """One frame's tensors in every input form the benchmark times."""

    def __init__(self, name, encodings, logits, faces):
        self.name = name
        self.faces = faces
        self.encodings = encodings.astype(np.float32)   # what the bonnet computes
        self.logits = logits.astype(np.float32)
        # FloatTensor.data: float32 values as Python floats, flat.
        self.encodings_data = self.encodings.ravel().tolist()
        self.logits_data = self.logits.ravel().tolist()
        # Thresholding config on concat_1 (background ignored) + from_sparse_tensor on
        # concat: the hits above the logit threshold and the box block of their anchors.
        limit = math.log(SCORE_THRESHOLD / (1.0 - SCORE_THRESHOLD))
        self.hits = [(int(a), int(c) + 1, float(self.logits[a, c + 1]))
                     for a, c in zip(*np.nonzero(self.logits[:, 1:] > limit))]
        self.boxes = dict((a, tuple(self.encodings_data[4 * a:4 * a + 4]))
                          for a, _, _ in self.hits)

    @property
    def candidates(self):
        return len(set(a for a, _, _ in self.hits))


def build_frame(name, table, rng, grid, faces, per_face, size):
    """faces in distinct cells of a grid x grid layout, per_face anchors above the
    threshold each (those that overlap the face most), every other anchor below."""
    count = table.shape[0]
    logits = np.empty((count, 2))
    logits[:, 0] = rng.normal(2.0, 1.0, count)                      # background
    logits[:, 1] = np.minimum(rng.normal(-4.0, 1.5, count), -0.05)  # score < 0.49
    encodings = rng.normal(0.0, 1.0, (count, 4))
    taken = np.zeros(count, dtype=bool)
    cell = 1.0 / grid
    boxes = []
    for index in sorted(rng.permutation(grid * grid)[:faces]):
        row, col = divmod(int(index), grid)
        width = cell * rng.uniform(*size)
        height = min(width * rng.uniform(1.1, 1.35), cell * 0.95)
        ymin = row * cell + rng.uniform(0.0, cell - height)
        xmin = col * cell + rng.uniform(0.0, cell - width)
        face = (ymin, xmin, ymin + height, xmin + width)
        boxes.append(face)
        overlap = ious(table, face)
        overlap[taken] = -1.0
        for anchor in np.argsort(-overlap, kind="mergesort")[:per_face]:
            taken[anchor] = True
            logits[anchor, 1] = rng.uniform(0.2, 4.0)                 # score 0.55-0.98
            jitter = rng.normal(0.0, 0.04, 4) * (height, width, height, width)
            seen = (face[0] + jitter[0], face[1] + jitter[1],
                    face[2] + jitter[2], face[3] + jitter[3])
            encodings[anchor] = encode_box(seen, table[anchor].astype(np.float64))
    return Frame(name, encodings, logits, boxes)


# ---------------------------------------------------------------- checks and timing

def as_tuples(detections):
    """[(class_id, score, ymin, xmin, ymax, xmax)] of decoder Detections."""
    return [(d.class_id, d.score, d.ymin, d.xmin, d.ymax, d.xmax) for d in detections]


def plain_tuples(kept):
    return [(class_id, score) + tuple(box) for class_id, score, box in kept]


def check_same(label, got, expected):
    problem = None
    if len(got) != len(expected):
        problem = "{} detections, the plain loop has {}".format(len(got), len(expected))
    else:
        for n, (g, e) in enumerate(zip(got, expected)):
            if g[0] != e[0] or max(abs(a - b) for a, b in zip(g[1:], e[1:])) > TOLERANCE:
                problem = "detection {} is {}, the plain loop's is {}".format(n, g, e)
                break
    if problem:
        raise SystemExit("bench_decode: {}: the decoder and the plain loop disagree: {}".format(
            label, problem))


def measure(fn, repeat, min_time):
    """(median, best) seconds per call: `repeat` runs of a loop count that lasts at
    least min_time, as timeit does (garbage collection off while timing)."""
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= min_time:
            break
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))
    runs = [elapsed] + timer.repeat(repeat=max(repeat - 1, 0), number=number)
    per_call = [t / number for t in runs]
    return statistics.median(per_call), min(per_call)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Per-frame decode time of facekit.detector.decode against a plain "
                    "per-anchor Python loop (1278 anchors of the embedded 256x256 config). "
                    "Prints a table; no pass/fail.")
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed runs per variant; median and best are reported (default 7)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic frames (default 0)")
    parser.add_argument("--min-time", type=float, default=0.2, metavar="SECONDS",
                        help="each timed run loops for at least this long (default 0.2)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.min_time <= 0:
        parser.error("--repeat must be >= 1 and --min-time > 0")

    table = model_anchors(EMBEDDED_SSD_256)[0]       # float32 [1278, 4], as load_anchors gives
    anchor_rows = table.astype(np.float64).tolist()  # the plain loop's anchors
    rng = np.random.RandomState(args.seed)
    frames = [
        build_frame("realistic", table, rng, grid=3, faces=3, per_face=5, size=(0.45, 0.8)),
        build_frame("crowded", table, rng, grid=6, faces=36, per_face=5, size=(0.55, 0.8)),
    ]
    options = dict(score_threshold=SCORE_THRESHOLD, iou_threshold=IOU_THRESHOLD,
                   max_detections=MAX_DETECTIONS)

    print("Python {} ({}), numpy {}, {} anchors, {} run(s) of >= {} s per variant".format(
        platform.python_version(), platform.machine(), np.__version__, table.shape[0],
        args.repeat, args.min_time))
    header = ("frame", "decoder", "input", "cands", "dets", "median us", "best us",
              "x plain (median)", "x plain (best)")
    rows = []
    for frame in frames:
        variants = [
            ("dense", "plain loop", "lists",
             lambda f=frame: plain_dense(f.encodings_data, f.logits_data, anchor_rows)),
            ("dense", "decode_dense", "lists",
             lambda f=frame: decode.decode_dense(f.encodings_data, f.logits_data, table,
                                                 **options)),
            ("dense", "decode_dense", "float32 arrays",
             lambda f=frame: decode.decode_dense(f.encodings, f.logits, table, **options)),
            ("sparse", "plain loop", "hits + boxes",
             lambda f=frame: plain_sparse(f.hits, f.boxes, anchor_rows)),
            ("sparse", "decode_sparse", "hits + boxes",
             lambda f=frame: decode.decode_sparse(f.hits, f.boxes, table, **options)),
        ]
        expected = plain_tuples(variants[0][3]())
        baseline = {}
        for mode, name, form, fn in variants:
            label = "{} {} ({}, {})".format(frame.name, mode, name, form)
            result = fn()
            got = plain_tuples(result) if name == "plain loop" else as_tuples(result)
            check_same(label, got, expected)
            median, best = measure(fn, args.repeat, args.min_time)
            if name == "plain loop":
                baseline[mode] = (median, best)
            plain_median, plain_best = baseline[mode]
            rows.append(("{} {}".format(frame.name, mode), name, form, str(frame.candidates),
                         str(len(got)), "{:.1f}".format(median * 1e6),
                         "{:.1f}".format(best * 1e6),
                         "{:.1f}x".format(plain_median / median),
                         "{:.1f}x".format(plain_best / best)))
        # Sparse mode against what the kit would do without it: the dense plain loop.
        dense_plain = baseline["dense"]
        sparse = rows[-1]
        print_later = "{}: decode_sparse is {:.1f}x the dense plain loop (median)".format(
            frame.name, dense_plain[0] / (float(sparse[5]) * 1e-6))
        frame.summary = print_later

    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = "| " + " | ".join("{:<%d}" % w for w in widths[:3]) + " | " + \
        " | ".join("{:>%d}" % w for w in widths[3:]) + " |"
    print()
    print(line.format(*header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line.format(*row))
    print()
    for frame in frames:
        print("{}: {} faces, {} candidate anchors above score {}".format(
            frame.name, len(frame.faces), frame.candidates, SCORE_THRESHOLD))
        print(frame.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
