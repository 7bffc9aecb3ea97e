"""Which WIDER FACE faces and images make it into the training data, and why others don't.

Defaults are the seed tutorial's: keep a face only if it is valid (invalid == 0),
clear (blur == 0) and at least 50 px on its longer side. Every dropped face and
image is counted under one reason so the totals in dataset.json always add up.
"""

import collections

FilterConfig = collections.namedtuple(
    "FilterConfig", ["max_blur", "min_size", "keep_invalid", "keep_empty"]
)
FilterConfig.__doc__ = """Face and image filters.

max_blur: keep faces whose blur label is <= this (0 clear, 1 normal, 2 heavy).
min_size: keep faces whose longer annotated side is >= this many pixels.
keep_invalid: keep faces WIDER marks invalid.
keep_empty: keep images left without faces, as negative examples.
"""

DEFAULT_FILTERS = FilterConfig(max_blur=0, min_size=50, keep_invalid=False, keep_empty=False)

# Checked in this order; a face is counted under the first reason that applies.
# "degenerate" comes before "small" so zero-size boxes (WIDER has some) show up
# as what they are rather than hiding among small faces.
FACE_REASONS = (
    "invalid", "blur", "degenerate", "small",
    "image_missing", "image_unreadable", "image_corrupt",
)
IMAGE_REASONS = ("missing", "unreadable", "corrupt", "no_faces")

# A face box in pixel edges (0-based, xmax/ymax exclusive: xmax = x1 + w), clipped
# to the image; `truncated` says clipping cut it, which VOC records per object.
Box = collections.namedtuple("Box", ["xmin", "ymin", "xmax", "ymax", "truncated"])


def face_counts():
    """A zeroed face-drop counter with every reason present (stable manifest keys)."""
    return collections.OrderedDict((reason, 0) for reason in FACE_REASONS)


def image_counts():
    """A zeroed image-drop counter with every reason present."""
    return collections.OrderedDict((reason, 0) for reason in IMAGE_REASONS)


def annotation_drop_reason(face, config):
    """Why `face` fails the filters on its annotation alone, or None to keep it."""
    if face.invalid and not config.keep_invalid:
        return "invalid"
    if face.blur > config.max_blur:
        return "blur"
    if face.w <= 0 or face.h <= 0:
        return "degenerate"
    if max(face.w, face.h) < config.min_size:
        return "small"
    return None


def filter_annotation(faces, config, dropped):
    """Faces that pass the annotation filters; others are counted in `dropped`."""
    kept = []
    for face in faces:
        reason = annotation_drop_reason(face, config)
        if reason is None:
            kept.append(face)
        else:
            dropped[reason] += 1
    return kept


def clip_box(edges, width, height):
    """Clip (xmin, ymin, xmax, ymax) pixel edges to the image; None when nothing is left."""
    xmin, ymin, xmax, ymax = edges
    cxmin = min(max(xmin, 0), width)
    cymin = min(max(ymin, 0), height)
    cxmax = min(max(xmax, 0), width)
    cymax = min(max(ymax, 0), height)
    if cxmax <= cxmin or cymax <= cymin:
        return None
    truncated = (cxmin, cymin, cxmax, cymax) != (xmin, ymin, xmax, ymax)
    return Box(cxmin, cymin, cxmax, cymax, truncated)


def clip_faces(faces, width, height, dropped):
    """Boxes of `faces` clipped to the image; boxes left without area count as degenerate."""
    boxes = []
    for face in faces:
        box = clip_box((face.x, face.y, face.x + face.w, face.y + face.h), width, height)
        if box is None:
            dropped["degenerate"] += 1
        else:
            boxes.append(box)
    return boxes
