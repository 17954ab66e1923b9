"""Metric values equal scikit-learn's; statistics behave as documented."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cytoreg.metrics import fast, statistics
from cytoreg.metrics.classification import INVALID, Predictions, compute

LABELS = ["a", "b", "c", "d"]


@st.composite
def predictions(draw, invalid=True):
    n = draw(st.integers(min_value=2, max_value=60))
    y_true = draw(st.lists(st.sampled_from(LABELS), min_size=n, max_size=n))
    pool = LABELS + ([None] if invalid else [])
    y_pred = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    return Predictions(y_true, y_pred, LABELS)


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_scalar_metrics_equal_sklearn(p):
    pred = [INVALID if x is None else x for x in p.y_pred]
    present = [lab for lab in LABELS if lab in p.y_true]
    m = compute(["accuracy", "f1_weighted", "f1_macro", "invalid_rate", "per_class"], p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(p.y_true, pred))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(p.y_true, pred, labels=LABELS, average="weighted", zero_division=0))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(p.y_true, pred, labels=present, average="macro", zero_division=0))
    assert m["invalid_rate"] == pytest.approx(np.mean([x is None for x in p.y_pred]))
    f1s = skm.f1_score(p.y_true, pred, labels=LABELS, average=None, zero_division=0)
    for i, lab in enumerate(LABELS):
        assert m["per_class"][lab]["f1"] == pytest.approx(f1s[i])


@settings(max_examples=150, deadline=None)
@given(predictions(invalid=False))
def test_balanced_accuracy_equals_sklearn_without_invalid(p):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.recall_score(p.y_true, p.y_pred, labels=[l for l in LABELS if l in p.y_true],
                                    average="macro", zero_division=0)
    assert compute(["balanced_accuracy"], p)["balanced_accuracy"] == pytest.approx(expected)


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_fast_confusion_path_equals_slow_path(p):
    t, q, k = fast.encode(p)
    cm = fast.confusion(t, q, k)
    slow = compute(["accuracy", "f1_weighted", "f1_macro", "balanced_accuracy"], p)
    for name in slow:
        assert fast.FAST[name](cm) == pytest.approx(slow[name], nan_ok=True)


def test_auc_and_confusion_matrix_equal_sklearn():
    rng = np.random.default_rng(3)
    y = list(rng.choice(LABELS, 200))
    scores = rng.dirichlet(np.ones(4), 200)
    pred = [LABELS[i] for i in scores.argmax(1)]
    p = Predictions(y, pred, LABELS, scores)
    m = compute(["auc_macro", "auc_per_class", "confusion_matrix"], p)
    yi = np.array([LABELS.index(v) for v in y])
    assert m["auc_macro"] == pytest.approx(skm.roc_auc_score(yi, scores, multi_class="ovr", average="macro"))
    for k, lab in enumerate(LABELS):
        assert m["auc_per_class"][lab] == pytest.approx(skm.roc_auc_score(yi == k, scores[:, k]))
    assert m["confusion_matrix"]["matrix"] == [row + [0] for row in skm.confusion_matrix(y, pred, labels=LABELS).tolist()]


def test_random_baseline_formula_matches_simulation():
    rng = np.random.default_rng(0)
    counts = {"a": 500, "b": 300, "c": 150, "d": 50}
    y = [lab for lab, n in counts.items() for _ in range(n)]
    prior = np.array(list(counts.values())) / sum(counts.values())
    sims, sims_uniform = [], []
    for _ in range(300):
        guess = list(rng.choice(LABELS, len(y), p=prior))
        sims.append(skm.f1_score(y, guess, labels=LABELS, average="weighted"))
        guess_u = list(rng.choice(LABELS, len(y)))
        sims_uniform.append(skm.f1_score(y, guess_u, labels=LABELS, average="weighted"))
    assert statistics.random_f1_weighted(y, LABELS) == pytest.approx(np.mean(sims), abs=0.005)
    assert statistics.uniform_f1_weighted(y, LABELS) == pytest.approx(np.mean(sims_uniform), abs=0.005)
    # balanced: both equal 1/K, as in the seed paper (BMC 20 classes -> 0.05)
    bal = [lab for lab in LABELS for _ in range(50)]
    assert statistics.random_f1_weighted(bal, LABELS) == pytest.approx(0.25)


def test_bootstrap_ci_covers_true_accuracy_at_nominal_rate():
    rng = np.random.default_rng(1)
    true_acc, hits, trials = 0.7, 0, 200
    for t in range(trials):
        y = ["a"] * 200
        pred = ["a" if rng.random() < true_acc else "b" for _ in y]
        ci = statistics.bootstrap_ci(Predictions(y, pred, ["a", "b"]), "accuracy", 400, 0.95, seed=t)
        hits += ci["low"] <= true_acc <= ci["high"]
    assert 0.89 <= hits / trials <= 0.99


def test_fold_spread_is_contiguous_per_class_blocks():
    y = ["a"] * 10 + ["b"] * 7
    folds = statistics.fold_indices(y, 5)
    assert folds[0] == [0, 1, 10, 11]  # 7 = 2+2+1+1+1: the first two folds get one more
    assert folds[4] == [8, 9, 16]
    assert sorted(i for f in folds for i in f) == list(range(17))
    p = Predictions(y, y[:5] + ["b"] * 5 + y[10:], ["a", "b"])
    spread = statistics.fold_spread(p, "accuracy", 5)
    expected = [skm.accuracy_score([y[i] for i in f], [p.y_pred[i] for i in f]) for f in folds]
    assert spread["values"] == pytest.approx(expected)
    assert spread["sd"] == pytest.approx(np.std(expected, ddof=1))


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(5)
    y = list(rng.choice(LABELS, 300))
    good = [t if rng.random() < 0.8 else "a" for t in y]
    bad = [t if rng.random() < 0.4 else "a" for t in y]
    a, b = Predictions(y, good, LABELS), Predictions(y, bad, LABELS)
    res = statistics.paired_bootstrap(a, b, "f1_weighted", 2000, seed=0)
    assert res["difference"] == pytest.approx(compute(["f1_weighted"], a)["f1_weighted"] - compute(["f1_weighted"], b)["f1_weighted"])
    assert res["p_value"] < 0.01 and res["low"] > 0
    same = statistics.paired_bootstrap(a, a, "f1_weighted", 500, seed=0)
    assert same["difference"] == 0 and same["p_value"] == 1.0


def test_evaluate_bridge_with_local_metric_script(tmp_path):
    pytest.importorskip("evaluate")
    script = tmp_path / "exact_match_rate" / "exact_match_rate.py"
    script.parent.mkdir()
    script.write_text('''
import datasets
import evaluate


class ExactMatchRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="share equal", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("int64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        return {"rate": sum(p == r for p, r in zip(predictions, references)) / len(references)}
''')
    p = Predictions(["a", "b", "c", "a"], ["a", "b", None, "b"], ["a", "b", "c"])
    out = compute([f"evaluate:{script}"], p)
    assert out[f"evaluate:{script}"] == pytest.approx(0.5)


def test_results_compare_every_model_pair_with_a_paired_bootstrap(tmp_path):
    """results.json's comparisons equal a paired bootstrap done by hand with scikit-learn on the
    same resample indices (a difference of weighted F1 per resample)."""
    import json

    from sklearn.metrics import f1_score

    from cytoreg.engine.runner import EvalConfig, evaluate

    res = evaluate(EvalConfig(["demo"], ["random", "prior"], output=tmp_path, progress=False, bootstrap=300))
    (cmp,) = res["comparisons"]
    assert (cmp["a"], cmp["b"], cmp["metric"], cmp["resamples"]) == ("random", "prior", "f1_weighted", 300)
    rows = [json.loads(l) for l in (tmp_path / "samples.jsonl").read_text().splitlines()]
    y = [r["label"] for r in rows if r["model"] == "random"]
    pa = [r["parsed"] for r in rows if r["model"] == "random"]
    pb = [r["parsed"] for r in rows if r["model"] == "prior"]
    labels = res["tasks"]["demo"]["labels"]

    def f1(yy, pp):
        return f1_score(yy, pp, labels=sorted(set(yy)), average="weighted", zero_division=0)

    assert cmp["difference"] == pytest.approx(f1(y, pa) - f1(y, pb), abs=1e-12)
    idx = statistics._resample_indices(len(y), 300, 0)
    diffs = np.array([f1([y[i] for i in ix], [pa[i] for i in ix]) - f1([y[i] for i in ix], [pb[i] for i in ix])
                      for ix in idx])
    assert cmp["p_value"] == pytest.approx(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))), abs=1e-9)
    assert cmp["low"] == pytest.approx(np.quantile(diffs, 0.025), abs=1e-9)
    assert labels and len(y) == res["tasks"]["demo"]["n_test"]
