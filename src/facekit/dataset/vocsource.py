"""A person's Pascal VOC / LabelImg folder: its XML files, their images, the train/val split
and the class check, before anything is written.

LabelImg saves each XML beside its image (or in a folder of its own) with <filename> holding
the image's base name and <path> the absolute path on the labelling machine, which means
nothing on the training host; renamed or re-encoded images leave a <filename> that no longer
matches. So an image is looked for, in order: at <filename> under the images folder, by
<filename>'s base name there and beside the XML, then by <filename>'s stem and by the XML's
own stem with any image extension (.jpg, .jpeg, .png, any case), beside the XML and under the
images folder. Its real format and size come from its bytes later (a PNG named .jpg is fine).
"""

import glob
import hashlib
import os

from facekit.dataset.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".Jpg", ".Png")


def find_xml(directory):
    """The .xml files under `directory` (any depth), sorted by their path relative to it."""
    directory = str(directory)
    if not os.path.isdir(directory):
        raise DatasetError("annotations folder {} does not exist or is not a folder".format(
            directory))
    found = [p for p in glob.glob(os.path.join(glob.escape(directory), "**", "*"), recursive=True)
             if p.lower().endswith(".xml") and os.path.isfile(p)]
    if not found:
        raise DatasetError("no .xml files under {}: point --annotations at the folder "
                           "LabelImg saved its Pascal VOC files in".format(directory))
    return sorted(found, key=lambda p: os.path.relpath(p, directory).replace(os.sep, "/"))


def _stem(name):
    return os.path.splitext(os.path.basename(name))[0]


def image_candidates(xml_path, filename, annotations_dir, images_dir):
    """Where the image of `xml_path` may be, most likely first (duplicates removed)."""
    xml_dir = os.path.dirname(xml_path)
    mirrored = os.path.join(images_dir, os.path.relpath(xml_dir, annotations_dir))
    base = os.path.basename(filename.replace("\\", "/")) if filename else ""
    paths = []
    if filename and not os.path.isabs(filename) and "\\" not in filename:
        paths.append(os.path.join(images_dir, filename))
    if base:
        paths += [os.path.join(images_dir, base), os.path.join(mirrored, base),
                  os.path.join(xml_dir, base)]
    stems = [_stem(base)] if base else []
    stems.append(_stem(xml_path))
    for stem in stems:
        for folder in (xml_dir, mirrored, images_dir):
            paths += [os.path.join(folder, stem + ext) for ext in IMAGE_EXTENSIONS]
    seen = set()
    unique = []
    for path in paths:
        norm = os.path.normpath(path)
        if norm not in seen:
            seen.add(norm)
            unique.append(norm)
    return unique


def find_image(xml_path, filename, annotations_dir, images_dir):
    """The image file of an annotation, or None; see the module docstring for the order."""
    for path in image_candidates(xml_path, filename, annotations_dir, images_dir):
        if os.path.isfile(path):
            return path
    return None


def split_key(seed, relpath):
    return hashlib.sha256("{}\0{}".format(seed, relpath).encode("utf-8")).hexdigest()


def split_files(paths, root, fraction, seed):
    """(train, val): the files of `paths` split by a seeded hash of their path under `root`.

    round(n * fraction) files go to val (at least one, and at least one left for train): those
    whose hash of (seed, relative path) sorts first. The same files and seed give the same
    split on any machine, and adding files moves few of the old ones across.
    """
    if not 0 < fraction < 1:
        raise DatasetError("--val-fraction must be between 0 and 1 (exclusive), got {}".format(
            fraction))
    if len(paths) < 2:
        raise DatasetError("{} holds {} annotation file(s): a train and a val split need at "
                           "least 2 (or give --val-annotations)".format(root, len(paths)))
    count = min(max(1, int(round(len(paths) * fraction))), len(paths) - 1)
    ranked = sorted(paths, key=lambda p: split_key(
        seed, os.path.relpath(p, root).replace(os.sep, "/")))
    val = set(ranked[:count])
    return [p for p in paths if p not in val], [p for p in paths if p in val]


def unknown_label_lines(annotations, labels):
    """[(path, line, name)] of every object whose class is not in `labels`."""
    known = set(labels)
    return [(a.path, obj.line, obj.name) for a in annotations for obj in a.objects
            if obj.name not in known]


def unknown_labels_error(unknown, labels, label_source):
    """The DatasetError for objects outside the classes: every file and line, then what to do."""
    names = sorted(set(name for _, _, name in unknown))
    lines = "\n".join("  {}:{}: {!r}".format(path, line, name) for path, line, name in unknown)
    return DatasetError(
        "{} object(s) have a class that is not in {} ({}): {}\n{}\nadd the class(es) to the "
        "label map, fix the <name> in those files, or pass --unknown-labels drop to leave those "
        "objects out (they are counted in dataset.json)".format(
            len(unknown), label_source, ", ".join(labels), ", ".join(map(repr, names)), lines))
