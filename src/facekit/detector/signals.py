"""How the detector stops: SIGTERM/SIGINT ask the service loop to stop after the current
frame; a Vision Bonnet that does not answer within STOP_GRACE seconds, or a second signal,
abandons the blocked call with StopNow. Python 3.5.
"""

import contextlib
import signal

# Seconds a stop (SIGTERM/SIGINT) or a shutdown waits for the bonnet before the service
# gives up on a clean close; well inside the unit's TimeoutStopSec.
STOP_GRACE = 5


class StopNow(BaseException):
    """Raised by a signal handler to abandon a call the bonnet does not answer.

    A BaseException, so the library's `except Exception` clean-ups let it through."""


class StopSignals(object):
    """SIGTERM/SIGINT ask the loop to stop after the current frame. If the bonnet has not
    answered STOP_GRACE seconds later (or a second signal comes), the blocked call is
    abandoned with StopNow."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, grace=None):
        self.grace = STOP_GRACE if grace is None else grace
        self.signum = None
        self._saved = {}

    def install(self):
        for signum in self.SIGNALS + (signal.SIGALRM,):
            self._saved[signum] = signal.getsignal(signum)
        for signum in self.SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)

    def restore(self):
        signal.alarm(0)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved = {}

    @property
    def requested(self):
        return self.signum is not None

    @property
    def name(self):
        return signal.Signals(self.signum).name if self.signum else None

    def _on_signal(self, signum, frame):
        if self.signum is not None:
            raise StopNow("a second {}".format(signal.Signals(signum).name))
        self.signum = signum
        signal.alarm(self.grace)

    def _on_alarm(self, signum, frame):
        raise StopNow("no answer from the Vision Bonnet within {} s".format(self.grace))

    @contextlib.contextmanager
    def deadline(self):
        """Abandon the block with StopNow if it takes more than `grace` seconds."""
        signal.alarm(self.grace)
        try:
            yield
        finally:
            signal.alarm(0)
