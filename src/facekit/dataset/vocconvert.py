"""`facekit dataset convert --format voc`: a Pascal VOC / LabelImg folder -> train and val
TFRecord shards + box CSVs + label_map.pbtxt + dataset.json, in one run.

Every XML file is read and the classes are checked before anything is written: a malformed
file or a class outside the label map stops the run with every file and line at fault, and
the outputs of an earlier run stay as they were. Then each split streams through the same
machinery as the WIDER path (worker processes read the images, one process writes in file
order; temporaries renamed only when both splits are complete, dataset.json last).

Per object: boxes in the XML's <size> frame are scaled to the real image when the two
disagree (reported), clipped to the image (truncated set when clipping cut them), and boxes
left without area are dropped and counted; difficult, truncated and pose go into the records.
"""

import collections
import hashlib
import logging
import os

from facekit import interrupts
from facekit.dataset import pipeline, vocsource
from facekit.dataset.convert import shard_entries
from facekit.dataset.csvfile import CsvWriter
from facekit.dataset.errors import DatasetError
from facekit.dataset.images import ImageProblem, attach_bytes, inspect_job
from facekit.dataset.labelmap import check_labels, read_labels, write_label_map
from facekit.dataset.manifest import ImageDigest, tool_versions, update_manifest
from facekit.dataset.parallel import ordered_map
from facekit.dataset.tfrecord import ShardedWriter
from facekit.dataset.vocxml import parse_bytes, read_file
from facekit.dataset.writing import committing, filling
from facekit.lock import claim_output
from facekit.progress import track

log = logging.getLogger(__name__)

FORMAT = "voc"
SPLITS = ("train", "val")
UNKNOWN_LABELS = ("fail", "drop")
IMAGE_REASONS = ("missing", "unreadable", "corrupt", "no_objects")
OBJECT_REASONS = ("unknown_label", "degenerate", "image_missing", "image_unreadable",
                  "image_corrupt")

# A kept box: pixel edges in the real image, its class id (1..N) and name, and VOC's flags.
VocBox = collections.namedtuple(
    "VocBox", "xmin ymin xmax ymax truncated label text difficult pose")


def new_stats():
    def part(reasons):
        return collections.OrderedDict([
            ("total", 0), ("kept", 0),
            ("dropped", collections.OrderedDict((r, 0) for r in reasons))])
    return collections.OrderedDict([("images", part(IMAGE_REASONS)),
                                    ("objects", part(OBJECT_REASONS))])


class Split(object):
    """One split's annotations as read: where they are and the parsed files."""

    def __init__(self, name, annotations_dir, images_dir, paths):
        self.name = name
        self.annotations_dir = annotations_dir
        self.images_dir = images_dir
        self.paths = paths
        self.annotations = []
        self.digest = hashlib.sha256()

    def read(self):
        for path in self.paths:
            interrupts.check()
            data = read_file(path)
            rel = os.path.relpath(path, self.annotations_dir).replace(os.sep, "/")
            self.digest.update(rel.encode("utf-8") + b"\0" + data + b"\0")
            self.annotations.append(parse_bytes(path, data))
        return self

    def annotation_input(self):
        return {"path": str(self.annotations_dir), "files": len(self.paths),
                "sha256": self.digest.hexdigest(),
                "covers": "sha256 over '<path>\\0<bytes>\\0' of the XML files, in path order"}


def read_splits(annotations_dir, images_dir, *, val_annotations, val_images, val_fraction, seed):
    """The two Splits with every XML file parsed (AnnotationError on the first bad one)."""
    # Absolute: image paths are joined to these and recorded in dataset.json.
    annotations_dir = os.path.abspath(str(annotations_dir))
    images_dir = os.path.abspath(str(images_dir or annotations_dir))
    found = vocsource.find_xml(annotations_dir)
    if val_annotations:
        val_annotations = os.path.abspath(str(val_annotations))
        val_images = os.path.abspath(str(val_images or val_annotations))
        train = Split("train", annotations_dir, images_dir, found)
        val = Split("val", val_annotations, val_images, vocsource.find_xml(val_annotations))
    else:
        train_paths, val_paths = vocsource.split_files(found, annotations_dir, val_fraction, seed)
        train = Split("train", annotations_dir, images_dir, train_paths)
        val = Split("val", annotations_dir, images_dir, val_paths)
    return [train.read(), val.read()]


def choose_labels(splits, labels, label_map):
    """(labels, where they came from): given names, a label map's, or every name found, sorted."""
    if labels and label_map:
        raise DatasetError("give the classes once: --labels or --label-map, not both")
    if label_map:
        return read_labels(label_map), "the label map {}".format(label_map)
    if labels:
        return check_labels(labels, "--labels"), "--labels"
    found = sorted(set(obj.name for split in splits for a in split.annotations
                       for obj in a.objects))
    if not found:
        raise DatasetError("the annotation files name no object at all: label some images, or "
                           "give the classes with --labels")
    return check_labels(found, "the class names found"), "the class names found"


def _relative_name(path, split):
    for root in (split.images_dir, split.annotations_dir):
        rel = os.path.relpath(path, root)
        if not rel.startswith(".." + os.sep) and rel != "..":
            return rel.replace(os.sep, "/")
    return path


class _Counter(object):
    """Per-class counts of what was kept, and the warnings of a split."""

    def __init__(self, labels):
        self.classes = collections.OrderedDict(
            (name, collections.OrderedDict([("id", i), ("objects", 0), ("difficult", 0),
                                            ("images", 0)]))
            for i, name in enumerate(labels, 1))
        self.warnings = []

    def add(self, boxes):
        for name in set(b.text for b in boxes):
            self.classes[name]["images"] += 1
        for box in boxes:
            self.classes[box.text]["objects"] += 1
            self.classes[box.text]["difficult"] += int(box.difficult)


def _boxes(annotation, info, ids, stats, counter):
    """The kept VocBoxes of an annotation on its real image; counts every drop."""
    dropped = stats["objects"]["dropped"]
    sx = sy = 1.0
    if annotation.size is not None and annotation.size != (info.width, info.height):
        counter.warnings.append(
            "{}: <size> says {}x{} but the image {} is {}x{}: boxes scaled to the image".format(
                annotation.path, annotation.size[0], annotation.size[1], info.path, info.width,
                info.height))
        sx = info.width / float(annotation.size[0])
        sy = info.height / float(annotation.size[1])
    boxes = []
    for obj in annotation.objects:
        if obj.name not in ids:
            dropped["unknown_label"] += 1
            continue
        edges = (obj.xmin * sx, obj.ymin * sy, obj.xmax * sx, obj.ymax * sy)
        clipped = (min(max(edges[0], 0.0), info.width), min(max(edges[1], 0.0), info.height),
                   min(max(edges[2], 0.0), info.width), min(max(edges[3], 0.0), info.height))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            dropped["degenerate"] += 1
            continue
        boxes.append(VocBox(clipped[0], clipped[1], clipped[2], clipped[3],
                            obj.truncated or clipped != edges, ids[obj.name], obj.name,
                            obj.difficult, obj.pose))
    return boxes


def _missing(annotation, images_dir):
    stems = sorted(set(s for s in (os.path.splitext(os.path.basename(annotation.filename))[0],
                                   os.path.basename(annotation.path)[:-4]) if s))
    return ImageProblem(annotation.filename or annotation.path, "missing",
                        "no image for it: looked for <filename> {!r} and the stems {} with "
                        ".jpg, .jpeg or .png beside the XML file and in {}".format(
                            annotation.filename, ", ".join(stems), images_dir))


def _jobs(split, stats, ids, keep_empty, strict):
    """(annotation, image path) of the images worth opening, in file order; an image that
    is not found is counted (or raised under --strict) here, without a reader's round trip."""
    for annotation in split.annotations:
        interrupts.check()
        stats["images"]["total"] += 1
        stats["objects"]["total"] += len(annotation.objects)
        known = sum(1 for o in annotation.objects if o.name in ids)
        if not known and not keep_empty:
            stats["images"]["dropped"]["no_objects"] += 1
            stats["objects"]["dropped"]["unknown_label"] += len(annotation.objects)
            continue
        image = vocsource.find_image(annotation.path, annotation.filename,
                                     split.annotations_dir, split.images_dir)
        if image is None:
            _lost(annotation, known, _missing(annotation, split.images_dir), stats, strict)
            continue
        yield annotation, image


def _lost(annotation, known, problem, stats, strict):
    """Count an annotation whose image cannot be used: its known objects go with the image,
    the others count as unknown labels (they would have been dropped anyway)."""
    stats["objects"]["dropped"]["unknown_label"] += len(annotation.objects) - known
    pipeline.image_problem(problem, "the image of {}".format(annotation.path), stats, known,
                           strict, boxes="objects")


def _write_split(split, output_dir, labels, *, shards, workers, strict, keep_empty, csv,
                 progress, writers):
    """Stream one split into its (temporary) outputs; return (stats, counter, digest, ...)."""
    ids = {name: i for i, name in enumerate(labels, 1)}
    stats = new_stats()
    counter = _Counter(labels)
    digest = ImageDigest()
    records = ShardedWriter(output_dir, split.name, shards, classes=True)
    writers.append(records)
    csv_writer = None
    if csv:
        csv_writer = CsvWriter(os.path.join(output_dir, "{}_labels.csv".format(split.name)))
        writers.append(csv_writer)
    inline = workers <= 1

    results = ordered_map(inspect_job, _jobs(split, stats, ids, keep_empty, strict),
                          lambda item: (split.images_dir, item[1], inline), workers)
    try:
        for (annotation, _), info in track(results, "convert " + split.name,
                                           len(split.annotations), enabled=progress):
            interrupts.check()
            if not isinstance(info, ImageProblem) and info.data is None:
                info = attach_bytes(split.images_dir, info)  # noqa: PLW2901
            if isinstance(info, ImageProblem):
                _lost(annotation, sum(1 for o in annotation.objects if o.name in ids), info,
                      stats, strict)
                continue
            boxes = _boxes(annotation, info, ids, stats, counter)
            if not boxes and not keep_empty:
                stats["images"]["dropped"]["no_objects"] += 1
                continue
            name = _relative_name(info.path, split)
            digest.add(name, info.size, info.sha256)
            records.add(name, info._replace(path=name), boxes)
            if csv_writer is not None:
                csv_writer.add(name, info.width, info.height,
                               [(b.text, b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes])
            stats["images"]["kept"] += 1
            stats["objects"]["kept"] += len(boxes)
            counter.add(boxes)
    finally:
        results.close()
    pipeline.check_totals(stats)
    return records, csv_writer, stats, counter, digest


def convert_voc(annotations_dir, output_dir, *, images_dir=None, val_annotations=None,
                val_images=None, val_fraction=0.2, seed=0, labels=None, label_map=None,
                unknown_labels="fail", keep_empty=False, shards=1, val_shards=1, workers=1,
                strict=False, csv=True, progress=True, sources=None):
    """Convert a VOC folder into train and val data; return {split: dataset.json entry}."""
    if unknown_labels not in UNKNOWN_LABELS:
        raise DatasetError("--unknown-labels must be fail or drop, got {!r}".format(
            unknown_labels))
    splits = read_splits(annotations_dir, images_dir, val_annotations=val_annotations,
                         val_images=val_images, val_fraction=val_fraction, seed=seed)
    labels, label_source = choose_labels(splits, labels, label_map)
    unknown = vocsource.unknown_label_lines(
        [a for split in splits for a in split.annotations], labels)
    if unknown and unknown_labels == "fail":
        raise vocsource.unknown_labels_error(unknown, labels, label_source)
    options = {"unknown_labels": unknown_labels, "keep_empty": bool(keep_empty)}
    if val_annotations:
        options["val_annotations"] = splits[1].annotations_dir
    else:
        options.update({"val_fraction": float(val_fraction), "seed": int(seed)})
    output_dir = str(output_dir)
    with claim_output(output_dir, "train", "split train into {}".format(output_dir)), \
            claim_output(output_dir, "val", "split val into {}".format(output_dir)):
        return _convert(splits, output_dir, labels, options, shards=(shards, val_shards),
                        workers=workers, strict=strict, keep_empty=keep_empty, csv=csv,
                        progress=progress, sources=sources)


def _convert(splits, output_dir, labels, options, *, shards, workers, strict, keep_empty, csv,
             progress, sources):
    writers = []
    written = []
    with filling(writers):
        for split, count in zip(splits, shards):
            written.append((split,) + _write_split(
                split, output_dir, labels, shards=count, workers=workers, strict=strict,
                keep_empty=keep_empty, csv=csv, progress=progress, writers=writers))
        for split, _, _, stats, _, _ in written:
            if stats["images"]["kept"] == 0:
                raise DatasetError(
                    "no image of the {} split is left ({} annotation files; dropped: {}): "
                    "check that the images are there and the classes match".format(
                        split.name, stats["images"]["total"], pipeline.drops_text(stats["images"])))

    entries = {}
    with committing(writers):
        committed = []
        for split, records, csv_writer, _, _, _ in written:
            outputs = {"tfrecord": shard_entries(records.commit(), split.name,
                                                 len(records.names)),
                       "label_map": "label_map.pbtxt"}
            if csv_writer is not None:
                csv_writer.commit()
                outputs["csv"] = {"name": os.path.basename(csv_writer.path),
                                  "rows": csv_writer.rows}
            committed.append(outputs)
        write_label_map(os.path.join(output_dir, "label_map.pbtxt"), labels)
        for (split, records, _, stats, counter, digest), outputs in zip(written, committed):
            inputs = {"annotations": split.annotation_input(),
                      "images": digest.as_dict(split.images_dir)}
            if sources:
                inputs["sources"] = dict(sources)
            entry = {
                "command": "convert", "format": FORMAT, "split": split.name,
                "inputs": inputs, "options": options, "labels": list(labels),
                "classes": counter.classes, "images": stats["images"],
                "objects": stats["objects"], "warnings": counter.warnings,
                "outputs": outputs, "tool": tool_versions(records.tf),
            }
            update_manifest(output_dir, split.name, entry)
            entries[split.name] = entry
    return entries

