"""Stopping a model whose requests cannot succeed.

A ``FatalError`` (bad key, unknown model, host not found, connection refused, a model that
cannot load: :func:`load_or_stop`) trips the breaker at once; otherwise it trips after ``threshold`` consecutive
failed attempts of the same kind (``HTTP 500``, ``ReadTimeout``, ...) with no success between.
Rate limiting (HTTP 429) is left to the backoff and never counted. Once tripped, no further
request of that model is sent, in this evaluation or the next; the run goes on with the other
models and ends with a non-zero exit status."""
from __future__ import annotations

import threading
from typing import Callable

DEFAULT_THRESHOLD = 5
NOT_COUNTED = {"HTTP 429"}


class Breaker:
    def __init__(self, model: str, endpoint: str | None = None, threshold: int = DEFAULT_THRESHOLD,
                 on_trip: Callable[[str], None] | None = None):
        self.model = model
        self.endpoint = endpoint
        self.threshold = threshold  # 0: never trip on repeated failures (fatal errors still stop)
        self.on_trip = on_trip
        self.reason: str | None = None
        self.sent = 0
        self.unsent = 0  # requests answered "not sent" because the model was stopped
        self._kind: str | None = None
        self._run = 0
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def success(self) -> None:
        with self._lock:
            self.sent += 1
            self._kind, self._run = None, 0

    def failure(self, kind: str, message: str) -> bool:
        """Count a failed attempt; returns True if the breaker is (now) tripped."""
        with self._lock:
            self.sent += 1
            if self.reason is not None:
                return True
            if kind in NOT_COUNTED or self.threshold <= 0:
                return False
            self._run = self._run + 1 if kind == self._kind else 1
            self._kind = kind
            if self._run < self.threshold:
                return False
        self.trip(f"{self._run} consecutive failures of the same kind ({kind}); last: {message}",
                  "check that the endpoint works (the last error says what it answered), then re-run; "
                  "execution.circuit_breaker (or --circuit-breaker) sets how many failures in a row stop "
                  "a model (0: never)")
        return True

    def trip(self, message: str, fix: str | None = None) -> None:
        with self._lock:
            if self.reason is not None:
                return
            where = f" at {self.endpoint}" if self.endpoint and self.endpoint not in message else ""
            self.reason = f"model '{self.model}' stopped{where}: {message}" + (f". Fix: {fix}" if fix else "")
        if self.on_trip is not None:
            self.on_trip(self.reason)

    def not_sent(self) -> str:
        """The error recorded for a request that was not sent because the model was stopped."""
        with self._lock:
            self.unsent += 1
        return f"not sent: {self.reason}"


def breaker_for(model, threshold: int | None = None, on_trip: Callable[[str], None] | None = None) -> Breaker:
    """The model's breaker, shared by all its evaluations in this run (made on first use)."""
    b = getattr(model, "_breaker", None)
    if b is None:
        execution = model.spec.get("execution") or {}
        if threshold is None:
            threshold = int(execution.get("circuit_breaker", DEFAULT_THRESHOLD))
        b = Breaker(model.name, getattr(model, "endpoint", None), threshold, on_trip)
        model._breaker = b
    return b


#: a stop reason is printed on one line; a load error quoting a whole state-dict mismatch is cut here
LOAD_REASON_LIMIT = 1000


def load_or_stop(adapter, breaker: Breaker | None = None) -> bool:
    """Load ``adapter`` (once, :func:`~cytoreg.models.base.ensure_loaded`) before its first uncached
    work. A model that cannot load (``ModelLoadError``: damaged or mismatched weights, a package or
    key gone since the preflight) is stopped like a fatal API failure: the run goes on with the
    other models. Returns False when the model is (now) stopped; nothing is loaded then."""
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.base import ensure_loaded

    breaker = breaker or breaker_for(adapter)
    if breaker.tripped:
        return False
    try:
        ensure_loaded(adapter)
    except ModelLoadError as exc:
        breaker.trip(load_failure(adapter.name, exc))
        return False
    return True


def load_failure(name: str, exc: BaseException) -> str:
    """The load error on one line, without the ``model 'NAME'`` its message starts with (the stop
    reason names the model already); its fix is kept (adapters put it before the library's text)."""
    import re

    from cytoreg.models.failures import brief

    text = brief(" ".join(str(exc).split()), LOAD_REASON_LIMIT).rstrip(".")
    text = re.sub(rf"^model '{re.escape(name)}'(:\s*|\s+)", "", text)
    return f"load failed: {text}"
