"""Calling models: retries with exponential backoff and jitter, concurrency for APIs, batches
for local models. Every finished response is handed to ``on_done`` at once (the caller caches it)."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Sequence

from cytoreg.models.base import ChatRequest, Generator, PermanentError, Response, TransientError


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
                      rng: random.Random | None = None) -> Response:
    rng = rng or random.Random()
    attempt = 0
    while True:
        stats.add(sent=1)
        try:
            resp = fn()
            resp.attempts = attempt + 1
            stats.count("ok")
            return resp
        except TransientError as exc:
            stats.count(str(exc.status or "transient"))
            if attempt >= max_retries:
                stats.add(failed=1)
                return Response(error=f"gave up after {attempt + 1} attempts: {exc}", attempts=attempt + 1)
            stats.add(retries=1)
            sleep(backoff_delay(attempt, initial, maximum, exc.retry_after, rng))
            attempt += 1
        except PermanentError as exc:
            stats.count("permanent")
            stats.add(failed=1)
            return Response(error=str(exc), attempts=attempt + 1)


def run_generator(model: Generator, requests: Sequence[ChatRequest], on_done: Callable[[int, Response], None],
                  stats: CallStats, concurrency: int | None = None) -> None:
    """Run requests; ``on_done(index, response)`` is called from the caller's thread."""
    t0 = time.perf_counter()
    try:
        _run(model, requests, on_done, stats, concurrency)
    finally:
        stats.wall_s += time.perf_counter() - t0


def _run(model: Generator, requests: Sequence[ChatRequest], on_done: Callable[[int, Response], None],
         stats: CallStats, concurrency: int | None) -> None:
    if model.mode == "batched":
        bs = max(1, model.batch_size)
        for start in range(0, len(requests), bs):
            chunk = requests[start:start + bs]
            stats.add(sent=len(chunk))
            try:
                responses = model.generate_batch(chunk)
            except Exception as exc:  # a crash in one batch is recorded per sample, the run goes on
                responses = [Response(error=f"{type(exc).__name__}: {exc}") for _ in chunk]
                stats.add(failed=len(chunk))
            for i, r in enumerate(responses):
                chunk[i].release()
                on_done(start + i, r)
        return

    limit = max(1, concurrency or model.concurrency)

    def one(i: int) -> tuple[int, Response]:
        req = requests[i]
        try:
            return i, call_with_retries(lambda: model.generate(req), max_retries=model.max_retries,
                                        initial=model.initial_backoff, maximum=model.max_backoff, stats=stats)
        except Exception as exc:  # an adapter bug must not lose the other answers
            stats.add(failed=1)
            return i, Response(error=f"{type(exc).__name__}: {exc}")
        finally:
            req.release()

    with ThreadPoolExecutor(max_workers=limit) as pool:
        pending = set()
        it = iter(range(len(requests)))
        for i in it:  # keep at most `limit` in flight so memory stays flat
            pending.add(pool.submit(one, i))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    on_done(*f.result())
        for f in pending:
            on_done(*f.result())
