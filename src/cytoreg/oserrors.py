"""Sentences for operating-system and SQLite errors: the file, what went wrong, what to do.
Shared by the CLI's error boundary and the writers that know which file they were writing."""
from __future__ import annotations

import errno
import os
import sqlite3

_WHERE = "--output, --cache or --out"


def _file(exc: OSError) -> str:
    name = exc.filename
    if name is None:
        return ""
    return f" {os.fsdecode(name)}" + (f" -> {os.fsdecode(exc.filename2)}" if exc.filename2 else "")


def describe_os_error(exc: OSError, path: object = None) -> str:
    """A sentence naming the file (``path`` if given, else the exception's) and the fix."""
    f = f" {path}" if path is not None else _file(exc)
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"no space left on the device while writing{f}; free some space, or write elsewhere ({_WHERE})"
    if code == errno.EFBIG:
        return f"file too large for this system's file-size limit while writing{f}; raise the limit (ulimit -f) or write elsewhere ({_WHERE})"
    if code == errno.EROFS:
        return f"cannot write{f}: the file system is read-only; choose a writable folder ({_WHERE})"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied:{f}; check the permissions of the file and its folder, or choose another ({_WHERE})"
    if code == errno.ENOENT:
        return f"no such file or folder:{f}; check the path"
    if code == errno.EEXIST:
        return f"{f.strip()} already exists and is not a folder; give a folder path, or remove the file"
    if code == errno.EISDIR:
        return f"{f.strip()} is a folder where a file was expected; give a file path"
    if code == errno.ENOTDIR:
        return f"a part of the path{f} is a file, not a folder; check the path"
    if code == errno.EMFILE:
        return "too many open files; raise the limit (ulimit -n) or lower --concurrency"
    return f"{exc.strerror or type(exc).__name__}{(':' + f) if f else ''} (errno {code}); check the path and the device"


def describe_sqlite_error(exc: sqlite3.Error, path: str | None = None) -> str:
    where = f" {path}" if path else ""
    text = str(exc)
    low = text.lower()
    if "disk is full" in low or "disk i/o" in low:
        return (f"cannot write the SQLite file{where}: {text}; free some space or use another file "
                "(--cache PATH)")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (f"the SQLite file{where} is corrupt ({text}); move it aside or delete it — a response cache is "
                "rebuilt by re-running")
    if "readonly" in low or "read-only" in low:
        return f"the SQLite file{where} is read-only ({text}); make it writable or use another file (--cache PATH)"
    if "unable to open" in low:
        return f"cannot open the SQLite file{where} ({text}); check that its folder exists and is writable"
    if "locked" in low or "busy" in low:
        return f"the SQLite file{where} is locked by another process ({text}); wait for it or use another file"
    return f"SQLite error{(' in' + where) if where else ''}: {text}"
