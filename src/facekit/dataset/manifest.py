"""dataset.json: what a conversion read, kept, dropped (by reason) and wrote.

One file per output directory, one entry per split under "splits", so the
train and val runs of the dataset stage hand over a single manifest. Keys are
sorted and nothing time-dependent is recorded: the same inputs give the same bytes.
"""

import hashlib
import json
import logging
import os
import platform

import facekit
from facekit import files

log = logging.getLogger(__name__)

MANIFEST = "dataset.json"
FORMAT = 1


def tool_versions(tf=None):
    """Versions that shaped the output; `tf` is the TensorFlow module the writer used."""
    versions = {"facekit": facekit.__version__, "python": platform.python_version()}
    if tf is not None:
        versions["tensorflow"] = tf.__version__
    return versions


def split_entry(command, split, *, inputs, filters, stats, outputs, tf=None):
    """One split's dataset.json entry: what a command read, kept, dropped and wrote.

    filters: the FilterConfig used (None when the command applies none);
    stats: pipeline.new_stats() counters; tf: the TensorFlow module that wrote records.
    """
    return {
        "command": command,
        "format": "wider",
        "labels": ["face"],
        "split": split,
        "inputs": inputs,
        "filters": None if filters is None else dict(filters._asdict()),
        "images": stats["images"],
        "faces": stats["faces"],
        "outputs": outputs,
        "tool": tool_versions(tf),
    }


class ImageDigest(object):
    """sha256 over "<path>\\t<bytes>\\t<sha256>\\n" of every image read, in annotation order.

    Covers exactly the images the conversion opened (those with a face left after
    the annotation filters, or all with --keep-empty), missing/corrupt ones
    excluded; images on disk that the annotation file does not list, or whose
    faces were all filtered out, are not covered.
    """

    def __init__(self):
        self._digest = hashlib.sha256()
        self.count = 0
        self.bytes = 0

    def add(self, relpath, size, sha256):
        self._digest.update("{}\t{}\t{}\n".format(relpath, size, sha256).encode("utf-8"))
        self.count += 1
        self.bytes += size

    def as_dict(self, root):
        return {
            "root": str(root),
            "sha256": self._digest.hexdigest(),
            "images": self.count,
            "bytes": self.bytes,
            "covers": "sha256 over '<path>\\t<size>\\t<sha256 of file>\\n' lines, in annotation "
                      "order, of the images that were read (a face left after the annotation "
                      "filters, or every image with --keep-empty); missing, corrupt and "
                      "unlisted images are not covered",
        }


def update_manifest(output_dir, split, entry):
    """Write `entry` as splits[split] of <output_dir>/dataset.json, keeping other splits.

    Tool versions live in each split's entry: train and val may be converted on
    different hosts.
    """
    path = os.path.join(output_dir, MANIFEST)
    splits = {}
    if os.path.exists(path):
        try:
            with open(path, "r", encoding="utf-8") as fh:
                old = json.load(fh)
            if isinstance(old, dict) and isinstance(old.get("splits"), dict):
                splits = old["splits"]
        except ValueError:
            log.warning("replacing %s: it is not valid JSON", path)
    splits[split] = entry
    doc = {"format": FORMAT, "splits": splits}
    files.write_json(path, doc)
    return path
