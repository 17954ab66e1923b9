"""Replies produced by another harness, scored by cytoreg: matched to cytoreg's sample ids of the
same task, read by the task's own answer extraction, and written as an ordinary run folder
(results.json + samples.jsonl) that ``cytoreg leaderboard`` merges. A sample the harness gave no
reply for is an error record (the evaluation's coverage says so); a reply for a sample the task
does not have is refused, since it comes from other samples."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from cytoreg.errors import CytoregError

HARNESSES = ("vlmeval", "lmms-eval", "inspect")


def reader(harness: str) -> Callable[[Path], dict[str, str]]:
    if harness == "vlmeval":
        from cytoreg.interop.vlmeval import read_predictions

        return read_predictions
    if harness == "lmms-eval":
        from cytoreg.interop.lmms import read_samples

        return read_samples
    if harness == "inspect":
        from cytoreg.interop.inspect_io import read_log

        return read_log
    raise CytoregError(f"unknown harness '{harness}'; choose from {', '.join(HARNESSES)}")


def read_replies(harness: str, files: list[Path]) -> dict[str, str]:
    read = reader(harness)
    replies: dict[str, str] = {}
    for f in files:
        f = Path(f)
        if not f.exists():
            raise CytoregError(f"{f}: no such file")
        for sid, text in read(f).items():
            if sid in replies and replies[sid] != text:
                raise CytoregError(f"sample {sid} has two different replies in the given {harness} files; pass the "
                                   "files of one run")
            replies[sid] = text
    return replies


def rescore(harness: str, replies: dict[str, str], task: str, model: str, setting: str = "zero_shot",
            include: list[str] | None = None, limit: int | None = None):
    """(prepared task, Evaluation) for the replies, scored exactly as a cytoreg run would score them."""
    from cytoreg.engine.execute import CallStats
    from cytoreg.interop.requests import resolve_view
    from cytoreg.metrics.classification import Predictions
    from cytoreg.scoring import Evaluation

    kind = resolve_view(task, include)
    prep = kind.prepare(limit)
    ids = {s.id for s in prep.test}
    foreign = [sid for sid in replies if sid not in ids]
    if foreign:
        raise CytoregError(f"{len(foreign)} of the {harness} replies are for samples task '{task}' does not have "
                           f"(e.g. {', '.join(foreign[:3])}): they come from another split, spec or --limit; export "
                           f"the task again with `cytoreg export {task}` and rerun the harness on it")
    records = []
    for s in prep.test:
        text = replies.get(s.id)
        if text is None:
            records.append({"id": s.id, "label": s.label, "try": 0, "response": None, "parsed": None, "match": "error",
                            "match_detail": "", "correct": False,
                            "error": f"no reply for this sample in the {harness} results", "attempts": 0})
            continue
        ex = kind.extract(s, text)
        records.append({"id": s.id, "label": s.label, "try": 0, "response": text, "parsed": ex.label,
                        "match": ex.step, "match_detail": ex.detail, "correct": ex.label == s.label, "error": None,
                        "attempts": 1})
    preds = Predictions([s.label for s in prep.test], [r["parsed"] for r in records], prep.labels)
    return prep, Evaluation(prep.spec.name, model, setting, records, preds, CallStats(), 0, {}, 1)


def import_run(harness: str, files: list[Path], task: str, model: str, output: Path, setting: str = "zero_shot",
               include: list[str] | None = None, limit: int | None = None, bootstrap: int | None = None,
               seed: int = 0) -> dict:
    from cytoreg.report.results import write_results
    from cytoreg.scoring import EvalConfig

    replies = read_replies(harness, files)
    prep, ev = rescore(harness, replies, task, model, setting, include, limit)
    output.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).read_bytes())
    models = {model: {"adapter": f"import:{harness}", "capability": "generator", "spec_hash": digest.hexdigest()[:16],
                      "origin": f"{harness} results ({', '.join(Path(f).name for f in files)})",
                      "fingerprint": digest.hexdigest()[:20], "meta": {"harness": harness}}}
    cfg = EvalConfig(tasks=[task], models=[model], output=output, include=list(include or []), limit=limit,
                     bootstrap=bootstrap, seed=seed, progress=False)
    return write_results(cfg, {prep.spec.name: prep}, models, [ev])


def score_predictions(harness: str, files: list, export_dir: str | Path) -> dict:
    """Metrics of a harness's prediction files for the task exported in ``export_dir``, read with
    the task's extraction (the hook the exported VLMEvalKit dataset's ``evaluate`` calls; the
    dataset itself need not be present)."""
    from cytoreg.interop.requests import ExportReader
    from cytoreg.metrics.classification import Predictions, compute

    exp = ExportReader.open(export_dir)
    replies = read_replies(harness, [Path(f) for f in files])
    ids = exp.manifest["sample_ids"]
    preds = [exp.extract(sid, replies[sid])[0] if sid in replies else None for sid in ids]
    p = Predictions([exp.samples[sid].label for sid in ids], preds, exp.manifest["labels"])
    names = [m for m in exp.kind.metric_names() if not m.startswith(("auc", "ece"))]
    return {"n": len(ids), "replies": sum(sid in replies for sid in ids), **compute(names, p)}
