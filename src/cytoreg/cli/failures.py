"""What the error boundary (``cytoreg.cli.main``) says for each failure class: one message that
names the file / field / sample where it can, and what to do; an exit status.

- 2: user error (spec, data, configuration, the file system, a corrupt file)
- 70: an unexpected exception — a bug in cytoreg (``--debug`` shows the traceback)
- 130: interrupted; 141: the reader of stdout went away (``cytoreg show x | head``), silently
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys

from cytoreg import secrets
from cytoreg.errors import CytoregError, SpecError
from cytoreg.oserrors import describe_os_error, describe_sqlite_error

USER_ERROR = 2
INTERNAL_ERROR = 70
INTERRUPTED = 130
BROKEN_PIPE = 141

def describe(exc: BaseException) -> tuple[int, list[str]]:
    """(exit status, message lines) for an exception that reached the CLI."""
    if isinstance(exc, SpecError):
        return USER_ERROR, list(exc.problems)
    if isinstance(exc, CytoregError):
        return USER_ERROR, str(exc).splitlines() or [type(exc).__name__]
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, ["interrupted; finished responses are in the cache, re-run the same command to resume"]
    if isinstance(exc, BrokenPipeError):
        return BROKEN_PIPE, []
    if isinstance(exc, OSError):
        return USER_ERROR, [describe_os_error(exc)]
    if isinstance(exc, sqlite3.Error):
        return USER_ERROR, [describe_sqlite_error(exc)]
    if isinstance(exc, UnicodeDecodeError):
        return USER_ERROR, [f"a file is not valid UTF-8 (byte offset {exc.start}: {exc.reason}); save it as UTF-8 "
                            "(rerun with --debug to see which reader failed)"]
    if isinstance(exc, json.JSONDecodeError):
        return USER_ERROR, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; was a file truncated "
                            "or written by another program? (rerun with --debug to see which file)"]
    if isinstance(exc, MemoryError):
        return USER_ERROR, ["out of memory; evaluate fewer samples (--limit), fewer labels or fewer models at once"]
    if isinstance(exc, RecursionError):
        return USER_ERROR, ["an input is nested too deeply to process; flatten it (rerun with --debug to see which)"]
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return INTERNAL_ERROR, [f"internal error: {type(exc).__name__}{': ' + msg if msg else ''}. This is a bug in "
                            "cytoreg — rerun with --debug and report the traceback"]


class RedactingStream:
    """A text stream that masks secrets (:mod:`cytoreg.secrets`) in everything written to it."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(secrets.redact(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def ignore_file_size_signal() -> None:
    """Past RLIMIT_FSIZE the kernel kills the process with SIGXFSZ; ignored, the write fails with
    EFBIG instead, and the boundary reports it like a full disk."""
    import signal

    if hasattr(signal, "SIGXFSZ"):
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread
            pass
