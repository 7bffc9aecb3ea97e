"""Order-preserving, memory-bounded parallel map for the per-image work.

Each worker process has a pipe of its own; multiprocessing.Pool is not used. Pool's
workers share queues guarded by locks, and a worker that dies while holding one
(a Ctrl-C or a `timeout`/systemd SIGTERM reaches every process of the group) leaves
Pool.terminate() waiting for that lock forever. With a pipe per worker nothing is
shared: a worker that dies is an end-of-file on its own pipe. Workers ignore the stop
signals (interrupts.ignore_in_worker) and never print a traceback for them; the
parent stops them when it is done, on an error, or on an interrupt.
"""

import atexit
import collections
import multiprocessing
import os
import signal
import time
import traceback

from facekit import interrupts
from facekit.dataset.errors import DatasetError

# Images per task: large enough to amortise the pipe round trip, small enough that
# the in-flight window (a few batches of ~100 KB images per worker) stays small.
BATCH = 64
# Batches in flight per worker. Reading the whole input up front or buffering every
# finished result while the writer lags would make memory grow with the dataset; a
# fixed window keeps it flat. It also keeps the tasks queued in a worker's pipe (a
# few KB each: paths, not image bytes) far below the pipe's 64 KB buffer, so sending
# a task never blocks while the worker waits for its results to be read.
WINDOW_PER_WORKER = 4
# How long a worker may take to notice its closed pipe (it finishes the batch at
# hand) before it is killed.
STOP_GRACE_SECONDS = 2.0

_DIED = ("a --workers process exited unexpectedly (killed for memory?); run again, or "
         "with --workers 1 to see the image it failed on")


class WorkerTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its __cause__."""


def _worker_main(conn, func):
    interrupts.ignore_in_worker()
    try:
        while True:
            jobs = conn.recv()
            if jobs is None:
                return
            try:
                reply = (True, [func(job) for job in jobs])
            except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
                reply = (False, exc, traceback.format_exc())
            try:
                conn.send(reply)
            except (EOFError, OSError):
                raise
            except Exception:  # noqa: BLE001 - a result or exception that cannot be pickled
                conn.send((False, RuntimeError("{!r} cannot be sent back from a --workers "
                                               "process".format(reply[1])),
                           traceback.format_exc()))
    except (EOFError, OSError):
        # The parent closed the pipe (done, an error, an interrupt) or is gone.
        return


class _Worker(object):
    def __init__(self, ctx, func):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, func),
                                   name="facekit-worker", daemon=True)
        self.outstanding = 0
        try:
            self.process.start()
        except BaseException:
            self.conn.close()
            raise
        finally:
            # Only the child may hold its end: when it dies, recv() here sees EOF.
            child.close()

    def send(self, jobs):
        try:
            self.conn.send(jobs)
        except OSError:
            raise DatasetError(_DIED) from None
        self.outstanding += 1

    def receive(self):
        try:
            # Polled: a stop signal is acted on while a slow batch is still running.
            while not self.conn.poll(0.2):
                interrupts.check()
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise DatasetError(_DIED) from None
        self.outstanding -= 1
        if not reply[0]:
            exc, text = reply[1], reply[2]
            raise exc from WorkerTraceback("in a --workers process:\n" + text)
        return reply[1]


_running = set()
_running_registered = []


def _start(ctx, func, count):
    # The start of multiprocessing's resource tracker restores SIGINT/SIGTERM with
    # SIG_UNBLOCK, which would undo the mask below for the first worker: start it first.
    try:
        from multiprocessing import resource_tracker as tracker  # noqa: PLC0415
    except ImportError:  # Python < 3.8
        from multiprocessing import semaphore_tracker as tracker  # noqa: PLC0415
    tracker.ensure_running()
    if not _running_registered:
        # Registered after multiprocessing's own exit handler (imported by now), so
        # it runs first; see _stop_leftovers.
        atexit.register(_stop_leftovers)
        _running_registered.append(True)
    workers = []
    try:
        # deferred(): a second signal raised mid-start would leave a child unrecorded.
        with interrupts.deferred(), interrupts.blocked_for_children():
            for _ in range(count):
                worker = _Worker(ctx, func)
                workers.append(worker)
                _running.add(worker)
    except BaseException:  # a start-up failure, or the stop check at the end of deferred()
        _stop(workers)
        raise
    return workers


def _stop(workers):
    """Close the pipes, give the workers a moment to exit, kill those still running."""
    with interrupts.deferred():
        for worker in workers:
            worker.conn.close()
        deadline = time.time() + STOP_GRACE_SECONDS
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.time()))
        for worker in workers:
            if worker.process.is_alive():
                # They ignore SIGTERM (Process.terminate); the work is read-only.
                os.kill(worker.process.pid, signal.SIGKILL)
                worker.process.join()
            _running.discard(worker)


def _stop_leftovers():
    # multiprocessing's exit handler would SIGTERM our daemon workers (ignored) and
    # wait for them forever, should a caller leave an ordered_map() generator
    # unfinished and unclosed.
    _stop(list(_running))


def ordered_map(func, items, job_of, workers=1):
    """Yield (item, func(job_of(item))) for every item, in input order.

    Only job_of(item) crosses the process boundary; `item` itself stays in this
    process, so it may hold anything. With workers <= 1 everything runs inline
    (no process start-up, no pickling). `func` must be a module-level function.
    An exception func raises in a worker is raised here; a worker that dies
    raises DatasetError.
    """
    if workers <= 1:
        for item in items:
            yield item, func(job_of(item))
        return
    # spawn, not fork: the caller may already have TensorFlow (and its threads)
    # loaded, and forking a threaded process can deadlock the child.
    pool = _start(multiprocessing.get_context("spawn"), func, workers)
    try:
        pending = collections.deque()
        limit = workers * WINDOW_PER_WORKER

        def submit(batch):
            # The least busy worker; each one answers its tasks in the order sent, so
            # the oldest pending batch is always the next reply of its worker.
            worker = min(pool, key=lambda w: w.outstanding)
            worker.send([job_of(i) for i in batch])
            pending.append((batch, worker))

        batch = []
        for item in items:
            batch.append(item)
            if len(batch) == BATCH:
                submit(batch)
                batch = []
                while len(pending) >= limit:
                    done_items, worker = pending.popleft()
                    for pair in zip(done_items, worker.receive()):
                        yield pair
        if batch:
            submit(batch)
        while pending:
            done_items, worker = pending.popleft()
            for pair in zip(done_items, worker.receive()):
                yield pair
    finally:
        # Also reached when the consumer stops early (an error under --strict, an interrupt).
        _stop(pool)
