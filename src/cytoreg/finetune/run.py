"""``cytoreg finetune`` step by step: the training subsets, the provider's route per model
(OpenAI jobs, or LoRA for ``hf`` models), a model spec per fine-tuned model in ``DIR/specs/``,
the evaluation of those models (and the heads, and the base model at n = 0) through the engine,
and the combined learning curve added to ``DIR/results.json``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cytoreg.errors import CytoregError, IncompatibleError


@dataclass
class FinetuneConfig:
    task: str
    models: list[str]
    ns: list[int]
    output: Path
    include: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    check: bool = False
    yes: bool = False
    retry_failed: bool = False
    device: str | None = None
    bootstrap: int | None = None
    seed: int = 0
    progress: bool = True


def spec_name(model: str, task: str, n: int) -> str:
    return f"{model}-ft-{task}-n{n}"


def write_spec(folder: Path, base: Any, task: str, n: int, params: dict, description: str) -> str:
    """A model spec that extends the base spec and overrides ``params`` (the ft: id, or the adapter)."""
    import yaml

    name = spec_name(base.name, task, n)
    data = {"spec": "model/v1", "name": name, "extends": base.name, "description": description,
            "tags": ["finetuned", f"n={n}", f"task={task}"], "params": params}
    folder.mkdir(parents=True, exist_ok=True)
    from cytoreg.report.results import atomic_write

    atomic_write(folder / f"{name}.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return name


def run(cfg: FinetuneConfig, log: Callable[[str], None]) -> dict:
    from cytoreg.finetune.data import subsets, training_data
    from cytoreg.finetune.state import State
    from cytoreg.registry.builtins import ADAPTERS, TASK_KINDS
    from cytoreg.registry.catalog import Catalog

    if not cfg.ns or any(n < 0 for n in cfg.ns):
        raise CytoregError(f"--n {cfg.ns}: give images per class, e.g. 1,5,10,25,50,100,200 (0 = the base model "
                           "zero-shot)")
    catalog = Catalog.load(cfg.include)
    tspec = catalog.task(cfg.task)
    kind = TASK_KINDS.get(tspec.get("kind"))(tspec)
    mspecs = [catalog.model(m) for m in cfg.models]
    for m in mspecs:
        if m.get("adapter") not in ("openai", "hf"):
            raise IncompatibleError(f"model '{m.name}' uses the '{m.get('adapter')}' adapter; cytoreg finetune "
                                    f"trains openai models (fine-tuning jobs) and hf models (LoRA)")
    for h in cfg.heads:
        if ADAPTERS.get(catalog.model(h).get("adapter")).capability not in ("features", "embedder"):
            raise IncompatibleError(f"--heads {h}: not a feature or embedding model; heads are probes on frozen "
                                    f"features (e.g. dinobloom-s, dinov2-s)")
    data = training_data(tspec, kind)
    ns = sorted(set(n for n in cfg.ns if n > 0))
    subs = subsets(data, ns)
    for s in subs:
        if s.shortfalls:
            log(f"n={s.n}: fewer than {s.n} training images in " +
                ", ".join(f"{lab} ({c})" for lab, c in s.shortfalls.items()) + "; all of them are used")
    state = State(cfg.output / "finetune" / "state.json")
    specs_dir = cfg.output / "specs"
    finetuned: dict[str, dict[int, str]] = {}
    summary: dict[str, Any] = {"task": cfg.task, "models": {}, "check": cfg.check}
    for mspec in mspecs:
        if mspec.get("adapter") == "openai":
            from cytoreg.finetune import openai_route

            planned = openai_route.plan(mspec, data, subs, cfg.output)
            rows, problems = openai_route.check_table(mspec, planned, state)
            for r in rows:
                log(r)
            summary["models"][mspec.name] = {p.subset.n: {"examples": p.report.examples, "images": p.report.images,
                                                        "tokens": p.report.tokens, "bytes": p.report.bytes,
                                                        "cost": p.cost, "file": str(p.path),
                                                        "shortfalls": p.subset.shortfalls} for p in planned}
            if problems:
                raise CytoregError("the fine-tuning files break OpenAI's documented limits:\n" + "\n".join(problems))
            if cfg.check:
                continue
            ids = openai_route.train(mspec, data, planned, state, cfg.yes, cfg.retry_failed, log)
            finetuned[mspec.name] = {
                n: write_spec(specs_dir, mspec, cfg.task, n, {"model": mid},
                              f"{mspec.name} fine-tuned on {cfg.task}, {n} images per class (OpenAI job "
                              f"{next(j['job_id'] for j in state.jobs.values() if j.get('fine_tuned_model') == mid)})")
                for n, mid in ids.items()}
        else:
            from cytoreg.finetune import lora

            if cfg.check:
                for s in subs:
                    log(f"{mspec.name} n={s.n}: {len(s.samples)} examples (LoRA, local; nothing is paid)")
                continue
            paths = lora.train_all(mspec, data, subs, cfg.output, state, cfg.device, log)
            finetuned[mspec.name] = {
                n: write_spec(specs_dir, mspec, cfg.task, n, {"lora": str(path.resolve())},
                              f"{mspec.name} + LoRA adapter trained on {cfg.task}, {n} images per class")
                for n, path in paths.items()}
        if 0 in cfg.ns and mspec.name in finetuned:
            finetuned[mspec.name][0] = mspec.name
    if cfg.check:
        return summary
    summary["finetuned"] = finetuned
    summary["results"] = evaluate(cfg, finetuned, data)
    return summary


def evaluate(cfg: FinetuneConfig, finetuned: dict[str, dict[int, str]], data) -> dict:
    """The fine-tuned models (and heads, and the base at n = 0) on the task's test sets, through the
    engine (cached, resumable), then the combined learning curve added to results.json."""
    from cytoreg.engine.runner import evaluate as run_eval
    from cytoreg.finetune.curves import learning_curves
    from cytoreg.report.results import atomic_write
    from cytoreg.scoring import EvalConfig
    from cytoreg.tasks.samples import sha256

    models = [m for by_n in finetuned.values() for _, m in sorted(by_n.items())] + list(cfg.heads)
    ecfg = EvalConfig(tasks=[cfg.task], models=models, output=cfg.output,
                      include=[*cfg.include, str(cfg.output / "specs")], device=cfg.device,
                      bootstrap=cfg.bootstrap, seed=cfg.seed, progress=cfg.progress)
    results = run_eval(ecfg)
    stats = data.kind.spec.get("statistics") or {}
    resamples = cfg.bootstrap if cfg.bootstrap is not None else int(stats.get("paired_bootstrap", 20000))
    results["learning_curves"] = learning_curves(
        results, cfg.output / "samples.jsonl", cfg.task, finetuned,
        sha256("\n".join(s.id for s in data.train).encode()), data.kind.spec.get("primary_metric") or "f1_weighted",
        resamples, int(stats.get("seed", cfg.seed)), float(stats.get("confidence", 0.95)))
    atomic_write(cfg.output / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
    return results
