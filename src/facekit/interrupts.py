"""Stop signals handled like Ctrl-C, so every way of stopping a run removes its temporaries.

SIGTERM is what systemd, `timeout` and Ansible send, SIGHUP what a closed terminal or
SSH session sends; by default either kills Python at once, without running a single
`except`/`finally`, and leaves the hidden temporaries behind. Under stop_signals()
(the dataset commands) each of them, Ctrl-C's SIGINT included, ends in Interrupted,
a KeyboardInterrupt: one clean-up path, and exit status 128 + the signal number.

The handler only records the signal; check() raises it at points the conversion
chooses (every image, every wait for a worker, before the renames). An exception
raised from the handler itself lands between any two bytecodes, also just after
a library took a lock and before the `try` that releases it: Python 3.6's
ThreadPoolExecutor (the VOC writer's) then keeps its queue's lock for good, and
the clean-up waits on it forever. Rules:
- a second signal before the first was acted on raises at once, wherever the run
  is (the way out of a long step such as TensorFlow's import);
- once Interrupted is raised, further signals are ignored, so a repeated Ctrl-C
  or SIGTERM does not cut the removal of temporaries short (SIGKILL still works;
  the next run removes what that leaves);
- inside deferred() nothing is raised until the block ends: the renames into
  place (all outputs or none) and the clean-up itself.

Worker processes ignore these signals (ignore_in_worker()): the parent stops them.
"""

import contextlib
import signal
import threading

from facekit import files

# Signals that stop a run; those a platform lacks are left out.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised in the main thread like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum):
        # type: (int) -> None
        super(Interrupted, self).__init__(signum)
        self.signum = signum


def _signum(exc):
    # A plain KeyboardInterrupt is Python's own Ctrl-C handling: SIGINT.
    return getattr(exc, "signum", signal.SIGINT)


def signal_name(exc):
    """"SIGTERM" for Interrupted(SIGTERM), "SIGINT" for a KeyboardInterrupt."""
    signum = _signum(exc)
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal {}".format(signum)


def exit_status(exc):
    """128 + the signal number, what a shell reports for a process a signal stopped:
    130 for SIGINT (also a plain KeyboardInterrupt), 143 for SIGTERM."""
    return 128 + _signum(exc)


class _State(object):
    # Each attribute is changed by one store or one list method call: a signal
    # handler runs between two bytecodes and must never see half an update.
    def __init__(self):
        self.reset()

    def reset(self):
        self.raised = False
        self.deferring = []
        self.pending = []


_state = _State()


def _raise(signum):
    _state.raised = True
    del _state.pending[:]
    raise Interrupted(signum)


def _handler(signum, frame):
    if _state.raised:
        return
    if _state.pending and not _state.deferring:
        _raise(_state.pending[0])
    _state.pending.append(signum)


def check():
    """Raise Interrupted if a stop signal came in; call it where stopping is safe."""
    if _state.pending and not _state.deferring and not _state.raised:
        _raise(_state.pending[0])


class deferred(object):  # noqa: N801 - used like a function: `with deferred():`
    """Raise nothing while the block runs, not even for a second signal; check() at its end.

    The raise replaces an exception the block itself raised (that one stays
    attached as __context__): the person who stopped the run gets the stop.
    A no-op outside stop_signals(), where Python's own Ctrl-C handling applies.
    """

    def __enter__(self):
        _state.deferring.append(None)
        return self

    def __exit__(self, exc_type, exc, tb):
        _state.deferring.pop()
        check()
        return False


@contextlib.contextmanager
def stop_signals():
    """Turn SIGINT, SIGTERM and SIGHUP into Interrupted for the `with` body (see above).

    A signal the body did not reach a check() for is raised when it ends.

    A signal already ignored when the body starts stays ignored: `nohup` ignores
    SIGHUP and a non-interactive shell's `cmd &` ignores SIGINT, on purpose. Also
    removes, on the way out of an interrupt, any temporary this process made and
    did not commit or discard: a second signal raises wherever the run is, which
    can be between a temporary's creation and its writer's registration for clean-up.
    Only the main thread can set handlers; elsewhere this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in STOP_SIGNALS:
        old = signal.getsignal(signum)
        if old is not signal.SIG_IGN:
            previous[signum] = old
    _state.reset()
    for signum in previous:
        signal.signal(signum, _handler)
    try:
        yield
        check()
    except KeyboardInterrupt:
        _state.raised = True
        files.discard_unfinished()
        raise
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


@contextlib.contextmanager
def blocked_for_children():
    """Block the stop signals in this thread while child processes are started.

    A child inherits the mask through fork and exec, so a signal sent to the whole
    process group while a worker is still starting (before ignore_in_worker() runs)
    waits in the child instead of killing it or printing a KeyboardInterrupt
    traceback from its start-up code. In this process the signals are delivered as
    soon as the mask is restored. Use inside deferred(): another thread may still
    take a process-wide signal meanwhile.
    """
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    old = mask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


def ignore_in_worker():
    """In a worker process: ignore the stop signals (then let through those held back).

    A terminal's Ctrl-C and `timeout`/systemd's SIGTERM reach every process of the
    group; the parent alone decides what happens, and stops its workers itself.
    Pending signals of an ignored kind are discarded when the mask is lifted.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is not None:
        mask(signal.SIG_UNBLOCK, STOP_SIGNALS)
