"""The WIDER FACE faces a data set's filters left out of its records, set aside in scoring.

`facekit dataset convert` keeps a face only if it passes the filters (by default valid,
clear and at least 50 px on its longer side); the blurred, invalid and small faces it drops
are still in the images. A detector that finds one is right, yet against the records alone
it counts as a false positive, and the precision of the val split comes out lower than the
kits' precision on images scored with those faces set aside (in one lab run 15 of the 21
false positives at score 0.5 sat on dropped blurred faces: val precision 0.94 against 0.98
once they are set aside). WIDER FACE's own evaluation sets aside the faces outside the
setting it scores in the same way, and VOC's difficult flag does it for VOC's hard objects.

`with_dropped_faces` reads the split's annotation file and gives each record, beside its
own boxes, every annotated face (with an area inside the image) that none of its boxes is,
flagged difficult: facekit.eval.voc then counts a detection on one as neither a true nor a
false positive, and it is not among the objects to find. Python 3.6.
"""

import collections
import hashlib
import os

import numpy as np

from facekit.dataset import filters, wider
from facekit.eval.errors import EvalError

# A record box and an annotated face are the same face when their pixel edges agree this
# closely (the records store normalised float32 edges of the clipped face box).
SAME_FACE_PX = 0.5


class AnnotationsMismatch(EvalError):
    """The annotation file does not describe the records."""


def _faces_by_image(path, digest):
    if not os.path.isfile(str(path)):
        raise AnnotationsMismatch("--wider-annotations {}: no such file: give the WIDER FACE "
                                  "annotation file of the records' split (wider_face_val_bbx_"
                                  "gt.txt)".format(path))
    faces = collections.OrderedDict()
    for image in wider.parse_annotations(path, digest):
        faces[image.path] = image.faces
    return faces


def _dropped(record, faces, width, height):
    """Pixel edges (ymin, xmin, ymax, xmax), clipped, of the `faces` no box of `record` is."""
    kept = record.boxes * np.array([height, width, height, width], dtype=np.float64)
    found = []
    for face in faces:
        box = filters.clip_box((face.x, face.y, face.x + face.w, face.y + face.h),
                               width, height)
        if box is None:
            continue
        edges = np.array([box.ymin, box.xmin, box.ymax, box.xmax], dtype=np.float64)
        if len(kept) and np.any(np.all(np.abs(kept - edges) <= SAME_FACE_PX, axis=1)):
            continue
        found.append(edges)
    return found


def with_dropped_faces(results, annotations):
    """(results with each record's dropped faces added as difficult class-1 boxes, the
    document eval.json keeps: the file, its sha256 and how many faces were added).

    results: runner.ImageResult per record, each record's image/filename a path of the
    annotation file (`0--Parade/0_Parade_marchingband_1_465.jpg`). AnnotationsMismatch names
    the first record the file does not list."""
    # One read: the parser feeds the digest every byte it reads.
    digest = hashlib.sha256()
    faces = _faces_by_image(annotations, digest)
    out = []
    added = 0
    for result in results:
        record = result.record
        if record.filename not in faces:
            raise AnnotationsMismatch(
                "{}: record {} ({}) is not listed in {}: give --wider-annotations the WIDER "
                "FACE annotation file of the split these records were converted from".format(
                    record.path, record.number, record.filename or "no image/filename",
                    annotations))
        width, height = result.size
        extra = _dropped(record, faces[record.filename], width, height)
        if extra:
            scale = np.array([height, width, height, width], dtype=np.float64)
            boxes = np.concatenate([record.boxes.reshape(-1, 4), np.array(extra) / scale])
            record = record._replace(
                boxes=boxes,
                labels=np.concatenate([record.labels, np.ones(len(extra), dtype=np.int64)]),
                difficult=np.concatenate([record.difficult, np.ones(len(extra), dtype=bool)]))
            added += len(extra)
        out.append(result._replace(record=record))
    doc = {"annotations": {"path": str(annotations), "sha256": digest.hexdigest(),
                           "bytes": os.path.getsize(str(annotations))},
           "faces": added}
    return out, doc
