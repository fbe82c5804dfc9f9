"""SIGTERM, as the kubelet sends it when the hook Job reaches activeDeadlineSeconds or its pod is deleted.

The cleanup runs as PID 1 of its container, which ignores SIGTERM unless it says otherwise: it would then
be killed without a word after the grace period. Instead the signal raises Terminated in the main thread: the
sweep stops creating pods, deletes the ones it made, and the run prints its partial summary, all well inside
the pod's terminationGracePeriodSeconds."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived: stop, clean up what this run made, report. (BaseException: no `except
    Exception` on the way swallows it.)"""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name


def _raise(signum: int, _frame: FrameType | None) -> None:
    # once: a second signal during the clean-up must not interrupt it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """For the duration of a command: SIGTERM/SIGINT raise Terminated; the previous handlers come back after
    (the tests run commands in-process). Only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
