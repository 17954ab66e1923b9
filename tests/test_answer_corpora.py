"""The answer corpora: well-formed, large enough, and read within the issue's thresholds without a judge."""
import pytest

import answer_corpus as ac

CLASSIFICATION = ac.classification_cases()
MCQ = ac.mcq_cases()


def test_corpora_are_large_enough_and_cover_the_built_in_label_sets():
    assert len(CLASSIFICATION) >= 150 and len(MCQ) >= 60
    assert {c["task"] for c in CLASSIFICATION} == {"acevedo", "demo", "bmc", "hicervix", "mll23"}
    styles = {c["style"].split()[0] for c in CLASSIFICATION + MCQ}
    assert {"gpt-4o", "gemini", "llava-med", "llama-3.2-v"} <= styles
    # both answerable and invalid replies, in each corpus
    for cases in (CLASSIFICATION, MCQ):
        golds = [str(c["gold"]) for c in cases]
        assert 0.1 < golds.count(ac.INVALID) / len(golds) < 0.4


@pytest.mark.parametrize("case", CLASSIFICATION, ids=lambda c: c["reply"][:40])
def test_classification_gold_is_a_label_of_its_task(case):
    labels, _ = ac.task_labels(case["task"])
    assert case["gold"] == ac.INVALID or case["gold"] in labels, case["gold"]


def test_mcq_cases_have_five_options_and_gold_option_numbers():
    for case in MCQ:
        assert len(case["options"]) == 5
        assert case["gold"] in {ac.INVALID, "1", "2", "3", "4", "5"}, case


def test_classification_corpus_is_read_within_the_thresholds():
    s = ac.score(CLASSIFICATION, ac.cytoreg_classification)
    assert s.wrong_rate <= 0.01, s.wrong_cases
    assert s.accuracy >= 0.95, s.missed_cases
    assert s.answerable >= 140


def test_mcq_corpus_is_read_within_the_thresholds():
    s = ac.score(MCQ, ac.cytoreg_mcq)
    assert s.wrong_rate <= 0.01, s.wrong_cases
    assert s.accuracy >= 0.95, s.missed_cases
    assert s.answerable >= 50


def test_score_counts_by_hand():
    cases = [{"gold": "1", "reply": "a"}, {"gold": "2", "reply": "b"}, {"gold": ac.INVALID, "reply": "c"},
             {"gold": "1", "reply": "d"}]
    reads = {"a": ("1", "exact"), "b": ("1", "contains"), "c": ("2", "contains"), "d": (None, "invalid")}
    s = ac.score(cases, lambda c: reads[c["reply"]])
    assert (s.n, s.answerable, s.correct, s.wrong, s.invalid) == (4, 3, 1, 2, 1)
    assert (s.accuracy, s.wrong_rate, s.invalid_rate) == (1 / 3, 0.5, 0.25)
    assert dict(s.steps["contains"]) == {"n": 2, "wrong": 2} and dict(s.steps["invalid"]) == {"n": 1, "missed": 1}
