"""A model that fails to load during a run (weights that passed the preflight but do not fit the
model, a key gone since the preflight) is stopped like a fatal API failure: one stderr line naming
the model and the error's fix, "not sent" records and no score for it, the other models scored
exactly as in a run without it, a complete run folder, exit 3; a resume after the fix re-runs only
that model. A judge that cannot load is stopped the same way (rules-only parsing, greyed, exit 3)."""
import json
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from test_engine import oracle, specs
from test_judge import _reply
from test_trust import cli
from cytoreg.cli.eval_cmd import exit_status
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.errors import ModelLoadError
from cytoreg.report.results import validate_results


def _samples(run: Path, model: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "samples.jsonl").read_text().splitlines()) if r["model"] == model]


def _by_model(res: dict) -> dict[str, dict]:
    return {ev["model"]: ev for ev in res["evaluations"]}


def _assert_stopped(ev: dict, reason_start: str) -> None:
    assert ev["status"] == "stopped" and ev["n"] == ev["n_answered"] == 0 and ev["coverage"] == 0.0
    assert ev["metrics"] == {} and ev["ci"] == {}, "a stopped model must show no score"
    assert ev["stopped_reason"].startswith(reason_start), ev["stopped_reason"]


def _fail_load(monkeypatch, cls, name: str, message: str) -> list[str]:
    """``cls.load`` raises ModelLoadError for the model ``name``; returns the names loaded."""
    loaded: list[str] = []
    real = cls.load

    def load(self):
        loaded.append(self.name)
        if self.name == name:
            raise ModelLoadError(message)
        return real(self)

    monkeypatch.setattr(cls, "load", load)
    return loaded


# -- CLIP zero-shot (embedder), through the CLI -----------------------------------------------------

@pytest.mark.torch
def test_clip_with_mismatched_weights_is_stopped_others_scored_resume_reruns_it(tmp_path):
    pytest.importorskip("open_clip")
    from tiny_clip import save_tiny_clip

    save_tiny_clip(tmp_path / "good")
    bad = save_tiny_clip(tmp_path / "bad", seed=1)
    cfg_file = bad / "open_clip_config.json"
    right = cfg_file.read_text()
    wrong = json.loads(right)
    wrong["model_cfg"]["embed_dim"] = 8  # intact files (the preflight passes them), weights of another shape
    cfg_file.write_text(json.dumps(wrong))
    d = tmp_path / "specs"
    d.mkdir()
    for name in ("good", "bad"):
        (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}-clip\nadapter: open_clip\n"
                                        f"params: {{model: 'local-dir:{tmp_path / name}'}}\n"
                                        "execution: {batch_size: 32, workers: 0}\n")
    (d / "small.yaml").write_text("spec: task/v1\nname: small-clip\nextends: demo\nsampling: {test_per_class: 2}\n")
    run = tmp_path / "run"
    args = ["eval", "--tasks", "small-clip", "--models", "random,good-clip,bad-clip", "--include", str(d),
            "--no-progress", "--bootstrap", "20", "-o", str(run)]
    out, err = cli(args).communicate(timeout=300)
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, err  # one line, as it happens
    line = lines[0]
    assert line.startswith(f"error: model 'bad-clip' stopped: load failed: {tmp_path / 'bad'}")
    # the cause and the fix from the adapter's error (weights that are here but do not fit: no download advice)
    assert "is present but does not fit its open_clip config" in line and "size mismatch" in line
    assert "replace them with a complete copy" in line and "Get them:" not in line
    res = json.loads((run / "results.json").read_text())
    assert exit_status(res) == 3 and validate_results(res) == []
    assert "STOPPED 0%" in out and line[len("error: "):] in " ".join(out.split())
    evs = _by_model(res)
    _assert_stopped(evs["bad-clip"], "model 'bad-clip' stopped: load failed:")
    assert evs["bad-clip"]["stopped_reason"] == line[len("error: "):] == res["models"]["bad-clip"]["stopped_reason"]
    rows = _samples(run, "bad-clip")
    assert len(rows) == 22 and all(r["error"] == f"not sent: {line[len('error: '):]}" and r["parsed"] is None
                                   for r in rows)
    # the other models: exactly the numbers of a run without the broken one
    ref = evaluate(EvalConfig(["small-clip"], ["random", "good-clip"], output=tmp_path / "ref", include=[str(d)],
                              progress=False, bootstrap=20))
    for name, ev in _by_model(ref).items():
        assert evs[name]["status"] == "complete" and evs[name]["n"] == 22
        assert (evs[name]["metrics"], evs[name]["ci"]) == (ev["metrics"], ev["ci"])
    # the leaderboard says "stopped" (not "—", which means "not run") and why
    from cytoreg.report.board import build_table, load_runs
    from cytoreg.report.leaderboard import render_markdown

    table = build_table(load_runs([run]), "f1_weighted")
    row = next(r for r in table.rows if r.name == "bad-clip")
    assert [c.stopped and c.value is None for c in row.cells] == [True] and row.mean_rank is None
    md = render_markdown(table)
    assert "| bad-clip | *stopped* |" in md and "load failed:" in md and "is present but does not fit its open" in md
    assert "incomplete: bad-clip (stopped small-clip (zero-shot))" in md  # not "missing": it was run and stopped
    # fixed: the same command resumes; only the stopped model computes anything
    cfg_file.write_text(right)
    p = cli(args)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    evs = _by_model(json.loads((run / "results.json").read_text()))
    assert evs["good-clip"]["requests"]["sent"] == 0 and evs["good-clip"]["requests"]["cached"] == 22
    assert evs["bad-clip"]["requests"]["sent"] == 22 and evs["bad-clip"]["status"] == "complete"
    assert evs["bad-clip"]["n"] == 22 and "stopped_reason" not in json.loads((run / "results.json").read_text())[
        "models"]["bad-clip"]


# -- probes (feature extractor) -------------------------------------------------------------------

PROBE = ("spec: task/v1\nname: demo-probe\nkind: probe\nextends: demo\n"
         "sampling: {seed: 42, test_per_class: 2, train_per_class: 4, val_per_class: 1}\n")


@pytest.mark.torch
def test_probe_model_that_cannot_load_is_stopped_and_fitted_after_the_fix(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    from tiny_features import save_tiny_dinobloom, spec_text
    from cytoreg.models.timm_features import TimmFeatures

    save_tiny_dinobloom(tmp_path / "good.pth")
    save_tiny_dinobloom(tmp_path / "other.pth", seed=1)
    d = tmp_path / "specs"
    d.mkdir()
    (d / "probe.yaml").write_text(PROBE)
    (d / "good.yaml").write_text(spec_text("tinybloom", tmp_path / "good.pth"))
    right = spec_text("otherbloom", tmp_path / "other.pth")
    (d / "other.yaml").write_text(right.replace("embed_dim: 32", "embed_dim: 48"))  # does not fit the file
    cfg = EvalConfig(["demo-probe"], ["tinybloom", "otherbloom"], output=tmp_path / "run", include=[str(d)],
                     progress=False, bootstrap=20)
    res = evaluate(cfg)
    assert exit_status(res) == 3 and validate_results(res) == []
    evs = _by_model(res)
    _assert_stopped(evs["otherbloom"], "model 'otherbloom' stopped: load failed: ")
    assert "does not fit vit_small_patch14_dinov2" in evs["otherbloom"]["stopped_reason"]
    assert res["models"]["otherbloom"]["stopped_reason"] == evs["otherbloom"]["stopped_reason"]
    rows = _samples(tmp_path / "run", "otherbloom")
    assert len(rows) == 22 and all(r["error"] == "not sent: " + evs["otherbloom"]["stopped_reason"] for r in rows)
    ref = evaluate(EvalConfig(["demo-probe"], ["tinybloom"], output=tmp_path / "ref", include=[str(d)],
                              progress=False, bootstrap=20))
    ev = ref["evaluations"][0]
    assert evs["tinybloom"]["status"] == "complete"
    assert (evs["tinybloom"]["metrics"], evs["tinybloom"]["ci"], evs["tinybloom"]["probe"]["n_train"]) == \
        (ev["metrics"], ev["ci"], ev["probe"]["n_train"])
    # fixed: the resume extracts only the stopped model's features (tinybloom's come from the store)
    (d / "other.yaml").write_text(right)
    loaded = _fail_load(monkeypatch, TimmFeatures, "no-such-model", "")
    res = evaluate(cfg)
    assert loaded == ["otherbloom"] and exit_status(res) == 0
    evs = _by_model(res)
    assert evs["otherbloom"]["status"] == "complete" and evs["otherbloom"]["n"] == 22
    assert evs["tinybloom"]["metrics"] == ev["metrics"]


# -- generators (API and local adapters share the path), cached reruns ------------------------------

def test_generator_that_cannot_load_is_stopped_and_a_cached_one_never_loads(tmp_path, monkeypatch, capsys):
    from cytoreg.models.openai_api import OpenAIChat

    message = "model 'fake': the variable OPENAI_API_KEY is no longer set; export it and re-run"
    with FakeOpenAI(oracle) as srv:
        d = specs(tmp_path, srv.base_url, per_class=1)
        (d / "small2.yaml").write_text("spec: task/v1\nname: small2\nextends: small\n")
        cfg = EvalConfig(["small", "small2"], ["fake", "prior"], output=tmp_path / "run", include=[str(d)],
                         progress=False, bootstrap=20)
        loaded = _fail_load(monkeypatch, OpenAIChat, "fake", message)
        res = evaluate(cfg)
        assert loaded == ["fake"] and srv.requests == []  # tried once, not once per task
        second = [ev for ev in res["evaluations"] if ev["task"] == "small2" and ev["model"] == "fake"]
        assert len(second) == 1 and second[0]["status"] == "stopped"
        res["evaluations"] = [ev for ev in res["evaluations"] if ev["task"] == "small"]
        reason = (f"model 'fake' stopped at {srv.base_url}: load failed: the variable OPENAI_API_KEY is no longer set; "
                  "export it and re-run")
        assert [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")] == [f"error: {reason}"]
        assert exit_status(res) == 3 and validate_results(res) == []
        evs = _by_model(res)
        _assert_stopped(evs["fake"], reason)
        assert evs["fake"]["stopped_reason"] == reason == res["models"]["fake"]["stopped_reason"]
        rows = _samples(tmp_path / "run", "fake")
        assert len(rows) == 22 and {r["error"] for r in rows} == {f"not sent: {reason}"}
        ref = evaluate(EvalConfig(["small"], ["prior"], output=tmp_path / "ref", include=[str(d)], progress=False,
                                  bootstrap=20))["evaluations"][0]
        assert (evs["prior"]["metrics"], evs["prior"]["ci"]) == (ref["metrics"], ref["ci"])
        # fixed: the resume sends the stopped model's requests
        monkeypatch.undo()
        fixed = evaluate(cfg)
        assert exit_status(fixed) == 0 and len(srv.requests) == 11  # small2 has the same samples: cached
        answered = [ev for ev in fixed["evaluations"] if ev["model"] == "fake" and ev["task"] == "small"][0]
        assert answered["status"] == "complete" and answered["requests"]["sent"] == 11
        # a model whose replies are all cached never loads: it is scored even when it could not load now
        loaded = _fail_load(monkeypatch, OpenAIChat, "fake", message)
        again = evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "cached", include=[str(d)],
                                    progress=False, bootstrap=20, cache=tmp_path / "run" / "cache.sqlite"))
        assert loaded == [] and len(srv.requests) == 11 and exit_status(again) == 0
        assert again["evaluations"][0]["metrics"] == answered["metrics"]


# -- the judge -------------------------------------------------------------------------------------

def test_judge_that_cannot_load_is_stopped_rules_only_scores_greyed_and_exit_3(tmp_path, monkeypatch):
    """Decision: the judge is stopped like a model. Every evaluation keeps its replies and their
    rule-based parsing (the replies the judge should have mapped stay invalid, their match_detail
    saying why); an evaluation that had replies for the judge is "stopped" with the judge's reason,
    since its numbers are not the judged ones the run asked for; exit 3. Fixing the judge and
    re-running sends only the judge's requests."""
    from cytoreg.models.openai_api import OpenAIChat

    with FakeOpenAI(_reply) as srv:
        d = tmp_path / "specs"
        d.mkdir()
        (d / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 3}\n"
                                      "settings: [zero_shot]\n")
        for name in ("vlm", "cleaner"):
            (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}\nadapter: openai\n"
                                            f"params: {{model: {name}, base_url: '{srv.base_url}'}}\n"
                                            "generation: {temperature: 0, max_tokens: 50}\n")
        plain = evaluate(EvalConfig(["small"], ["vlm"], output=tmp_path / "plain", include=[str(d)], progress=False,
                                    bootstrap=20))["evaluations"][0]
        cfg = EvalConfig(["small"], ["vlm"], output=tmp_path / "run", include=[str(d)], progress=False, bootstrap=20,
                         judge="cleaner", cache=tmp_path / "plain" / "cache.sqlite")
        _fail_load(monkeypatch, OpenAIChat, "cleaner", "model 'cleaner': the variable OPENAI_API_KEY is no longer set")
        n = len(srv.requests)
        res = evaluate(cfg)
        assert len(srv.requests) == n  # replies from the cache, nothing sent to the judge
        reason = f"model 'cleaner' stopped at {srv.base_url}: load failed: the variable OPENAI_API_KEY is no longer set"
        assert res["models"]["cleaner (judge)"]["stopped_reason"] == reason
        ev = res["evaluations"][0]
        assert ev["status"] == "stopped" and ev["stopped_reason"] == f"judge {reason}" and exit_status(res) == 3
        assert (ev["metrics"], ev["ci"], ev["matched_by"]) == (plain["metrics"], plain["ci"], plain["matched_by"])
        vague = [r for r in _samples(tmp_path / "run", "vlm") if r["response"].startswith("Hard to say")]
        assert vague and all(r["match"] == "invalid" and r["error"] is None and r["judge_response"] is None
                             and f"judge failed: not sent: {reason}" in r["match_detail"] for r in vague)
        monkeypatch.undo()
        fixed = evaluate(cfg)
        assert len(srv.requests) == n + len(vague) and all(r["model"] == "cleaner" for r in srv.requests[n:])
        assert fixed["evaluations"][0]["status"] == "complete" and exit_status(fixed) == 0
        assert fixed["evaluations"][0]["matched_by"].get("judge", 0) > 0


def test_a_shard_records_the_models_it_stopped(tmp_path, monkeypatch):
    """A shard (``--shard I/N``) scores nothing, so its manifest names the stopped models (the CLI
    exits 3); the merge loads the model again and stops it there if it still cannot load."""
    from cytoreg.models.openai_api import OpenAIChat

    with FakeOpenAI(oracle) as srv:
        d = specs(tmp_path, srv.base_url, per_class=1)
        _fail_load(monkeypatch, OpenAIChat, "fake", "model 'fake': weights gone")
        manifest = evaluate(EvalConfig(["small"], ["fake", "prior"], output=tmp_path / "s0", include=[str(d)],
                                       progress=False, bootstrap=0, shard=(0, 2)))
        assert srv.requests == []
    assert manifest["stopped"] == {"fake": f"model 'fake' stopped at {srv.base_url}: load failed: weights gone"}
    assert json.loads((tmp_path / "s0" / "shard.json").read_text())["stopped"] == manifest["stopped"]


@pytest.mark.torch
def test_a_part_loaded_lazily_that_cannot_load_stops_the_model_too(tmp_path, monkeypatch):
    """load() passed, but the text side (loaded on first use by some adapters) raises ModelLoadError."""
    pytest.importorskip("open_clip")
    from tiny_clip import save_tiny_clip
    from cytoreg.models.open_clip_adapter import OpenCLIP

    save_tiny_clip(tmp_path / "tiny")
    d = tmp_path / "specs"
    d.mkdir()
    (d / "tiny.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                 f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\nexecution: {{workers: 0}}\n")
    (d / "small.yaml").write_text("spec: task/v1\nname: small-clip\nextends: demo\nsampling: {test_per_class: 1}\n")

    def encode_texts(self, texts):
        raise ModelLoadError(f"model '{self.name}': the tokenizer file is missing; put it back")

    monkeypatch.setattr(OpenCLIP, "encode_texts", encode_texts)
    res = evaluate(EvalConfig(["small-clip"], ["tiny-clip", "random"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=0))
    evs = _by_model(res)
    reason = "model 'tiny-clip' stopped: load failed: the tokenizer file is missing; put it back"
    _assert_stopped(evs["tiny-clip"], reason)
    assert evs["random"]["status"] == "complete" and exit_status(res) == 3
    assert {r["error"] for r in _samples(tmp_path / "run", "tiny-clip")} == {f"not sent: {reason}"}


def test_batched_generator_whose_lazy_load_fails_is_stopped_after_one_batch():
    """A local (batched) generator raising ModelLoadError from a batch: that batch's samples carry the
    error, the model is stopped at once (not after ``circuit_breaker`` failures), the rest are not sent."""
    from cytoreg.engine.breaker import Breaker
    from cytoreg.engine.execute import CallStats, run_generator
    from cytoreg.models.base import ChatRequest, Message, TextPart

    class Local:
        name, mode, batch_size, calls = "local-vlm", "batched", 2, 0

        def generate_batch(self, chunk):
            self.calls += 1
            raise ModelLoadError("model 'local-vlm': processor files missing from /m; download them again")

    model, breaker, got = Local(), Breaker("local-vlm"), {}
    reqs = [ChatRequest([Message("user", [TextPart(f"q{i}")])], {}) for i in range(5)]
    run_generator(model, reqs, lambda i, r: got.__setitem__(i, r), CallStats(), breaker=breaker)
    reason = "model 'local-vlm' stopped: load failed: processor files missing from /m; download them again"
    assert model.calls == 1 and breaker.reason == reason
    assert all(got[i].error.startswith("ModelLoadError: model 'local-vlm': processor files") for i in range(2))
    assert [got[i].error for i in range(2, 5)] == [f"not sent: {reason}"] * 3
