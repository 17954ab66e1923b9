"""Batched image embedding: DataLoader workers read, decode and preprocess images while the
main process encodes the previous batch. Images whose embedding is already in the embedding
cache are never decoded. Decoding is :func:`cytoreg.images.open_image` (orientation, mode, bomb
and truncation checks); a failure is that sample's error, naming the file. torch is imported when
a loader is built, so a run whose embeddings or responses are all cached never imports it."""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from cytoreg.errors import CytoregError
from cytoreg.images import open_image
from cytoreg.tasks.samples import ImageRef

#: (indices in the caller's list, embeddings (n, d), [(index, error message)])
BatchCallback = Callable[[list[int], np.ndarray, list[tuple[int, str]]], None]


def default_workers(n_items: int, batch_size: int) -> int:
    """One worker per core (at most 4: the main process mostly waits on the model; per rank, the
    cores divided among the local ranks); none for a single batch, where worker start-up costs
    more than it saves."""
    if n_items <= batch_size:
        return 0
    # under torchrun / accelerate the ranks share the cores
    per_rank = max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return min(4, per_rank)


class _Images:  # a map-style dataset (DataLoader needs only __len__ / __getitem__)
    def __init__(self, refs: Sequence[ImageRef], positions: Sequence[int], preprocess: Callable[[Any], Any]):
        self.refs, self.positions, self.preprocess = refs, positions, preprocess

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int):
        i = self.positions[j]
        ref = self.refs[i]
        try:
            return i, self.preprocess(open_image(ref)), None  # the one decode path (cytoreg.images)
        except CytoregError as exc:
            return i, None, str(exc)
        except Exception as exc:  # a preprocessing failure is one sample's failure, not the run's
            return i, None, f"{ref}: preprocessing failed: {type(exc).__name__}: {exc}"


class _Collate:
    """Keeps the failures apart; ``stack`` builds the batch (torch.stack, or an adapter's own)."""

    def __init__(self, stack: Callable[[list], Any] | None = None):
        if stack is None:
            from cytoreg.models.base import stack_batch  # torch.stack; numpy arrays become tensors

            stack = stack_batch
        self.stack = stack

    def __call__(self, items):
        ok = [(i, t) for i, t, err in items if err is None]
        failed = [(i, err) for i, _, err in items if err is not None]
        batch = self.stack([t for _, t in ok]) if ok else None
        return [i for i, _ in ok], batch, failed


def image_loader(adapter, refs: Sequence[ImageRef], positions: Sequence[int], stack=None):
    from torch.utils.data import DataLoader

    bs = adapter.batch_size
    workers = adapter.workers if adapter.workers is not None else default_workers(len(positions), bs)
    device = getattr(adapter, "_device", "cpu")
    return DataLoader(_Images(refs, positions, adapter.preprocess), batch_size=bs, shuffle=False,
                      num_workers=workers, collate_fn=_Collate(stack), pin_memory=str(device).startswith("cuda"),
                      persistent_workers=False)


def embed_images(adapter, refs: Sequence[ImageRef], shas: Sequence[str], emb_cache, on_batch: BatchCallback,
                 stats=None) -> None:
    """Embed ``refs`` (with their SHA-256 ``shas``), calling ``on_batch`` as results arrive.

    Cached embeddings are delivered first, in batches; new ones are written to ``emb_cache``
    batch by batch, so a crash loses at most the batch being encoded."""
    have = emb_cache.get(list(shas))
    cached = [i for i, s in enumerate(shas) if s in have]
    bs = adapter.batch_size
    for start in range(0, len(cached), bs):
        chunk = cached[start:start + bs]
        on_batch(chunk, np.stack([have[shas[i]] for i in chunk]), [])
    todo = [i for i, s in enumerate(shas) if s not in have]
    if not todo:
        return
    for indices, batch, failed in image_loader(adapter, refs, todo):
        emb = np.zeros((0, 0), dtype=np.float32)
        if indices:
            if stats is not None:
                stats.add(sent=len(indices))
            emb = np.asarray(adapter.encode_batch(batch), dtype=np.float32)
            emb_cache.put([shas[i] for i in indices], emb)
        on_batch(indices, emb, failed)
