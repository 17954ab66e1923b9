"""Explainability: feature-score and confidence parsing on realistic replies, hand-computed
aggregates, an end-to-end explain run against the local OpenAI-protocol server (judge for the
confidences the rules cannot read), and the expert-review export / import round trip."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fake_openai import FakeOpenAI, image_hashes
from test_engine import LABEL_BY_SHA
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.explain import parse_confidence, parse_feature_scores
from cytoreg.registry.catalog import Catalog
from cytoreg.tasks.explain_kind import confidence_summary

SPEC = Catalog.load().task("acevedo-explain")
F = SPEC.get("explain")["features"]
FS = [f.strip() for f in F]


def _table(scores, style="pipe"):
    if style == "pipe":
        return "| Feature | Score |\n|---|---|\n" + "\n".join(f"| {f} | {s} |" for f, s in zip(FS, scores))
    if style == "bullets":
        return "\n".join(f"- **{f}**: {s}%" for f, s in zip(FS, scores))
    if style == "numbered":
        return "\n".join(f"{i + 1}. {f} - {s}" for i, (f, s) in enumerate(zip(FS, scores)))
    return "\n".join(f"{f}: {s}" for f, s in zip(FS, scores))


EVEN = [5.0] * 19 + [0.0]
S100 = [10, 5, 15, 15, 10, 5, 0, 10, 5, 5, 0, 5, 5, 0, 5, 0, 0, 5, 0]  # sums to 100
S76 = [4] * 19                                                     # sums to 76

FEATURE_CASES = [
    # (reply, n parsed, raw total, renormalised, a feature: its renormalised score)
    ("Segmented Neutrophil\n" + _table(S100), 19, 100, False, ("Nuclear Shape", 15.0)),
    ("Eosinophil\n\n" + _table(S100, "bullets"), 19, 100, False, ("Cell Shape", 10.0)),
    ("Basophil\n" + _table(S100, "numbered"), 19, 100, False, ("Nuclear Segmentation", 15.0)),
    ("Lymphocyte\n" + _table(S100, "colon"), 19, 100, False, ("Chromatin Pattern", 10.0)),
    ("Monocyte\n" + _table(S76, "pipe"), 19, 76, True, ("Cell Size", 100 / 19)),
    ("Monocyte\n" + _table([x * 2 for x in S100], "colon"), 19, 200, True, ("Nuclear Shape", 15.0)),
    ("Platelet\n" + _table([0.5 * x for x in S100], "bullets"), 19, 50, True, ("Cell Shape", 10.0)),
    ("Myelocyte\nCell Shape: 10\nCell Size: 10-15\nNuclear Shape: 30", 2, 40, True, ("Nuclear Shape", 75.0)),
    ("Erythroblast\n**Nuclear-to-cytoplasmic ratio**: 40\nchromatin pattern — 60", 2, 100, False,
     ("Nuclear-to-Cytoplasmic Ratio", 40.0)),
    ("Promyelocyte\nInclusions (Presence of Auer rods, Döhle bodies, or other cytoplasmic inclusions): 20\n"
     "Granule Type: 80", 2, 100, False, ("Granule Type", 80.0)),
    ("Band Neutrophil\nTechnical properties of the image (resolution, light, noise, etc.): 12.5\nNucleoli: 87.5",
     2, 100, False, ("Nucleoli", 87.5)),
    ("I cannot assign scores to this image.", 0, None, False, ("Cell Shape", None)),
    ("Lymphocyte\n| Cytoplasmic Volume | 50 |\n| Cytoplasmic Color | 30 |\n| Cytoplasmic Border | 20 |", 3, 100, False,
     ("Cytoplasmic Color", 30.0)),
    ("Basophil\nGranule Presence: 60/100\nGranule Type: 40/100", 2, 100, False, ("Granule Presence", 60.0)),
]


@pytest.mark.parametrize("reply,n,total,renorm,check", FEATURE_CASES)
def test_feature_scores(reply, n, total, renorm, check):
    r = parse_feature_scores(reply, F)
    assert r.parsed == n
    assert (r.total is None) if total is None else r.total == pytest.approx(total)
    assert r.renormalised == renorm
    name, want = check
    got = {k.strip(): v for k, v in r.normalised().items()}[name]
    assert got == (None if want is None else pytest.approx(want))
    if renorm:
        assert any("renormalised" in p for p in r.problems)


def test_ranges_and_other_features_are_reported():
    r = parse_feature_scores("Myelocyte\nCell Size: 10-15\nNuclear Shape: 50\nCell Shape: 50\n\nOther features: "
                             "the Golgi zone is visible", F)
    assert any("Cell Size: a range (10-15)" in p for p in r.problems)
    assert r.other == "the Golgi zone is visible"


CONFIDENCE_CASES = [
    ("I am very confident that this is a segmented neutrophil.", 1),
    ("I'm highly confident in this classification.", 1),
    ("I am absolutely certain.", 1),
    ("I have a high degree of confidence.", 1),
    ("I am confident it is a basophil.", 2),
    ("I'm fairly sure, though a metamyelocyte is possible.", 3),
    ("I am moderately confident; a myelocyte would also fit.", 3),
    ("My confidence is moderate.", 3),
    ("I'm not entirely sure; it could also be a band neutrophil.", 4),
    ("I am not confident about this answer.", 4),
    ("I am uncertain between monocyte and lymphocyte.", 4),
    ("My certainty is low.", 4),
    ("I am very uncertain about this.", 5),
    ("Confidence: 5/5", 1),
    ("Confidence: 4/5", 2),
    ("Confidence level: 3 out of 5.", 3),
    ("Confidence: 2/5 — the image is blurry.", 4),
    ("I am about 95% confident.", 1),
    ("I am 75% certain.", 2),
    ("Roughly 55% sure.", 3),
    ("Maybe 40% confident at best.", 4),
    ("The chromatin is coarse and the cytoplasm blue.", None),
    ("**Certainty:** I am quite sure this is an eosinophil because of the orange granules.", 2),
    ("Other labels that could be correct: Myelocyte. I am confident in Promyelocyte.", 2),
]


@pytest.mark.parametrize("reply,level", CONFIDENCE_CASES)
def test_confidence_levels(reply, level):
    assert parse_confidence(reply)[0] == level


def test_corpus_size():
    assert len(FEATURE_CASES) + len(CONFIDENCE_CASES) >= 30


def test_confidence_summary_matches_hand_computation():
    recs = [{"confidence": c, "correct": ok} for c, ok in [(1, True), (2, True), (2, False), (3, False), (1, True),
                                                           (5, False)]]
    recs.append({"confidence": None, "correct": True})
    s = confidence_summary(recs)
    assert s["n"] == 7 and s["n_rated"] == 6 and s["n_unread"] == 1
    assert s["correct"] == {"mean": pytest.approx(4 / 3), "sd": pytest.approx(np.std([1, 2, 1], ddof=1)), "n": 3}
    assert s["wrong"]["mean"] == pytest.approx(10 / 3)
    level = np.array([5, 4, 4, 3, 5, 1], float)
    ok = np.array([1, 1, 0, 0, 1, 0], float)
    hand = ((level - level.mean()) * (ok - ok.mean())).sum() / np.sqrt(((level - level.mean()) ** 2).sum()
                                                                      * ((ok - ok.mean()) ** 2).sum())
    assert s["corr_confidence_correct"] == pytest.approx(hand) and hand > 0
    assert s["distribution"] == {"1": 2, "2": 2, "3": 1, "4": 0, "5": 1}


def _reply(body: dict) -> str:
    content = body["messages"][-1]["content"]
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    text = "".join(p.get("text", "") for p in parts)
    if not image_hashes(body):  # the judge: a confidence question
        return "3" if "specimen" in text else "NA"
    sha = image_hashes(body)[-1]
    label = LABEL_BY_SHA[sha]
    wrong = int(sha, 16) % 3 == 0
    said = "Lymphocyte" if wrong and label != "Lymphocyte" else label
    if "importance score" in text:
        scores = S76 if int(sha, 16) % 2 else S100
        return f"{said}\n\n" + _table(scores, "pipe")
    if int(sha, 16) % 4 == 1:
        return f"{said}\n\nThe nucleus is round. Certainty for specimen {sha[:6]} is hard to put in words."
    return f"{said}\n\nThe nucleus is round. I am {'very confident' if not wrong else 'confident'}."


@pytest.fixture(scope="module")
def explain_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    with FakeOpenAI(_reply) as srv:
        d = root / "specs"
        d.mkdir()
        (d / "t.yaml").write_text("spec: task/v1\nname: small-explain\nextends: acevedo-explain\n"
                                  "data: {source: imagefolder, root: 'package:demo_data/pbc/PBC_dataset_normal_DIB', "
                                  "label_from: prefix}\nsampling: {test_per_class: 4}\n")
        for name in ("vlm", "cleaner"):
            (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}\nadapter: openai\n"
                                            f"params: {{model: {name}, base_url: '{srv.base_url}'}}\n")
        res = evaluate(EvalConfig(["small-explain"], ["vlm"], output=root / "run", include=[str(d)], progress=False,
                                  bootstrap=20, judge="cleaner"))
        requests = list(srv.requests)
    samples = [json.loads(l) for l in (root / "run/samples.jsonl").read_text().splitlines()]
    return root, res, samples, requests


def test_explain_run_end_to_end(explain_run):
    root, res, samples, requests = explain_run
    assert [e["setting"] for e in res["evaluations"]] == ["features", "free_text"]
    prompts = {r["messages"][0]["content"][0]["text"] for r in requests if image_hashes(r)}
    assert prompts == {SPEC.get("prompts")["explain_features"], SPEC.get("prompts")["explain_text"]}
    feats = [s for s in samples if s["setting"] == "features"]
    assert all(s["match"] == "first_line" and s["parsed"] for s in feats)
    assert all(sum(v for v in s["feature_scores"].values() if v is not None) == pytest.approx(100) for s in feats)
    assert {s["feature_scores_renormalised"] for s in feats} == {True, False}
    fi = res["evaluations"][0]["metrics"]["feature_importance"]
    correct = [s for s in feats if s["correct"]]
    assert fi["n_correct"] == len(correct) and fi["n_renormalised"] == sum(s["feature_scores_renormalised"] for s in feats)
    want = np.mean([s["feature_scores"]["Nuclear Shape"] for s in correct])
    assert fi["correct_overall"]["Nuclear Shape"]["mean"] == pytest.approx(want)
    for lab, table in fi["correct_by_predicted_class"].items():
        rows = [s for s in correct if s["parsed"] == lab]
        assert table["Cell Shape"]["n"] == len(rows)
    text = [s for s in samples if s["setting"] == "free_text"]
    judged = [s for s in text if s["confidence_match"].startswith("judge")]
    assert judged and all(s["confidence"] == 3 for s in judged)
    ruled = [s for s in text if s["confidence_match"].startswith("rules")]
    assert ruled and all(s["confidence"] == (1 if "very confident" in s["response"] else 2) for s in ruled)
    conf = res["evaluations"][1]["metrics"]["confidence"]
    assert conf["n_rated"] == len(text) and conf["by_source"] == {"rules": len(text) - len(judged), "judge": len(judged)}
    assert conf == confidence_summary(text) | {"by_source": conf["by_source"]}
    assert not any(image_hashes(r) for r in requests if r["model"] == "cleaner")


def test_review_export_import_round_trip(explain_run, tmp_path):
    from cytoreg.cli import main

    root, res, samples, _ = explain_run
    out = tmp_path / "review"
    assert main(["review", "export", str(root / "run"), "--task", "small-explain", "--model", "vlm", "--per-class", "1",
                 "--seed", "3", "--out", str(out)]) == 0
    with (out / "review.csv").open() as fh:
        sheet = list(csv.DictReader(fh))
    assert list(sheet[0]) == ["item", "image", "explanation", "rating", "expert_label", "mistakes"]
    html = (out / "review.html").read_text()
    key = json.loads((out / "key.json").read_text())
    text = {s["id"]: s for s in samples if s["setting"] == "free_text"}
    labels = {s["label"] for s in text.values()}
    for k in key["items"]:
        assert k["correct"] == text[k["sample_id"]]["correct"]
    # blinded: no file the expert gets says which label is true or whether the model was right
    sheet_text = (out / "review.csv").read_text()
    for k in key["items"]:  # original file names (which carry the class prefix) never reach the expert
        assert Path(k["sample_id"]).name not in html and Path(k["sample_id"]).name not in sheet_text
    assert "true_label" not in html and "predicted" not in html.lower() and "wrong" not in html.lower()
    assert all((out / s["image"]).exists() for s in sheet)
    n_correct = sum(k["correct"] for k in key["items"])
    n_wrong = len(key["items"]) - n_correct
    assert n_correct <= len(labels) and n_wrong <= len(labels) and n_wrong > 0
    # the expert: 1 for every correct prediction, 4 or 5 alternately for the wrong ones
    by_item = {k["item"]: k for k in key["items"]}
    wrong_items = sorted(i for i, k in by_item.items() if not k["correct"])
    for s in sheet:
        i = int(s["item"])
        s["rating"] = "1" if by_item[i]["correct"] else ("4" if wrong_items.index(i) % 2 == 0 else "5")
    with (out / "review.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(sheet[0]))
        w.writeheader()
        w.writerows(sheet)
    assert main(["review", "import", str(out)]) == 0
    summary = json.loads((out / "review_summary.json").read_text())
    wr = [4 if j % 2 == 0 else 5 for j in range(n_wrong)]
    assert summary["correct"]["mean"] == 1.0 and summary["correct"]["sd"] == 0.0
    assert summary["wrong"]["mean"] == pytest.approx(np.mean(wr)) and summary["wrong"]["sd"] == pytest.approx(np.std(wr))
    assert summary["wrong"]["share_poor_or_misleading"] == 1.0 and summary["correct"]["share_poor_or_misleading"] == 0.0
    # a bad sheet names the row and the problem
    sheet[0]["rating"] = "6"
    with (out / "bad.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(sheet[0]))
        w.writeheader()
        w.writerows(sheet[:-1])
    from cytoreg.errors import CytoregError
    from cytoreg.report.review import import_review

    with pytest.raises(CytoregError, match=r"bad.csv:2: item \d+ rating '6' is not 1-5[\s\S]*1 item\(s\) missing"):
        import_review(out, out / "bad.csv")


def test_explain_runs_render_confidence_and_importance_plots(explain_run, tmp_path):
    pytest.importorskip("matplotlib")
    from cytoreg.report.leaderboard import write_leaderboard

    root, *_ = explain_run
    page = write_leaderboard([root / "run"], tmp_path / "lb", "accuracy", ("html",))["html"].read_text()
    assert 'class="plot confidence"' in page and 'class="plot importance"' in page
    from PIL import Image

    for kind in ("conf", "fi"):
        (png,) = sorted((tmp_path / "lb/img").glob(f"{kind}-*.png"))
        assert min(Image.open(png).size) > 200
