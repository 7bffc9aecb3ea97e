"""The shared per-image stream: annotations -> filters -> image header -> clipped boxes.

Counting lives here so every command reports drops the same way, and the
invariant holds: total = kept + sum(dropped by reason), for images and faces.
"""

import collections
import logging
import re
import sys

from facekit import interrupts
from facekit.dataset import filters as flt
from facekit.dataset.errors import DatasetError, ImageError
from facekit.dataset.images import ImageProblem, attach_bytes, inspect_job
from facekit.dataset.parallel import ordered_map
from facekit.dataset.wider import parse_annotations
from facekit.progress import track

log = logging.getLogger(__name__)

_SPLIT_RE = re.compile(r"wider_face_([A-Za-z0-9]+)_bbx_gt\.txt$")


def split_from_name(annotations):
    """'val' for .../wider_face_val_bbx_gt.txt; DatasetError when the name says nothing."""
    match = _SPLIT_RE.search(str(annotations))
    if match is None:
        raise DatasetError(
            "cannot tell the split from the file name {}; pass --split (e.g. train or val)".format(
                annotations))
    return match.group(1)


def new_stats():
    """Counters for one run; `dropped` always lists every reason, zero or not."""
    return collections.OrderedDict([
        ("images", collections.OrderedDict(
            [("total", 0), ("kept", 0), ("dropped", flt.image_counts())])),
        ("faces", collections.OrderedDict(
            [("total", 0), ("kept", 0), ("dropped", flt.face_counts())])),
    ])


def image_problem(problem, where, stats, lost, strict, *, boxes="faces"):
    """Count (and log) an image that cannot be used, or raise under --strict.

    lost: how many of its boxes go with it, counted under stats[boxes] ("faces" for WIDER,
    "objects" for a VOC data set) as image_<kind>."""
    message = "{} ({})".format(problem.reason, where)
    if strict:
        raise ImageError("{}; fix or remove it, or run without --strict to skip such "
                         "images".format(message))
    log.warning("skipping image %s: %s", problem.path, message)
    stats["images"]["dropped"][problem.kind] += 1
    stats[boxes]["dropped"]["image_" + problem.kind] += lost


def kept_images(annotations, images_dir, config, stats, *, workers=1, strict=False,
                keep_bytes=True, image_digest=None, annotation_digest=None, progress=True,
                label="convert"):
    """Yield (WiderImage, ImageInfo, [Box]) for every image that survives, in annotation order.

    Images whose faces all fail the annotation filters are dropped before their file
    is opened (unless config.keep_empty), which is most of WIDER and most of the time.
    """
    faces_dropped = stats["faces"]["dropped"]
    images_dropped = stats["images"]["dropped"]

    def candidates():
        for image in parse_annotations(annotations, annotation_digest):
            interrupts.check()
            stats["images"]["total"] += 1
            stats["faces"]["total"] += len(image.faces)
            kept = flt.filter_annotation(image.faces, config, faces_dropped)
            if kept or config.keep_empty:
                yield image, kept
            else:
                images_dropped["no_faces"] += 1

    total = None
    if progress and sys.stderr.isatty():
        # Only a progress bar needs the total; a cheap extra parse of the text file.
        total = sum(1 for image in parse_annotations(annotations)
                    if config.keep_empty or any(
                        flt.annotation_drop_reason(f, config) is None for f in image.faces))
    inline_bytes = keep_bytes and workers <= 1
    results = ordered_map(
        inspect_job, candidates(), lambda c: (images_dir, c[0].path, inline_bytes), workers)
    try:
        for (image, kept), info in track(results, label, total, enabled=progress):
            interrupts.check()
            if keep_bytes and not isinstance(info, ImageProblem) and info.data is None:
                info = attach_bytes(images_dir, info)  # noqa: PLW2901
            if isinstance(info, ImageProblem):
                where = "listed on line {} of {}".format(image.line, annotations)
                image_problem(info, where, stats, len(kept), strict)
                continue
            if image_digest is not None:
                image_digest.add(info.path, info.size, info.sha256)
            boxes = flt.clip_faces(kept, info.width, info.height, faces_dropped)
            if not boxes and not config.keep_empty:
                images_dropped["no_faces"] += 1
                continue
            stats["images"]["kept"] += 1
            stats["faces"]["kept"] += len(boxes)
            yield image, info, boxes
    finally:
        results.close()


def drops_text(part):
    """'reason n, ...' of the non-zero drop counts of a stats part, or 'none'."""
    nonzero = ["{} {}".format(k, v) for k, v in part["dropped"].items() if v]
    return ", ".join(nonzero) if nonzero else "none"


def check_totals(stats):
    """Fail loudly if a code path ever lost count of an image or a box."""
    for what in stats:
        part = stats[what]
        accounted = part["kept"] + sum(part["dropped"].values())
        if accounted != part["total"]:
            raise AssertionError("{}: {} total but {} kept + dropped".format(
                what, part["total"], accounted))
