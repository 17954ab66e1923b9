"""Running a ``probe`` task for one model: extract (or read from the feature store) the features
of every train / val / test image, then per feature key fit the head on train (early stopping on
val for the MLP), predict the test images, and draw the label-efficiency curves."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from cytoreg.engine.breaker import Breaker, breaker_for, load_failure, load_or_stop
from cytoreg.engine.execute import CallStats
from cytoreg.errors import CytoregError, ModelLoadError
from cytoreg.metrics.classification import Predictions, compute
from cytoreg.models.base import Embedder, EmbedderFeatures, FeatureExtractor, ModelAdapter
from cytoreg.tasks import probe_heads
from cytoreg.tasks.samples import sha256


def _sha_or_marker(sample, i: int) -> str:
    """The image's SHA-256; for a missing / unreadable file a marker the feature store never holds,
    so the DataLoader tries it and records that sample's error (naming the file)."""
    try:
        return sha256(sample.image.read_bytes())
    except CytoregError:
        return f"unreadable-{i}"


def run_probe(cfg, prep, adapter: ModelAdapter, cache, bar: Callable[[int], Callable[[int], None]],
              stats: CallStats, fill_only: bool = False) -> list:
    """Evaluations per feature key; with ``fill_only`` (a shard) only the feature store is filled."""
    from cytoreg.engine.features import FeatureStore, extract_features
    from cytoreg.scoring import Evaluation

    fx: FeatureExtractor = EmbedderFeatures(adapter) if isinstance(adapter, Embedder) else adapter
    split = prep.split
    groups = {"train": split.train, "val": split.val, "test": prep.test}
    order, where = [], {}
    for name, samples in groups.items():
        for s in samples:
            if s.id not in where:
                where[s.id] = len(order)
                order.append(s)
    shas = [_sha_or_marker(s, i) for i, s in enumerate(order)]
    store = FeatureStore(Path(cache.path).parent / "features", fx.fingerprint(), fx.feature_keys())
    breaker = breaker_for(adapter)
    if store.missing(shas) and not load_or_stop(fx, breaker):
        # a model that cannot load is stopped: no head is fitted on part of the training set
        bar(len(order))(len(order))
        return [] if fill_only else _stopped(prep, adapter, fx.feature_keys(), breaker, stats)
    import time

    t0 = time.perf_counter()
    try:
        errors = extract_features(fx, [s.image for s in order], shas, store, bar(len(order)), stats)
    except ModelLoadError as exc:  # a part the adapter loads lazily cannot load: stopped as above
        breaker.trip(load_failure(adapter.name, exc))
        return [] if fill_only else _stopped(prep, adapter, fx.feature_keys(), breaker, stats)
    finally:
        stats.wall_s += time.perf_counter() - t0
    if fill_only:
        return []
    ok = {s.id for i, s in enumerate(order) if i not in errors}
    train = [s for s in split.train if s.id in ok]
    val = [s for s in split.val if s.id in ok]
    dropped = [{"id": order[i].id, "error": e} for i, e in errors.items() if order[i] not in prep.test]
    if not train:
        raise CytoregError(f"task '{prep.spec.name}': no training image could be read; first error: "
                           f"{next(iter(errors.values()), 'none')}")
    keys = fx.feature_keys()
    pcfg = dict(prep.kind.probe)
    seed = int(pcfg.get("seed", 0))
    out = []
    for key in keys:
        def feats(samples):
            return store.matrix(key, [shas[where[s.id]] for s in samples]) if samples else None

        X, y = feats(train), [s.label for s in train]
        test_ok = [s for s in prep.test if s.id in ok]
        fitted = probe_heads.fit_predict(pcfg, X, y, feats(test_ok), prep.labels, feats(val),
                                         [s.label for s in val], seed=seed) if test_ok else None
        proba_by_id = {s.id: fitted.proba[j] for j, s in enumerate(test_ok)} if fitted else {}
        records, answered, rows = [], [], []
        for s in prep.test:
            if s.id in proba_by_id:
                p = proba_by_id[s.id]
                parsed = prep.labels[int(p.argmax())]
                resp, err = {lab: round(float(v), 6) for lab, v in zip(prep.labels, p)}, None
                answered.append((s, parsed))
                rows.append(p)
            else:  # an image that could not be read is left out of the scores, never given a made-up row
                parsed, resp, err = None, None, errors[where[s.id]]
            records.append({"id": s.id, "label": s.label, "try": 0, "response": resp, "parsed": parsed,
                            "match": "probe" if parsed else "error",
                            "correct": parsed == s.label if parsed else None, "error": err})
        scores = np.stack(rows) if rows else np.zeros((0, len(prep.labels)))
        ev = Evaluation(prep.spec.name, adapter.name, "probe" if len(keys) == 1 else f"probe:{key}", records,
                        Predictions([s.label for s, _ in answered], [p for _, p in answered], prep.labels, scores),
                        stats, 0, {}, ids=[s.id for s, _ in answered])
        extra = {"n_train": len(train), "n_val": len(val), "train_dropped": dropped, "feature_key": key,
                 "feature_dim": int(X.shape[1]), "head": pcfg.get("method", "logistic")}
        if test_ok and (pcfg.get("n_per_class") or pcfg.get("fractions")):
            Xt, yt = feats(test_ok), [s.label for s in test_ok]

            def score(y_true, y_pred, proba):
                return {m: v for m, v in compute(list(pcfg.get("curve_metrics", probe_heads.DEFAULTS["curve_metrics"])),
                                                 Predictions(y_true, y_pred, prep.labels, proba)).items()}

            if pcfg.get("n_per_class"):
                most = max(y.count(lab) for lab in set(y))
                points = [n for n in pcfg["n_per_class"] if n <= most]
                extra["curve_points_skipped"] = [n for n in pcfg["n_per_class"] if n > most]
                kept: dict[str, list[str]] = {}  # first repeat's predictions per n: paired with fine-tuned VLMs
                extra["curves"] = probe_heads.curve(pcfg, X, y, Xt, yt, prep.labels, points,
                                                    lambda yy, n, sd: probe_heads.subsample_per_class(yy, int(n), sd), score,
                                                    keep=lambda x, pred: kept.__setitem__(str(x), pred))
                extra["curve_predictions"] = {"ids": [s.id for s in test_ok], "seed": seed,
                                              "train_ids_sha256": sha256("\n".join(s.id for s in train).encode()),
                                              "pred": kept}
            if pcfg.get("fractions"):
                extra["curves_fraction"] = probe_heads.curve(pcfg, X, y, Xt, yt, prep.labels, pcfg["fractions"],
                                                             probe_heads.subsample_fraction, score)
        ev.extra = extra
        out.append(ev)
    return out


def _stopped(prep, adapter: ModelAdapter, keys: list[str], breaker: Breaker, stats: CallStats) -> list:
    """One unscored evaluation per feature key of a model stopped before its features were all
    extracted: every test sample a "not sent" error record, as for a stopped API model."""
    from cytoreg.scoring import Evaluation

    out = []
    for key in keys:
        records = [{"id": s.id, "label": s.label, "try": 0, "response": None, "parsed": None, "match": "error",
                    "correct": None, "error": breaker.not_sent()} for s in prep.test]
        ev = Evaluation(prep.spec.name, adapter.name, "probe" if len(keys) == 1 else f"probe:{key}", records,
                        Predictions([], [], prep.labels, np.zeros((0, len(prep.labels)))), stats, 0, {}, ids=[],
                        stopped_reason=breaker.reason)
        ev.extra = {"feature_key": key, "head": dict(prep.kind.probe).get("method", "logistic")}
        out.append(ev)
    return out
