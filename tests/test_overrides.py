"""Command-line overrides: --settings, -M, -T, --set, --config change the run as stated, are
recorded in results.json with their hash in the run identity, and a wrong path is one clean error."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.errors import SpecError
from cytoreg.registry.catalog import Catalog
from cytoreg.registry.overrides import DELETE, Overrides, apply, parse_value
from cytoreg.report.results import validate_results


def run_cli(*args, env_extra=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("OPENAI_API_KEY", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cytoreg", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def fake_spec(tmp_path: Path, url: str) -> Path:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "fake.yaml").write_text(f"spec: model/v1\nname: fake\nadapter: openai\nparams: {{model: fake-vlm, base_url: '{url}'}}\n"
                                 "generation: {temperature: 0, max_tokens: 20}\n"
                                 "execution: {concurrency: 4, max_retries: 1, initial_backoff: 0.01}\n")
    return d


def test_parse_value_types():
    assert parse_value("0.2") == 0.2 and parse_value("3") == 3 and parse_value("true") is True
    assert parse_value("[a, b]") == ["a", "b"] and parse_value("gpt-4o-mini") == "gpt-4o-mini"
    assert parse_value("null") is DELETE and parse_value("http://x:1/v1") == "http://x:1/v1"


def test_overrides_patch_specs_and_change_hash():
    cat = Catalog.load()
    before = cat.task("demo").hash, cat.model("gpt4o").hash
    changed = apply(cat, ["demo"], ["gpt4o", "random"], Overrides(
        model_args=["temperature=0.2,model=gpt-4o-mini", "generation.tries=3"], task_args=["test_per_class=4"],
        sets=["task.demo.statistics.bootstrap=50"]))
    assert changed == ["model.gpt4o", "model.random", "task.demo"]
    g = cat.model("gpt4o").data
    assert g["generation"] == {"temperature": 0.2, "max_tokens": 256, "seed": 0, "tries": 3}
    assert g["params"]["model"] == "gpt-4o-mini"
    # generation keys are model-schema keys: every model of the run gets them (harmless for baselines)
    assert cat.model("random").data["generation"] == {"temperature": 0.2, "tries": 3}
    t = cat.task("demo").data
    assert t["sampling"]["test_per_class"] == 4 and t["statistics"]["bootstrap"] == 50
    assert (cat.task("demo").hash, cat.model("gpt4o").hash) != before


def test_null_deletes_and_bare_keys_go_only_where_they_exist():
    cat = Catalog.load()
    apply(cat, ["demo"], ["gpt4o", "conch"], Overrides(model_args=["base_url=http://127.0.0.1:1/v1"],
                                                      sets=["task.demo.aliases=null"]))
    assert cat.model("gpt4o").data["params"]["base_url"] == "http://127.0.0.1:1/v1"
    assert "base_url" not in cat.model("conch").data["params"]
    assert "aliases" not in cat.task("demo").data


@pytest.mark.parametrize("ov, fragments", [
    (Overrides(sets=["task.demo.sampling.test_per_clas=10"]),
     ["--set task.demo.sampling.test_per_clas=10 (task 'demo'): sampling.test_per_clas: unknown key",
      "did you mean 'test_per_class'"]),
    (Overrides(model_args=["temperatur=0.2"]), ["-M temperatur=0.2: model 'gpt4o'", "did you mean 'temperature'"]),
    (Overrides(task_args=["sampling.test_per_class=many"]), ["-T sampling.test_per_class=many (task 'demo'): sampling.test_per_class: 'many' is not valid"]),
    (Overrides(sets=["task.dem.sampling.seed=1"]), ["task 'dem' is not part of this run", "did you mean 'demo'"]),
    (Overrides(sets=["sampling.seed=1"]), ["expected model.NAME.path=value or task.NAME.path=value"]),
    (Overrides(model_args=["params.image_detail=huge"]), ["params.image_detail: 'huge' is not one of"]),
])
def test_wrong_override_is_one_error_naming_the_path(ov, fragments):
    with pytest.raises(SpecError) as err:
        apply(Catalog.load(), ["demo"], ["gpt4o"], ov)
    assert len(err.value.problems) == 1, err.value.problems
    for f in fragments:
        assert f in err.value.problems[0]


def test_cli_wrong_dot_path_is_one_clean_error(tmp_path):
    out = run_cli("eval", "--tasks", "demo", "--models", "random", "-o", str(tmp_path),
                  "--set", "task.demo.sampling.test_per_clas=10")
    assert out.returncode == 2
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "sampling.test_per_clas: unknown key 'test_per_clas' — did you mean 'test_per_class'" in lines[0]


def test_each_override_changes_the_run_and_is_recorded(tmp_path):
    with FakeOpenAI(lambda body: "Lymphocyte") as srv:
        inc = fake_spec(tmp_path, srv.base_url)
        base = evaluate(EvalConfig(["demo"], ["fake"], output=tmp_path / "a", include=[str(inc)], progress=False,
                                   bootstrap=20, overrides={"task_args": ["sampling.test_per_class=2"]}))
        n_base = len(srv.requests)
        # defaults: demo runs zero_shot and few_shot, 2 per class x 11 labels each
        assert [(e["setting"], e["n"]) for e in base["evaluations"]] == [("zero_shot", 22), ("few_shot", 22)]
        assert n_base == 44
        assert {r["temperature"] for r in srv.requests} == {0}
        res = evaluate(EvalConfig(["demo"], ["fake"], output=tmp_path / "b", include=[str(inc)], progress=False,
                                  bootstrap=20, settings=["zero_shot"],
                                  overrides={"model_args": ["temperature=0.2", "model=other-vlm"],
                                             "task_args": ["sampling.test_per_class=2"],
                                             "set": ["task.demo.sampling.seed=7"]}))
    sent = srv.requests[n_base:]
    assert [(e["setting"], e["n"]) for e in res["evaluations"]] == [("zero_shot", 22)]
    assert len(sent) == 22
    assert {r["temperature"] for r in sent} == {0.2} and {r["model"] for r in sent} == {"other-vlm"}
    assert res["tasks"]["demo"]["sample_ids"]["test"] != base["tasks"]["demo"]["sample_ids"]["test"]  # seed 7
    assert res["config"]["settings"] == ["zero_shot"]
    assert res["config"]["overrides"] == {"model_args": ["temperature=0.2", "model=other-vlm"],
                                          "task_args": ["sampling.test_per_class=2"],
                                          "set": ["task.demo.sampling.seed=7"]}
    assert res["config"]["overrides_hash"] != base["config"]["overrides_hash"]
    assert res["run_id"] != base["run_id"]
    assert validate_results(res) == []


def test_config_file_holds_the_flags(tmp_path):
    with FakeOpenAI(lambda body: "Basophil") as srv:
        inc = fake_spec(tmp_path, srv.base_url)
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"tasks: [demo]\nmodels: fake,random\nsettings: [few_shot]\ninclude: [{inc}]\n"
                       "model_args: {temperature: 0.5}\ntask_args: {sampling.test_per_class: 1}\n"
                       "set: ['task.demo.statistics.bootstrap=30']\nno_progress: true\n"
                       f"output: {tmp_path / 'out'}\n")
        out = run_cli("eval", "--config", str(cfg))
        assert out.returncode == 0, out.stderr
        res = json.loads((tmp_path / "out" / "results.json").read_text())
        assert len(srv.requests) == 11 and {r["temperature"] for r in srv.requests} == {0.5}
    # random has no few_shot setting: it is skipped (a note), fake runs few_shot only
    assert [(e["model"], e["setting"], e["n"]) for e in res["evaluations"]] == [("fake", "few_shot", 11)]
    assert res["config"]["config_file"] == str(cfg.resolve())
    assert res["config"]["overrides"]["model_args"] == ["temperature=0.5"]
    assert res["evaluations"][0]["ci"]["f1_weighted"]["resamples"] == 30
    # a flag on the command line wins over the file
    out = run_cli("eval", "--config", str(cfg), "--settings", "zero_shot", "--models", "random", "--check")
    assert out.returncode == 0, out.stderr
    assert "random" in out.stdout and "zero_shot" in out.stdout


def test_config_file_unknown_key(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("tasks: [demo]\nmodel: random\n")
    out = run_cli("eval", "--config", str(cfg))
    assert out.returncode == 2
    assert "run.yaml: model: not an eval option — did you mean 'models'" in out.stderr


def test_settings_nobody_offers_is_an_error(tmp_path):
    out = run_cli("eval", "--tasks", "demo", "--models", "random", "--settings", "few_shot", "-o", str(tmp_path))
    assert out.returncode == 2
    assert "--settings few_shot: no task × model of this run offers it (offered: zero_shot)" in out.stderr
