"""The output folder of a run: locked while a run writes it, re-used only by the same
configuration (a resume), and by default a fresh timestamped folder with ``runs/latest``
pointing at it."""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from cytoreg.errors import CytoregError

LOCK = ".cytoreg.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # being written this instant, or garbage: a fresh file is someone's, an old one is stale
        try:
            return {"pid": -1, "host": "?", "partial": time.time() - path.stat().st_mtime < 5}
        except FileNotFoundError:
            return None


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs. A second run on the same folder is refused
    with the holder's pid; the lock of a process that no longer exists (killed) is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now().isoformat(timespec="seconds"),
          "argv": sys.argv[1:]}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None:
                continue
            same_host = holder.get("host") == me["host"]
            pid = int(holder.get("pid", -1))
            if holder.get("partial") or (same_host and pid > 0 and _alive(pid)) or (not same_host and pid > 0):
                where = "" if same_host else f" on host {holder.get('host')}"
                raise CytoregError(
                    f"{folder} is being written by another cytoreg run (pid {pid}{where}, started "
                    f"{holder.get('started', '?')}); two runs on one folder would send every request twice. "
                    f"Wait for it to finish, or pass another --output. If that process is gone, delete {path}.")
            print(f"note: taking over the lock of {folder} left by pid {pid}, which no longer runs", file=sys.stderr)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise CytoregError(f"could not lock {folder} ({path} keeps reappearing); is another run starting there?")
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == me["pid"]:
                path.unlink()
        except (OSError, ValueError):
            pass


def check_reuse(folder: Path, config: dict, overwrite: bool) -> None:
    """Refuse to replace a finished run of another configuration (unless ``overwrite``)."""
    done = folder / "results.json"
    if overwrite or not done.exists():
        return
    try:
        old = json.loads(done.read_text()).get("config") or {}
    except (OSError, ValueError):
        return  # an unreadable results.json is no finished run to protect
    diffs = [f"{k}: {old.get(k)!r} there, {v!r} now" for k, v in config.items() if old.get(k) != v]
    if diffs:
        raise CytoregError(f"{folder} holds a finished run of another configuration ({'; '.join(diffs)}). "
                           "Re-using it would replace those results. Pick another --output (or leave --output out "
                           "for a fresh folder under runs/), or pass --overwrite to replace them.")


def fresh_folder(root: Path = Path("runs")) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>`` (with a suffix if that exists already), created here so that two
    runs started in the same second get two folders."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        folder = root / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise CytoregError(f"cannot create a fresh run folder under {root}")


def point_latest(folder: Path, root: Path = Path("runs")) -> bool:
    """Make ``runs/latest`` a symlink to ``folder``; False if ``runs/latest`` is a real folder."""
    link = root / "latest"
    if link.exists() and not link.is_symlink():
        print(f"note: {link} is a folder (from an older cytoreg), so it is left alone; this run is in {folder}",
              file=sys.stderr)
        return False
    tmp = root / f".latest.{os.getpid()}"
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(folder.name, tmp)
    os.replace(tmp, link)
    return True
