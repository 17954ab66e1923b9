"""Calling models: retries with exponential backoff and jitter, concurrency for APIs, batches
for local models. Every finished response is handed to ``on_done`` at once (the caller caches it)."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Sequence

from cytoreg.engine.breaker import Breaker, breaker_for
from cytoreg.engine.interrupt import RunInterrupted, graceful
from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, FatalError, Generator, PermanentError, Response, TransientError


@dataclass
class CallStats:
    sent: int = 0           # HTTP/model calls made, retries included
    retries: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0     # time spent calling the model (load excluded), for throughput
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, key: str) -> None:
        with self._lock:
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def to_json(self) -> dict:
        return {"sent": self.sent, "retries": self.retries, "failed": self.failed, "by_status": dict(self.by_status),
                "wall_s": round(self.wall_s, 4)}


def backoff_delay(attempt: int, initial: float, maximum: float, retry_after: float | None,
                  rng: random.Random) -> float:
    """Server's Retry-After if given (capped), else full-jitter exponential: U(0.5, 1) × initial × 2^attempt."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), maximum)
    return min(maximum, initial * (2 ** attempt)) * rng.uniform(0.5, 1.0)


def call_with_retries(fn: Callable[[], Response], *, max_retries: int, initial: float, maximum: float,
                      stats: CallStats, sleep: Callable[[float], None] = time.sleep,
                      rng: random.Random | None = None, breaker: Breaker | None = None,
                      halt: threading.Event | None = None) -> Response:
    """Call ``fn`` until it answers, fails for good, or the model is stopped (``breaker``) or the
    run interrupted (``halt``): a stopped model is not retried."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        stats.add(sent=1)
        try:
            t0 = time.perf_counter()
            resp = fn()
            if resp.latency_s is None:
                resp.latency_s = round(time.perf_counter() - t0, 4)
            resp.attempts = attempt + 1
            stats.count("ok")
            if breaker is not None:
                breaker.success()
            return resp
        except FatalError as exc:
            stats.count("fatal")
            stats.add(failed=1)
            if breaker is not None:
                breaker.trip(str(exc), exc.fix)
            return Response(error=str(exc), attempts=attempt + 1)
        except TransientError as exc:
            stats.count(str(exc.status or "transient"))
            tripped = breaker is not None and breaker.failure(exc.kind, str(exc))
            stopped = tripped or (halt is not None and halt.is_set())
            if attempt >= max_retries or stopped:
                stats.add(failed=1)
                why = "; not retried: the model was stopped" if tripped else (
                    "; not retried: interrupted" if stopped else "")
                return Response(error=f"gave up after {attempt + 1} attempts: {exc}{why}", attempts=attempt + 1)
            stats.add(retries=1)
            delay = backoff_delay(attempt, initial, maximum, exc.retry_after, rng)
            if halt is not None and sleep is time.sleep:
                halt.wait(delay)
            else:
                sleep(delay)
            attempt += 1
        except PermanentError as exc:
            stats.count("permanent")
            stats.add(failed=1)
            if breaker is not None:
                breaker.failure(exc.kind, str(exc))
            return Response(error=str(exc), attempts=attempt + 1)


def run_generator(model: Generator, requests: Sequence[ChatRequest], on_done: Callable[[int, Response], None],
                  stats: CallStats, concurrency: int | None = None, breaker: Breaker | None = None) -> None:
    """Run requests; ``on_done(index, response)`` is called from the caller's thread, for every
    request: one not sent because the model was stopped gets an error response (attempts 0).
    On Ctrl-C, raises :class:`RunInterrupted` after the replies in flight were handed over."""
    breaker = breaker or breaker_for(model)
    t0 = time.perf_counter()
    try:
        _run(model, requests, on_done, stats, concurrency, breaker)
    finally:
        stats.wall_s += time.perf_counter() - t0


def _run(model: Generator, requests: Sequence[ChatRequest], on_done: Callable[[int, Response], None],
         stats: CallStats, concurrency: int | None, breaker: Breaker) -> None:
    if model.mode == "batched":
        bs = max(1, model.batch_size)
        for start in range(0, len(requests), bs):
            chunk = requests[start:start + bs]
            if breaker.tripped:
                for i, req in enumerate(chunk):
                    req.release()
                    on_done(start + i, Response(error=breaker.not_sent(), attempts=0))
                continue
            stats.add(sent=len(chunk))
            try:
                t0 = time.perf_counter()
                responses = model.generate_batch(chunk)
                took = round(time.perf_counter() - t0, 4)
                for r in responses:
                    if r.latency_s is None and r.error is None:
                        r.latency_s = took
                breaker.success()
            except ModelLoadError as exc:  # a part loaded lazily cannot load: the model stops, the run goes on
                from cytoreg.engine.breaker import load_failure

                responses = [Response(error=f"{type(exc).__name__}: {exc}") for _ in chunk]
                stats.add(failed=len(chunk))
                breaker.trip(load_failure(model.name, exc))
            except Exception as exc:  # a crash in one batch is recorded per sample, the run goes on
                responses = [Response(error=f"{type(exc).__name__}: {exc}") for _ in chunk]
                stats.add(failed=len(chunk))
                breaker.failure(type(exc).__name__, f"{type(exc).__name__}: {exc}")
            for i, r in enumerate(responses):
                chunk[i].release()
                on_done(start + i, r)
        return

    limit = max(1, concurrency or model.concurrency)
    halt = threading.Event()

    def one(i: int) -> tuple[int, Response]:
        req = requests[i]
        try:
            if breaker.tripped or halt.is_set():
                return i, Response(error=breaker.not_sent() if breaker.tripped else "not sent: interrupted",
                                   attempts=0)
            return i, call_with_retries(lambda: model.generate(req), max_retries=model.max_retries,
                                        initial=model.initial_backoff, maximum=model.max_backoff, stats=stats,
                                        breaker=breaker, halt=halt)
        except Exception as exc:  # an adapter bug must not lose the other answers
            stats.add(failed=1)
            return i, Response(error=f"{type(exc).__name__}: {exc}")
        finally:
            req.release()

    handed: set[int] = set()

    def hand(futures) -> None:
        for f in futures:
            i, resp = f.result()
            handed.add(i)
            on_done(i, resp)

    pool = ThreadPoolExecutor(max_workers=limit)
    interrupted = False
    with graceful() as intr:
        try:
            pending: set = set()
            for i in range(len(requests)):  # keep at most `limit` in flight so memory stays flat
                if breaker.tripped or intr.requested:
                    break
                pending.add(pool.submit(one, i))
                while len(pending) >= limit and not intr.requested:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    hand(done)
            while pending and not intr.requested:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                hand(done)
            if intr.requested:
                halt.set()
                while pending and time.monotonic() < intr.deadline():
                    done, pending = wait(pending, timeout=min(0.2, max(0.0, intr.deadline() - time.monotonic())),
                                         return_when=FIRST_COMPLETED)
                    hand(done)
                interrupted = True
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
    if interrupted:
        raise RunInterrupted(f"{len(handed)} of {len(requests)} replies collected")
    for i in range(len(requests)):  # never submitted: the model was stopped
        if i not in handed:
            requests[i].release()
            on_done(i, Response(error=breaker.not_sent(), attempts=0))
