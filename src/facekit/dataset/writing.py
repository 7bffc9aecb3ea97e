"""The two phases every conversion writes its outputs in, so that a failure or a stop signal
never leaves outputs of two runs side by side.

Writers (ShardedWriter, CsvWriter, VocWriter) write under hidden temporary names; each has
finish() (closed and synced), commit() (renamed into place) and abort() (temporaries
removed, a no-op once committed).

    writers = []
    with filling(writers):          # create the writers, append them, fill them
        ...
    with committing(writers):       # renames and the manifest; stop signals wait
        ...

filling: when the block ends, every writer is finished before anything is renamed, then a
stop signal seen meanwhile stops the run; on any exception (or stop) every writer is aborted
and the exception goes on, so the previous complete outputs stay as they were.
committing: stop signals are deferred until the block ends, so the renamed outputs and the
dataset.json that describes them always belong to one run; a failed rename aborts the
writers not yet renamed.
"""

import contextlib

from facekit import interrupts


def abort_all(writers):
    """Remove the writers' temporaries; a stop signal meanwhile waits until they are gone."""
    with interrupts.deferred():
        for writer in writers:
            writer.abort()


@contextlib.contextmanager
def filling(writers, cleanup=None):
    """The writing phase (see the module docstring); cleanup() runs first on a failure (the
    workers' results to close, say)."""
    try:
        yield writers
        for writer in writers:
            writer.finish()
        interrupts.check()
    except BaseException:
        with interrupts.deferred():
            if cleanup is not None:
                cleanup()
            abort_all(writers)
        raise


@contextlib.contextmanager
def committing(writers):
    """The renaming phase (see the module docstring)."""
    with interrupts.deferred():
        try:
            yield
        except BaseException:
            abort_all(writers)
            raise
