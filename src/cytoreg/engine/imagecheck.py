"""The run's image pre-check: every test image of a task is decoded once (:mod:`cytoreg.images`)
before any model sees it. A sample whose image is missing, unreadable or does not decode is an
error record naming the file and the decoder's message, for every model (baselines included,
so all models are scored on the same samples); no request is sent for it and the run goes on.
For API adapters each record says what was sent (``image_sent``: ``original`` or ``png: why``)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from cytoreg.engine.execute import CallStats
from cytoreg.metrics.classification import Predictions
from cytoreg.scoring import Evaluation


def run_checked(prep: Any, adapter: Any, setting: str, run: Callable[[Any], Evaluation]) -> Evaluation:
    """``run`` on the samples whose image decodes; error records for the others, in test order."""
    infos = prep.image_infos()
    bad = {sid: info.error for sid, info in infos.items() if info.error}
    ev = run(prep.without(bad)) if len(bad) < len(prep.test) else None
    if bad:
        ev = _with_errors(prep, ev, bad, adapter, setting)
    sendable = getattr(adapter, "sendable_mimes", None)
    if sendable:
        for r in ev.records:
            info = infos.get(r["id"])
            if info is not None and not info.error:
                r["image_sent"] = info.api_form(sendable)
    return ev


def _with_errors(prep: Any, ev: Evaluation | None, bad: dict[str, str], adapter: Any, setting: str) -> Evaluation:
    tries = ev.tries if ev is not None else int(((adapter.spec.get("generation") or {}) if
                                                 getattr(adapter, "capability", "") == "generator" else {}).get("tries", 1))
    good_records: dict[str, list[dict]] = {}
    for r in (ev.records if ev is not None else []):
        good_records.setdefault(r["id"], []).append(r)
    p = ev.predictions if ev is not None else None
    pos = {sid: j for j, sid in enumerate(s.id for s in prep.test if s.id not in bad)}
    n_labels = len(prep.labels)
    with_scores = p is not None and p.scores is not None
    records, y_pred, rows = [], [], []
    for s in prep.test:
        if s.id in bad:
            records += [{"id": s.id, "label": s.label, "try": t, "response": None, "parsed": None, "match": "error",
                         "correct": False, "error": bad[s.id]} for t in range(tries)]
            y_pred.append(None)
            rows.append(np.full(n_labels, 1.0 / n_labels))
        else:
            j = pos[s.id]
            records += good_records.get(s.id, [])
            y_pred.append(p.y_pred[j])
            if with_scores:
                rows.append(np.asarray(p.scores[j], dtype=np.float64))
    preds = Predictions([s.label for s in prep.test], y_pred, prep.labels, np.stack(rows) if with_scores else None)
    if ev is None:
        return Evaluation(prep.spec.name, adapter.name, setting, records, preds, CallStats(), 0, {}, tries)
    return Evaluation(ev.task, ev.model, ev.setting, records, preds, ev.stats, ev.cached, ev.usage, ev.tries, ev.extra)
