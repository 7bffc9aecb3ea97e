"""Order-preserving, memory-bounded parallel map for the per-image work."""

import collections
import multiprocessing

from facekit.dataset.errors import DatasetError

# Images per task: large enough to amortise the pipe round trip, small enough that
# the in-flight window (a few batches of ~100 KB images per worker) stays small.
BATCH = 64
# Batches in flight per worker. Pool.imap would read the whole input up front and
# buffer every finished result while the writer lags: memory would grow with the
# dataset. A fixed window keeps it flat.
WINDOW_PER_WORKER = 4


def _run_batch(func, jobs):
    return [func(job) for job in jobs]


def _pids(pool):
    # Pool keeps its processes in the private _pool list (the same from 3.6 to 3.13).
    return {proc.pid for proc in pool._pool}


def _wait(pool, pids, result):
    """result.get(), but fail instead of hanging forever when a worker dies.

    Pool silently replaces a dead worker (OOM kill, a crash, or a spawn start-up
    failure such as a __main__ read from stdin) and the batch it held never
    completes; a changed set of worker pids is how that shows.
    """
    while True:
        try:
            return result.get(timeout=1.0)
        except multiprocessing.TimeoutError:
            if _pids(pool) != pids:
                raise DatasetError(
                    "a --workers process exited unexpectedly (killed for memory?); run "
                    "again, or with --workers 1 to see the image it failed on") from None


def ordered_map(func, items, job_of, workers=1):
    """Yield (item, func(job_of(item))) for every item, in input order.

    Only job_of(item) crosses the process boundary; `item` itself stays in this
    process, so it may hold anything. With workers <= 1 everything runs inline
    (no pool start-up, no pickling). `func` must be a module-level function.
    """
    if workers <= 1:
        for item in items:
            yield item, func(job_of(item))
        return
    # spawn, not fork: the caller may already have TensorFlow (and its threads)
    # loaded, and forking a threaded process can deadlock the child.
    pool = multiprocessing.get_context("spawn").Pool(workers)
    pids = _pids(pool)
    try:
        pending = collections.deque()
        batch = []
        limit = workers * WINDOW_PER_WORKER
        for item in items:
            batch.append(item)
            if len(batch) == BATCH:
                pending.append((batch, pool.apply_async(
                    _run_batch, (func, [job_of(i) for i in batch]))))
                batch = []
                while len(pending) >= limit:
                    done_items, result = pending.popleft()
                    for pair in zip(done_items, _wait(pool, pids, result)):
                        yield pair
        if batch:
            pending.append((batch, pool.apply_async(
                _run_batch, (func, [job_of(i) for i in batch]))))
        while pending:
            done_items, result = pending.popleft()
            for pair in zip(done_items, _wait(pool, pids, result)):
                yield pair
        pool.close()
    finally:
        # Also reached when the consumer stops early (an error under --strict).
        pool.terminate()
        pool.join()
