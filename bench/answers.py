"""Answer extraction on the test corpora: cytoreg's rules vs VLMEvalKit's ``can_infer``, side by side.

For each corpus (tests/answer_corpora: classification replies over the built-in label sets,
NEJM-style multiple-choice replies) prints, per reader, the accuracy on answerable replies, the
invalid rate and the confidently-wrong rate (a label read that is not the gold one, over all
replies), then the same counts per extraction step. No judge is used.

    python bench/answers.py [--show]     # --show: list every reply read wrong or missed
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import answer_corpus as ac  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--show", action="store_true", help="print the replies each reader got wrong or missed")
args = parser.parse_args()

readers = {"classification": [("cytoreg", ac.cytoreg_classification)],
           "mcq": [("cytoreg", ac.cytoreg_mcq)]}
try:
    import vlmeval.utils.matching_util  # noqa: F401  (disables SSL verification process-wide; fine here)
except ImportError as exc:
    print(f"VLMEvalKit not importable ({exc}); cytoreg only\n")
else:
    readers["classification"].append(("vlmeval can_infer", ac.vlmeval_classification))
    readers["mcq"].append(("vlmeval can_infer", ac.vlmeval_mcq))

corpora = {"classification": ac.classification_cases(), "mcq": ac.mcq_cases()}
for corpus, cases in corpora.items():
    answerable = sum(str(c["gold"]) != ac.INVALID for c in cases)
    print(f"== {corpus}: {len(cases)} replies, {answerable} answerable, {len(cases) - answerable} gold invalid")
    print(f"{'reader':<20}{'accuracy':>10}{'invalid':>10}{'conf. wrong':>13}")
    scores = {}
    for name, reader in readers[corpus]:
        s = scores[name] = ac.score(cases, reader)
        print(f"{name:<20}{s.accuracy:>10.1%}{s.invalid_rate:>10.1%}{s.wrong_rate:>13.1%}"
              f"   ({s.correct}/{s.answerable} read right, {s.wrong} wrong)")
    for name, s in scores.items():
        print(f"  per step, {name}:  {'n':>4}{'right':>7}{'wrong':>7}{'missed':>8}")
        for step, c in sorted(s.steps.items(), key=lambda kv: -kv[1]["n"]):
            print(f"    {step:<28}{c['n']:>4}{c['right']:>7}{c['wrong']:>7}{c['missed']:>8}")
        if args.show:
            for reply, got, gold in s.wrong_cases:
                print(f"    WRONG  read {got!r}, gold {gold!r}: {reply[:160]!r}")
            for reply, gold in s.missed_cases:
                print(f"    MISSED gold {gold!r}: {reply[:160]!r}")
    print()
print("missed = an answerable reply read as invalid (a judge would see it); wrong = a label read that "
      "is not the gold one, including one read from a reply whose gold is invalid.")
