"""Progress reporting: a tqdm bar on a terminal, periodic log lines otherwise (CI, Ansible)."""

import logging
import sys
import time

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 10.0


def track(iterable, label, total=None, enabled=True):
    """Yield from `iterable` (images: the counts and rates name them so), reporting
    progress on stderr while doing so."""
    if not enabled:
        for item in iterable:
            yield item
        return
    if sys.stderr.isatty():
        # Imported here: tqdm comes with facekit[dataset], and only a terminal needs it.
        from tqdm import tqdm  # noqa: PLC0415

        for item in tqdm(iterable, desc=label, total=total, unit="img", file=sys.stderr):
            yield item
        return
    start = last = time.time()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.time()
        if now - last >= LOG_EVERY_SECONDS:
            last = now
            of = " of {}".format(total) if total else ""
            log.info("%s: %d%s images (%.0f/s)", label, done, of, done / (now - start))
    elapsed = max(time.time() - start, 1e-9)
    log.info("%s: %d images in %.1f s (%.0f/s)", label, done, elapsed, done / elapsed)
