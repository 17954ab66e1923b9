"""The leaderboard never shows a number as better than it is: n and coverage in every cell, runs on
other samples (a ``--limit`` run) refused or flagged and never bolded, incomplete evaluations
greyed and unranked, ties by paired bootstrap marked, baselines never ranked.

The runs are real ``cytoreg eval`` runs of the weightless baselines; where a test needs a
"model" row (baselines are never ranked) or a failing model, it edits results.json /
samples.jsonl the way such a run would have written them."""
import json
import shutil
from pathlib import Path

import pytest

from cytoreg.cli import main
from cytoreg.errors import CytoregError
from cytoreg.metrics import statistics
from cytoreg.metrics.classification import Predictions
from cytoreg.report.board import TIE_RESAMPLES, TIE_SEED, build_table, load_runs
from cytoreg.report.leaderboard import write_leaderboard


def _eval(out: Path, *extra: str) -> None:
    assert main(["eval", "--tasks", "demo", "--models", "random,prior", "--output", str(out), "--no-progress",
                 "--bootstrap", "50", *extra]) in (0, 3)


def _edit(run: Path, fn) -> dict:
    path = run / "results.json"
    results = json.loads(path.read_text())
    fn(results)
    path.write_text(json.dumps(results))
    return results


def _as_models(results: dict) -> None:
    """Pretend the two guessers were generative models (rows that are ranked)."""
    for info in results["models"].values():
        info["capability"] = "generator"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    _eval(root / "full")
    _eval(root / "limited", "--limit", "20")
    return root


def _copy(base: Path, name: str, dest: Path) -> Path:
    shutil.copytree(base / name, dest / name)
    return dest / name


def _cell(table, model: str, j: int = 0):
    return next(r for r in table.rows if r.name == model).cells[j]


def test_limited_run_beside_full_run_is_refused_or_flagged_never_bold(base, tmp_path):
    full, limited = _copy(base, "full", tmp_path), _copy(base, "limited", tmp_path)
    _edit(full, _as_models)

    def rename_and_perfect(results):
        _as_models(results)
        for ev in results["evaluations"]:
            ev["model"] = f"{ev['model']}-small"
            ev["metrics"]["f1_weighted"] = 1.0  # the classic trap: n tiny, score perfect
        results["models"] = {f"{k}-small": v for k, v in results["models"].items()}

    _edit(limited, rename_and_perfect)
    with pytest.raises(CytoregError, match=r"(?s)demo \(zero-shot\): the models were scored on different samples.*"
                                           r"--allow-mixed"):
        load_runs_and_build = build_table(load_runs([full, limited]), "f1_weighted")  # noqa: F841
    table = build_table(load_runs([full, limited]), "f1_weighted", allow_mixed=True)
    small = _cell(table, "random-small")
    assert small.value == 1.0 and small.mixed and not small.best
    assert "other samples" in small.qualifiers() and small.n == 20
    assert "limit 20" in " ".join(table.notes)
    best = max((r for r in table.rows if r.name in ("random", "prior")), key=lambda r: r.cells[0].value)
    assert best.cells[0].best
    assert all(r.mean_rank is None for r in table.rows if r.name.endswith("-small"))
    md = write_leaderboard([full, limited], tmp_path / "lb", "f1_weighted", ("md",), allow_mixed=True)["md"].read_text()
    line = next(x for x in md.splitlines() if x.startswith("| random-small |"))
    assert "*1.000" in line and "**1.000" not in line and "n=20" in line and "other samples" in line
    assert "n=407" in next(x for x in md.splitlines() if x.startswith("| random |"))
    # the CLI says the same and exits 2
    assert main(["leaderboard", str(full), str(limited), "--format", "md", "--out", str(tmp_path / "x")]) == 2


def test_limit_draws_every_class_and_is_recorded(base):
    results = json.loads((base / "limited" / "results.json").read_text())
    assert results["tasks"]["demo"]["n_test"] == 20
    counts = results["tasks"]["demo"]["class_counts"]
    assert sum(1 for v in counts.values() if v) >= 10


def test_incomplete_evaluation_is_greyed_with_coverage_and_never_ranked(base, tmp_path):
    full = _copy(base, "full", tmp_path)

    def half_failed(results):
        _as_models(results)
        for ev in results["evaluations"]:
            if ev["model"] == "random":
                ev.update(status="incomplete", coverage=0.5, n_answered=ev["n"] // 2)
                ev["metrics"]["f1_weighted"] = 0.99  # whatever it says, it is not ranked or bolded

    _edit(full, half_failed)
    table = build_table(load_runs([full]), "f1_weighted")
    bad, good = _cell(table, "random"), _cell(table, "prior")
    assert bad.incomplete and not bad.best and bad.coverage == 0.5
    assert good.best and "coverage 0.50" in bad.qualifiers() and "incomplete" in bad.qualifiers()
    assert next(r for r in table.rows if r.name == "random").mean_rank is None
    assert next(r for r in table.rows if r.name == "prior").mean_rank == 1.0
    md = write_leaderboard([full], tmp_path / "lb", "f1_weighted", ("md", "html"))
    line = next(x for x in md["md"].read_text().splitlines() if x.startswith("| random |"))
    assert line.split("|")[2].strip().startswith("*0.990") and "coverage 0.50, incomplete" in line
    assert 'class="incomplete"' in md["html"].read_text()


def test_ties_from_the_runs_paired_bootstrap(base, tmp_path):
    full = _copy(base, "full", tmp_path)
    results = _edit(full, _as_models)
    comp = results["comparisons"][0]
    tied = comp["low"] <= 0 <= comp["high"]
    table = build_table(load_runs([full]), "f1_weighted")
    best = next(r for r in table.rows if r.cells[0].best)
    other = next(r for r in table.rows if r.kind == "model" and r is not best)
    assert other.cells[0].tied is tied


def _first_tries(run: Path, model: str) -> dict[str, tuple[str, str | None]]:
    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    return {r["id"]: (r["label"], r["parsed"]) for r in rows if r["model"] == model and r["try"] == 0}


def test_ties_across_runs_are_recomputed_from_samples(base, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(base / "full", a)
    shutil.copytree(base / "full", b)

    def only(model, rename):
        def fn(results):
            _as_models(results)
            results["evaluations"] = [dict(ev, model=rename) for ev in results["evaluations"] if ev["model"] == model]
            results["models"] = {rename: results["models"][model]}
            results["comparisons"] = []
        return fn

    _edit(a, only("random", "m1"))
    _edit(b, only("prior", "m2"))
    for run, model, new in ((a, "random", "m1"), (b, "prior", "m2")):
        lines = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
        (run / "samples.jsonl").write_text("".join(json.dumps(dict(r, model=new)) + "\n" for r in lines
                                                   if r["model"] == model))
    table = build_table(load_runs([a, b]), "f1_weighted")
    pa, pb = _first_tries(a, "m1"), _first_tries(b, "m2")
    ids = list(pa)
    labels = json.loads((a / "results.json").read_text())["tasks"]["demo"]["labels"]
    best = next(r for r in table.rows if r.cells[0].best).name
    first, second = (pa, pb) if best == "m1" else (pb, pa)
    r = statistics.paired_bootstrap(Predictions([first[i][0] for i in ids], [first[i][1] for i in ids], labels),
                                    Predictions([first[i][0] for i in ids], [second[i][1] for i in ids], labels),
                                    "f1_weighted", TIE_RESAMPLES, TIE_SEED)
    other = next(r for r in table.rows if r.kind == "model" and not r.cells[0].best)
    assert other.cells[0].tied is (r["low"] <= 0 <= r["high"])

    # a perfect model is not tied with a guesser
    lines = [json.loads(x) for x in (b / "samples.jsonl").read_text().splitlines()]
    (b / "samples.jsonl").write_text("".join(json.dumps(dict(x, parsed=x["label"], correct=True)) + "\n"
                                             for x in lines))
    _edit(b, lambda res: res["evaluations"][0]["metrics"].update(f1_weighted=1.0))
    table = build_table(load_runs([a, b]), "f1_weighted")
    assert _cell(table, "m2").best and not _cell(table, "m1").tied
