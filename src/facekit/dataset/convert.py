"""`facekit dataset convert`: WIDER FACE -> VOC XML + CSV + TFRecord shards + label map
+ dataset.json, in one pass over the images.

Outputs in <output_dir> (each written under a hidden temporary name, renamed when
complete; dataset.json last, so its presence means the run finished):

    <split>.record  or  <split>.record-00000-of-0000N ...   TFRecord shards
    <split>_labels.csv                                       the seed's box CSV
    <split>_voc/Annotations/..., <split>_voc/ImageSets/Main/<split>.txt
    label_map.pbtxt
    dataset.json                                             manifest, one entry per split
"""

import hashlib
import logging
import os

from facekit.dataset import filters as flt
from facekit.dataset import pipeline
from facekit.dataset.csvfile import CsvWriter
from facekit.dataset.labelmap import write_label_map
from facekit.dataset.manifest import ImageDigest, split_entry, update_manifest
from facekit.dataset.tfrecord import ShardedWriter, shard_glob
from facekit.dataset.voc import CLASS_NAME, VocWriter
from facekit.dataset.wider import parse_annotations
from facekit.dataset.writing import committing, filling
from facekit.lock import claim_output

log = logging.getLogger(__name__)


def objects_of(boxes):
    """CSV objects for clipped boxes: [(class, xmin, ymin, xmax, ymax)]."""
    return [(CLASS_NAME, b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes]


def shard_entries(committed, split, shards):
    return {
        "glob": shard_glob(split, shards),
        "shards": [{"name": name, "records": records, "bytes": size}
                   for name, records, size in committed],
        "records": sum(records for _, records, _ in committed),
    }


def annotation_input(annotations, digest):
    return {"path": str(annotations), "sha256": digest.hexdigest(),
            "bytes": os.path.getsize(str(annotations))}


def convert(annotations, images_dir, output_dir, *, split=None, config=flt.DEFAULT_FILTERS,
            shards=1, workers=1, strict=False, voc=True, csv=True, progress=True,
            sources=None):
    """Convert one WIDER FACE split; return its dataset.json entry (counts, inputs, outputs).

    annotations: wider_face_<split>_bbx_gt.txt; images_dir: the folder holding the
    event folders (WIDER_<split>/images). sources: {archive name: checksum} recorded as
    inputs.sources (what the dataset stage downloaded). Raises AnnotationError for a malformed
    annotation file, ImageError for a bad image under `strict` and DatasetError
    while another run writes the same split into output_dir.
    """
    split = split or pipeline.split_from_name(annotations)
    output_dir = str(output_dir)
    with claim_output(output_dir, split, "split {} into {}".format(split, output_dir)):
        return _convert(annotations, images_dir, output_dir, split=split, config=config,
                        shards=shards, workers=workers, strict=strict, voc=voc, csv=csv,
                        progress=progress, sources=sources)


def _convert(annotations, images_dir, output_dir, *, split, config, shards, workers, strict, voc,
             csv, progress, sources):
    stats = pipeline.new_stats()
    annotation_digest = hashlib.sha256()
    image_digest = ImageDigest()
    csv_name = "{}_labels.csv".format(split)
    voc_name = "{}_voc".format(split)

    writers = []
    with filling(writers):
        records = ShardedWriter(output_dir, split, shards)
        writers.append(records)
        csv_writer = voc_writer = None
        if csv:
            csv_writer = CsvWriter(os.path.join(output_dir, csv_name))
            writers.append(csv_writer)
        if voc:
            voc_writer = VocWriter(os.path.join(output_dir, voc_name), split)
            writers.append(voc_writer)
        for image, info, boxes in pipeline.kept_images(
                annotations, images_dir, config, stats, workers=workers, strict=strict,
                image_digest=image_digest, annotation_digest=annotation_digest,
                progress=progress, label="convert " + split):
            records.add(image.path, info, boxes)
            if csv_writer is not None:
                csv_writer.add(image.path, info.width, info.height, objects_of(boxes))
            if voc_writer is not None:
                voc_writer.add(image.path, info, boxes)
        pipeline.check_totals(stats)
    with committing(writers):
        outputs = {"tfrecord": shard_entries(records.commit(), split, shards),
                   "label_map": "label_map.pbtxt"}
        if csv_writer is not None:
            csv_writer.commit()
            outputs["csv"] = {"name": csv_name, "rows": csv_writer.rows}
        if voc_writer is not None:
            voc_writer.commit()
            outputs["voc"] = {"dir": voc_name, "annotations": voc_writer.count}
        write_label_map(os.path.join(output_dir, "label_map.pbtxt"))
        inputs = {"annotations": annotation_input(annotations, annotation_digest),
                  "images": image_digest.as_dict(images_dir)}
        if sources:
            inputs["sources"] = dict(sources)
        entry = split_entry("convert", split, inputs=inputs, filters=config, stats=stats,
                            outputs=outputs, tf=records.tf)
        update_manifest(output_dir, split, entry)
    return entry


def inspect_annotations(annotations, config=flt.DEFAULT_FILTERS):
    """Counts for an annotation file and the filters, without opening any image.

    "kept" here means "passes the annotation filters": clipping and unreadable
    images can only lower it. Images count as kept when a face is left (or all
    of them with keep_empty).
    """
    stats = pipeline.new_stats()
    for image in parse_annotations(annotations):
        stats["images"]["total"] += 1
        stats["faces"]["total"] += len(image.faces)
        kept = flt.filter_annotation(image.faces, config, stats["faces"]["dropped"])
        stats["faces"]["kept"] += len(kept)
        if kept or config.keep_empty:
            stats["images"]["kept"] += 1
        else:
            stats["images"]["dropped"]["no_faces"] += 1
    pipeline.check_totals(stats)
    return stats
