"""Write-to-temp-then-rename helpers, so an interrupted run never leaves a complete-looking file.

Temporary names start with a dot and end in `.tmp-<pid>`: no glob such as
`train.record-*` in a pipeline config can pick one up.
"""

import contextlib
import hashlib
import logging
import os
import shutil

log = logging.getLogger(__name__)


def temp_path(path):
    """The hidden temporary name `path` is written under before the final rename."""
    head, tail = os.path.split(path)
    return os.path.join(head, ".{}.tmp-{}".format(tail, os.getpid()))


def fsync_file(path):
    # Rename makes the name atomic; fsync makes sure the renamed file has its data
    # even if the host loses power right after the run reports success.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def start_writeback(path):
    """Ask the kernel to start writing `path`'s dirty pages to disk now, without waiting.

    On Linux POSIX_FADV_DONTNEED starts asynchronous writeback of the whole file and
    drops the pages already clean. Called every few tens of MB while a large file is
    written, it spreads the disk writes over the run, so the fsync before the rename
    has little left to wait for, and the output does not crowd the page cache.
    A no-op where posix_fadvise does not exist.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        log.debug("posix_fadvise(%s): %s", path, exc)
    finally:
        os.close(fd)


def commit(tmp, path):
    """Move a finished temporary file or directory into place."""
    if os.path.isdir(tmp):
        old = None
        if os.path.isdir(path):
            old = temp_path(path) + ".old"
            os.rename(path, old)
        os.rename(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def discard(tmp):
    """Remove a temporary file or directory, ignoring what is already gone."""
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """open() that writes to a temporary name and renames it to `path` on success only."""
    tmp = temp_path(path)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        discard(tmp)
        raise
    os.replace(tmp, path)


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 and size in bytes of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
