"""Preflight: everything a run needs, checked before anything is loaded or sent.

``cytoreg eval --check`` prints the report; ``evaluate`` runs the same checks first and stops
with all problems at once, so no request is paid for a run that would fail later (a missing
data root, weights, an API key, an empty few-shot pool, an unusable judge). The report also
estimates the requests (and tokens / cost where the model spec gives ``price``).
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytoreg.errors import CytoregError, IncompatibleError, SpecError
from cytoreg.registry.builtins import ADAPTERS, TASK_KINDS

log = logging.getLogger("cytoreg.preflight")

#: tokens one image costs in a prompt (providers' published figures; an estimate)
IMAGE_TOKENS = {"openai:low": 85, "openai:high": 765, "openai:auto": 765, "gemini": 258}


class PreflightError(SpecError, IncompatibleError):
    """Every problem preflight found; the CLI prints one per line."""


@dataclass
class Problem:
    category: str  # "plan" | "data" | "package" | "weights" | "key" | "few-shot" | "judge" | "settings"
    message: str
    exc: Exception | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"[{self.category}] {self.message}"


@dataclass
class Work:
    task: str
    model: str
    setting: str
    capability: str
    samples: int
    requests: int = 0          # API / generator requests (tries included)
    cached: int = 0            # responses of this model already in the cache (all tasks)
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    encoded: int = 0           # images a local encoder reads for this setting (a probe: train and val too)


@dataclass
class Report:
    pairs: list[tuple[Any, Any, Any, type]] = field(default_factory=list)  # (task view, kind, model spec, adapter)
    settings: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (view, model) -> settings
    prepared: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    deferred: list[Problem] = field(default_factory=list)  # model problems a cached rerun may not hit
    notes: list[str] = field(default_factory=list)
    #: shown during a run too: the data differs from what the spec says (fewer images than sampled,
    #: a split size other than the published one)
    warnings: list[str] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, category: str, message: str, exc: Exception | None = None) -> None:
        if all(p.message != message for p in self.problems):
            self.problems.append(Problem(category, message, exc))

    def raise_problems(self) -> None:
        """One problem: its own error (type and message, as without preflight); several: all at once."""
        if not self.problems:
            return
        if len(self.problems) == 1 and self.problems[0].exc is not None:
            raise self.problems[0].exc
        raise PreflightError([str(p) for p in self.problems] +
                             ["nothing was loaded or sent; `cytoreg eval --check ...` shows the full plan"])

    def totals(self) -> dict[str, Any]:
        reqs = sum(w.requests for w in self.work)
        tin = [w.tokens_in for w in self.work if w.tokens_in is not None]
        tout = [w.tokens_out for w in self.work if w.tokens_out is not None]
        cost = [w.cost_usd for w in self.work if w.cost_usd is not None]
        return {"requests": reqs, "tokens_in": sum(tin) if tin else None, "tokens_out_max": sum(tout) if tout else None,
                "cost_usd_max": round(sum(cost), 4) if cost else None,
                "images": self.encoded_images()}

    def encoded_images(self) -> int:
        """Images local encoders read: per task × model the most any setting reads (the settings share
        the cached embeddings of the test images)."""
        most: dict[tuple[str, str], int] = {}
        for w in self.work:
            if w.capability in ("embedder", "features"):
                most[(w.task, w.model)] = max(most.get((w.task, w.model), 0), w.encoded)
        return sum(most.values())

    def to_json(self) -> dict:
        return {"ok": self.ok, "problems": [{"category": p.category, "message": p.message} for p in self.problems],
                "notes": self.notes, "warnings": self.warnings, "overrides": self.overridden,
                "work": [w.__dict__ for w in self.work], "totals": self.totals()}


def run_preflight(cfg, catalog, *, explicit: bool = False) -> Report:
    """Apply overrides, resolve every task × model × setting, read the data, check models.

    ``explicit`` (``--check``): report every model problem. Before a run, a model whose responses
    are all in the cache already is not held back by missing weights or keys (a cached rerun
    never loads it); its problems are only logged."""
    rep = resolve_run(cfg, catalog)
    _fewshot(rep)
    _models(cfg, catalog, rep, explicit)
    _estimate(cfg, rep)
    if not explicit:  # --check prints them; a run logs them (-v shows them)
        for note in rep.notes:
            log.info(note)
        for warning in rep.warnings:
            log.warning(warning)
        t = rep.totals()
        log.info("plan: %d evaluation(s), %d request(s) to generative models before the cache%s",
                 len(rep.work), t["requests"], f", ≤ ${t['cost_usd_max']}" if t["cost_usd_max"] is not None else "")
    return rep


def resolve_run(cfg, catalog) -> Report:
    """The run's plan as the run will see it: overrides applied, every task × model × setting
    resolved and checked, each task's data read and sampled (problems collected, nothing raised).
    ``cytoreg cache stats --tasks … --models …`` plans through this too, so it counts the same keys."""
    from cytoreg.registry.overrides import Overrides, apply
    from cytoreg.tasks.folder_task import looks_like_data, task_or_folder

    rep = Report()
    for tname in cfg.tasks:  # ./my_cells or a CSV: registered under that name, so -T / --set reach it
        if tname not in catalog.tasks and looks_like_data(tname):
            try:
                spec = task_or_folder(catalog, tname)
                catalog.tasks.add(tname, spec, origin=spec.origin, kind=spec.get("kind", ""))
            except CytoregError:
                pass  # _resolve reports it
    ov = Overrides.from_config(cfg.overrides)
    rep.overridden = apply(catalog, cfg.tasks, cfg.models, ov, [cfg.judge] if cfg.judge else [])
    _resolve(cfg, catalog, rep)
    _prepare(cfg, rep)
    return rep


def selected_settings(kind, capability: str, wanted: list[str] | None) -> list[str]:
    offered = kind.settings_for(capability)
    return offered if wanted is None else [s for s in offered if s in wanted]


def _resolve(cfg, catalog, rep: Report) -> None:
    from cytoreg.tasks.folder_task import task_or_folder

    offered_any: set[str] = set()
    for tname in cfg.tasks:
        try:
            top = task_or_folder(catalog, tname)  # a name, or ./my_cells (class folders) / a CSV
            views = TASK_KINDS.get(top.get("kind"))(top).expand()
        except CytoregError as exc:
            rep.add("plan", str(exc), exc)
            continue
        for mname in cfg.models:
            try:
                mspec = catalog.model(mname)
                adapter_cls = ADAPTERS.get(mspec.get("adapter"))
                for _, kind in views:
                    kind.check_model(mname, adapter_cls.capability)
            except CytoregError as exc:
                rep.add("plan", str(exc), exc)
                continue
            for tspec, kind in views:
                offered = kind.settings_for(adapter_cls.capability)
                offered_any.update(offered)
                chosen = selected_settings(kind, adapter_cls.capability, cfg.settings)
                if not chosen:
                    rep.notes.append(f"{tspec.name} × {mname}: none of --settings {','.join(cfg.settings or [])} "
                                     f"applies (offered: {', '.join(offered)}); skipped")
                    continue
                rep.pairs.append((tspec, kind, mspec, adapter_cls))
                rep.settings[(tspec.name, mname)] = chosen
    for s in cfg.settings or []:
        if offered_any and s not in offered_any:
            msg = f"--settings {s}: no task × model of this run offers it (offered: {', '.join(sorted(offered_any))})"
            rep.add("settings", msg, CytoregError(msg))
    if cfg.judge:
        try:
            jspec = catalog.model(cfg.judge)
            if ADAPTERS.get(jspec.get("adapter")).capability != "generator":
                msg = f"judge model '{cfg.judge}' is not a generative model; pick one that answers in text (e.g. gpt4o)"
                rep.add("judge", msg, IncompatibleError(msg))
        except CytoregError as exc:
            rep.add("judge", f"--judge: {exc}", IncompatibleError(f"--judge: {exc}"))


def _prepare(cfg, rep: Report) -> None:
    seen: set[str] = set()
    for tspec, kind, _, _ in rep.pairs:
        if tspec.name in seen:
            continue
        seen.add(tspec.name)
        try:
            prep = kind.prepare(cfg.limit)
        except CytoregError as exc:
            rep.add("data", str(exc), exc)
            continue
        except OSError as exc:
            rep.add("data", f"task '{tspec.name}': cannot read its data: {exc}")
            continue
        rep.prepared[tspec.name] = prep
        by_split: dict[str, list[dict]] = {}
        for sf in prep.split.shortfalls:
            by_split.setdefault(sf["split"], []).append(sf)
        for split, short in by_split.items():
            shown = ", ".join(f"'{s['label']}' {s['available']}/{s['requested']}" for s in short[:3])
            rep.warnings.append(f"{tspec.name}: {len(short)} label(s) have fewer {split} images than requested "
                                f"({shown}{', ...' if len(short) > 3 else ''}; all in results.json)")
        rep.warnings += _split_size_warnings(tspec, prep)
        if prep.skipped:
            rep.notes.append(f"{tspec.name}: {len(prep.skipped)} file(s) skipped (listed in results.json)")


def _split_size_warnings(tspec, prep) -> list[str]:
    """The split a one-file task reads (``data.split``, e.g. MedMNIST's test) against
    ``reference.published_split_sizes``: another size means another file than the published one."""
    data = tspec.get("data") or {}
    sizes = (tspec.get("reference") or {}).get("published_split_sizes") or {}
    split = data.get("split", "test") if data.get("source") == "npz" else data.get("split")
    if not split or split not in sizes or prep.ledger is None:
        return []
    seen = prep.ledger.seen
    if seen == sizes[split]:
        return []
    return [f"{tspec.name}: the data holds {seen} {split} rows, the published {split} split has {sizes[split]} "
            f"(reference.published_split_sizes in {tspec.path}): not the published file? `cytoreg data verify "
            f"{tspec.name}` compares it in full"]


def _fewshot(rep: Report) -> None:
    for tspec, kind, mspec, _ in rep.pairs:
        if "few_shot" not in rep.settings.get((tspec.name, mspec.name), []) or tspec.name not in rep.prepared:
            continue
        prep = rep.prepared[tspec.name]
        shots = kind.fewshot_examples(prep)
        if not shots:
            msg = (f"task '{tspec.name}': few-shot needs examples, but the few-shot pool is empty "
                   "(every image went to the test set); raise sampling.fewshot_per_class or lower "
                   "sampling.test_per_class (e.g. -T sampling.test_per_class=N), or run --settings zero_shot")
            rep.add("few-shot", msg, CytoregError(msg))
        elif hasattr(prep, "labels") and len(shots) < len(prep.labels) and kind.__class__.__name__ != "MCQKind":
            missing = [lab for lab in prep.labels if lab not in {s.label for s in shots}]
            rep.notes.append(f"{tspec.name}: few-shot pool lacks {len(missing)} label(s) ({', '.join(missing[:5])}"
                             f"{'...' if len(missing) > 5 else ''}); those get no example")


def _cached_rows(cache_path: Path, fingerprint: str) -> int:
    if not cache_path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{cache_path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM responses WHERE model_fingerprint = ?",
                                    (fingerprint,)).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _models(cfg, catalog, rep: Report, explicit: bool) -> None:
    cache_path = Path(cfg.cache or Path(cfg.output) / "cache.sqlite")
    needed: dict[str, int] = {}
    for tspec, kind, mspec, adapter_cls in rep.pairs:
        prep = rep.prepared.get(tspec.name)
        n = len(prep.test) if prep is not None else 0
        tries = int((mspec.get("generation") or {}).get("tries", 1))
        needed[mspec.name] = needed.get(mspec.name, 0) + n * tries * len(rep.settings[(tspec.name, mspec.name)])
    specs = {p[2].name: (p[2], p[3]) for p in rep.pairs}
    if cfg.judge:
        try:
            js = catalog.model(cfg.judge)
            specs.setdefault(cfg.judge, (js, ADAPTERS.get(js.get("adapter"))))
        except CytoregError:
            pass
    for name, (mspec, adapter_cls) in specs.items():
        if cfg.shard is not None and getattr(cfg, "skip_api", False) and getattr(adapter_cls, "mode", "") == "concurrent":
            continue  # a torchrun rank leaves API models to rank 0's merge, which checks them
        from cytoreg.models.check import check as model_check

        adapter = None
        try:
            adapter = adapter_cls(mspec, device=cfg.device)
            result = model_check(mspec, adapter, deep=False)  # the answer `cytoreg models check` gives too
            found = result.problems
            rep.notes.extend(w for w in result.warnings if w not in rep.notes)
        except CytoregError as exc:
            found = [("weights", str(exc))]
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor must not hide the others
            found = [("weights", f"model '{name}': its adapter failed to start: {type(exc).__name__}: {exc}")]
        if not found:
            continue
        fp = ""
        try:
            fp = adapter.fingerprint() if adapter is not None else ""
        except Exception:  # noqa: BLE001
            pass
        have = _cached_rows(cache_path, fp) if fp else 0
        if name in needed and needed[name] and have >= needed[name] and not explicit:
            rep.deferred += [Problem(c, m) for c, m in found]  # a cached rerun needs neither
            for _, m in found:
                log.warning("%s (its responses are cached; not needed unless something is missing)", m)
            continue
        from cytoreg.errors import ModelLoadError

        for category, m in found:
            m = m + (" (--judge)" if name == cfg.judge and name not in needed else "")
            rep.add(category, m, ModelLoadError(m))


def _estimate(cfg, rep: Report) -> None:
    for tspec, kind, mspec, adapter_cls in rep.pairs:
        prep = rep.prepared.get(tspec.name)
        n = len(prep.test) if prep is not None else 0
        cap = adapter_cls.capability
        for setting in rep.settings[(tspec.name, mspec.name)]:
            w = Work(tspec.name, mspec.name, setting, cap, n)
            if cap in ("embedder", "features"):
                w.encoded = n + (len(prep.split.train) + len(prep.split.val) if prep is not None and setting == "probe"
                                 else 0)
            if cap == "generator":
                gen = mspec.get("generation") or {}
                tries = int(gen.get("tries", 1))
                w.requests = n * tries
                if prep is not None and n:
                    _tokens(w, kind, prep, mspec, setting, tries)
            rep.work.append(w)


def _tokens(w: Work, kind, prep, mspec, setting: str, tries: int) -> None:
    """Prompt tokens ≈ characters / 4 + a per-image figure; completion tokens ≤ max_tokens."""
    try:
        fewshot = kind.fewshot_examples(prep) if setting == "few_shot" else []
        req = kind.chat_request(prep.test[0], setting, fewshot, dict(mspec.get("generation") or {}), 0)
    except Exception:  # noqa: BLE001 - an estimate only
        return
    from cytoreg.models.base import ImagePart, TextPart

    chars = sum(len(p.text) for m in req.messages for p in m.parts if isinstance(p, TextPart))
    images = sum(1 for m in req.messages for p in m.parts if isinstance(p, ImagePart))
    adapter = mspec.get("adapter")
    per_image = (IMAGE_TOKENS.get(f"openai:{(mspec.get('params') or {}).get('image_detail', 'auto')}")
                 if adapter == "openai" else IMAGE_TOKENS.get(adapter, 0)) or 0
    w.tokens_in = (chars // 4 + images * per_image) * w.requests
    max_tokens = (mspec.get("generation") or {}).get("max_tokens")
    w.tokens_out = int(max_tokens) * w.requests if max_tokens else None
    price = mspec.get("price") or {}
    if price and w.tokens_in is not None:
        cost = w.tokens_in / 1e6 * float(price.get("input_per_mtok", 0))
        if w.tokens_out is not None:
            cost += w.tokens_out / 1e6 * float(price.get("output_per_mtok", 0))
        w.cost_usd = round(cost, 4)


def render(rep: Report, console) -> None:
    """The report as a rich table plus the problems, every string escaped."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    if rep.overridden:
        console.print(f"overrides applied to: {escape(', '.join(rep.overridden))}")
    table = Table(title="plan", title_justify="left")
    for col in ("task", "model", "setting", "samples", "requests", "tokens in (est.)", "tokens out (max)",
                "cost USD (max)"):
        table.add_column(col, overflow="fold")
    for w in rep.work:
        table.add_row(*(escape(str(x)) for x in (w.task, w.model, w.setting, w.samples, w.requests if w.capability ==
                                                    "generator" else f"0 ({w.capability})",
                                                    w.tokens_in if w.tokens_in is not None else "-",
                                                    w.tokens_out if w.tokens_out is not None else "-",
                                                    w.cost_usd if w.cost_usd is not None else "-")))
    if rep.work:
        console.print(table)
    t = rep.totals()
    console.print(f"total: {t['requests']} request(s) to generative models before the cache"
                  + (f", ~{t['tokens_in']} prompt tokens" if t["tokens_in"] else "")
                  + (f", ≤ {t['tokens_out_max']} completion tokens" if t["tokens_out_max"] else "")
                  + (f", ≤ ${t['cost_usd_max']}" if t["cost_usd_max"] is not None else "")
                  + (f"; {t['images']} image(s) for local encoders" if t["images"] else ""))
    for note in rep.notes:
        console.print(Text.assemble(("note", "yellow"), " ", note))
    for warning in rep.warnings:
        console.print(Text.assemble(("warning", "bold yellow"), " ", warning))
    for p in rep.problems:
        console.print(f"[red]problem[/red] {escape(f'[{p.category}]')} {escape(p.message)}", markup=True)
    if rep.ok:
        console.print(Text.assemble(("preflight ok", "green"), ": nothing missing"))
    else:
        console.print(Text.assemble((f"{len(rep.problems)} problem(s)", "red"), "; nothing was loaded or sent"))
