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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
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
class Download:
    task: str
    spec_path: str
    dest: Path | None
    files: list[FileSpec] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)
    note: str = ""

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
    return Download(task=spec.name, spec_path=str(spec.path), dest=dest, files=files,
                    manual=list(block.get("manual") or []), note=block.get("note", ""))
