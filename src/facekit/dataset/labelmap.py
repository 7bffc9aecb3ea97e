"""label_map.pbtxt: the Object Detection API's class list, ids 1..N in the given order.

The label map is the one source of truth for class ids: the records' class/label values,
the pipeline config's num_classes and the bundle's labels.txt all follow it.
"""

from facekit import files
from facekit.dataset.errors import DatasetError
from facekit.model.errors import ModelError

FACE_LABELS = ("face",)


def label_map_text(labels=FACE_LABELS):
    """The label map's text for `labels` (names, id order)."""
    return "".join("item {{\n  id: {}\n  name: '{}'\n}}\n".format(i, name.replace("'", "\\'"))
                   for i, name in enumerate(labels, 1))


def write_label_map(path, labels=FACE_LABELS):
    with files.atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(label_map_text(labels))


def check_labels(labels, where):
    """`labels` as a list when the names can be classes: none empty, none twice."""
    labels = list(labels)
    if not labels:
        raise DatasetError("{}: no class names".format(where))
    seen = set()
    for name in labels:
        if not name or name != name.strip():
            raise DatasetError("{}: class name {!r} is empty or has surrounding spaces".format(
                where, name))
        if name in seen:
            raise DatasetError("{}: class {!r} is listed twice".format(where, name))
        seen.add(name)
    return labels


def read_labels(path):
    """The class names of a label_map.pbtxt, id order, by their `name` field (what the
    annotations' <name> must match); DatasetError naming the file and line otherwise."""
    from facekit.model.labels import read_label_map  # noqa: PLC0415

    try:
        names = read_label_map(path, label_field="name")
    except ModelError as exc:
        raise DatasetError("label map {}".format(exc)) from None
    except OSError as exc:
        raise DatasetError("cannot read the label map {}: {}".format(path, exc.strerror)) \
            from None
    return check_labels(names, path)
