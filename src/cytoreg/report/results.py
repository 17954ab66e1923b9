"""``results.json`` (versioned, validated against the shipped JSON Schema) and ``samples.jsonl``."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from cytoreg import __version__
from cytoreg.metrics import statistics

SCHEMA_VERSION = "cytoreg/results/v1"
PACKAGES = ("numpy", "scikit-learn", "jsonschema", "pyyaml", "pillow", "torch", "open-clip-torch",
            "transformers", "openai", "google-genai", "datasets")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "cytoreg": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _clean(x: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return _clean(x.item())
    return x


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, text: str) -> None:
    atomic_write_many([(Path(path), text)])


def atomic_write_many(files: list[tuple[Path, str]]) -> None:
    """Write every file to a temporary sibling (flushed to disk), then rename them into place in
    the given order. A failure (disk full, file-size limit, read-only folder) removes the
    temporary files and leaves the previous files untouched; it is raised as a CytoregError
    naming the file. Secrets (see :mod:`cytoreg.secrets`) are masked in every text written: this
    is the sink of results.json, samples.jsonl and the reports, so an API key a server echoed
    never reaches the disk."""
    from cytoreg.errors import CytoregError
    from cytoreg.oserrors import describe_os_error
    from cytoreg.secrets import redact, secret_values

    keys = secret_values()

    temps: list[tuple[str, Path]] = []
    current = files[0][0] if files else Path(".")
    try:
        for path, text in files:
            current = path
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is as readable as any file
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(redact(text, keys))
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in temps:
            current = path
            os.replace(tmp, path)
        temps = []
    except OSError as exc:
        raise CytoregError(f"{describe_os_error(exc, current)}; the previous {current.name} (if any) is unchanged") from exc
    finally:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_results(cfg, prepared: dict, models: dict, evaluations: list) -> dict:
    from cytoreg.scoring import score

    tasks_out = {}
    for name, prep in prepared.items():
        spec = prep.spec
        y = [s.label for s in prep.test]
        data = prep.accounting()  # every row's fate: kept (sampled or not) or dropped by reason; image errors
        tasks_out[name] = {
            "kind": spec.get("kind"), "spec_hash": spec.hash, "origin": spec.origin,
            "labels": prep.labels, "n_test": len(prep.test),
            "class_counts": {lab: y.count(lab) for lab in prep.labels},
            "sample_ids": prep.split.ids(),
            "shortfalls": prep.split.shortfalls,
            "skipped": {"count": data["dropped_total"], "examples": prep.skipped[:20]},
            "data": data,
            "baselines": {
                "random_f1_weighted": statistics.random_f1_weighted(y, prep.labels),
                "uniform_f1_weighted": statistics.uniform_f1_weighted(y, prep.labels),
                "chance_accuracy": statistics.chance_accuracy(y, prep.labels),
            },
            "reference": spec.get("reference"),
            **{k: spec.get(k) for k in ("domain", "citation", "license", "redistributable") if spec.get(k) is not None},
        }
        if spec.get("_group"):
            tasks_out[name]["group"] = spec.get("_group")
    evals_out = []
    for ev in evaluations:
        prep = prepared[ev.task]
        spec, kind = prep.spec, prep.kind
        scored = score(ev, kind.metric_names(), spec.get("statistics") or {}, cfg)
        scored["metrics"].update(kind.extra_metrics(prep, ev.records, ev.setting))
        evals_out.append({
            "task": ev.task, "model": ev.model, "setting": ev.setting, "n": len(ev.predictions.y_true),
            "tries": ev.tries, "errors": ev.n_errors, **coverage_fields(ev, cfg.min_coverage), **scored,
            "requests": {"cached": ev.cached, **ev.stats.to_json()}, "usage": ev.usage,
            "matched_by": _count(r.get("match") for r in ev.records),
            **({"probe": ev.extra} if ev.extra else {}),
        })
    results = _clean({
        "schema": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**run_config(cfg), "device": cfg.device, "include": [str(i) for i in cfg.include],
                   "min_coverage": cfg.min_coverage, "argv": sys.argv[1:], **overrides_record(cfg)},
        "limit": cfg.limit,
        "run_id": run_identity(cfg, prepared, models),
        "plugins": plugins_used(prepared, models),
        "packages": package_versions(),
        "tasks": tasks_out,
        "models": models,
        "evaluations": evals_out,
        "groups": group_summaries(tasks_out, evals_out, evaluations),
        "comparisons": comparisons(cfg, prepared, evaluations),
    })
    out = Path(cfg.output)
    lines = []
    for ev in evaluations:
        where = {smp.id: str(smp.image) for smp in prepared[ev.task].test}  # for reports' thumbnails
        for r in ev.records:
            lines.append(json.dumps(_clean({"task": ev.task, "model": ev.model, "setting": ev.setting, **r,
                                            "image": where.get(r["id"])}), ensure_ascii=False))
    # both files or neither; samples.jsonl is renamed into place first, so a results.json never
    # points at samples it lacks
    atomic_write_many([(out / "samples.jsonl", "\n".join(lines) + ("\n" if lines else "")),
                       (out / "results.json", json.dumps(results, indent=2, ensure_ascii=False))])
    return results


def run_config(cfg) -> dict:
    """What makes two runs the same run: a finished folder is only re-used for an equal one."""
    return {"tasks": list(cfg.tasks), "models": list(cfg.models), "limit": cfg.limit, "seed": cfg.seed,
            "bootstrap": cfg.bootstrap, "judge": cfg.judge, "layers": cfg.layers}


def coverage_fields(ev, min_coverage: float) -> dict:
    """Errors (no reply) against attempts; the status a leaderboard needs to rank or grey a cell."""
    return {"n_attempted": ev.n_attempted, "n_answered": ev.n_attempted - ev.n_errors, "n_errors": ev.n_errors,
            "coverage": ev.coverage, "status": ev.status(min_coverage), "stopped_reason": ev.stopped_reason}


def _common(a, b):
    """Both evaluations' predictions restricted to the samples both answered, in a's order."""
    ids_a = a.ids if a.ids is not None else list(range(len(a.predictions.y_true)))
    ids_b = b.ids if b.ids is not None else list(range(len(b.predictions.y_true)))
    pos_b = {sid: j for j, sid in enumerate(ids_b)}
    ia = [i for i, sid in enumerate(ids_a) if sid in pos_b]
    return a.predictions.subset(ia), b.predictions.subset([pos_b[ids_a[i]] for i in ia])


def overrides_record(cfg) -> dict:
    """What the command line changed (``--settings``, ``-M``, ``-T``, ``--set``, ``--config``) and its hash."""
    from cytoreg.registry.overrides import overrides_hash

    rec = {"settings": getattr(cfg, "settings", None), "overrides": dict(getattr(cfg, "overrides", None) or {}),
           "config_file": getattr(cfg, "config_file", None)}
    return {**rec, "overrides_hash": overrides_hash({"settings": rec["settings"], "overrides": rec["overrides"]})}


def run_identity(cfg, prepared: dict, models: dict) -> str:
    """Hash of what determines the numbers: the resolved specs (overrides included), sample ids,
    settings and options. Two runs with the same identity evaluated the same thing."""
    import hashlib

    from cytoreg.registry.overrides import overrides_hash

    payload = {"tasks": {n: [p.spec.hash, p.split.ids()] for n, p in sorted(prepared.items())},
               "models": {n: m.get("fingerprint") for n, m in sorted(models.items())},
               "limit": cfg.limit, "seed": cfg.seed, "bootstrap": cfg.bootstrap, "judge": cfg.judge,
               "overrides_hash": overrides_hash({"settings": getattr(cfg, "settings", None),
                                                 "overrides": dict(getattr(cfg, "overrides", None) or {})})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plugins_used(prepared: dict, models: dict) -> dict[str, str]:
    """Installed plugin packages (name → version) that supplied a spec, adapter, kind, source or
    metric of this run; each model / task also names its plugin."""
    from cytoreg.registry.builtins import ADAPTERS, METRICS, SOURCES, TASK_KINDS
    from cytoreg.registry.plugins import plugin_info

    used: dict[str, str] = {}

    def note(origin: str | None) -> dict | None:
        info = plugin_info(origin or "")
        if info:
            used[info["name"]] = info["version"]
        return info

    for m in models.values():
        infos = [i for i in (note(m.get("origin")), note(ADAPTERS.entry(m["adapter"]).origin
                                                         if m.get("adapter") in ADAPTERS else None)) if i]
        if infos:
            m["plugin"] = infos[0] if len(infos) == 1 or infos[0] == infos[1] else infos
    for prep in prepared.values():
        spec = prep.spec
        origins = [spec.origin]
        if spec.get("kind") in TASK_KINDS:
            origins.append(TASK_KINDS.entry(spec.get("kind")).origin)
        src = (spec.get("data") or {}).get("source")
        if src in SOURCES:
            origins.append(SOURCES.entry(src).origin)
        for mname in spec.get("metrics") or []:
            if mname in METRICS:
                origins.append(METRICS.entry(mname).origin)
        for o in origins:
            note(o)
    return dict(sorted(used.items()))


def comparisons(cfg, prepared: dict, evaluations: list) -> list[dict]:
    """Every pair of models on the same task × setting: paired bootstrap of the task's primary
    metric (both resampled on the same indices; the spec's ``statistics.paired_bootstrap``
    resamples, or ``--bootstrap``), with the difference, its CI and a two-sided p-value.
    Computed on the samples both answered (``n``); ``complete`` says whether that is every
    attempted sample of both."""
    groups: dict[tuple[str, str], list] = {}
    for ev in evaluations:
        groups.setdefault((ev.task, ev.setting), []).append(ev)
    out = []
    for (task, setting), evs in groups.items():
        if len(evs) < 2:
            continue
        spec = prepared[task].spec
        stats = spec.get("statistics") or {}
        metric = spec.get("primary_metric") or "f1_weighted"
        resamples = cfg.bootstrap if cfg.bootstrap is not None else int(stats.get("paired_bootstrap", 2000))
        if resamples <= 0:
            continue
        for i in range(len(evs)):
            for j in range(i + 1, len(evs)):
                a, b = evs[i], evs[j]
                pa, pb = _common(a, b)
                if not pa.y_true:
                    continue
                try:
                    r = statistics.paired_bootstrap(pa, pb, metric, resamples,
                                                    int(stats.get("seed", cfg.seed)), float(stats.get("confidence", 0.95)))
                except (ValueError, KeyError):
                    continue  # no such metric
                complete = a.n_errors == 0 and b.n_errors == 0 and len(pa.y_true) == len(a.predictions.y_true)
                out.append({"task": task, "setting": setting, "a": a.model, "b": b.model, "metric": metric,
                            "n": len(pa.y_true), "complete": complete, **r})
    return out


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def group_summaries(tasks_out: dict, evals_out: list[dict], evaluations: list) -> dict:
    """Per task group (the attributes of an ``attributes`` task) × model × setting: the mean of
    each member's accuracy / weighted F1 / macro F1, and the seed's pooled weighted F1 (all
    attributes' true/predicted pairs in one matrix, value strings prefixed by attribute)."""
    from cytoreg.metrics.classification import Predictions, f1_weighted

    groups: dict[str, dict] = {}
    for e, ev in zip(evals_out, evaluations):
        g = tasks_out.get(e["task"], {}).get("group")
        if not g:
            continue
        slot = groups.setdefault(g, {}).setdefault(f"{e['model']}|{e['setting']}", {
            "model": e["model"], "setting": e["setting"], "members": [], "y": [], "p": []})
        slot["members"].append(e)
        attr = e["task"].split(".", 1)[1]
        slot["y"] += [f"{attr}={y}" for y in ev.predictions.y_true]
        slot["p"] += [f"{attr}={p}" if p is not None else None for p in ev.predictions.y_pred]
    out: dict[str, list] = {}
    for g, slots in groups.items():
        rows = []
        for slot in slots.values():
            m = slot["members"]
            row = {"model": slot["model"], "setting": slot["setting"], "members": [x["task"] for x in m]}
            for metric in ("accuracy", "f1_weighted", "f1_macro", "auc_macro"):
                vals = [x["metrics"].get(metric) for x in m if x["metrics"].get(metric) is not None]
                row[f"{metric}_mean"] = sum(vals) / len(vals) if vals else None
            labels = sorted(set(slot["y"]))
            row["f1_weighted_pooled"] = f1_weighted(Predictions(slot["y"], slot["p"], labels))
            rows.append(row)
        out[g] = rows
    return out


def results_schema() -> dict:
    return json.loads(resources.files("cytoreg.report").joinpath("results.schema.json").read_text())


def validate_results(results: dict) -> list[str]:
    from jsonschema import Draft202012Validator

    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft202012Validator(results_schema()).iter_errors(results)]
