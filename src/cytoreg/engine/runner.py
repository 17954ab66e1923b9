"""``cytoreg eval``: every task × model × setting, resumable through the response cache."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from cytoreg.cache import ResponseCache, request_key
from cytoreg.engine.breaker import breaker_for, load_failure, load_or_stop
from cytoreg.engine.execute import CallStats, run_generator
from cytoreg.engine.progress import bar as _bar, first_cached as _first_cached, progress as _progress
from cytoreg.errors import CytoregError, IncompatibleError, ModelLoadError
from cytoreg.metrics import statistics
from cytoreg.metrics.classification import Predictions
from cytoreg.models.base import Baseline, Embedder, Generator, ModelAdapter, Response
from cytoreg.registry.builtins import ADAPTERS
from cytoreg.registry.catalog import Catalog
from cytoreg.scoring import EvalConfig, Evaluation
from cytoreg.tasks.kinds import PreparedTask, class_embeddings
from cytoreg.tasks.samples import sha256

def evaluate(cfg: EvalConfig, catalog: Catalog | None = None, *, distributed: bool = True) -> dict:
    """Run and score everything; under torchrun / accelerate (WORLD_SIZE > 1) the ranks share the
    work (see :mod:`cytoreg.engine.distributed`). With ``cfg.shard`` only that shard's caches are
    filled and ``shard.json`` is written; ``cytoreg merge`` scores the shards together."""
    from cytoreg.engine import distributed as dist
    from cytoreg.engine.rundir import check_reuse, locked
    from cytoreg.report.results import run_config

    if distributed and cfg.shard is None and dist.world_size() > 1:
        return dist.run(cfg, catalog)
    catalog = catalog or Catalog.load(cfg.include)
    from cytoreg.engine.preflight import run_preflight

    pre = run_preflight(cfg, catalog)  # every problem at once, before anything loads or is sent
    pre.raise_problems()
    if cfg.shard is None:
        check_reuse(Path(cfg.output), run_config(cfg), cfg.overwrite)
    with locked(Path(cfg.output)):
        if cfg.shard is None:
            check_reuse(Path(cfg.output), run_config(cfg), cfg.overwrite)  # again: it may have finished meanwhile
        return _evaluate(cfg, catalog, pre)


def _announce(message: str) -> None:
    """A stopped model, said once, as it happens (the other models go on)."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def _evaluate(cfg: EvalConfig, catalog: Catalog, pre) -> dict:
    from cytoreg.engine import distributed as dist
    from cytoreg.report.results import write_results

    pairs, prepared = pre.pairs, pre.prepared
    if cfg.shard is not None:
        for prep in prepared.values():
            dist.keep_shard(prep.split, *cfg.shard)
    cfg.output.mkdir(parents=True, exist_ok=True)
    cache = ResponseCache(cfg.cache or cfg.output / "cache.sqlite")
    evaluations: list[Evaluation] = []
    models: dict[str, dict] = {}
    judge: Generator | None = None
    if cfg.judge:
        jspec = catalog.model(cfg.judge)
        judge = ADAPTERS.get(jspec.get("adapter"))(jspec, device=cfg.device)
        breaker_for(judge, cfg.circuit_breaker, _announce)
        models.setdefault(f"{cfg.judge} (judge)", {"adapter": jspec.get("adapter"), "capability": "judge",
                                                   "spec_hash": jspec.hash, "origin": jspec.origin,
                                                   "fingerprint": judge.fingerprint()})
    try:
        total = sum(w.requests if w.capability == "generator" else w.samples for w in pre.work)
        with _progress(cfg.progress, total) as progress:
            by_model: dict[str, list] = {}
            for pair in pairs:
                by_model.setdefault(pair[2].name, []).append(pair)
            for mname, mpairs in by_model.items():
                mspec, adapter_cls = mpairs[0][2], mpairs[0][3]
                adapter: ModelAdapter = adapter_cls(mspec, device=cfg.device)
                breaker_for(adapter, cfg.circuit_breaker, _announce)
                if cfg.layers is not None:
                    _override_layers(adapter, cfg.layers)
                models[mname] = {"adapter": mspec.get("adapter"), "capability": adapter.capability,
                                 "spec_hash": mspec.hash, "origin": mspec.origin,
                                 "fingerprint": adapter.fingerprint(), "meta": model_meta(mspec)}
                # adapters load lazily, on the first request the caches cannot answer: a fully
                # cached rerun needs neither the weights nor an API key
                if cfg.shard is not None and (isinstance(adapter, Baseline) or (
                        cfg.skip_api and isinstance(adapter, Generator) and adapter.mode == "concurrent")):
                    continue  # nothing to cache (baselines), or left to the merge step (APIs)
                try:
                    for tspec, kind, _, _ in mpairs:
                        prep = prepared[tspec.name]
                        if cfg.shard is not None and not (prep.test or prep.split.train or prep.split.val):
                            continue
                        for setting in pre.settings[(tspec.name, mname)]:
                            if cfg.shard is not None and setting != "probe" and not prep.test:
                                continue
                            result = _run_one(cfg, kind, prep, adapter, setting, cache, progress, judge)
                            evaluations += result if isinstance(result, list) else [result]
                finally:
                    adapter.close()
                stopped = getattr(adapter, "_breaker", None)
                if stopped is not None and stopped.tripped:
                    models[mname]["stopped_reason"] = stopped.reason
    finally:
        if judge is not None:
            judge.close()
            if breaker_for(judge).tripped:  # it could not load, or its endpoint failed for good: exit 3
                models[f"{cfg.judge} (judge)"]["stopped_reason"] = breaker_for(judge).reason
        cache.close()
    if cfg.shard is not None:
        return dist.write_shard_manifest(cfg, prepared, {m: info["stopped_reason"] for m, info in models.items()
                                                         if info.get("stopped_reason")})
    return write_results(cfg, prepared, models, evaluations)


MODEL_META = ("description", "parameters", "open_weights", "release", "license", "homepage", "price")


def model_meta(mspec) -> dict:
    """What a leaderboard shows about a model, from its spec (fields that are set)."""
    return {k: mspec.get(k) for k in MODEL_META if mspec.get(k) is not None}


def _override_layers(adapter: ModelAdapter, layers: list[int]) -> None:
    if "layers" not in (adapter.params_schema.get("properties") or {}):
        raise IncompatibleError(f"--layers: model '{adapter.name}' ({adapter.spec.get('adapter')}) has no layers to "
                                "choose; use it with hf_hidden or timm models")
    adapter.params["layers"] = list(layers)


def _run_one(cfg: EvalConfig, kind, prep: PreparedTask, adapter: ModelAdapter, setting: str,
             cache: ResponseCache, progress, judge: Generator | None = None) -> Evaluation | list[Evaluation]:
    label = f"{prep.spec.name} × {adapter.name} [{setting}]"
    stats = CallStats()
    if setting == "probe":
        from cytoreg.engine.probe_run import run_probe

        return run_probe(cfg, prep, adapter, cache, lambda total: _first_cached(_bar(progress, label, total)[1]), stats,
                         fill_only=cfg.shard is not None)
    from cytoreg.engine.imagecheck import run_checked  # each test image decoded once; bad ones are error records

    return run_checked(prep, adapter, setting, lambda checked: _run_checked_one(
        cfg, kind, checked, adapter, setting, cache, progress, label, stats, judge))


def _run_checked_one(cfg, kind, prep, adapter, setting, cache, progress, label, stats, judge):
    samples, labels, usage = prep.test, prep.labels, {}
    if isinstance(adapter, Baseline):
        prior = statistics.class_distribution([s.label for s in samples], labels)
        preds, scores = adapter.predict([s.id for s in samples], labels, prior, cfg.seed)
        records = [{"id": s.id, "label": s.label, "try": 0, "response": p, "parsed": p, "match": "baseline",
                    "correct": p == s.label, "error": None} for s, p in zip(samples, preds)]
        _, adv = _bar(progress, label, len(samples))
        adv(len(samples), cached=True, note="no calls")  # a baseline: not a rate
        return Evaluation(prep.spec.name, adapter.name, setting, records,
                          Predictions([s.label for s in samples], list(preds), labels, scores), stats, 0, usage,
                          ids=[s.id for s in samples])
    if isinstance(adapter, Embedder):
        return _run_embedder(kind, prep, adapter, cache, progress, label, stats)
    if isinstance(adapter, Generator):
        return _run_generator(cfg, kind, prep, adapter, setting, cache, progress, label, stats, judge)
    raise IncompatibleError(f"model '{adapter.name}': capability '{adapter.capability}' is not supported here")


def generator_items(kind, prep: PreparedTask, adapter: Generator, setting: str) -> tuple[list[tuple], int]:
    """Every request of a generator evaluation: [(sample index, try, request, cache key)], tries."""
    gen = dict(adapter.spec.get("generation") or {})
    tries = int(gen.pop("tries", 1))
    fewshot = kind.fewshot_examples(prep) if setting == "few_shot" else []
    if setting == "few_shot" and not fewshot:
        raise CytoregError(f"task '{prep.spec.name}': few-shot needs examples, but the few-shot pool is empty "
                           "(every image went to the test set); lower sampling.test_per_class")
    items = []
    fp = adapter.fingerprint()
    for si, s in enumerate(prep.test):
        for t in range(tries):
            req = kind.chat_request(s, setting, fewshot, gen, t)
            content = req.canonical()
            req.release()
            items.append((si, t, req, request_key(fp, content)))
    return items, tries


def prompt_view(req, sample) -> str:
    """The request as a person reads it: each message's text, images named by file (the sample's own
    image as "this sample"), never by path, so reports built from it hold no machine paths."""
    from cytoreg.models.base import ImagePart

    lines = []
    for m in req.messages:
        for p in m.parts:
            if isinstance(p, ImagePart):
                name = "this sample" if p.image == sample.image else \
                    (p.image.path.name if p.image.path is not None else "image")
                lines.append(f"[{m.role}] [image: {name}]")
            else:
                lines.append(f"[{m.role}] {p.text}")
    return "\n".join(lines)


def embedder_keys(kind, prep: PreparedTask, adapter: Embedder) -> tuple[list[str], list[str], list[list[str]]]:
    """(cache keys, image SHA-256s, class prompts) of a zero-shot embedder evaluation."""
    prompts = kind.class_prompts()
    prompt_hash = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:16]
    fp = adapter.fingerprint()
    shas = [sha256(s.image.read_bytes()) for s in prep.test]
    return [request_key(fp, {"zero_shot_clip": prompt_hash, "image_sha256": sha}) for sha in shas], shas, prompts


def _run_generator(cfg, kind, prep, adapter: Generator, setting, cache, progress, label, stats,
                   judge: Generator | None = None) -> Evaluation:
    items, tries = generator_items(kind, prep, adapter, setting)
    fp = adapter.fingerprint()
    hits = cache.get_many(k for *_, k in items)
    responses: dict[int, Response] = {i: hits[it[3]] for i, it in enumerate(items) if it[3] in hits}
    missing = [i for i in range(len(items)) if i not in responses]
    _, adv = _bar(progress, label, len(items))
    adv(len(items) - len(missing), cached=True)

    def done(j: int, resp: Response) -> None:
        i = missing[j]
        si, _, _, key = items[i]
        responses[i] = resp
        if resp.error is None:
            cache.put(key, resp, model_fingerprint=fp, model=adapter.name, task=prep.spec.name,
                      sample_id=prep.test[si].id)
        adv(1)

    breaker = breaker_for(adapter)
    if missing:
        load_or_stop(adapter, breaker)  # once, before the thread pool; a stopped model's requests are "not sent"
    run_generator(adapter, [items[i][2] for i in missing], done, stats, cfg.concurrency, breaker)
    records = []
    usage: dict[str, int] = {}
    for i, (si, t, req, key) in enumerate(items):
        s, resp = prep.test[si], responses[i]
        ex = kind.extract(s, resp.text) if resp.error is None else None
        parsed = ex.label if ex else None
        for k, v in (resp.usage or {}).items():
            usage[k] = usage.get(k, 0) + int(v)
        records.append({"id": s.id, "label": s.label, "try": t, "prompt_hash": key[:16], "response": resp.text,
                        "parsed": parsed, "match": ex.step if ex else "error", "match_detail": ex.detail if ex else "",
                        "correct": parsed == s.label if ex else None, "error": resp.error, "attempts": resp.attempts,
                        "prompt": prompt_view(req, s),
                        **({"latency_s": resp.latency_s} if resp.latency_s is not None else {})})
    judge_unsent = breaker_for(judge).unsent if judge is not None else 0
    if judge is not None:
        from cytoreg.engine.judge import apply_judge

        for k, v in apply_judge(judge, kind, prep, records, cache, cfg.concurrency).items():
            usage[k] = usage.get(k, 0) + v
    if hasattr(kind, "annotate"):  # per-sample parsing a kind adds (explain: feature scores, confidence)
        for k, v in kind.annotate(prep, records, setting, judge, cache, cfg.concurrency).items():
            usage[k] = usage.get(k, 0) + v
    # scored on the answered samples only: an error is no answer (an invalid answer still counts as wrong)
    top1 = [r for r in records if r["try"] == 0 and r["error"] is None]
    preds = Predictions([r["label"] for r in top1], [r["parsed"] for r in top1], prep.labels)
    stopped = breaker.reason if breaker.tripped and any(r["error"] for r in records) else None
    if stopped is None and judge is not None and breaker_for(judge).unsent > judge_unsent:
        stopped = f"judge {breaker_for(judge).reason}"  # rules-only parsing is not the run asked for
    return Evaluation(prep.spec.name, adapter.name, setting, records, preds, stats,
                      len(items) - len(missing), usage, tries, ids=[r["id"] for r in top1], stopped_reason=stopped)


def _run_embedder(kind, prep, adapter: Embedder, cache, progress, label, stats) -> Evaluation:
    keys, shas, prompts = embedder_keys(kind, prep, adapter)
    fp = adapter.fingerprint()
    hits = cache.get_many(keys)
    _, adv = _bar(progress, label, len(keys))
    adv(len(hits), cached=True)
    responses: dict[int, Response] = {i: hits[k] for i, k in enumerate(keys) if k in hits}
    missing = [i for i, k in enumerate(keys) if k not in hits]
    breaker = breaker_for(adapter)
    if missing and load_or_stop(adapter, breaker):  # once per adapter, in the main process, before workers fork
        # only now the image pipeline (and torch): a fully cached rerun never imports it
        from cytoreg.engine.embed import embed_images
        from cytoreg.models.embedding_cache import EmbeddingCache

        emb_cache = EmbeddingCache(Path(cache.path).parent / "embeddings", fp)

        def on_batch(local: list[int], emb: np.ndarray, failed: list[tuple[int, str]]) -> None:
            rows = []
            if local:
                probs = adapter.zero_shot_probs(np.asarray(emb, dtype=np.float64), class_emb)
                for r, j in enumerate(local):
                    i = missing[j]
                    responses[i] = Response(scores={lab: float(probs[r, k]) for k, lab in enumerate(prep.labels)})
                    rows.append((keys[i], responses[i], prep.test[i].id))
            for j, err in failed:
                responses[missing[j]] = Response(error=err)
            cache.put_many(rows, model_fingerprint=fp, model=adapter.name, task=prep.spec.name)
            adv(len(local) + len(failed))

        t0 = time.perf_counter()
        try:
            class_emb = class_embeddings(adapter, prompts)
            embed_images(adapter, [prep.test[i].image for i in missing], [shas[i] for i in missing], emb_cache,
                         on_batch, stats)
        except ModelLoadError as exc:  # a part the adapter loads lazily (text tower, logit scale) cannot load
            breaker.trip(load_failure(adapter.name, exc))
        stats.wall_s += time.perf_counter() - t0
    unsent = [i for i in missing if i not in responses]  # the model was stopped
    for i in unsent:
        responses[i] = Response(error=breaker.not_sent())
    if unsent:
        adv(len(unsent))
    records, answered, score_rows = [], [], []
    for i, s in enumerate(prep.test):
        resp = responses[i]
        parsed = None
        if not resp.error:  # a failed image has no scores: it is left out, never given a made-up row
            row = np.array([resp.scores[lab] for lab in prep.labels])
            parsed = prep.labels[int(row.argmax())]
            answered.append((s, parsed))
            score_rows.append(row)
        records.append({"id": s.id, "label": s.label, "try": 0, "prompt_hash": keys[i][:16],
                        "response": None if resp.error else {k: round(v, 6) for k, v in resp.scores.items()},
                        "parsed": parsed, "match": "argmax" if parsed else "error",
                        "correct": parsed == s.label if parsed else None, "error": resp.error})
    scores = np.stack(score_rows) if score_rows else np.zeros((0, len(prep.labels)))
    return Evaluation(prep.spec.name, adapter.name, "zero_shot", records,
                      Predictions([s.label for s, _ in answered], [p for _, p in answered], prep.labels, scores),
                      stats, len(hits), {}, ids=[s.id for s, _ in answered],
                      stopped_reason=breaker.reason if breaker.tripped and any(r["error"] for r in records) else None)
