"""Benchmark `facekit dataset convert` against the seed tutorial's three-step approach, and its
LabelImg path (`--format voc`, the same images as one VOC XML per image) against the WIDER path.

Not part of pass/fail: prints a table of images/s and peak memory. See README.md here.

Each variant runs in a fresh child process (this script re-invoked with --child),
so its RSS high-water mark (VmHWM) is its own. TensorFlow, pandas, Pillow, lxml and
ElementTree are imported by the child before the clock starts, for both variants:
TensorFlow's ~0.5 GB is the same for everybody and is reported separately
("base MiB"), and import time is a per-run constant, not throughput.
"""

import argparse
import glob
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

EVENTS = 61  # like WIDER: images spread over event folders
WIDTH, HEIGHT = 640, 480
TARGET_BYTES = 100 * 1024
GENERATOR_VERSION = 1
RUNS = "runs"  # under --cache-dir: one output directory per timed run


# ---------------------------------------------------------------- synthetic data

def _image_path(i):
    event = i % EVENTS
    return "{0}--Event{0}/{0}_Event{0}_{1:05d}.jpg".format(event, i)


def _pixels(seed):
    import numpy as np  # noqa: PLC0415 - only the generator needs numpy

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    phase = seed % 97
    base = np.stack([(x + phase) * 255.0 / WIDTH, (y + phase) * 255.0 / HEIGHT,
                     (x + y) * 255.0 / (WIDTH + HEIGHT)], -1)
    noise = rng.integers(-52, 52, (HEIGHT, WIDTH, 3), dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _encode(seed, quality):
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _tune_quality():
    """JPEG quality that lands the noise images nearest TARGET_BYTES."""
    return min(range(40, 96), key=lambda q: abs(len(_encode(1, q)) - TARGET_BYTES))


def _write_image(job):
    root, i, quality = job
    path = os.path.join(root, _image_path(i))
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(_encode(i, quality))
        os.replace(tmp, path)
    return os.path.getsize(path)


def _faces(i, width=WIDTH, height=HEIGHT):
    """One face that always survives the default filter, plus filtered and clipped extras."""
    rng = random.Random(i)
    size = rng.randint(60, 200)
    faces = [(rng.randint(0, width - size), rng.randint(0, height - size), size, size,
              0, 0, 0, 0, 0, 0)]
    for _ in range(rng.randint(0, 4)):
        w = rng.randint(5, 150)
        faces.append((rng.randint(-20, width), rng.randint(-20, height), w, int(w * 1.2),
                      rng.choice((0, 0, 1, 2)), 0, rng.randint(0, 1), rng.choice((0, 0, 0, 1)),
                      rng.randint(0, 2), 0))
    return faces


def build_dataset(cache, count):
    """Images 0..count-1 under cache/images (reused across runs) + an annotation file."""
    images = os.path.join(cache, "images")
    for event in range(EVENTS):
        os.makedirs(os.path.join(images, "{0}--Event{0}".format(event)), exist_ok=True)
    quality_file = os.path.join(cache, "quality-v{}.txt".format(GENERATOR_VERSION))
    if os.path.exists(quality_file):
        with open(quality_file) as fh:
            quality = int(fh.read())
    else:
        quality = _tune_quality()
        with open(quality_file, "w") as fh:
            fh.write(str(quality))
    missing = [i for i in range(count) if not os.path.exists(os.path.join(images, _image_path(i)))]
    if missing:
        print("generating {} synthetic JPEGs (quality {}) in {} ...".format(
            len(missing), quality, images), file=sys.stderr)
        import multiprocessing  # noqa: PLC0415

        with multiprocessing.Pool() as pool:
            for _ in pool.imap_unordered(_write_image, [(images, i, quality) for i in missing],
                                         chunksize=32):
                pass
    split_dir = os.path.join(cache, "n{}".format(count))
    os.makedirs(split_dir, exist_ok=True)
    annotations = os.path.join(split_dir, "wider_face_bench_bbx_gt.txt")
    if not os.path.exists(annotations):
        with open(annotations + ".tmp", "w") as fh:
            for i in range(count):
                faces = _faces(i)
                fh.write("{}\n{}\n".format(_image_path(i), len(faces)))
                for face in faces:
                    fh.write(" ".join(str(v) for v in face) + " \n")
        os.replace(annotations + ".tmp", annotations)
    total = sum(os.path.getsize(os.path.join(images, _image_path(i))) for i in range(count))
    return annotations, images, total


def build_voc(cache, count):
    """The same images as a LabelImg folder: one VOC XML per image under cache/n<count>/voc,
    mirroring the event folders, <filename> relative to the images folder; every face a box."""
    voc_dir = os.path.join(cache, "n{}".format(count), "voc")
    done = os.path.join(voc_dir, ".complete")
    if os.path.exists(done):
        return voc_dir
    for i in range(count):
        path = _image_path(i)
        target = os.path.join(voc_dir, os.path.splitext(path)[0] + ".xml")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        objects = "".join(
            "<object><name>face</name><pose>Unspecified</pose><truncated>0</truncated>"
            "<difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>"
            "<ymax>{}</ymax></bndbox></object>\n".format(x, y, x + w, y + h)
            for x, y, w, h in (face[:4] for face in _faces(i)) if w > 0 and h > 0)
        with open(target, "w") as fh:
            fh.write("<annotation><folder>images</folder><filename>{}</filename><size><width>{}"
                     "</width><height>{}</height><depth>3</depth></size>\n{}</annotation>\n"
                     .format(path, WIDTH, HEIGHT, objects))
    with open(done, "w") as fh:
        fh.write("ok\n")
    return voc_dir


# ------------------------------------------------------ the seed tutorial's approach

def seed_baseline(annotations, images, out):
    """The seed's steps as written there: WIDER -> VOC XML (decoding each image for its
    size) -> xml_to_csv (parse every XML back) -> generate_tfrecord (pandas groupby over
    the CSV, re-reading each image). Same filters as facekit's defaults."""
    xml_dir = os.path.join(out, "xml")
    csv_path = os.path.join(out, "labels.csv")
    seed_wider_to_voc(annotations, images, xml_dir)
    seed_xml_to_csv(xml_dir, csv_path)
    seed_generate_tfrecord(csv_path, images, os.path.join(out, "train.record"))


def seed_wider_to_voc(annotations, images, xml_dir):
    import xml.etree.ElementTree as ET  # noqa: PLC0415, N817

    from PIL import Image  # noqa: PLC0415

    os.makedirs(xml_dir)
    with open(annotations) as fh:
        lines = fh.read().splitlines()
    i = 0
    while i < len(lines):
        name = lines[i].strip()
        count = int(lines[i + 1])
        rows = lines[i + 2:i + 2 + max(count, 1)]
        i += 2 + max(count, 1)
        boxes = []
        for row in rows[:count]:
            x, y, w, h, blur, _, _, invalid, _, _ = (int(v) for v in row.split())
            if invalid == 0 and blur == 0 and max(w, h) >= 50:
                boxes.append((x, y, x + w, y + h))
        if not boxes:
            continue
        image = Image.open(os.path.join(images, name)).convert("RGB")  # decodes the pixels
        width, height = image.size
        root = ET.Element("annotation")
        ET.SubElement(root, "filename").text = name
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(width)
        ET.SubElement(size, "height").text = str(height)
        ET.SubElement(size, "depth").text = "3"
        for box in boxes:
            xmin, ymin = max(box[0], 0), max(box[1], 0)
            xmax, ymax = min(box[2], width), min(box[3], height)
            if xmax <= xmin or ymax <= ymin:
                continue
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = "face"
            bnd = ET.SubElement(obj, "bndbox")
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax)):
                ET.SubElement(bnd, tag).text = str(v)
        ET.ElementTree(root).write(os.path.join(
            xml_dir, os.path.basename(os.path.splitext(name)[0]) + ".xml"))


def seed_xml_to_csv(xml_dir, csv_path):
    import xml.etree.ElementTree as ET  # noqa: PLC0415, N817

    import pandas as pd  # noqa: PLC0415

    rows = []
    for xml_file in glob.glob(xml_dir + "/*.xml"):
        root = ET.parse(xml_file).getroot()
        for member in root.findall("object"):
            bnd = member.find("bndbox")
            rows.append((root.find("filename").text, int(root.find("size")[0].text),
                         int(root.find("size")[1].text), member[0].text,
                         int(bnd[0].text), int(bnd[1].text), int(bnd[2].text), int(bnd[3].text)))
    columns = ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
    pd.DataFrame(rows, columns=columns).to_csv(csv_path, index=None)


def seed_generate_tfrecord(csv_path, images, record_path):
    import pandas as pd  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    writer_cls = getattr(getattr(tf, "io", None), "TFRecordWriter", None) or \
        tf.python_io.TFRecordWriter
    gfile = tf.io.gfile.GFile if hasattr(tf, "io") else tf.gfile.GFile
    writer = writer_cls(record_path)
    examples = pd.read_csv(csv_path)
    gb = examples.groupby("filename")
    groups = [(filename, gb.get_group(x)) for filename, x in zip(gb.groups.keys(), gb.groups)]
    for filename, group in groups:
        with gfile(os.path.join(images, filename), "rb") as fid:
            encoded = fid.read()
        width, height = Image.open(io.BytesIO(encoded)).size
        xmins, xmaxs, ymins, ymaxs, texts, labels = [], [], [], [], [], []
        for _, row in group.iterrows():
            xmins.append(row["xmin"] / width)
            xmaxs.append(row["xmax"] / width)
            ymins.append(row["ymin"] / height)
            ymaxs.append(row["ymax"] / height)
            texts.append(row["class"].encode("utf8"))
            labels.append(1)
        f = tf.train.Feature
        example = tf.train.Example(features=tf.train.Features(feature={
            "image/height": f(int64_list=tf.train.Int64List(value=[height])),
            "image/width": f(int64_list=tf.train.Int64List(value=[width])),
            "image/filename": f(bytes_list=tf.train.BytesList(value=[filename.encode()])),
            "image/source_id": f(bytes_list=tf.train.BytesList(value=[filename.encode()])),
            "image/encoded": f(bytes_list=tf.train.BytesList(value=[encoded])),
            "image/format": f(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
            "image/object/bbox/xmin": f(float_list=tf.train.FloatList(value=xmins)),
            "image/object/bbox/xmax": f(float_list=tf.train.FloatList(value=xmaxs)),
            "image/object/bbox/ymin": f(float_list=tf.train.FloatList(value=ymins)),
            "image/object/bbox/ymax": f(float_list=tf.train.FloatList(value=ymaxs)),
            "image/object/class/text": f(bytes_list=tf.train.BytesList(value=texts)),
            "image/object/class/label": f(int64_list=tf.train.Int64List(value=labels)),
        }))
        writer.write(example.SerializeToString())
    writer.close()


# ------------------------------------------------------------------ measurement

def _vm(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _watch_workers(peaks, stop):
    """Sample the pool workers' VmHWM (RUSAGE_CHILDREN would count the fork-time copy
    of this process's pages, not what the workers used)."""
    import multiprocessing  # noqa: PLC0415

    while not stop.wait(0.05):
        for proc in multiprocessing.active_children():
            try:
                with open("/proc/{}/status".format(proc.pid)) as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            peaks.append(int(line.split()[1]) / 1024.0)
            except OSError:
                pass


def child(args):
    """Run one variant in this (fresh) process and print its figures as JSON."""
    import threading  # noqa: PLC0415

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Every library either variant uses is imported before the clock starts: an import
    # is paid once per run whatever the image count (about 0.5 s for pandas + lxml +
    # Pillow), so timing it would make a 2,000-image run say little about throughput.
    import xml.etree.ElementTree  # noqa: F401, PLC0415

    import pandas  # noqa: F401, PLC0415
    import tensorflow  # noqa: F401, PLC0415
    from PIL import Image  # noqa: F401, PLC0415

    from facekit.dataset import convert as _convert  # noqa: F401, PLC0415

    base = _vm("VmRSS")
    peaks, stop = [], threading.Event()
    watcher = threading.Thread(target=_watch_workers, args=(peaks, stop), daemon=True)
    watcher.start()
    start = time.perf_counter()
    if args.child == "baseline":
        seed_baseline(args.annotations, args.images_dir, args.out)
    elif args.child == "voc":
        from facekit.dataset.vocconvert import convert_voc  # noqa: PLC0415

        convert_voc(args.annotations, args.out, images_dir=args.images_dir,
                    workers=args.workers, progress=False)
    else:
        from facekit.dataset.convert import convert  # noqa: PLC0415

        convert(args.annotations, args.images_dir, args.out, workers=args.workers,
                voc=args.child != "ours-no-voc", progress=False)
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    print(json.dumps({"seconds": seconds, "base": base, "peak": _vm("VmHWM"),
                      "workers_peak": max(peaks) if peaks else 0.0}))


def run_variant(variant, annotations, images, count, cache, *, workers=1, repeat=1):
    """Best of `repeat` runs (disk writeback makes single runs noisy); peak is the max."""
    runs = [_run_once(variant, annotations, images, count, cache, workers=workers)
            for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    best["peak"] = max(r["peak"] for r in runs)
    best["workers_peak"] = max(r["workers_peak"] for r in runs)
    return best


def _run_once(variant, annotations, images, count, cache, *, workers):
    # A new directory per run, all removed at the end (main): on the ext4 this was
    # measured on, creating files right after deleting thousands of them costs up to
    # 15x more kernel time for a while, so deleting the last run's output here would
    # time the file system's recovery instead of the next variant.
    out = tempfile.mkdtemp(prefix=variant + "-", dir=os.path.join(cache, RUNS))
    # Write back what earlier runs (and the image generator) left dirty, so that no
    # variant pays for its predecessor's I/O: the kernel throttles every writer while
    # hundreds of MB are still waiting to reach the disk.
    os.sync()
    argv = [sys.executable, os.path.abspath(__file__), "--child", variant, "--annotations",
            annotations, "--images-dir", images, "--out", out, "--workers", str(workers)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          universal_newlines=True, check=False)
    if done.returncode != 0:
        raise SystemExit("{} failed:\n{}".format(variant, done.stderr[-3000:]))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(variant=variant, images=count, workers=workers,
                  rate=count / result["seconds"])
    return result


def measure(args, cache):
    """Every variant's figures, in the order they are printed."""
    results = []
    annotations, images, total = build_dataset(cache, args.images)
    print("dataset: {} images, {:.1f} KB average, {} cores".format(
        args.images, total / 1024.0 / args.images, os.cpu_count()), file=sys.stderr)
    if not args.skip_baseline:
        results.append(run_variant("baseline", annotations, images, args.images, cache,
                                   repeat=args.repeat))
    for workers in (1, 2):
        results.append(run_variant("ours", annotations, images, args.images, cache,
                                   workers=workers, repeat=args.repeat))
    # One XML file per image is the part most exposed to the file system's mood;
    # the training stage itself needs only the records.
    results.append(run_variant("ours-no-voc", annotations, images, args.images, cache,
                               workers=1, repeat=args.repeat))
    # The LabelImg path on the same images (both splits, XML read instead of written).
    voc_dir = build_voc(cache, args.images)
    for workers in (1, 2):
        results.append(run_variant("voc", voc_dir, images, args.images, cache,
                                   workers=workers, repeat=args.repeat))
    extra = []
    if args.scale_images:
        extra.append(args.scale_images)
    if args.full:
        extra.append(12880)
    for count in extra:
        annotations, images, _ = build_dataset(cache, count)
        results.append(run_variant("ours", annotations, images, count, cache, workers=2))
    return results


def _suffix(variant):
    return {"ours-no-voc": " --no-voc", "voc": " --format voc"}.get(variant, "")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Benchmark facekit's one-pass convert against the seed tutorial's "
                    "decode + XML + CSV + groupby approach on synthetic ~100 KB JPEGs.")
    parser.add_argument("--images", type=int, default=2000, metavar="N",
                        help="images for the main comparison (default 2000)")
    parser.add_argument("--scale-images", type=int, default=6000, metavar="M",
                        help="a second, larger run of convert (--workers 2) to show peak "
                             "memory does not grow with the image count (default 6000; 0 skips)")
    parser.add_argument("--full", action="store_true",
                        help="also convert 12,880 images (WIDER train's count, ~1.3 GB of "
                             "images, as much again of output) with --workers 2")
    parser.add_argument("--repeat", type=int, default=3, metavar="R",
                        help="runs per variant at --images, best time kept (default 3); "
                             "the larger runs are done once")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="do not run the seed baseline")
    parser.add_argument("--cache-dir", metavar="DIR",
                        default=os.path.join(tempfile.gettempdir(), "facekit-bench"),
                        help="where the synthetic images are generated once and reused "
                             "(default: %(default)s)")
    parser.add_argument("--child", choices=("ours", "ours-no-voc", "baseline", "voc"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--annotations", help=argparse.SUPPRESS)
    parser.add_argument("--images-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    cache = args.cache_dir
    os.makedirs(cache, exist_ok=True)
    runs = os.path.join(cache, RUNS)
    shutil.rmtree(runs, ignore_errors=True)  # left by an interrupted run
    os.makedirs(runs)
    try:
        results = measure(args, cache)
    finally:
        shutil.rmtree(runs, ignore_errors=True)

    print("{:<31} {:>7} {:>9} {:>9} {:>10} {:>11} {:>12}".format(
        "variant", "images", "seconds", "images/s", "base MiB", "peak MiB", "workers MiB"))
    for r in results:
        name = "seed baseline" if r["variant"] == "baseline" else \
            "convert --workers {}{}".format(r["workers"], _suffix(r["variant"]))
        print("{:<31} {:>7} {:>9.2f} {:>9.0f} {:>10.0f} {:>11.0f} {:>12}".format(
            name, r["images"], r["seconds"], r["rate"], r["base"], r["peak"],
            "{:.0f}".format(r["workers_peak"]) if r["workers"] > 1 else "-"))
    base = [r for r in results if r["variant"] == "baseline"]
    if base:
        for r in results:
            if r["variant"] != "baseline" and r["images"] == args.images:
                print("ratio convert --workers {}{} / baseline: {:.1f}x images/s".format(
                    r["workers"], _suffix(r["variant"]), r["rate"] / base[0]["rate"]))
    print("(seconds: best of {} at {} images, single runs above that; they exclude interpreter "
          "start and library imports. base MiB = RSS after the imports; peak "
          "MiB = VmHWM of the main process; workers MiB = largest worker VmHWM, sampled "
          "every 50 ms)".format(args.repeat, args.images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
