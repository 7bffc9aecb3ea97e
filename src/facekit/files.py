"""Write-to-temp-then-rename helpers, so an interrupted run never leaves a complete-looking
file; file digests; whether a process still runs.

Temporary names start with a dot and end in `.tmp-<pid>`: no glob such as
`train.record-*` in a pipeline config can pick one up, and the pid tells a later
run whether the process that wrote one still runs (remove_stale_temporaries).

Every stage uses these (the dataset's outputs, model bundles, the software bonnet's
state file, the CLI), the Vision Kit included: Python 3.5, standard library only. What is
written for keeps (atomic_open, write_json, atomic_copy, atomic_directory) is synced to disk
before the rename.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading

log = logging.getLogger(__name__)

# `.<name>.tmp-<pid>`, and `.<name>.tmp-<pid>.old`: a replaced output directory on its
# way out (commit()).
_TEMP_RE = re.compile(r"^\..+\.tmp-(?P<pid>[0-9]+)(\.old)?$")

# Temporaries this process named and has not committed or discarded yet. After an
# interrupt the CLI removes whatever is left here (interrupts.stop_signals).
_unfinished = set()


def temp_path(path):
    """The hidden temporary name `path` is written under before the final rename."""
    head, tail = os.path.split(path)
    tmp = os.path.join(head, ".{}.tmp-{}".format(tail, os.getpid()))
    _unfinished.add(tmp)
    return tmp


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
            old = tmp + ".old"
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            if old is not None:
                os.rename(old, path)
            raise
        _unfinished.discard(tmp)
        if old is not None:
            shutil.rmtree(old)
    else:
        os.replace(tmp, path)
        _unfinished.discard(tmp)


def discard(tmp):
    """Remove a temporary file or directory, ignoring what is already gone."""
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    _unfinished.discard(tmp)


def discard_unfinished():
    """Remove every temporary this process named and did not commit or discard."""
    for tmp in sorted(_unfinished):
        discard(tmp)


def live_temporary(name):
    """Whether the file name `name` is a temporary (temp_path's form) whose writer still
    runs: a write in progress, which a check of a folder's contents should leave out.
    The temporaries of processes gone are left-overs and are reported like any file."""
    match = _TEMP_RE.match(name)
    if match is None:
        return False
    pid = int(match.group("pid"))
    return pid == os.getpid() or pid_alive(pid)


def pid_alive(pid):
    """Whether process `pid` exists and is not a zombie (an exited, unreaped child)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    try:
        with open("/proc/{}/stat".format(pid), "rb") as fh:
            stat = fh.read()
    except OSError:
        return True  # no /proc (not Linux): existing is all we can tell
    # "pid (command) state ...": the command may itself hold spaces or parentheses.
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


def remove_stale_temporaries(directory):
    """Remove the temporaries in `directory` that processes no longer running left behind.

    A run stopped by SIGKILL (or a power cut) cannot clean up; its hidden
    `.<name>.tmp-<pid>` files (hundreds of MB for a large split) would stay forever.
    Temporaries whose pid still runs belong to a run in progress and are kept, so are
    this process's own. A pid reused by an unrelated process only delays the removal
    to a later run; pids of another host or container sharing the directory look dead
    from here, which is one reason runs also take an output lock (lock.py).
    Returns the number of entries removed.
    """
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return 0
    by_pid = {}
    for entry in entries:
        match = _TEMP_RE.match(entry)
        if match is None:
            continue
        pid = int(match.group("pid"))
        if pid == os.getpid() or pid_alive(pid):
            continue
        by_pid.setdefault(pid, []).append(entry)
    removed = 0
    for pid, names in sorted(by_pid.items()):
        for name in names:
            discard(os.path.join(directory, name))
        removed += len(names)
        log.warning("removed %d stale temporary files of an interrupted run (pid %d) from %s: "
                    "%s", len(names), pid, directory, ", ".join(names))
    return removed


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
    commit(tmp, path)


def write_json(path, doc, indent=2):
    """Replace the JSON file `path` with `doc` (sorted keys, a final newline) through
    atomic_open: synced and renamed, for files kept (manifests, evaluations)."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(doc, fh, indent=indent, sort_keys=True)
        fh.write("\n")


def atomic_copy(source, path):
    """Copy the file `source` to `path` under a temporary name, synced, then renamed."""
    with open(source, "rb") as src, atomic_open(path, "wb") as fh:
        shutil.copyfileobj(src, fh, 1 << 20)


@contextlib.contextmanager
def atomic_directory(path):
    """A new hidden temporary directory beside `path` to fill in the with block; when the
    block ends without an error, every file in it is synced and the directory is renamed to
    `path` (a directory already there is replaced, see commit). On an error, and when the
    rename fails (OSError: say, another process put a directory there meanwhile), the
    temporary is removed and the error goes on. Files only, no subfolders."""
    tmp = temp_path(path)
    discard(tmp)
    os.makedirs(tmp)
    try:
        yield tmp
        for entry in sorted(os.listdir(tmp)):
            fsync_file(os.path.join(tmp, entry))
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def replace_json(path, doc):
    """Replace the JSON file `path` with `doc` (indented, sorted keys) by a rename, so a
    reader sees the old document or the new one, never half of one.

    For state files a live process rewrites often (the software bonnet's): no fsync, as
    they describe that process and mean nothing after a power cut. The temporary name
    carries the thread too, since several threads of one process may write at once.
    """
    tmp = "{}.tmp-{}-{}".format(path, os.getpid(), threading.get_ident())
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def tail(path, lines=15, missing=""):
    """The last `lines` lines of a text file (a log), trailing whitespace removed, for an
    error message that shows why a process stopped; `missing` when it cannot be read."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:]).rstrip()
    except OSError:
        return missing


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 and size in bytes of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
