"""The seed tutorial's three steps, for people who follow it step by step:

    to_voc       WIDER annotations + images -> VOC XML directory
    to_csv       VOC XML directory -> box CSV            (the seed's xml_to_csv)
    to_tfrecord  box CSV + images -> TFRecord shards      (the seed's generate_tfrecord)

Chained they give the same TFRecords, byte for byte, as `convert`, which does
all of it in one pass and is what the dataset stage runs.
"""

import glob
import hashlib
import logging
import os

from facekit import interrupts
from facekit.dataset import filters as flt
from facekit.dataset import pipeline
from facekit.dataset.convert import annotation_input, shard_entries
from facekit.dataset.csvfile import CsvWriter, read_images
from facekit.dataset.errors import AnnotationError, DatasetError
from facekit.dataset.images import ImageProblem, attach_bytes, inspect_job
from facekit.dataset.labelmap import write_label_map
from facekit.dataset.manifest import ImageDigest, split_entry, update_manifest
from facekit.dataset.parallel import ordered_map
from facekit.dataset.tfrecord import CLASS_TEXT, ShardedWriter
from facekit.dataset.voc import VocWriter, read_annotation
from facekit.dataset.writing import committing, filling
from facekit.files import sha256_file
from facekit.lock import claim_output
from facekit.progress import track

log = logging.getLogger(__name__)


def to_voc(annotations, images_dir, voc_dir, *, split=None, config=flt.DEFAULT_FILTERS,
           workers=1, strict=False, progress=True):
    """Write one VOC XML per kept image (same filters and counts as convert).

    Also writes <voc_dir>/dataset.json. Image bytes are read (to check the file
    is whole) but not kept.
    """
    split = split or pipeline.split_from_name(annotations)
    # normpath: "out/voc/" would put the temporary inside the directory it replaces.
    voc_dir = os.path.normpath(str(voc_dir))
    # The VOC directory's temporary is its sibling; a dataset.json write cut short
    # leaves one inside it (which would make VocWriter refuse the directory).
    parent = os.path.dirname(os.path.abspath(voc_dir))
    with claim_output(parent, os.path.basename(os.path.abspath(voc_dir)),
                      "the VOC directory {}".format(voc_dir), also_clean=(voc_dir,)):
        return _to_voc(annotations, images_dir, voc_dir, split=split, config=config,
                       workers=workers, strict=strict, progress=progress)


def _to_voc(annotations, images_dir, voc_dir, *, split, config, workers, strict, progress):
    stats = pipeline.new_stats()
    annotation_digest = hashlib.sha256()
    image_digest = ImageDigest()
    writers = []
    with filling(writers):
        writer = VocWriter(voc_dir, split)
        writers.append(writer)
        for image, info, boxes in pipeline.kept_images(
                annotations, images_dir, config, stats, workers=workers, strict=strict,
                keep_bytes=False, image_digest=image_digest,
                annotation_digest=annotation_digest, progress=progress, label="to-voc " + split):
            writer.add(image.path, info, boxes)
        pipeline.check_totals(stats)
    with committing(writers):
        writer.commit()
        inputs = {"annotations": annotation_input(annotations, annotation_digest),
                  "images": image_digest.as_dict(images_dir)}
        outputs = {"voc": {"dir": ".", "annotations": writer.count,
                           "image_set": "ImageSets/Main/{}.txt".format(split)}}
        entry = split_entry("to-voc", split, inputs=inputs, filters=config, stats=stats,
                            outputs=outputs)
        update_manifest(voc_dir, split, entry)
    return entry


def voc_files(voc_dir, split=None):
    """The XML files of a VOC directory, in image-set order when a list exists.

    Accepts facekit's layout (Annotations/ + ImageSets/Main/<split>.txt) and the
    seed's flat folder of XML files (sorted by name).
    """
    annotations = os.path.join(voc_dir, "Annotations")
    sets = os.path.join(voc_dir, "ImageSets", "Main")
    if split is None and os.path.isdir(sets):
        lists = sorted(f for f in os.listdir(sets) if f.endswith(".txt"))
        if len(lists) == 1:
            split = lists[0][:-4]
        elif len(lists) > 1:
            raise DatasetError("{} holds several image sets ({}); pass --split".format(
                sets, ", ".join(lists)))
    if split is not None:
        listing = os.path.join(sets, split + ".txt")
        if not os.path.isfile(listing):
            raise DatasetError("no image set {} (expected a list of image ids there)".format(
                listing))
        with open(listing, "r", encoding="utf-8") as fh:
            for line in fh:
                ident = line.strip()
                if ident:
                    yield os.path.join(annotations, *ident.split("/")) + ".xml"
        return
    root = annotations if os.path.isdir(annotations) else voc_dir
    found = sorted(glob.glob(os.path.join(glob.escape(root), "**", "*.xml"), recursive=True))
    if not found:
        raise DatasetError("no .xml files under {}".format(root))
    for path in found:
        yield path


def to_csv(voc_dir, csv_path, split=None):
    """Collect VOC XML files into the box CSV; return {"xml_files", "rows", "objects"}."""
    voc_dir = str(voc_dir)
    csv_path = str(csv_path)
    parent = os.path.dirname(os.path.abspath(csv_path))
    with claim_output(parent, os.path.basename(csv_path), "the CSV {}".format(csv_path)):
        return _to_csv(voc_dir, csv_path, split)


def _to_csv(voc_dir, csv_path, split):
    writer = CsvWriter(csv_path)
    counts = {"xml_files": 0, "objects": 0}
    with filling([writer]):
        for path in voc_files(voc_dir, split):
            interrupts.check()
            if not os.path.isfile(path):
                raise DatasetError("{} is listed in the image set but does not exist".format(
                    path))
            filename, width, height, objects = read_annotation(path)
            writer.add(filename, width, height, objects)
            counts["xml_files"] += 1
            counts["objects"] += len(objects)
    with committing([writer]):
        writer.commit()
    counts["rows"] = writer.rows
    log.info("%s: %d rows from %d XML files", csv_path, writer.rows, counts["xml_files"])
    return counts


def _csv_jobs(csv_path, stats):
    """(filename, width, height, boxes, had_objects, line) per CSV image, classes checked."""
    class_name = CLASS_TEXT.decode("ascii")
    for filename, width, height, objects, lineno in read_images(csv_path):
        stats["images"]["total"] += 1
        stats["faces"]["total"] += len(objects)
        for obj in objects:
            if obj[0] != class_name:
                raise AnnotationError(
                    csv_path, lineno,
                    "class {!r} of {} is not in the label map (only {!r}); remove those rows "
                    "or map them to {!r}".format(obj[0], filename, class_name, class_name))
        boxes = []
        for obj in objects:
            box = flt.clip_box(obj[1:], width, height)
            if box is None:
                stats["faces"]["dropped"]["degenerate"] += 1
            else:
                boxes.append(box)
        if objects and not boxes:
            stats["images"]["dropped"]["no_faces"] += 1
            continue
        yield filename, width, height, boxes, lineno


def to_tfrecord(csv_path, images_dir, output_dir, split, *, shards=1, workers=1, strict=False,
                progress=True):
    """Build TFRecord shards (+ label_map.pbtxt, dataset.json) from the box CSV.

    Sizes and boxes come from the CSV; each image is still opened to take its bytes
    and to check that its header agrees with the CSV's size. Images with no rows
    but the empty negative-example row are written without boxes.
    """
    csv_path = str(csv_path)
    output_dir = str(output_dir)
    with claim_output(output_dir, split, "split {} into {}".format(split, output_dir)):
        return _to_tfrecord(csv_path, images_dir, output_dir, split, shards=shards,
                            workers=workers, strict=strict, progress=progress)


def _to_tfrecord(csv_path, images_dir, output_dir, split, *, shards, workers, strict, progress):
    stats = pipeline.new_stats()
    image_digest = ImageDigest()
    writers = []
    results = ordered_map(inspect_job, _csv_jobs(csv_path, stats),
                          lambda job: (images_dir, job[0], workers <= 1), workers)
    with filling(writers, cleanup=results.close):
        records = ShardedWriter(output_dir, split, shards)
        writers.append(records)
        for (filename, width, height, boxes, lineno), result in track(
                results, "to-tfrecord " + split, enabled=progress):
            interrupts.check()
            where = "row on line {} of {}".format(lineno, csv_path)
            if not isinstance(result, ImageProblem) and result.data is None:
                result = attach_bytes(images_dir, result)  # noqa: PLW2901
            problem = result if isinstance(result, ImageProblem) else None
            if problem is None and (result.width, result.height) != (width, height):
                problem = ImageProblem(filename, "corrupt",
                                       "{} is {}x{} but the CSV says {}x{}".format(
                                           os.path.join(images_dir, filename), result.width,
                                           result.height, width, height))
            if problem is not None:
                pipeline.image_problem(problem, where, stats, len(boxes), strict)
                continue
            image_digest.add(result.path, result.size, result.sha256)
            records.add(filename, result, boxes)
            stats["images"]["kept"] += 1
            stats["faces"]["kept"] += len(boxes)
        pipeline.check_totals(stats)
        sha, size = sha256_file(csv_path)
    with committing(writers):
        outputs = {"tfrecord": shard_entries(records.commit(), split, shards),
                   "label_map": "label_map.pbtxt"}
        write_label_map(os.path.join(output_dir, "label_map.pbtxt"))
        inputs = {"csv": {"path": csv_path, "sha256": sha, "bytes": size},
                  "images": image_digest.as_dict(images_dir)}
        entry = split_entry("to-tfrecord", split, inputs=inputs, filters=None, stats=stats,
                            outputs=outputs, tf=records.tf)
        update_manifest(output_dir, split, entry)
    return entry
