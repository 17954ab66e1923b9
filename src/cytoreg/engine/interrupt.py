"""Ctrl-C while requests are in flight: the first stops sending and waits a short grace period
so that replies already on their way are cached (not paid for twice on resume); the second
exits at once. Outside :func:`graceful`, Ctrl-C keeps Python's default behaviour."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

GRACE_S = 10.0


class RunInterrupted(KeyboardInterrupt):
    """Raised once the replies in flight were collected (or the grace period ran out)."""


class Interrupt:
    def __init__(self, grace: float = GRACE_S):
        self.grace = grace
        self.at: float | None = None

    @property
    def requested(self) -> bool:
        return self.at is not None

    def deadline(self) -> float:
        return (self.at or time.monotonic()) + self.grace

    def _handler(self, signum, frame) -> None:
        if self.at is None:
            self.at = time.monotonic()
            print(f"\ninterrupt: no new requests are sent; waiting up to {self.grace:.0f} s for the replies in "
                  "flight so they are cached. Press Ctrl-C again to quit now.", file=sys.stderr, flush=True)
            return
        print("\ninterrupted again: quitting now (replies still in flight are lost)", file=sys.stderr, flush=True)
        os._exit(130)


@contextmanager
def graceful(grace: float = GRACE_S) -> Iterator[Interrupt]:
    """Install the two-step Ctrl-C handler (main thread only; elsewhere nothing changes)."""
    state = Interrupt(grace)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.signal(signal.SIGINT, state._handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
