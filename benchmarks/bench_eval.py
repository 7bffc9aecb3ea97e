"""Benchmark `facekit eval wider`'s scorer (facekit.eval.wider) against a plain Python loop of
the same protocol, on the full WIDER FACE val ground truth with a synthetic prediction set.

Not part of pass/fail: prints the times and the ratio. See README.md here.

The plain loop is the tests' reference (src/tests/eval/wider_plain.py); the prediction set is
built around the real faces by src/tests/eval/wider_synthetic.py (deterministic from --seed).
Before timing, both must give the same APs within 1e-4, or the script stops with an error.
"""

import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, "src"), os.path.join(REPO, "src", "tests", "eval")]

import numpy as np  # noqa: E402
import wider_plain  # noqa: E402
import wider_synthetic  # noqa: E402

from facekit.eval import groundtruth, predictions, wider  # noqa: E402

DEFAULT_GT = os.environ.get("FACEKIT_WIDER_EVAL_GT") or os.path.join(
    os.path.dirname(REPO), "shared", "datasets", "wider_face_eval")
TOLERANCE = 1e-4


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ground-truth", metavar="DIR", default=DEFAULT_GT,
                        help="the evaluation tools' four .mat files (default: "
                             "$FACEKIT_WIDER_EVAL_GT or ../shared/datasets/wider_face_eval "
                             "beside the repository: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="prediction set seed (default 1)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of the vectorised scorer; the best is kept, as timeit does "
                             "(default 5); the plain loop runs once")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="predictions for every Nth image only (the rest have none), "
                             "for a quicker run (default 1: all 3,226)")
    return parser.parse_args(argv)


def main(argv=None):
    args = _arguments(argv)
    if not os.path.isfile(os.path.join(args.ground_truth, "wider_face_val.mat")):
        sys.exit("bench_eval: no WIDER FACE ground truth at {} (--ground-truth DIR or "
                 "FACEKIT_WIDER_EVAL_GT)".format(args.ground_truth))
    started = time.perf_counter()
    truth = groundtruth.read_ground_truth(args.ground_truth)
    read_gt = time.perf_counter() - started
    rows = wider_synthetic.prediction_set(np.random.default_rng(args.seed), truth)
    per_image = [r if i % args.every == 0 else np.zeros((0, 5)) for i, (_, r) in enumerate(rows)]
    start = np.cumsum([0] + [len(r) for r in per_image])
    table = np.concatenate(per_image)
    preds = predictions.Predictions(table[:, :4], table[:, 4], start, [], [])
    faces = np.diff(truth.face_start)
    pairs = int((faces * np.diff(start)).sum())
    print("WIDER FACE val: {} images, {} faces; synthetic predictions (seed {}): {} in {} "
          "images, {:,} prediction-face pairs".format(
              len(truth.images), len(truth.boxes), args.seed, len(table),
              int((np.diff(start) > 0).sum()), pairs))
    print("Python {}, numpy {}; ground truth read in {:.2f} s".format(
        platform.python_version(), np.__version__, read_gt))

    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = wider.evaluate(truth, preds)
        times.append(time.perf_counter() - started)
    plain_input = wider_plain.from_arrays(truth, preds)
    started = time.perf_counter()
    plain_aps, _ = wider_plain.evaluate(*plain_input)
    plain = time.perf_counter() - started

    for setting in wider_plain.SETTINGS:
        if abs(result.aps[setting] - plain_aps[setting]) > TOLERANCE:
            sys.exit("bench_eval: {} AP differs: vectorised {!r}, plain loop {!r}".format(
                setting, result.aps[setting], plain_aps[setting]))
    print("APs (both): " + ", ".join("{} {:.4f}".format(s, result.aps[s])
                                     for s in wider_plain.SETTINGS))
    print("| scorer | seconds | x plain loop |")
    print("| --- | ---: | ---: |")
    print("| plain loop | {:.2f} | |".format(plain))
    print("| facekit.eval.wider (best of {}) | {:.3f} | {:.1f}x |".format(
        args.repeat, min(times), plain / min(times)))
    print("| facekit.eval.wider (median) | {:.3f} | {:.1f}x |".format(
        float(np.median(times)), plain / float(np.median(times))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
