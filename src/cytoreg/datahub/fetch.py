"""``cytoreg data fetch``: resumable HTTP download, checksum, safe extraction, no partial state.

Each file is downloaded to ``DEST/.cytoreg-download/NAME.part`` (resumed with a ``Range``
request after a dropped connection, in this run or the next), checked against the spec's
checksum, and only then moved into ``DEST`` (plain files) or unpacked into a temporary folder
under ``DEST`` whose top-level entries are renamed into place (archives). A checksum mismatch
deletes the ``.part`` file; an archive member that would land outside the folder refuses the
whole archive before anything is written.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from cytoreg.datahub.spec import Download, FileSpec
from cytoreg.errors import DataError

STAGING = ".cytoreg-download"
CHUNK = 1 << 20


def _hasher(algo: str):
    return hashlib.new(algo, usedforsecurity=False) if algo == "md5" else hashlib.new(algo)


def file_digest(path: Path, algo: str, limit: int | None = None) -> str:
    return _hash_file(path, algo, limit).hexdigest()


def _hash_file(path: Path, algo: str, limit: int | None = None):
    h, left = _hasher(algo), limit
    with open(path, "rb") as fh:
        while left is None or left > 0:
            block = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h


class _Running:
    """The checksum of the ``.part`` file, kept up to date while it is written, so that a finished
    download is not read a second time; bytes already on disk (a resume) are hashed once."""

    def __init__(self, algo: str | None):
        self.algo, self.h, self.upto = algo, None, -1

    def at(self, part: Path, offset: int) -> None:
        if self.algo and self.upto != offset:
            self.h = _hash_file(part, self.algo, offset) if offset else _hasher(self.algo)
            self.upto = offset

    def add(self, chunk: bytes) -> None:
        if self.h is not None:
            self.h.update(chunk)
            self.upto += len(chunk)

    def hexdigest(self, part: Path) -> str | None:
        if not self.algo:
            return None
        self.at(part, part.stat().st_size)
        return self.h.hexdigest()


def _content_range_start(value: str | None) -> int | None:
    """``bytes 100-199/200`` → 100."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def download(f: FileSpec, part: Path, *, attempts: int = 5, backoff: float = 0.5,
             on_bytes: Callable[[int, int | None], None] | None = None, client=None) -> str | None:
    """Bring ``part`` to the full content of ``f.url``, resuming from its current size; returns its
    checksum in ``f.algo`` (None without one).

    ``on_bytes(n, total)`` is told of every chunk written (and the total once known)."""
    import httpx

    running = _Running(f.algo)
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=20.0), follow_redirects=True)
    last_error = ""
    try:
        for attempt in range(attempts):
            offset = part.stat().st_size if part.exists() else 0
            # identity: the bytes on disk must be the file's bytes, so Range offsets stay byte offsets
            headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
            try:
                with client.stream("GET", f.url, headers=headers) as r:
                    if r.status_code == 416 and offset:  # nothing left to send: complete, or a stale part
                        total = r.headers.get("content-range", "").rpartition("/")[2]
                        if total.isdigit() and int(total) == offset:
                            return running.hexdigest(part)
                        part.unlink()
                        last_error = "the server refused to resume; starting over"
                        continue
                    if r.status_code == 206 and _content_range_start(r.headers.get("content-range")) == offset:
                        mode = "ab"
                    elif r.status_code == 200:
                        mode, offset = "wb", 0  # the server ignores Range: start from the beginning
                    elif r.status_code in (408, 429) or r.status_code >= 500:
                        last_error = f"HTTP {r.status_code}"
                        time.sleep(backoff * 2 ** attempt)
                        continue
                    else:
                        raise DataError(f"{f.url}: HTTP {r.status_code} {r.reason_phrase}; check the URL in the "
                                        "spec's download.files (the publisher may have moved the file)")
                    length = r.headers.get("content-length")
                    total = offset + int(length) if length and length.isdigit() else f.size
                    if on_bytes:
                        on_bytes(-1, total)  # reset: the bar restarts at `offset`
                        on_bytes(offset, total)
                    running.at(part, offset)
                    with open(part, mode) as fh:
                        for chunk in r.iter_raw():  # undecoded, as received: a cut loses nothing already sent
                            fh.write(chunk)
                            running.add(chunk)
                            if on_bytes:
                                on_bytes(len(chunk), total)
                    if total is not None and part.stat().st_size < total:
                        last_error = f"connection ended at byte {part.stat().st_size} of {total}"
                        continue
                    return running.hexdigest(part)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(backoff * 2 ** attempt)
    finally:
        if own:
            client.close()
    have = part.stat().st_size if part.exists() else 0
    kept = (f"{have} bytes are kept in {part} and the next `cytoreg data fetch` resumes from there" if have else
            "nothing was written")
    raise DataError(f"{f.url}: download failed after {attempts} attempts ({last_error}); {kept}")


def check(f: FileSpec, path: Path, digest: str | None = None) -> None:
    """Size and checksum (``digest`` when the download computed it) against the spec; a mismatch
    deletes ``path`` (its bytes are wrong)."""
    problem = None
    size = path.stat().st_size
    if f.size is not None and size != f.size:
        problem = f"{size} bytes, the spec says {f.size}"
    elif f.algo and f.digest:
        got = digest or file_digest(path, f.algo)
        if got != f.digest:
            problem = f"{f.algo.upper()} {got}, the spec says {f.digest}"
    if problem:
        path.unlink()
        raise DataError(f"{f.url}: downloaded file is not the published one ({problem}); it was deleted and "
                        "nothing was installed. Rerun to download it again; if it fails again the publisher "
                        "changed the file: check the checksum on the source page and fix the spec.")


# -- archives -------------------------------------------------------------------------------

def _bad_member(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":")


def unsafe_members(archive: Path, kind: str) -> list[str]:
    """Members that would land outside the target folder, or links (refused: a link can point anywhere)."""
    bad = []
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                is_link = stat.S_ISLNK(info.external_attr >> 16)
                if _bad_member(info.filename) or is_link:
                    bad.append(info.filename)
    else:
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                if _bad_member(m.name) or m.issym() or m.islnk() or not (m.isfile() or m.isdir()):
                    bad.append(m.name)
    return bad


def extract(archive: Path, kind: str, dest: Path, creates: str | None) -> list[str]:
    """Unpack into a temporary folder under ``dest``, then rename its top-level entries into ``dest``.
    Returns the names installed. Nothing is left behind on failure."""
    try:
        bad = unsafe_members(archive, kind)
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise DataError(f"{archive}: not a readable {kind} archive ({exc})") from exc
    if bad:
        raise DataError(f"{archive}: refused, {len(bad)} member(s) would be written outside {dest} or are links: "
                        f"{', '.join(bad[:5])}. Nothing was extracted; the archive is not the published one.")
    tmp = dest / f".cytoreg-extract-{archive.name}"
    shutil.rmtree(tmp, ignore_errors=True)  # our own leftover from an interrupted run
    tmp.mkdir(parents=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        entries = sorted(p.name for p in tmp.iterdir() if p.name != "__MACOSX")
        if creates and PurePosixPath(creates).parts[0] not in entries:
            raise DataError(f"{archive}: the archive has {entries} at its top level, not '{creates}' as the "
                            "spec's download.files[].creates says; fix the spec")
        clash = [e for e in entries if (dest / e).exists()]
        if clash:
            raise DataError(f"{dest}: {', '.join(clash)} already exist(s); remove them (or check them with "
                            "`cytoreg data verify`) before fetching again")
        for e in entries:
            os.replace(tmp / e, dest / e)
        return entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the command's work -----------------------------------------------------------------------

def _bar(enabled: bool):
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn())


def fetch(dl: Download, *, progress: bool = True, attempts: int = 5, backoff: float = 0.5,
          report: Callable[[str], None] = print) -> list[Path]:
    """Install every file of ``dl`` that is not present yet; returns what was installed."""
    if not dl.files:
        raise DataError(f"task '{dl.task}' has no download.files in {dl.spec_path}: nothing to fetch")
    assert dl.dest is not None
    for i, f in enumerate(dl.files):
        if f.extract and not f.creates:
            raise DataError(f"{dl.spec_path}: download.files[{i}].creates: needed for an archive (the folder it "
                            "unpacks to), so that a fetched dataset is recognised as present")
    created = not dl.dest.exists()
    dl.dest.mkdir(parents=True, exist_ok=True)
    staging = dl.dest / STAGING
    installed: list[Path] = []
    try:
        _fetch_all(dl, staging, installed, progress, attempts, backoff, report)
    finally:  # the staging folder holds only resumable .part files; drop it when empty
        for folder in (staging, dl.dest) if created else (staging,):  # and a data folder this fetch made for nothing
            try:
                folder.rmdir()
            except OSError:
                pass
    return installed


def _fetch_all(dl: Download, staging: Path, installed: list[Path], progress: bool, attempts: int,
               backoff: float, report: Callable[[str], None]) -> None:
    assert dl.dest is not None
    with _bar(progress) as bar:
        for f in dl.files:
            final = dl.dest / f.target
            if f.target and final.exists():
                if final.is_file() and f.algo:  # a file put there by hand or by an older fetch: is it the published one?
                    got = file_digest(final, f.algo)
                    if got != f.digest:
                        raise DataError(f"{final} is there but is not the published file ({f.algo.upper()} {got}, "
                                        f"published {f.digest}): a truncated or other download; delete it and run "
                                        f"`cytoreg data fetch {dl.task}` again")
                    report(f"present: {final} ({f.algo.upper()} matches)")
                else:
                    report(f"present: {final}")
                continue
            staging.mkdir(exist_ok=True)
            part = staging / f"{f.name}.part"
            hook = None
            if bar is not None:
                tid = bar.add_task(f.name, total=f.size)

                def hook(n: int, total: int | None, tid=tid) -> None:
                    if n < 0:
                        bar.reset(tid, total=total)
                    else:
                        bar.update(tid, advance=n, total=total)
            try:
                digest = download(f, part, attempts=attempts, backoff=backoff, on_bytes=hook)
            except DataError as exc:
                raise DataError(f"{exc}. Without network here: download {f.url} on another machine and copy it to "
                                f"{final if f.target else dl.dest / f.name}, then run `cytoreg data fetch {dl.task}` "
                                "again (it checks the file and unpacks it)" if not f.extract else
                                f"{exc}. Without network here: download {f.url} on another machine, unpack it into "
                                f"{dl.dest} (it creates {f.creates}), then `cytoreg data verify {dl.task}`") from None
            check(f, part, digest)
            if f.algo is None:
                report(f"{f.name}: no published checksum; check it with `cytoreg data verify {dl.task}` (counts)")
            if f.extract:
                try:
                    names = extract(part, f.extract, dl.dest, f.creates)
                finally:
                    part.unlink()  # unpacked, or refused: either way the archive is not kept
                installed += [dl.dest / e for e in names]
            else:
                os.replace(part, final)
                installed.append(final)
