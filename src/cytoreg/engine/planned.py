"""What a planned run would take from the response cache: per task × model × setting, how many
of its requests are answered already (``cytoreg cache stats --tasks ... --models ...``). Nothing
is loaded or sent; the keys are built exactly as the run builds them."""
from __future__ import annotations

from cytoreg.models.base import Embedder, Generator
from cytoreg.registry.catalog import Catalog
from cytoreg.scoring import EvalConfig


def planned_reuse(cfg: EvalConfig, cache, catalog: Catalog | None = None) -> list[dict]:
    """Rows {task, model, setting, requests, cached}; baselines and probes send no cached requests
    and are left out."""
    from cytoreg.engine.preflight import resolve_run
    from cytoreg.engine.runner import embedder_keys, generator_items

    catalog = catalog or Catalog.load(cfg.include)
    rep = resolve_run(cfg, catalog)  # the run's own plan: overrides, --settings, sampling
    rep.raise_problems()
    adapters: dict = {}
    rows = []
    for tspec, kind, mspec, adapter_cls in rep.pairs:
        prep = rep.prepared[tspec.name]
        adapter = adapters.setdefault(mspec.name, adapter_cls(mspec, device=cfg.device))
        for setting in rep.settings[(tspec.name, mspec.name)]:
            if isinstance(adapter, Generator):
                keys = [k for *_, k in generator_items(kind, prep, adapter, setting)[0]]
            elif isinstance(adapter, Embedder) and setting == "zero_shot" and hasattr(kind, "class_prompts"):
                keys = embedder_keys(kind, prep, adapter)[0]
            else:
                continue
            hits = cache.get_many(keys)
            rows.append({"task": tspec.name, "model": mspec.name, "setting": setting, "requests": len(keys),
                         "cached": len(hits)})
    return rows
