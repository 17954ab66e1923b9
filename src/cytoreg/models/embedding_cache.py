"""Image-embedding cache: ``.npz`` parts keyed by model fingerprint and image SHA-256.

Several tasks, template sets and reruns reuse the same embeddings. Each batch is written as
its own part file (atomic rename), so a crash loses at most the batch in progress. Arrays are
plain numeric / fixed-width unicode: read back with ``allow_pickle=False``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class EmbeddingCache:
    def __init__(self, root: str | Path, fingerprint: str):
        self.dir = Path(root).expanduser() / fingerprint
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, np.ndarray] = {}
        for part in sorted(self.dir.glob("part-*.npz")):
            with np.load(part, allow_pickle=False) as z:
                for k, v in zip(z["keys"], z["embeddings"]):
                    self._index[str(k)] = v

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        return {k: self._index[k] for k in keys if k in self._index}

    def put(self, keys: list[str], embeddings: np.ndarray) -> None:
        if not keys:
            return
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, keys=np.array(keys, dtype="<U64"), embeddings=np.asarray(embeddings, dtype=np.float32))
        n = len(list(self.dir.glob("part-*.npz")))
        os.replace(tmp, self.dir / f"part-{n:06d}-{os.getpid()}.npz")
        for k, v in zip(keys, embeddings):
            self._index[k] = np.asarray(v, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._index)
