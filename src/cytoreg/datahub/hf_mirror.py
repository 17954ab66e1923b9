"""``cytoreg data fetch NAME --from hf``: the dataset from its Hugging Face datasets mirror.

The files come through the hub's own client (``huggingface_hub.snapshot_download``, pinned to the
commit in ``download.hf_mirror.revision``, only the files the task needs), into the hub cache
(which resumes a cut download on the next run). Then:

- ``files``: the mirror holds the published files byte for byte; each is checked against the
  spec's own ``download.files`` checksum and size (the publisher's, not the mirror's) and, when
  given, the mirror's LFS SHA-256, then copied into ``dest`` under its published name.
- ``parquet``: images and labels in ``datasets`` parquet files. Labels are read through the
  column's ``ClassLabel`` names (the ``huggingface`` features stored in the parquet schema), a
  string column, or ``label_names``; every name must be in ``label_map`` (mirror name → folder, null
  = left out). Row counts per split are checked against ``reference.published_split_sizes`` and
  per label against ``reference.published_counts``; then each image's stored bytes are written
  unchanged to ``[CREATES/]<split>/<label>/<name>``, where ``name`` is the file name the image
  column kept (``datasets`` keeps the original file's name), else ``<split>_<row>.<ext>``.

Everything is written into a temporary folder under ``dest`` and renamed into place only when
every check passed: a failure leaves ``dest`` as it was.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from cytoreg.datahub.fetch import CHUNK, STAGING, _hasher, file_digest
from cytoreg.datahub.spec import Download, HfMirror, ParquetMirror
from cytoreg.errors import DataError

INSTALL_HINT = "pip install 'cytoreg[data]' (huggingface_hub and pyarrow)"


def _where(m: HfMirror) -> str:
    return f"{m.repo}@{m.revision[:12]}"


def snapshot(m: HfMirror, task: str, progress: bool = True) -> Path:
    """Download the mirror's files the task needs (the hub cache keeps them; a rerun resumes)."""
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.utils import (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError,
                                           are_progress_bars_disabled, disable_progress_bars, enable_progress_bars)
    except ImportError as exc:
        raise DataError(f"task '{task}': fetching from the Hugging Face mirror {m.repo} needs huggingface_hub: "
                        f"{INSTALL_HINT}; or fetch from the publisher: cytoreg data fetch {task}") from exc
    offline = getattr(constants, "is_offline_mode", None)  # a function in recent clients, a flag before
    if offline() if callable(offline) else constants.HF_HUB_OFFLINE:
        raise DataError(f"task '{task}': HF_HUB_OFFLINE=1 is set, so the hub client will not download "
                        f"{_where(m)}; run with HF_HUB_OFFLINE=0 (unset it) to fetch from the mirror, or fetch "
                        f"from the publisher: cytoreg data fetch {task}")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        path = snapshot_download(m.repo, repo_type="dataset", revision=m.revision, allow_patterns=m.patterns,
                                 endpoint=endpoint)
    except Exception as exc:  # the hub client's own errors: not found, gated, network, cut transfer
        kind = type(exc).__name__
        hub = endpoint or constants.ENDPOINT
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
        if isinstance(exc, GatedRepoError):
            why = (f"{m.repo} is gated ({kind}): accept its conditions at {hub}/datasets/{m.repo} and log in "
                   "(hf auth login, or HF_TOKEN), then rerun")
        elif isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError)):
            why = f"{hub} has no dataset {m.repo} at commit {m.revision} ({kind}); the mirror moved: fix download.hf_mirror"
        else:
            why = (f"could not download {_where(m)} from {hub} ({kind}: {first}); check the network (and HF_ENDPOINT), "
                   "then rerun: the hub cache keeps what arrived")
        raise DataError(f"task '{task}': {why}. Nothing was installed; or fetch from the publisher: "
                        f"cytoreg data fetch {task}") from None
    finally:
        if quiet:
            enable_progress_bars()
    root = Path(path)
    missing = [p for p in m.patterns if not any(fnmatch.fnmatch(f.relative_to(root).as_posix(), p)
                                                for f in root.rglob("*") if f.is_file())]
    if missing:
        raise DataError(f"task '{task}': {_where(m)} has no file matching {', '.join(missing)}; the mirror's layout "
                        "changed: fix download.hf_mirror")
    return root


def fetch_mirror(dl: Download, spec: Any, *, progress: bool = True,
                 report: Callable[[str], None] = print) -> list[Path]:
    """Install the task's data from ``dl.hf_mirror``; returns what was installed."""
    m = dl.hf_mirror
    if m is None:
        raise DataError(f"task '{dl.task}' has no download.hf_mirror in {dl.spec_path} (`cytoreg data list` shows "
                        f"which tasks have one); fetch it from the publisher: cytoreg data fetch {dl.task}")
    assert dl.dest is not None
    targets = ([f.name for f in m.files] if m.parquet is None else
               [m.parquet.creates] if m.parquet.creates else list(m.parquet.splits))
    present = [t for t in targets if (dl.dest / t).exists()]
    if present and len(present) == len(targets):
        published = {f.name: f for f in dl.files}
        for t in present:
            f = published.get(t) if m.parquet is None else None
            if f is not None and f.algo and f.digest:  # put there by hand or an older fetch: the published file?
                got = file_digest(dl.dest / t, f.algo)
                if got != f.digest:
                    raise DataError(f"{dl.dest / t} is there but is not the published file ({f.algo.upper()} {got}, "
                                    f"published {f.digest}); delete it and run `cytoreg data fetch {dl.task} "
                                    "--from hf` again")
                report(f"present: {dl.dest / t} ({f.algo.upper()} matches)")
            else:
                report(f"present: {dl.dest / t}")
        return []
    if present:
        raise DataError(f"{dl.dest}: {', '.join(present)} already exist(s); remove them (or check them with "
                        f"`cytoreg data verify {dl.task}`) before fetching again")
    if m.parquet is not None:
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError as exc:
            raise DataError(f"task '{dl.task}': laying out the parquet mirror {m.repo} needs pyarrow: {INSTALL_HINT}; "
                            f"or fetch from the publisher: cytoreg data fetch {dl.task}") from exc
    root = snapshot(m, dl.task, progress)
    made = [p for p in (dl.dest, *dl.dest.parents) if not p.exists()]  # folders this run creates
    dl.dest.mkdir(parents=True, exist_ok=True)
    try:
        out = (_install_files(dl, m, root) if m.parquet is None else
               _materialise(dl, spec, m, m.parquet, root, report))
        report(f"the downloaded files stay in the hub cache ({root}); `hf cache delete` frees them")
        return out
    except BaseException:
        for p in made:  # innermost first; only while empty
            try:
                p.rmdir()
            except OSError:
                break
        raise


def _install_files(dl: Download, m: HfMirror, root: Path) -> list[Path]:
    assert dl.dest is not None
    published = {f.name: f for f in dl.files}
    staging = dl.dest / STAGING
    staging.mkdir(exist_ok=True)
    done: list[tuple[Path, Path]] = []
    try:
        for mf in m.files:
            src, f = root / mf.path, published[mf.name]
            part = staging / f"{f.name}.part"
            done.append((part, dl.dest / f.name))
            problem = None
            size = src.stat().st_size
            if f.size is not None and size != f.size:
                problem = f"{size} bytes, the published file has {f.size}"
            else:
                sums = _copy_hashing(src, part, {"sha256"} | ({f.algo} if f.algo else set()))
                if mf.sha256 and sums["sha256"] != mf.sha256:
                    problem = f"SHA256 {sums['sha256']}, download.hf_mirror.files says {mf.sha256}"
                elif f.algo and f.digest and sums[f.algo] != f.digest:
                    problem = f"{f.algo.upper()} {sums[f.algo]}, the publisher's is {f.digest}"
            if problem:
                raise DataError(f"{_where(m)}: {mf.path} is not the published {f.name} ({problem}); nothing was "
                                f"installed. The mirror differs from the publisher: fetch from the publisher "
                                f"(cytoreg data fetch {dl.task}) or fix download.hf_mirror")
        for part, final in done:
            os.replace(part, final)
        return [final for _, final in done]
    finally:
        for part, _ in done:
            part.unlink(missing_ok=True)
        try:
            staging.rmdir()
        except OSError:
            pass


def _copy_hashing(src: Path, dst: Path, algos: set[str]) -> dict[str, str]:
    """Copy ``src`` to ``dst`` in one read, returning its checksums."""
    hashes = {a: _hasher(a) for a in algos}
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while block := fi.read(CHUNK):
            for h in hashes.values():
                h.update(block)
            fo.write(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


# -- parquet -------------------------------------------------------------------------------------

def _class_names(pf, column: str) -> list[str] | None:
    """The ClassLabel names ``datasets`` stores in the parquet schema metadata, if any."""
    meta = pf.schema_arrow.metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return None
    feats = (json.loads(raw).get("info") or {}).get("features") or {}
    feat = feats.get(column) or {}
    return list(feat["names"]) if feat.get("_type") == "ClassLabel" and "names" in feat else None


def _ext(data: bytes, path: str | None) -> str:
    for magic, ext in ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
                       (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")):
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    suffix = Path(path or "").suffix.lower()
    return suffix if suffix else ".img"


def _split_files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and fnmatch.fnmatch(p.relative_to(root).as_posix(), pattern))


def _labels(m: HfMirror, pq: ParquetMirror, split: str, files: list[Path]) -> list[str]:
    """The label name of every row of a split, in row order."""
    import pyarrow as pa
    import pyarrow.parquet as papq

    out: list[str] = []
    for f in files:
        pf = papq.ParquetFile(f)
        if pq.label_column not in pf.schema_arrow.names or pq.image_column not in pf.schema_arrow.names:
            raise DataError(f"{_where(m)}: {f.name} (split {split}) has columns {pf.schema_arrow.names}, not "
                            f"'{pq.image_column}' and '{pq.label_column}' as download.hf_mirror.parquet says")
        col = pf.read(columns=[pq.label_column]).column(0).combine_chunks()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            out += [str(v) for v in col.to_pylist()]
            continue
        if not pa.types.is_integer(col.type):
            raise DataError(f"{_where(m)}: column '{pq.label_column}' of {f.name} is {col.type}, not a ClassLabel, "
                            "string or integer label")
        names = _class_names(pf, pq.label_column)
        if names and pq.label_names and names != pq.label_names:
            raise DataError(f"{_where(m)}: the ClassLabel names of '{pq.label_column}' are {names}, "
                            f"download.hf_mirror.parquet.label_names says {pq.label_names}; fix the spec")
        names = names or pq.label_names
        if not names:
            raise DataError(f"{_where(m)}: column '{pq.label_column}' holds integers without ClassLabel names; give "
                            "download.hf_mirror.parquet.label_names (index -> name, as the mirror's card says)")
        for v in col.to_pylist():
            if v is None or not 0 <= v < len(names):
                raise DataError(f"{_where(m)}: {f.name} has label {v} in '{pq.label_column}', outside its "
                                f"{len(names)} names")
            out.append(names[v])
    return out


def _check_counts(dl: Download, spec: Any, m: HfMirror, pq: ParquetMirror,
                  labels: dict[str, list[str]]) -> None:
    names = sorted({n for rows in labels.values() for n in rows})
    unmapped = [n for n in names if n not in pq.label_map]
    if unmapped:
        lines = "".join(f"\n        {json.dumps(n)}: <task label or null>" for n in unmapped)
        raise DataError(f"{_where(m)}: label name(s) {', '.join(map(repr, unmapped))} are not in "
                        f"download.hf_mirror.parquet.label_map of {dl.spec_path}; nothing was installed. "
                        f"Add them:{lines}")
    ref = spec.get("reference") or {}
    sizes: dict = ref.get("published_split_sizes") or {}
    counts: dict = ref.get("published_counts") or {}
    problems = [f"split {s}: {len(rows)} rows, published {sizes[s]}" for s, rows in labels.items()
                if s in sizes and len(rows) != sizes[s]]
    if counts:
        got = Counter(pq.label_map[n] for rows in labels.values() for n in rows if pq.label_map[n] is not None)
        problems += [f"label {lab!r}: {got.get(lab, 0)} images, published {n}" for lab, n in counts.items()
                     if got.get(lab, 0) != n]
    if problems:
        raise DataError(f"{_where(m)} does not hold the published dataset of task '{dl.task}' "
                        f"({'; '.join(problems)}); nothing was installed. Fetch from the publisher or fix the spec's "
                        "download.hf_mirror / reference")


def _materialise(dl: Download, spec: Any, m: HfMirror, pq: ParquetMirror, root: Path,
                 report: Callable[[str], None]) -> list[Path]:
    import pyarrow.parquet as papq

    assert dl.dest is not None
    files = {s: _split_files(root, pat) for s, pat in pq.splits.items()}
    empty = [s for s, fs in files.items() if not fs]
    if empty:
        raise DataError(f"{_where(m)}: no parquet file for split(s) {', '.join(empty)} "
                        f"({', '.join(pq.splits[s] for s in empty)}); fix download.hf_mirror.parquet.splits")
    labels = {s: _labels(m, pq, s, fs) for s, fs in files.items()}
    _check_counts(dl, spec, m, pq, labels)
    tmp = dl.dest / f".cytoreg-hf-{pq.creates or dl.task}"
    shutil.rmtree(tmp, ignore_errors=True)  # our own leftover from an interrupted run
    base = tmp / pq.creates if pq.creates else tmp
    try:
        written = left_out = 0
        for split, fs in files.items():
            row = 0
            taken: set[Path] = set()
            for f in fs:
                pf = papq.ParquetFile(f)
                for batch in pf.iter_batches(columns=[pq.image_column], batch_size=256):
                    for img in batch.column(0).to_pylist():
                        name = labels[split][row]
                        folder = pq.label_map[name]
                        row += 1
                        if folder is None:
                            left_out += 1
                            continue
                        data = img.get("bytes") if isinstance(img, dict) else None
                        if not data:
                            raise DataError(f"{_where(m)}: row {row - 1} of split {split} ({f.name}) has no image "
                                            f"bytes in '{pq.image_column}' (a reference to an external file); "
                                            "only images stored in the parquet can be laid out")
                        out = base / split / folder / _file_name(img.get("path"), data, split, row - 1)
                        if out in taken:  # two rows kept the same file name: number them instead
                            out = out.with_name(f"{split}_{row - 1:06d}{_ext(data, None)}")
                        taken.add(out)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(data)
                        written += 1
        tops = [pq.creates] if pq.creates else list(files)
        for t in tops:
            os.replace(tmp / t, dl.dest / t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(f"{_where(m)}: {written} images laid out under {dl.dest}" +
           (f" ({left_out} left out by label_map: null)" if left_out else ""))
    return [dl.dest / t for t in tops]


_SAME = {".jpeg": ".jpg", ".tiff": ".tif"}


def _file_name(path: str | None, data: bytes, split: str, row: int) -> str:
    """The original file's name where the parquet kept a plain one (its extension corrected when
    the bytes are another format: a re-encoded image), else ``<split>_<row>.<ext>``."""
    name = Path(path or "").name
    suffix = Path(name).suffix.lower()
    if not (name and name == path and not name.startswith(".") and suffix in (
            ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")):
        return f"{split}_{row:06d}{_ext(data, path)}"
    found = _ext(data, None)
    return name if found in (".img", _SAME.get(suffix, suffix)) else Path(name).stem + found
