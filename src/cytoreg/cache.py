"""Response cache: SQLite in WAL mode, one row per response, committed as it arrives.

The key is a hash of (model fingerprint, full request content incl. image hashes and
generation settings, try index). ``task``/``model``/``sample_id`` are stored beside it for
statistics and clearing only; they are not part of the key, so two tasks that send the same
request share the answer.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from cytoreg.errors import CytoregError
from cytoreg.secrets import redact, secret_values
from cytoreg.models.base import Response

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model_fingerprint TEXT NOT NULL,
    model TEXT, task TEXT, sample_id TEXT,
    response TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_model ON responses(model);
"""


def request_key(model_fingerprint: str, content: Any) -> str:
    payload = json.dumps({"model": model_fingerprint, "request": content}, sort_keys=True,
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


_F = TypeVar("_F", bound=Callable[..., Any])


def _sqlite_errors(fn: _F) -> _F:
    """SQLite failures during use (disk full, a file corrupted under us) become one message
    naming the cache file."""

    @functools.wraps(fn)
    def wrapper(self: "ResponseCache", *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            from cytoreg.oserrors import describe_sqlite_error

            raise CytoregError(describe_sqlite_error(exc, str(self.path))) from exc

    return wrapper  # type: ignore[return-value]


class CorruptCache(Exception):
    """``PRAGMA quick_check`` found damage, or SQLite does not recognise the file."""


def _is_corruption(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


class ResponseCache:
    """A file that is not a healthy SQLite database (``PRAGMA quick_check`` on open) is moved
    aside to ``<name>.corrupt-<time>`` with a message on stderr, and the run continues with a
    fresh cache: only cached answers are lost, and they are re-requested."""

    def __init__(self, path: str | Path):
        from cytoreg.oserrors import describe_os_error, describe_sqlite_error

        self.path = Path(path).expanduser()
        self.moved_aside: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CytoregError(f"cannot create the folder of the response cache: {describe_os_error(exc)}") from exc
        try:
            try:
                self._conn = self._open()
            except CorruptCache as exc:
                self._move_aside(str(exc))
                self._conn = self._open()
        except (sqlite3.Error, CorruptCache) as exc:
            msg = describe_sqlite_error(exc, str(self.path)) if isinstance(exc, sqlite3.Error) else str(exc)
            raise CytoregError(f"cannot open the response cache: {msg}. Pass --cache PATH to use another "
                               "file.") from exc
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60, isolation_level=None)
        try:
            try:
                rows = conn.execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as exc:
                if _is_corruption(exc):
                    raise CorruptCache(str(exc)) from exc
                raise
            if [r[0] for r in rows] != ["ok"]:
                raise CorruptCache("; ".join(str(r[0]) for r in rows[:3]))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self, reason: str) -> None:
        from cytoreg.oserrors import describe_os_error

        stamp = time.strftime('%Y%m%d-%H%M%S')
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("-wal", "-shm"):  # the write-ahead log belongs to the damaged file
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    os.replace(side, Path(f"{target}{suffix}"))
            os.replace(self.path, target)
        except OSError as exc:
            raise CytoregError(f"the response cache {self.path} is corrupt ({reason}) and cannot be moved aside: "
                               f"{describe_os_error(exc)}; delete it, or pass --cache PATH") from exc
        self.moved_aside = target
        print(f"warning: the response cache {self.path} is corrupt ({reason}); moved it to {target} and "
              "started a fresh cache (cached answers will be requested again)", file=sys.stderr)

    @_sqlite_errors
    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        keys = list(keys)
        out: dict[str, Response] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
                for k, r in self._conn.execute(q, chunk):
                    out[k] = Response.from_json(json.loads(r))
        return out

    def get(self, key: str) -> Response | None:
        return self.get_many([key]).get(key)

    @_sqlite_errors
    def put(self, key: str, response: Response, *, model_fingerprint: str, model: str = "",
            task: str = "", sample_id: str = "") -> None:
        row = (key, model_fingerprint, model, task, sample_id, redact(json.dumps(response.to_json())), time.time())
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?)", row)

    @_sqlite_errors
    def put_many(self, rows: list[tuple[str, Response, str]], *, model_fingerprint: str, model: str = "",
                 task: str = "") -> None:
        """Several (key, response, sample_id) in one transaction."""
        now = time.time()
        keys = secret_values()  # an API key echoed in a reply must not reach the disk
        data = [(k, model_fingerprint, model, task, sid, redact(json.dumps(r.to_json()), keys), now) for k, r, sid in rows]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?)", data)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @_sqlite_errors
    def stats(self) -> list[dict]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT model, task, COUNT(*), MIN(created), MAX(created) FROM responses "
                "GROUP BY model, task ORDER BY model, task").fetchall()
        return [{"model": m, "task": t, "responses": n, "first": a, "last": b} for m, t, n, a, b in rows]

    @_sqlite_errors
    def clear(self, model: str | None = None, task: str | None = None) -> int:
        where, args = [], []
        if model:
            where.append("model = ?")
            args.append(model)
        if task:
            where.append("task = ?")
            args.append(task)
        q = "DELETE FROM responses" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            cur = self._conn.execute(q, args)
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @_sqlite_errors
    def merge_from(self, other: str | Path) -> int:
        """Copy every response of another cache file that this one lacks; returns how many."""
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("ATTACH DATABASE ? AS other", (str(other),))
            try:
                self._conn.execute("BEGIN")
                self._conn.execute("INSERT OR IGNORE INTO responses SELECT * FROM other.responses")
                self._conn.execute("COMMIT")
            finally:
                self._conn.execute("DETACH DATABASE other")
            return self._conn.total_changes - before

