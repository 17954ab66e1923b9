"""Response cache: SQLite in WAL mode, one row per response, committed as it arrives.

The key is a hash of (model fingerprint, full request content incl. image hashes and
generation settings, try index). ``task``/``model``/``sample_id`` are stored beside it for
statistics and clearing only; they are not part of the key, so two tasks that send the same
request share the answer.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from cytoreg.errors import CytoregError
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


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise CytoregError(f"cannot open the response cache {self.path}: {exc}. "
                               "Pass --cache PATH to use another file.") from exc
        self._lock = threading.Lock()

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

    def put(self, key: str, response: Response, *, model_fingerprint: str, model: str = "",
            task: str = "", sample_id: str = "") -> None:
        row = (key, model_fingerprint, model, task, sample_id, json.dumps(response.to_json()), time.time())
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?)", row)

    def put_many(self, rows: list[tuple[str, Response, str]], *, model_fingerprint: str, model: str = "",
                 task: str = "") -> None:
        """Several (key, response, sample_id) in one transaction."""
        now = time.time()
        data = [(k, model_fingerprint, model, task, sid, json.dumps(r.to_json()), now) for k, r, sid in rows]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?)", data)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def stats(self) -> list[dict]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT model, task, COUNT(*), MIN(created), MAX(created) FROM responses "
                "GROUP BY model, task ORDER BY model, task").fetchall()
        return [{"model": m, "task": t, "responses": n, "first": a, "last": b} for m, t, n, a, b in rows]

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

