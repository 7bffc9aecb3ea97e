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
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src", "tests", "detector"))

import numpy as np  # noqa: E402

try:  # only for the "protobuf data" input form
    from google.protobuf import __version__ as PROTOBUF_VERSION
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.internal import api_implementation
except ImportError:
    PROTOBUF_VERSION = None

from decode_reference import ref_decode_box, ref_iou, ref_sigmoid  # noqa: E402

from facekit.detector import decode, wire  # noqa: E402
from facekit.model.anchors import model_anchors  # noqa: E402
from facekit.model.config import EMBEDDED_SSD_256  # noqa: E402

SCORE_THRESHOLD = 0.5
IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100
TOLERANCE = 1e-6


# ---------------------------------------------------------------- the plain loop

# The box coder, the sigmoid and the IoU of the decoder's tests' own per-anchor reference.
plain_sigmoid, plain_box, plain_iou = ref_sigmoid, ref_decode_box, ref_iou


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


def build_frame(name, table, rng, *, grid, faces, per_face, size):
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

def protobuf_tensor(values):
    """A protobuf message whose repeated float `data` holds values (as AIY's FloatTensor,
    parsed from its bytes as the kit receives it), or None without a usable protobuf. The
    class is built from a descriptor, so AIY's generated module is not needed (it does not
    import under protobuf >= 4)."""
    if PROTOBUF_VERSION is None:
        return None
    try:
        # proto3, as AIY's protocol: the repeated floats are packed on the wire.
        proto = descriptor_pb2.FileDescriptorProto(name="bench_decode.proto",
                                                   package="bench_decode", syntax="proto3")
        message = proto.message_type.add(name="FloatTensor")
        message.field.add(name="data", number=1,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
                          type=descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName("bench_decode.FloatTensor")
        if hasattr(message_factory, "GetMessageClass"):
            cls = message_factory.GetMessageClass(descriptor)
        else:
            cls = message_factory.MessageFactory(pool).GetPrototype(descriptor)
        tensor = cls()
        tensor.data.extend(values)
        # As received: parsed from the bytes the bonnet sends.
        return cls.FromString(tensor.SerializeToString())
    except Exception:  # noqa: BLE001 - any protobuf trouble only skips that input form
        return None


def protobuf_implementation():
    if PROTOBUF_VERSION is None:
        return "no protobuf"
    return "protobuf {} ({})".format(PROTOBUF_VERSION, api_implementation.Type())


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


def loops_for(fn, min_time):
    """How many calls of fn last at least min_time (as timeit's autorange)."""
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= min_time:
            return number
        number = max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2))


def measure_interleaved(fns, repeat, min_time):
    """Seconds per call of each fn, one list per fn: `repeat` rounds, each timing every
    fn once (a loop lasting at least min_time, garbage collection off, as timeit), so a
    plain loop and a decoder in one round share the machine's load of that moment."""
    timers = [(timeit.Timer(fn), loops_for(fn, min_time)) for fn in fns]
    per_call = [[] for _ in fns]
    for _ in range(repeat):
        for times, (timer, number) in zip(per_call, timers):
            times.append(timer.timeit(number) / number)
    return per_call


def variants(frame, table, anchor_rows, options):
    """(mode, decoder, input form, baseline form, function) for one frame. The ratio of a
    decoder is taken to the plain loop of its baseline form, in the same run."""
    dense = frame.encodings_data, frame.logits_data
    rows = [
        ("dense", "plain loop", "lists", None, lambda: plain_dense(dense[0], dense[1],
                                                                   anchor_rows)),
        ("dense", "decode_dense", "lists", "lists",
         lambda: decode.decode_dense(dense[0], dense[1], table, **options)),
        ("dense", "decode_dense", "float32 arrays", "lists",
         lambda: decode.decode_dense(frame.encodings, frame.logits, table, **options)),
    ]
    pb_encodings = protobuf_tensor(frame.encodings_data)
    pb_logits = protobuf_tensor(frame.logits_data)
    if pb_encodings is not None and pb_logits is not None:
        # From the messages, as the detector: the plain loop reads their `data`, the
        # decoder what tensor_values gives (an array, or `data` itself).
        rows += [
            ("dense", "plain loop", "protobuf data", None,
             lambda: plain_dense(pb_encodings.data, pb_logits.data, anchor_rows)),
            ("dense", "decode_dense", "protobuf data", "protobuf data",
             lambda: decode.decode_dense(wire.tensor_values(pb_encodings),
                                         wire.tensor_values(pb_logits), table, **options)),
        ]
    rows += [
        ("sparse", "plain loop", "hits + boxes", None,
         lambda: plain_sparse(frame.hits, frame.boxes, anchor_rows)),
        ("sparse", "decode_sparse", "hits + boxes", "hits + boxes",
         lambda: decode.decode_sparse(frame.hits, frame.boxes, table, **options)),
    ]
    return rows


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    cells = ["{:<%d}" % w for w in widths[:3]] + ["{:>%d}" % w for w in widths[3:]]
    line = "| " + " | ".join(cells) + " |"
    print(line.format(*header))
    print("|" + "|".join(("-" * (w + 1) + ":") if n >= 3 else "-" * (w + 2)
                         for n, w in enumerate(widths)) + "|")
    for row in rows:
        print(line.format(*row))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Per-frame decode time of facekit.detector.decode against a plain "
                    "per-anchor Python loop, in the same run, on synthetic frames of the "
                    "1278 anchors of the embedded 256x256 config. Prints a table; no "
                    "pass/fail (a decoder that disagrees with the plain loop is an error).")
    parser.add_argument("--repeat", type=int, default=7,
                        help="rounds; each times every variant of a frame once, and the "
                             "median and best are reported (default 7)")
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

    print("Python {} on {}, numpy {}, {}; {} anchors; {} round(s), >= {} s per variant "
          "and round, seed {}".format(platform.python_version(), platform.machine(),
                                    np.__version__, protobuf_implementation(),
                                    table.shape[0], args.repeat, args.min_time, args.seed))
    header = ("frame", "decoder", "input", "cands", "dets", "median us", "best us",
              "x plain (median)", "x plain (best)")
    rows = []
    summary = []
    for frame in frames:
        runs = variants(frame, table, anchor_rows, options)
        reference = None
        results = []
        for mode, name, form, baseline, fn in runs:
            result = fn()
            got = plain_tuples(result) if baseline is None else as_tuples(result)
            # Every variant, the plain ones included, against the first: the plain loop.
            reference = got if reference is None else reference
            check_same("{} {} ({}, {})".format(frame.name, mode, name, form), got, reference)
            results.append(got)
        times = measure_interleaved([run[4] for run in runs], args.repeat, args.min_time)
        plain = dict(((mode, form), t) for (mode, _, form, baseline, _), t in zip(runs, times)
                     if baseline is None)
        for (mode, name, form, baseline, _), got, t in zip(runs, results, times):
            ratios = ("", "")
            if baseline is not None:
                base = plain[(mode, baseline)]
                # Median of the rounds' ratios; best against best.
                ratios = ("{:.1f}x".format(statistics.median(b / d for b, d in zip(base, t))),
                          "{:.1f}x".format(min(base) / min(t)))
            rows.append((frame.name + " " + mode, name, form, frame.candidates, len(got),
                         "{:.1f}".format(statistics.median(t) * 1e6),
                         "{:.1f}".format(min(t) * 1e6)) + ratios)
            if name == "decode_sparse":
                dense_plain = plain[("dense", "lists")]
                summary.append("{}: {} faces, {} candidates, {} detections; decode_sparse "
                               "is {:.1f}x the dense plain loop on lists (median)".format(
                                   frame.name, len(frame.faces), frame.candidates, len(got),
                                   statistics.median(b / d for b, d in zip(dense_plain, t))))
    print()
    print_table(header, rows)
    print()
    for line in summary:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
