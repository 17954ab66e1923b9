"""Frozen-feature extraction with an on-disk feature store.

The store keeps one folder per model fingerprint and feature key (layer × pooling), holding
``.npz`` parts (image SHA-256 → float32 vector) written one per batch with an atomic rename, so
a crash loses at most the batch in progress and a rerun extracts only what is missing. Arrays
are plain numeric / fixed-width unicode, read back with ``allow_pickle=False``."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from cytoreg.models.embedding_cache import EmbeddingCache
from cytoreg.tasks.samples import ImageRef


def _key_dir(key: str) -> str:
    """A file-system-safe folder name for a feature key such as ``layer8/mean``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


class FeatureStore:
    def __init__(self, root: str | Path, fingerprint: str, keys: Sequence[str]):
        self.root = Path(root).expanduser() / fingerprint
        self.keys = list(keys)
        self.parts = {k: EmbeddingCache(self.root, _key_dir(k)) for k in self.keys}

    def missing(self, shas: Sequence[str]) -> list[int]:
        """Positions whose features are absent for at least one key."""
        have = [set(self.parts[k].get(list(shas))) for k in self.keys]
        return [i for i, s in enumerate(shas) if not all(s in h for h in have)]

    def put(self, shas: list[str], feats: dict[str, np.ndarray]) -> None:
        for k in self.keys:
            self.parts[k].put(shas, feats[k])

    def matrix(self, key: str, shas: Sequence[str]) -> np.ndarray:
        got = self.parts[key].get(list(shas))
        return np.stack([got[s] for s in shas]).astype(np.float32)


def extract_features(adapter, refs: Sequence[ImageRef], shas: Sequence[str], store: FeatureStore,
                     on_progress=None, stats=None) -> dict[int, str]:
    """Fill ``store`` for every image; returns {position: error} for images that failed."""
    from cytoreg.engine.embed import image_loader

    todo = store.missing(shas)
    if on_progress is not None:
        on_progress(len(shas) - len(todo))
    errors: dict[int, str] = {}
    if not todo:
        return errors
    from cytoreg.models.base import ensure_loaded

    ensure_loaded(adapter)
    for indices, batch, failed in image_loader(adapter, refs, todo, stack=adapter.collate):
        if indices:
            if stats is not None:
                stats.add(sent=len(indices))
            feats = adapter.extract_batch(batch)
            store.put([shas[i] for i in indices], {k: np.asarray(v, dtype=np.float32) for k, v in feats.items()})
        for i, err in failed:
            errors[i] = err
        if on_progress is not None:
            on_progress(len(indices) + len(failed))
    return errors
