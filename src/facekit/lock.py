"""One run at a time per output: a second run that would write the same files is refused.

Two runs writing one split into one directory would each rename their outputs into
the same names, so the result could mix the shards of one with the CSV of the other,
and dataset.json would describe only one of them. That happens by accident (a
re-run playbook while an earlier async job still runs on the host, two terminals),
so the second run stops at once with the pid of the first, rather than wait for it
(the work would be done twice) or go ahead (the mix above). Runs of different splits
into one directory use different locks and can run side by side.

The lock is an flock() on a hidden `.<name>.lock` file: the kernel releases it when
the holder exits in any way, SIGKILL included, so a dead run never blocks the next
one. The file holds the holder's pid for the error message and is removed on release.
"""

import contextlib
import fcntl
import os

from facekit import files
from facekit.errors import BusyError


def _holder(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return "pid {}".format(text) if text.isdigit() else "pid unknown"


def _acquire(path, what):
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise BusyError(
                "another facekit run ({}) is writing {} (it holds the lock {}); wait for it "
                "to finish or stop it, then run again".format(holder, what, path)) from None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder removes the file when it is done: if that happened
        # between our open() and flock(), the lock is on a file nobody else can open.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            return fd
        os.close(fd)


@contextlib.contextmanager
def output_lock(directory, name, what):
    """Hold `<directory>/.<name>.lock` for the `with` body, or raise BusyError.

    what: the outputs it protects, for the message ("split val into data/").
    """
    path = os.path.join(directory, ".{}.lock".format(name))
    fd = _acquire(path, what)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, "{}\n".format(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        # Removed while still held, so no other run can take a lock on it meanwhile.
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(fd)


@contextlib.contextmanager
def claim_output(directory, name, what, also_clean=()):
    """Create `directory`, hold its lock `name` for the `with` body, and first remove the
    temporaries dead runs left there (and in the directories `also_clean`)."""
    if not os.path.isdir(directory):
        os.makedirs(directory)
    with output_lock(directory, name, what):
        for path in (directory,) + tuple(also_clean):
            files.remove_stale_temporaries(path)
        yield
