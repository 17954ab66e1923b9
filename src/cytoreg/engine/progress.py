"""The run's progress display: one overall line with an ETA above one bar per task × model ×
setting. Labels are plain text, and answers from the caches are not counted as speed."""
from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable


class RunProgress:
    """One overall line (all work of the run, with an ETA) above one bar per task × model ×
    setting. Labels are plain text (``[zero_shot]`` is not rich markup). Rates and ETAs count
    only work done now: answers from the caches complete the bar at once but are not a speed."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}", markup=False), TimeElapsedColumn(),
                                 TextColumn("{task.fields[eta]}", markup=False), transient=False)
        self.estimate = max(0, int(total))
        self.totals = 0
        self.live: dict[int, tuple[float, int]] = {}  # task id -> (start, items done now, not cached)
        self.overall = self.progress.add_task("all", total=self.estimate or None, rate="", eta="")

    def __enter__(self) -> "RunProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def add(self, label: str, total: int) -> Callable[..., None]:
        tid = self.progress.add_task(label, total=total, rate="", eta="")
        self.totals += total
        if self.totals > self.estimate:
            self.estimate = self.totals
            self.progress.update(self.overall, total=self.estimate)
        now = time.perf_counter()
        self.live[tid] = (now, 0)
        self.live.setdefault(self.overall, (now, 0))

        def advance(n: int = 1, cached: bool = False, note: str = "cached") -> None:
            for t in (tid, self.overall):
                self.progress.advance(t, n)
                start, done = self.live[t]
                if not cached:
                    done += n
                    self.live[t] = (start, done)
                task = self.progress.tasks[t]
                elapsed = time.perf_counter() - start
                rate = done / elapsed if done and elapsed > 0 else 0.0
                left = (task.total or 0) - task.completed
                self.progress.update(t, rate=_rate(rate, done, task.completed, note if t == tid else "cached"),
                                     eta=(f"ETA {_clock(left / rate)}" if rate and left > 0 else ""))

        return advance


def _rate(rate: float, live: int, completed: float, note: str = "cached") -> str:
    if not live:
        return note if completed else ""
    return f"{rate:.1f}/s" if rate >= 1 else f"{60 * rate:.1f}/min"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress(enabled: bool, total: int = 0):
    if not enabled:
        return nullcontext(None)
    return RunProgress(total)


def bar(progress: RunProgress | None, label: str, total: int):
    """(None, advance) for one task × model × setting; ``advance(n, cached=True)`` for cache hits."""
    if progress is None:
        return None, lambda n=1, cached=False, note="": None
    return None, progress.add(label, total)


def first_cached(advance: Callable[..., None]) -> Callable[[int], None]:
    """The feature store reports what it already holds first: that is cache, not speed."""
    calls = [0]

    def adv(n: int = 1) -> None:
        calls[0] += 1
        advance(n, cached=calls[0] == 1)

    return adv
