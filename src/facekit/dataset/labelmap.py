"""label_map.pbtxt: the Object Detection API's class list (one class, id 1, 'face')."""

from facekit import files

LABEL_MAP = "item {\n  id: 1\n  name: 'face'\n}\n"


def write_label_map(path):
    with files.atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(LABEL_MAP)
