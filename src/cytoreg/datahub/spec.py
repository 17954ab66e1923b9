"""The ``download:`` block of a task spec, read into plain dataclasses.

    download:
      dest: ${CYTOREG_DATA:-~/cytoreg-data}/medmnist    # folder the files land in
      files:
      - url: https://zenodo.org/records/10519652/files/bloodmnist.npz?download=1
        name: bloodmnist.npz          # file name under dest (default: last URL segment)
        md5: 7053d0359d879ad8a5505303e11de1dc   # or sha256: ...; the publisher's own checksum
        size: 35461855                # bytes, when published
        extract: zip                  # zip | tar: unpack into dest (the archive's own layout)
        creates: PBC_dataset_normal_DIB  # what the archive puts under dest (presence check)
      manual:                         # sources that need a person: the exact steps, in order
      - Open https://... and accept the licence
      hf_mirror:                      # the same data on the Hugging Face Hub (`cytoreg data fetch NAME --from hf`)
        repo: albertvillanova/medmnist-v2
        revision: 0472595ab51916346dc4ad40f7b77551f2171403   # a commit: what was checked
        files:                        # the published files, byte for byte (checked with files[]' checksum)
        - {path: data/bloodmnist.npz, name: bloodmnist.npz, sha256: ...}
        # or parquet: {splits: {test: data/test-*.parquet}, image_column, label_column,
        #              label_map: {mirror name: folder}, creates: FOLDER}  (see hf_mirror.py)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from cytoreg.errors import CytoregError


@dataclass
class FileSpec:
    url: str
    name: str
    algo: str | None  # "sha256" | "md5" | None (no published checksum: verify by counts)
    digest: str | None
    size: int | None = None
    extract: str | None = None  # "zip" | "tar" | None
    creates: str | None = None

    @property
    def target(self) -> str:
        """What must exist under dest once this file is installed."""
        return self.creates or (self.name if self.extract is None else "")


@dataclass
class MirrorFile:
    path: str  # in the repo
    name: str  # the download.files entry it stands for (file name under dest)
    sha256: str | None = None  # the mirror's LFS object id, where it was read from the hub


@dataclass
class ParquetMirror:
    splits: dict[str, str]  # published split -> glob of its parquet files in the repo
    image_column: str
    label_column: str
    label_map: dict[str, str | None]  # mirror label name -> folder written (the task's label); null: left out
    creates: str | None = None  # folder under dest holding the split folders (None: they go in dest)
    label_names: list[str] | None = None  # for an integer column without ClassLabel names


@dataclass
class HfMirror:
    repo: str
    revision: str
    source: str = ""  # where the mirror's layout was confirmed
    files: list[MirrorFile] = field(default_factory=list)
    parquet: ParquetMirror | None = None

    @property
    def patterns(self) -> list[str]:
        if self.parquet is not None:
            return sorted(set(self.parquet.splits.values()))
        return [f.path for f in self.files]


@dataclass
class Download:
    task: str
    spec_path: str
    dest: Path | None
    files: list[FileSpec] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)
    note: str = ""
    hf_mirror: HfMirror | None = None

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]


def read_download(spec) -> Download | None:
    """The task's download description, or None when the spec has none."""
    block = spec.get("download")
    if not block:
        return None
    dest = Path(block["dest"]).expanduser() if block.get("dest") else None
    files = []
    for i, f in enumerate(block.get("files") or []):
        algo = "sha256" if "sha256" in f else "md5" if "md5" in f else None
        name = f.get("name") or unquote(Path(urlparse(f["url"]).path).name)
        if not name or "/" in name or name in (".", ".."):
            raise CytoregError(f"{spec.path}: download.files[{i}].name: '{name}' is not a plain file name; "
                               "give name: FILE")
        files.append(FileSpec(url=f["url"], name=name, algo=algo, digest=(f.get(algo) or "").lower() or None,
                              size=f.get("size"), extract=f.get("extract"), creates=f.get("creates")))
    if files and dest is None:
        raise CytoregError(f"{spec.path}: download.dest: needed when download.files is given (the folder "
                           "the files land in, e.g. ${CYTOREG_DATA:-~/cytoreg-data}/NAME)")
    mirror = _read_mirror(spec, block.get("hf_mirror"), files)
    if mirror is not None and dest is None:
        raise CytoregError(f"{spec.path}: download.dest: needed when download.hf_mirror is given (the folder "
                           "the mirror's files land in)")
    return Download(task=spec.name, spec_path=str(spec.path), dest=dest, files=files,
                    manual=list(block.get("manual") or []), note=block.get("note", ""), hf_mirror=mirror)


def _read_mirror(spec, m: dict | None, files: list[FileSpec]) -> HfMirror | None:
    if not m:
        return None
    where = f"{spec.path}: download.hf_mirror"
    known = {f.name for f in files}
    mfiles = []
    for i, f in enumerate(m.get("files") or []):
        name = f.get("name") or PurePosixPath(f["path"]).name
        if name not in known:
            raise CytoregError(f"{where}.files[{i}].name: '{name}' is none of download.files' names "
                               f"({', '.join(sorted(known)) or 'none'}); a mirrored file stands for a published "
                               "one, whose checksum it must match")
        mfiles.append(MirrorFile(path=f["path"], name=name, sha256=(f.get("sha256") or "").lower() or None))
    pq = m.get("parquet")
    parquet = None
    if pq:
        parquet = ParquetMirror(splits=dict(pq["splits"]), image_column=pq["image_column"],
                                label_column=pq["label_column"], label_map=dict(pq["label_map"]),
                                creates=pq.get("creates"), label_names=pq.get("label_names"))
    if bool(mfiles) == bool(parquet):
        raise CytoregError(f"{where}: give either files (the published files, byte for byte) or parquet "
                           "(images and labels to lay out), not both and not neither")
    return HfMirror(repo=m["repo"], revision=m["revision"], source=m.get("source", ""), files=mfiles,
                    parquet=parquet)
