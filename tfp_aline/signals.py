"""Stopping a long run cleanly on SIGINT, SIGTERM or SIGHUP."""

import contextlib
import signal
import threading

# Signals that stop a run cleanly: the epoch in flight finishes, a checkpoint is saved, the run
# returns interrupted. SIGINT is Ctrl-C; SIGTERM is what `docker stop`, `timeout` and schedulers send.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def stop_on_signals(on_signal):
    """Route STOP_SIGNALS to `on_signal(signum)` while inside (main thread only; elsewhere a no-op).

    A second signal of the same kind raises KeyboardInterrupt, for a run stuck inside one epoch.
    Previous handlers come back on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen = set()

    def handler(signum, frame):
        if signum in seen:
            raise KeyboardInterrupt
        seen.add(signum)
        on_signal(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
