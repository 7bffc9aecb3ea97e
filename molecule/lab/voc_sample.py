"""Test stand-in for a person's own LabelImg data set: drawn circles, squares and triangles.

People label their own photos with LabelImg, which the lab cannot do; this draws a small data set
of three easily told apart shape classes on the WIDER sample's backgrounds (widerface_sample.py)
and writes it the way people's folders come: LabelImg Pascal VOC XML beside each image, in two
batch folders, with the quirks the converter must survive, each in some files and counted in
what `build` prints: reordered and extra tags (<occluded>, a Windows <path>), float coordinates,
a UTF-8 byte-order mark, a <filename> that names another extension (found by the stem), a PNG
named .jpg, a <size> that disagrees with the image, boxes past the image's edges, zero-area
boxes, difficult / truncated / pose flags and images without objects.

    python3 voc_sample.py build --dir DIR [--train 300 --heldout 40 --seed 0]

writes DIR/voc_sample.zip (unpacks to shapes/batch1, shapes/batch2), DIR/voc_quirks_unknown/
(three files, one object labelled "hexagon": for the refusal of unknown classes) and
DIR/heldout/ (640x480 frames + ground_truth.json, each box with its label), and prints JSON.
The same seed gives the same bytes (numpy, Pillow and zlib alike). Needs only numpy and Pillow.
"""

import argparse
import io
import json
import os
import shutil
import sys

import numpy as np
from digest import file_sha256  # next to this file
from PIL import ImageDraw
from widerface_sample import _background, _colour, _zip

LABELS = ("circle", "square", "triangle")
SPLITS = {"train": 11, "heldout": 13, "unknown": 17}
BOM = b"\xef\xbb\xbf"


def _rng(seed, split, index):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, SPLITS[split], index])))


def _shape_colour(rng, label):
    # Each class has a colour family of its own as well as a shape: a short run learns it.
    hue = {"circle": (220, 40, 40), "square": (40, 90, 230), "triangle": (240, 200, 30)}[label]
    return tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in hue)


def _draw(draw, label, box, colour):
    x0, y0, x1, y1 = box
    if label == "circle":
        draw.ellipse(box, fill=colour, outline=(0, 0, 0))
    elif label == "square":
        draw.rectangle(box, fill=colour, outline=(0, 0, 0))
    else:
        draw.polygon([((x0 + x1) / 2.0, y0), (x1, y1), (x0, y1)], fill=colour, outline=(0, 0, 0))


def _plan(rng, width, height, count, allow_cut):
    """Boxes [label, x0, y0, x1, y1] that do not overlap (some running past an edge)."""
    objects = []
    for _ in range(count * 6):
        if len(objects) == count:
            break
        side = int(rng.integers(int(min(width, height) * 0.15), int(min(width, height) * 0.45)))
        cut = allow_cut and rng.random() < 0.12
        low = -side // 3 if cut else 0
        x0 = int(rng.integers(low, width - side + (side // 3 if cut else 0) + 1))
        y0 = int(rng.integers(low, height - side + 1))
        box = (x0, y0, x0 + side, y0 + side)
        if any(not (box[2] < o[1] or o[3] < box[0] or box[3] < o[2] or o[4] < box[1])
               for o in objects):
            continue
        objects.append((LABELS[int(rng.integers(3))],) + box)
    return objects


def make_image(seed, split, index, size=None):
    """(width, height, jpeg or png bytes, fmt, objects): objects [(label, x0, y0, x1, y1)]."""
    rng = _rng(seed, split, index)
    width, height = size or (int(rng.integers(320, 801)), int(rng.integers(240, 601)))
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):  # distractors: grey lines
        points = [int(rng.integers(0, width)), int(rng.integers(0, height)),
                  int(rng.integers(0, width)), int(rng.integers(0, height))]
        draw.line(points, fill=_colour(rng), width=int(rng.integers(2, 6)))
    empty = split == "train" and index % 50 == 7
    objects = [] if empty else _plan(rng, width, height, int(rng.integers(1, 5)),
                                     allow_cut=split == "train")
    for label, *box in objects:
        _draw(draw, label, box, _shape_colour(rng, label))
    fmt = "PNG" if split == "train" and index % 40 == 13 else "JPEG"
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, "PNG", optimize=False)
    else:
        image.save(buf, "JPEG", quality=int(rng.integers(85, 96)))
    return width, height, buf.getvalue(), fmt, objects


def _num(value, floats):
    return "{:.1f}".format(value) if floats else str(value)


def annotation(name, size, objects, index, quirks, *, filename=None, xml_size=None):
    """A LabelImg XML (bytes) with the quirks chosen by `index`, counted in `quirks`."""
    width, height = size
    floats = index % 5 == 1
    reorder = index % 7 == 2
    parts = ["<annotation>", "\t<folder>batch</folder>",
             "\t<filename>{}</filename>".format(filename or name),
             "\t<path>C:\\Users\\labeller\\shapes\\{}</path>".format(name),
             "\t<source>\n\t\t<database>Unknown</database>\n\t</source>"]
    written = xml_size or (width, height)
    parts.append("\t<size>\n\t\t<width>{}</width>\n\t\t<height>{}</height>\n\t\t<depth>3</depth>"
                 "\n\t</size>".format(*written))
    parts.append("\t<segmented>0</segmented>")
    for k, (label, x0, y0, x1, y1) in enumerate(objects):
        cut = x0 < 0 or y0 < 0 or x1 > width or y1 > height
        difficult = index % 9 == 4 and k == 0
        pose = "Left" if index % 11 == 5 else "Unspecified"
        box = ("<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax>"
               "</bndbox>").format(*(_num(v, floats) for v in (x0, y0, x1, y1)))
        flags = "<pose>{}</pose><truncated>{}</truncated><difficult>{}</difficult>".format(
            pose, int(cut), int(difficult))
        if reorder:
            parts.append("\t<object>{}<occluded>0</occluded>{}<name>{}</name></object>".format(
                box, flags, label))
        else:
            parts.append("\t<object><name>{}</name>{}{}</object>".format(label, flags, box))
        quirks["outside_image"] += cut
        quirks["difficult"] += difficult
        quirks["pose"] += pose != "Unspecified"
    quirks["float_coordinates"] += floats and bool(objects)
    quirks["reordered_tags"] += reorder and bool(objects)
    parts.append("</annotation>\n")
    data = "\n".join(parts).encode("utf-8")
    if index % 8 == 3:
        quirks["byte_order_mark"] += 1
        data = BOM + data
    return data


def _train(seed, count):
    files, counts = {}, {"images": count, "empty_images": 0,
                         "objects": {label: 0 for label in LABELS}}
    quirks = {k: 0 for k in ("outside_image", "difficult", "pose", "float_coordinates",
                             "reordered_tags", "byte_order_mark", "png_named_jpg",
                             "filename_other_extension", "size_disagrees", "zero_area")}
    for index in range(count):
        width, height, data, fmt, objects = make_image(seed, "train", index)
        folder = "shapes/batch{}".format(1 + index % 2)
        stem = "img_{:04d}".format(index)
        name = stem + ".jpg"
        filename = xml_size = None
        if fmt == "PNG":
            quirks["png_named_jpg"] += 1
        if index % 30 == 9:
            filename = stem + ".png"  # the XML says .png, the file is .jpg: found by the stem
            quirks["filename_other_extension"] += 1
        if index % 45 == 21:
            xml_size = (width + 10, height)  # a stale <size>: reported, boxes scaled
            quirks["size_disagrees"] += 1
        if objects and index % 25 == 11:
            label, x0, y0, _, y1 = objects[-1]
            objects = objects + [(label, x0, y0, x0, y1)]  # a zero-width box, dropped
            quirks["zero_area"] += 1
        counts["empty_images"] += not objects
        for label, *_ in objects:
            counts["objects"][label] += 1
        files["{}/{}".format(folder, name)] = data
        files["{}/{}.xml".format(folder, stem)] = annotation(
            name, (width, height), objects, index, quirks, filename=filename, xml_size=xml_size)
    counts["quirks"] = quirks
    return files, counts


def _unknown(seed, directory):
    quirks = {k: 0 for k in ("outside_image", "difficult", "pose", "float_coordinates",
                             "reordered_tags", "byte_order_mark")}
    for index in range(3):
        width, height, data, _, objects = make_image(seed, "unknown", index)
        if index == 1:
            objects = [("hexagon",) + tuple(objects[0][1:])] + objects[1:]
        stem = "odd_{}".format(index)
        with open(os.path.join(directory, stem + ".jpg"), "wb") as fh:
            fh.write(data)
        with open(os.path.join(directory, stem + ".xml"), "wb") as fh:
            fh.write(annotation(stem + ".jpg", (width, height), objects, index, quirks))


def _heldout(seed, count, directory):
    images = []
    for index in range(count):
        name = "heldout_{:03d}.jpg".format(index)
        width, height, data, _, objects = make_image(seed, "heldout", index, size=(640, 480))
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(data)
        boxes = []
        for label, x0, y0, x1, y1 in objects:
            size = 256.0 * max((x1 - x0) / width, (y1 - y0) / height)
            boxes.append({"box": [x0, y0, x1, y1], "label": label,
                          "size_256": int(round(size)), "cut": False})
        images.append({"file": name, "width": width, "height": height, "faces": boxes,
                       "ignore": []})
    truth = {"description": "facekit VOC stand-in, held-out frames: boxes are [xmin, ymin, xmax, "
                            "ymax] pixel edges with their class in 'label' (the 'faces' key is "
                            "the WIDER sample's, kept so one reader serves both)",
             "seed": seed, "labels": list(LABELS), "images": images}
    with open(os.path.join(directory, "ground_truth.json"), "w") as fh:
        json.dump(truth, fh, indent=1, sort_keys=True)
        fh.write("\n")
    per_class = {label: sum(1 for i in images for b in i["faces"] if b["label"] == label)
                 for label in LABELS}
    return {"images": count, "objects": per_class}


def build(directory, train=300, heldout=40, seed=0):
    """Write voc_sample.zip, voc_quirks_unknown/ and heldout/ into `directory`; return a summary."""
    os.makedirs(directory, exist_ok=True)
    files, counts = _train(seed, train)
    archive = os.path.join(directory, "voc_sample.zip")
    _zip(archive, files)
    for name, builder, arg in (("voc_quirks_unknown", _unknown, None),
                               ("heldout", _heldout, heldout)):
        path = os.path.join(directory, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        held = builder(seed, arg, path) if arg is not None else builder(seed, path)
    sha, size = file_sha256(archive), os.path.getsize(archive)
    return {"archive": {"name": "voc_sample.zip", "sha256": sha, "bytes": size},
            "labels": list(LABELS), "counts": counts, "heldout": held}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.required = True
    b = commands.add_parser("build", help="write the sample into --dir and print its summary")
    b.add_argument("--dir", required=True)
    b.add_argument("--train", type=int, default=300)
    b.add_argument("--heldout", type=int, default=40)
    b.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = build(args.dir, train=args.train, heldout=args.heldout, seed=args.seed)
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
