"""Benchmark `facekit eval run`: images per second for WIDER-sized JPEGs.

Not part of pass/fail: prints the figures. See README.md here.

It writes --count JPEGs of WIDER FACE val's typical size (1024 x 768, ~150 KB: a smooth
picture with noise, so the encoder writes real scan data) into one TFRecord file with
WIDER-style names and a few boxes each, then runs facekit.eval.run.evaluate_bundle on them
--repeat times (the best run is kept, as timeit does) with a bundle: --bundle, else the
lab's model (artifacts/models/face_ssd_embedded/current.json), else the tests' small
frozen graph (src/tests/graphs.py) with AIY's anchor table. It also times decoding alone,
with and without Pillow's draft mode, to show what the reduced-size decoding saves.
"""

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, "src"), os.path.join(REPO, "src", "tests")]

import numpy as np  # noqa: E402

from facekit.eval import run  # noqa: E402

LAB_MODEL = os.path.join(REPO, "artifacts", "models", "face_ssd_embedded", "current.json")
AIY_ANCHORS = os.path.join(REPO, "src", "tests", "data", "aiy_anchors_256.txt")
SIZE = (1024, 768)


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", metavar="DIR",
                        help="a model bundle (default: the lab's model, else a test graph)")
    parser.add_argument("--count", type=int, default=300, help="images (default 300)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs; the best is kept (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    return parser.parse_args(argv)


def _picture(rng):
    from PIL import Image, ImageFilter  # noqa: PLC0415

    small = (rng.rand(SIZE[1] // 16, SIZE[0] // 16, 3) * 255).astype(np.uint8)
    image = Image.fromarray(small, "RGB").resize(SIZE, Image.BICUBIC)
    noise = (rng.rand(SIZE[1], SIZE[0], 3) * 24).astype(np.int16) - 12
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB").filter(ImageFilter.SMOOTH)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _records(path, count):
    import types  # noqa: PLC0415

    from facekit.dataset import filters, tfrecord  # noqa: PLC0415

    tf = tfrecord._tf()
    rng = np.random.RandomState(0)
    pictures = [_picture(rng) for _ in range(min(count, 20))]
    with tfrecord.writer_class(tf)(path) as writer:
        for i in range(count):
            data = pictures[i % len(pictures)]
            info = types.SimpleNamespace(width=SIZE[0], height=SIZE[1], format="jpeg",
                                         data=data)
            boxes = [filters.Box(100 + 40 * k, 120, 180 + 40 * k, 220, False) for k in range(3)]
            name = "{}--Bench/{}_Bench_bench_{}.jpg".format(i % 61, i % 61, i)
            writer.write(tfrecord.make_example(tf, name, info, boxes)
                         .SerializeToString(deterministic=True))
    return sum(len(p) for p in pictures) / len(pictures)


def _bundle(args, root):
    if args.bundle:
        return args.bundle
    if os.path.isfile(LAB_MODEL):
        with open(LAB_MODEL, encoding="utf-8") as fh:
            path = json.load(fh)["path"]
        if os.path.isdir(path):
            return path
    import graphs  # noqa: PLC0415

    from facekit.model.bundle import create_bundle  # noqa: PLC0415

    config = os.path.join(root, "pipeline.config")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(graphs.pipeline_config())
    graph = graphs.write_graph(os.path.join(root, "face.pb"), seed=3)
    return create_bundle("testgraph", os.path.join(root, "models"), graph=graph,
                         compiled=graph, config=config, anchors=AIY_ANCHORS)["path"]


def _decode_rate(path, count, draft):
    from PIL import Image  # noqa: PLC0415

    with open(path, "rb") as fh:
        data = fh.read()
    started = time.monotonic()
    for _ in range(count):
        image = Image.open(io.BytesIO(data))
        if draft:
            image.draft("RGB", (256, 256))
        image.convert("RGB").resize((256, 256), Image.BILINEAR)
    return count / (time.monotonic() - started)


def main(argv=None):
    args = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="facekit-bench-evalrun-") as root:
        records = os.path.join(root, "val.record")
        mean_bytes = _records(records, args.count)
        bundle = _bundle(args, root)
        rates = []
        for number in range(args.repeat):
            doc = run.evaluate_bundle(bundle, records, os.path.join(root, "out{}".format(number)),
                                      threads=args.threads)
            rates.append(doc["images_per_second"])
        sample = os.path.join(root, "one.jpg")
        with open(sample, "wb") as fh:
            fh.write(_picture(np.random.RandomState(0)))
        plain, draft = _decode_rate(sample, 50, False), _decode_rate(sample, 50, True)
    print("facekit eval run: {} images of {}x{} (JPEG, {:.0f} KB mean), bundle {} {}, "
          "batch {}, {} threads; {} {} cores, Python {}".format(
              args.count, SIZE[0], SIZE[1], mean_bytes / 1024.0, doc["bundle"]["name"],
              doc["bundle"]["version"], doc["batch"], args.threads, platform.machine(),
              os.cpu_count(), platform.python_version()))
    print("images/s per run: {}  best: {:.1f}".format(
        ", ".join("{:.1f}".format(r) for r in rates), max(rates)))
    print("decode + resize to 256x256 alone, 1 thread: {:.1f} images/s full size, {:.1f} "
          "images/s with draft mode".format(plain, draft))
    return 0


if __name__ == "__main__":
    sys.exit(main())
