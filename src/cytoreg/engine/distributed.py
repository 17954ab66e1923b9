"""Scale-out without a scheduler of our own.

- ``--shard I/N`` (job arrays, several machines): a run fills the caches (responses, embeddings,
  features) for its shard of the samples only and writes ``shard.json``; ``cytoreg merge``
  combines the shard folders and scores everything from the merged caches.
- ``torchrun --nproc-per-node N`` / ``accelerate launch`` (``WORLD_SIZE`` > 1): every rank fills
  its shard into its own folder ``<output>/shards/rank<r>``, a barrier waits for all, and rank 0
  merges and scores. API models are left to rank 0 (they scale by concurrency, not processes).

A sample's shard is a hash of its id modulo N, and the cache keys never involve N or the rank,
so shards made with any N merge into the same cache, and the scores equal a one-process run."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cytoreg.errors import CytoregError

MANIFEST = "shard.json"
CONFIG_KEYS = ("tasks", "models", "include", "limit", "seed", "bootstrap", "judge", "settings", "overrides")


def shard_of(sample_id: str, n: int) -> int:
    return int(hashlib.sha256(sample_id.encode()).hexdigest()[:12], 16) % n


def keep_shard(split, i: int, n: int) -> None:
    """Keep the test / train / val samples of shard ``i`` (few-shot examples stay whole: every
    request needs them)."""
    for name in ("test", "train", "val"):
        setattr(split, name, [s for s in getattr(split, name) if shard_of(s.id, n) == i])


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise CytoregError(f"--shard {text!r}: write it as I/N, e.g. 0/4 (shards are numbered from 0)") from None
    if n < 1 or not 0 <= i < n:
        raise CytoregError(f"--shard {text}: I must be between 0 and N-1")
    return i, n


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _config(cfg) -> dict[str, Any]:
    d = asdict(cfg)
    out = {k: d[k] for k in CONFIG_KEYS}
    out["include"] = [str(Path(p).resolve()) for p in cfg.include]
    return out


def write_shard_manifest(cfg, prepared: dict, stopped: dict[str, str] | None = None) -> dict:
    """``stopped``: models stopped in this shard (they could not load, or failed for good), by reason."""
    manifest = {"schema": "cytoreg/shard/v1", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "shard": list(cfg.shard), "config": _config(cfg),
                "samples": {name: {"test": len(p.test), "train": len(p.split.train), "val": len(p.split.val)}
                            for name, p in prepared.items()},
                **({"stopped": stopped} if stopped else {})}
    (Path(cfg.output) / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def merge(run_dirs: list[Path], output: Path, base=None, catalog=None) -> dict:
    """Combine shard folders into ``output`` and score from the merged caches."""
    from cytoreg.cache import ResponseCache
    from cytoreg.engine.runner import EvalConfig, evaluate

    manifests = []
    for d in run_dirs:
        path = Path(d) / MANIFEST
        if not path.exists():
            raise CytoregError(f"{d} has no {MANIFEST}: pass folders written by `cytoreg eval --shard I/N --output DIR`")
        manifests.append((Path(d), json.loads(path.read_text())))
    first = manifests[0][1]
    for d, m in manifests[1:]:
        diff = [k for k in CONFIG_KEYS if m["config"].get(k) != first["config"].get(k)]
        if diff or m["shard"][1] != first["shard"][1]:
            what = ", ".join(diff) or "the number of shards"
            raise CytoregError(f"{d} was run with a different {what} than {manifests[0][0]}; shards of one "
                               "evaluation must share tasks, models, options and N")
    n = first["shard"][1]
    missing = sorted(set(range(n)) - {m["shard"][0] for _, m in manifests})
    if missing:
        raise CytoregError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing: run `cytoreg eval ... "
                           f"--shard {missing[0]}/{n}` for each, then merge all {n}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    cfg = base or EvalConfig(**{k: v for k, v in first["config"].items()}, output=output)
    cfg = replace(cfg, output=output, shard=None, skip_api=False, include=[Path(p) for p in first["config"]["include"]])
    cache = ResponseCache(cfg.cache or output / "cache.sqlite")
    try:
        for k, (d, _) in enumerate(manifests):
            if (d / "cache.sqlite").exists():
                cache.merge_from(d / "cache.sqlite")
            for sub in ("embeddings", "features"):
                for part in sorted((d / sub).rglob("part-*.npz")):
                    dest = output / sub / part.parent.relative_to(d / sub) / f"part-s{k:04d}-{part.name[5:]}"
                    if not dest.exists():
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(part, dest)
    finally:
        cache.close()
    return evaluate(cfg, catalog, distributed=False)


def run(cfg, catalog=None) -> dict:
    """One rank of a torchrun / accelerate launch."""
    try:
        import torch.distributed as tdist
    except ImportError:
        raise CytoregError(f"WORLD_SIZE is {world_size()} (a torchrun / accelerate launch), and ranks meet through "
                           "torch.distributed: install torch (pip install 'cytoreg[clip]') or run one process") from None

    from cytoreg.engine.runner import evaluate

    rank, world = int(os.environ.get("RANK", "0")), world_size()
    if not tdist.is_initialized():
        tdist.init_process_group("gloo")  # barriers only; the models use whatever device they were given
    device = cfg.device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device in (None, "cuda"):
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{local % torch.cuda.device_count()}"
    shards = Path(cfg.output) / "shards"
    mine = replace(cfg, output=shards / f"rank{rank}", cache=None, shard=(rank, world), skip_api=True,
                   device=device, progress=cfg.progress and rank == 0)
    try:
        evaluate(mine, catalog, distributed=False)
        tdist.barrier()
        result: dict = {"rank": rank, "world_size": world}
        if rank == 0:
            result = merge([shards / f"rank{r}" for r in range(world)], Path(cfg.output), replace(cfg, device=device),
                           catalog)
        tdist.barrier()
        return result
    finally:
        tdist.destroy_process_group()
