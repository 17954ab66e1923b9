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


MANY = [f"c{i}" for i in range(11)]  # more than 8 classes: numpy's pairwise sums change order


@st.composite
def wide_predictions(draw):
    """Up to 11 labels, some never true (absent classes), invalid and out-of-set answers."""
    k = draw(st.integers(min_value=2, max_value=11))
    labels = MANY[:k]
    used = draw(st.lists(st.sampled_from(labels), min_size=1, max_size=k, unique=True))
    n = draw(st.integers(min_value=1, max_value=80))
    y_true = draw(st.lists(st.sampled_from(used), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.sampled_from(labels + [None, "elsewhere"]), min_size=n, max_size=n))
    return Predictions(y_true, y_pred, labels)


@settings(max_examples=200, deadline=None)
@given(wide_predictions(), st.integers(0, 2**32 - 1))
def test_count_array_bootstrap_is_bit_identical_to_the_per_resample_loop(p, seed):
    """Same seed, same numbers: every resample's value equals the former Python loop's exactly."""
    import reference_stats as ref

    t, q, k = ref.encode(p)
    idx = ref.resample_indices(len(t), 97, seed)
    codes, kk = fast.encode(p)
    got = fast.resampled(codes, kk, list(ref.FAST), 97, seed)
    for name, fn in ref.FAST.items():
        np.testing.assert_array_equal(got[name], ref.resampled(t, q, k, fn, idx), err_msg=name)


@settings(max_examples=60, deadline=None)
@given(wide_predictions(), st.integers(0, 1000))
def test_ci_and_paired_test_equal_the_former_implementation(p, seed):
    import reference_stats as ref

    statistics._MEMO.clear()
    other = Predictions(p.y_true, list(reversed(p.y_pred)), p.labels)
    for name in ("accuracy", "balanced_accuracy", "f1_weighted", "f1_macro"):
        want = ref.bootstrap_ci(p, name, 150, 0.9, seed)
        got = statistics.bootstrap_ci(p, name, 150, 0.9, seed)
        assert got == pytest.approx(want, nan_ok=True, rel=0, abs=0)
        # a shorter draw with the same seed is a prefix of the memoised longer one
        assert statistics.bootstrap_ci(p, name, 60, 0.9, seed) == pytest.approx(
            ref.bootstrap_ci(p, name, 60, 0.9, seed), nan_ok=True, rel=0, abs=0)
    if len(p.y_true) > 1:
        assert statistics.paired_bootstrap(p, other, "f1_weighted", 150, seed) == ref.paired_bootstrap(
            p, other, "f1_weighted", 150, seed)


def test_resample_chunks_do_not_change_the_draw(monkeypatch):
    rng = np.random.default_rng(8)
    p = Predictions(list(rng.choice(LABELS, 300)), list(rng.choice(LABELS + [None], 300)), LABELS)
    codes, k = fast.encode(p)
    whole = fast.resampled(codes, k, ["f1_macro", "accuracy"], 500, 4)
    monkeypatch.setattr(fast, "CHUNK_CELLS", 300 * 7)  # 7 resamples per chunk, the last one short
    chunked = fast.resampled(codes, k, ["f1_macro", "accuracy"], 500, 4)
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name])
    idx = np.random.default_rng(4).integers(0, 300, size=(500, 300))
    for r in (0, 123, 499):
        assert chunked["accuracy"][r] == skm.accuracy_score([p.y_true[i] for i in idx[r]],
                                                            [p.pred[i] for i in idx[r]])


@settings(max_examples=150, deadline=None)
@given(wide_predictions())
def test_every_label_metric_equals_sklearn(p):
    """All count-based metrics, including answers outside the label set and absent classes."""
    import warnings

    pred = p.pred
    present = [lab for lab in p.labels if lab in p.y_true]
    m = compute(["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "precision_macro",
                 "recall_macro", "cohen_kappa", "invalid_rate", "per_class", "confusion_matrix"], p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prf = skm.precision_recall_fscore_support(p.y_true, pred, labels=p.labels, zero_division=0)
        kappa = skm.cohen_kappa_score(p.y_true, pred)
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(p.y_true, pred), abs=1e-12)
        assert m["f1_weighted"] == pytest.approx(
            skm.f1_score(p.y_true, pred, labels=p.labels, average="weighted", zero_division=0), abs=1e-12)
        assert m["f1_macro"] == pytest.approx(
            skm.f1_score(p.y_true, pred, labels=present, average="macro", zero_division=0), abs=1e-12)
        assert m["precision_macro"] == pytest.approx(
            skm.precision_score(p.y_true, pred, labels=present, average="macro", zero_division=0), abs=1e-12)
        recall = skm.recall_score(p.y_true, pred, labels=present, average="macro", zero_division=0)
        assert m["balanced_accuracy"] == m["recall_macro"] == pytest.approx(recall, abs=1e-12)
    assert m["cohen_kappa"] == pytest.approx(kappa, abs=1e-12, nan_ok=True)
    assert m["invalid_rate"] == sum(x is None for x in p.y_pred) / len(p.y_pred)
    for i, lab in enumerate(p.labels):
        row = m["per_class"][lab]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (prf[0][i], prf[1][i], prf[2][i], prf[3][i]), abs=1e-12)
    cm = skm.confusion_matrix(p.y_true, pred, labels=p.labels + [INVALID])
    assert m["confusion_matrix"]["matrix"] == cm[:len(p.labels)].tolist()


def test_bca_interval_equals_scipy():
    """BCa on the same resamples (scipy draws rng.integers(0, n, (R, n)) like cytoreg) and the same
    jackknife, for a skewed metric and a symmetric one."""
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    y = list(rng.choice(LABELS, 120, p=[0.6, 0.2, 0.15, 0.05]))
    pred = [t if rng.random() < 0.7 else rng.choice(LABELS + [None]) for t in y]
    p = Predictions(y, pred, LABELS)
    for name in ("f1_macro", "accuracy"):
        def stat(ix, name=name):
            return compute([name], p.subset(ix.astype(int)))[name]

        ref = scipy_stats.bootstrap((np.arange(120),), stat, vectorized=False, n_resamples=400,
                                    method="BCa", confidence_level=0.9, rng=np.random.default_rng(11))
        got = statistics.bootstrap_ci(p, name, 400, 0.9, seed=11, method="bca")
        assert (got["low"], got["high"]) == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)
        assert got["method"] == "bca"
        if name == "f1_macro":  # skewed: the correction moves the interval
            plain = statistics.bootstrap_ci(p, name, 400, 0.9, seed=11)
            assert (got["low"], got["high"]) != (plain["low"], plain["high"])
    with pytest.raises(ValueError, match="percentile, bca"):
        statistics.bootstrap_cis(p, ["accuracy"], 10, method="studentized")


def test_auc_with_ties_equals_sklearn():
    rng = np.random.default_rng(4)
    y = list(rng.choice(LABELS, 150))
    scores = np.round(rng.dirichlet(np.ones(4), 150), 1)  # many ties
    m = compute(["auc_per_class"], Predictions(y, y, LABELS, scores))
    for k, lab in enumerate(LABELS):
        assert m["auc_per_class"][lab] == pytest.approx(
            skm.roc_auc_score(np.array(y) == lab, scores[:, k]), abs=1e-12)


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


def test_task_spec_chooses_bca_intervals(tmp_path):
    """statistics.ci: bca in a task spec gives BCa CIs in results.json (the default stays
    percentile), and an unknown method is a spec error naming the field."""
    import json

    from cytoreg.engine.runner import EvalConfig, evaluate
    from cytoreg.errors import SpecError
    from cytoreg.registry.catalog import Catalog

    d = tmp_path / "specs"
    d.mkdir()
    (d / "t.yaml").write_text("spec: task/v1\nname: demo-bca\nextends: demo\nsampling: {test_per_class: 6}\n"
                              "statistics: {ci: bca, bootstrap: 300}\n")
    res = evaluate(EvalConfig(["demo-bca"], ["prior"], output=tmp_path / "run", include=[str(d)], progress=False))
    (ev,) = res["evaluations"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    p = Predictions([r["label"] for r in rows], [r["parsed"] for r in rows], res["tasks"]["demo-bca"]["labels"])
    want = statistics.bootstrap_cis(p, ["accuracy", "f1_weighted"], 300, 0.95, 0, method="bca")
    for m in ("accuracy", "f1_weighted"):
        assert ev["ci"][m]["method"] == "bca"
        assert (ev["ci"][m]["low"], ev["ci"][m]["high"]) == (want[m]["low"], want[m]["high"])
    (d / "t.yaml").write_text("spec: task/v1\nname: demo-bca\nextends: demo\nstatistics: {ci: studentized}\n")
    with pytest.raises(SpecError, match=r"statistics\.ci"):
        Catalog.load([d])
