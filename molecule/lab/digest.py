"""sha256 of a file, for the lab's stand-in builders (standins.py, models_standin.py,
widerface_sample.py): one definition, importable from this folder."""

import hashlib


def file_sha256(path):
    """Hex sha256 of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
