"""Heads trained on frozen features: logistic regression (scikit-learn, standardised, seeded; seed
B's probe) and a small MLP in torch (seed A's fine-tune protocol on DinoBloom features), plus the
label-efficiency curves over images per class and training fractions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

DEFAULTS: dict[str, Any] = {"method": "logistic", "C": 1.0, "max_iter": 1000, "seed": 0,
                            "repeats": 5, "curve_metrics": ["f1_weighted", "accuracy"]}
#: seed A's DinoBloom head: Linear(d,128)-ReLU-Dropout(0.1)-Linear, Adam lr 1e-3, batch 32, 100 epochs,
#: best epoch by validation loss. ``hidden: 0`` is a linear head (seed B: Adam lr 1e-4, batch 512, 80 epochs).
MLP_DEFAULTS = {"hidden": 128, "epochs": 100, "lr": 1e-3, "weight_decay": 0.0, "batch_size": 32, "patience": None,
                "dropout": 0.1}


@dataclass
class Fitted:
    labels: list[str]
    proba: np.ndarray           # (n_test, len(labels)); labels absent from training get 0


def fit_predict(cfg: dict, X: np.ndarray, y: Sequence[str], X_test: np.ndarray, labels: list[str],
                X_val: np.ndarray | None = None, y_val: Sequence[str] | None = None, seed: int = 0) -> Fitted:
    cfg = {**DEFAULTS, **cfg}
    # logistic regression standardises by default (scale-free C); the torch heads follow the seeds (raw features)
    cfg.setdefault("standardize", cfg["method"] == "logistic")
    if len(set(y)) < 2:
        # one class seen: every test image gets it (what any head would learn); no fit needed
        proba = np.zeros((len(X_test), len(labels)))
        proba[:, labels.index(y[0])] = 1.0
        return Fitted(labels, proba)
    if cfg["method"] == "mlp":
        return _mlp(cfg, X, y, X_test, labels, X_val, y_val, seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [StandardScaler()] if cfg["standardize"] else []
    clf = make_pipeline(*steps, LogisticRegression(C=float(cfg["C"]), max_iter=int(cfg["max_iter"]),
                                                   random_state=seed))
    clf.fit(X, list(y))
    return Fitted(labels, _expand(clf.predict_proba(X_test), list(clf.classes_), labels))


def _expand(proba: np.ndarray, classes: list[str], labels: list[str]) -> np.ndarray:
    out = np.zeros((proba.shape[0], len(labels)))
    for j, c in enumerate(classes):
        out[:, labels.index(c)] = proba[:, j]
    return out


def _mlp(cfg, X, y, X_test, labels, X_val, y_val, seed) -> Fitted:
    import torch

    # importing vlmeval.vlm calls torch.set_grad_enabled(False) for the whole process; training needs it on
    with torch.enable_grad():
        return _mlp_fit(cfg, X, y, X_test, labels, X_val, y_val, seed)


def _mlp_fit(cfg, X, y, X_test, labels, X_val, y_val, seed) -> Fitted:
    import torch

    m = {**MLP_DEFAULTS, **(cfg.get("mlp") or {})}
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    norm = (lambda A: (A - mu) / sd) if cfg["standardize"] else (lambda A: A)
    idx = {lab: i for i, lab in enumerate(labels)}
    Xt = torch.tensor(norm(X), dtype=torch.float32)
    yt = torch.tensor([idx[v] for v in y])
    if m["hidden"]:
        net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], m["hidden"]), torch.nn.ReLU(),
                                  torch.nn.Dropout(m["dropout"]), torch.nn.Linear(m["hidden"], len(labels)))
    else:
        net = torch.nn.Linear(X.shape[1], len(labels))
    opt = torch.optim.AdamW(net.parameters(), lr=m["lr"], weight_decay=m["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()
    has_val = X_val is not None and y_val is not None and len(y_val) > 0
    if has_val:
        Xv = torch.tensor(norm(X_val), dtype=torch.float32)
        yv = torch.tensor([idx[v] for v in y_val])
    best, best_state, waited = float("inf"), None, 0
    for _ in range(m["epochs"]):
        net.train()
        order = rng.permutation(len(Xt))
        for s in range(0, len(order), m["batch_size"]):
            b = torch.as_tensor(order[s:s + m["batch_size"]])
            opt.zero_grad()
            loss_fn(net(Xt[b]), yt[b]).backward()
            opt.step()
        if has_val:  # early stopping on validation loss, keeping the best weights
            net.eval()
            with torch.no_grad():
                v = float(loss_fn(net(Xv), yv))
            if v < best - 1e-6:
                best, best_state, waited = v, {k: t.clone() for k, t in net.state_dict().items()}, 0
            else:
                waited += 1
                if m["patience"] and waited >= m["patience"]:
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        proba = torch.softmax(net(torch.tensor(norm(X_test), dtype=torch.float32)), dim=1).numpy()
    return Fitted(labels, proba.astype(np.float64))


def subsample_per_class(y: Sequence[str], n: int, seed: int) -> list[int]:
    """n indices per class (all when fewer), seeded; the same seed gives nested sets as n grows."""
    out: list[int] = []
    for lab in sorted(set(y)):
        idx = [i for i, v in enumerate(y) if v == lab]
        perm = np.random.RandomState(seed).permutation(len(idx))
        out += [idx[j] for j in perm[:n]]
    return sorted(out)


def subsample_fraction(y: Sequence[str], fraction: float, seed: int) -> list[int]:
    """A stratified fraction (at least one per class), seeded."""
    out: list[int] = []
    for lab in sorted(set(y)):
        idx = [i for i, v in enumerate(y) if v == lab]
        k = max(1, int(round(fraction * len(idx))))
        perm = np.random.RandomState(seed).permutation(len(idx))
        out += [idx[j] for j in perm[:k]]
    return sorted(out)


def curve(cfg: dict, X: np.ndarray, y: list[str], X_test: np.ndarray, y_test: list[str], labels: list[str],
          points: Sequence[float], pick: Callable[[list[str], float, int], list[int]],
          score: Callable[[list[str], list[str], np.ndarray], dict[str, float]],
          keep: Callable[[float, list[str]], None] | None = None) -> dict[str, list[dict]]:
    """Mean and SD over ``repeats`` seeds of each curve metric at each point; ``keep(x, predictions)``
    receives the first repeat's test predictions (the subsets ``cytoreg finetune`` trains on)."""
    cfg = {**DEFAULTS, **cfg}
    metrics = list(cfg["curve_metrics"])
    out: dict[str, list[dict]] = {m: [] for m in metrics}
    for x in points:
        vals: dict[str, list[float]] = {m: [] for m in metrics}
        sizes = []
        for r in range(int(cfg["repeats"])):
            seed = int(cfg["seed"]) + r
            sel = pick(y, x, seed)
            fitted = fit_predict(cfg, X[sel], [y[i] for i in sel], X_test, labels, seed=seed)
            pred = [labels[j] for j in fitted.proba.argmax(1)]
            if keep is not None and r == 0:
                keep(x, pred)
            for m, v in score(y_test, pred, fitted.proba).items():
                if m in vals:
                    vals[m].append(v)
            sizes.append(len(sel))
        for m in metrics:
            a = np.asarray(vals[m], dtype=float)
            out[m].append({"x": x, "value": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                           "repeats": len(a), "n_train": int(np.mean(sizes))})
    return out
