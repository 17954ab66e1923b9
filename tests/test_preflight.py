"""Preflight: the mission command lists every problem at once and sends nothing; with the layout
fixtures, a tiny CONCH and a local OpenAI-compatible server it runs end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from cytoreg.engine.preflight import run_preflight
from cytoreg.registry.catalog import Catalog
from cytoreg.scoring import EvalConfig

MISSION = ["eval", "--tasks", "hicervix,bmc", "--models", "conch,gpt4o"]


def bare_env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), CYTOREG_DATA=str(tmp_path / "nodata"))
    for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CONCH_CHECKPOINT", "HF_HUB_CACHE"):
        env.pop(k, None)
    env.update(extra)
    return env


def cli(args, env):
    return subprocess.run([sys.executable, "-m", "cytoreg", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_mission_with_nothing_set_up_lists_every_problem_and_sends_nothing(tmp_path):
    env = bare_env(tmp_path)
    out = cli(MISSION + ["-o", str(tmp_path / "run")], env)
    assert out.returncode == 2
    errors = [l for l in out.stderr.splitlines() if l.startswith("error ")]
    cats = [l.split()[1] for l in errors[:-1]]
    assert cats == ["[data]", "[data]", "[weights]", "[key]"], out.stderr
    assert f"looked for {tmp_path / 'nodata'}/hicervix" in errors[0]
    assert f"looked for {tmp_path / 'nodata'}/bmc/BM_cytomorphology_data" in errors[1]
    assert "models--MahmoodLab--conch" in errors[2] and "hf download MahmoodLab/conch" in errors[2]
    assert "OPENAI_API_KEY is not set" in errors[3]
    assert "nothing was loaded or sent" in errors[4]
    assert not (tmp_path / "run" / "cache.sqlite").exists()
    # --check: the same problems, exit 1; pointed at a live server, still not one request
    with FakeOpenAI() as srv:
        out = cli(MISSION + ["--check", "-M", f"base_url={srv.base_url}", "-o", str(tmp_path / "run")], env)
        assert out.returncode == 1
        assert "problem [data]" in out.stdout and "problem [weights]" in out.stdout
        assert "problem [key]" not in out.stdout  # a base_url needs no key
        out = cli(MISSION + ["-M", f"base_url={srv.base_url}", "-o", str(tmp_path / "run")], env)
        assert out.returncode == 2
        assert srv.requests == []


def test_empty_few_shot_pool_is_found_before_any_request(tmp_path):
    from cytoreg.fixtures import build_all

    data = build_all(tmp_path / "data")
    os.environ["CYTOREG_DATA"] = str(data)
    try:
        cfg = EvalConfig(["hicervix", "bmc"], ["gpt4o"], output=tmp_path / "run",
                         overrides={"model_args": ["base_url=http://127.0.0.1:9/v1"]})
        rep = run_preflight(cfg, Catalog.load(), explicit=True)
    finally:
        del os.environ["CYTOREG_DATA"]
    assert [(p.category, p.message.split(":")[0]) for p in rep.problems] == [
        ("few-shot", "task 'hicervix'"), ("few-shot", "task 'bmc'")]
    # the estimate: n test samples per setting, tokens and a cost from the spec's pricing
    work = {(w.task, w.setting): w for w in rep.work}
    n_hicervix = 76  # the fixture's 3 per class (2 for the two rarest classes) × 26 classes
    assert work[("hicervix", "zero_shot")].requests == n_hicervix
    assert work[("hicervix", "zero_shot")].tokens_out == n_hicervix * 256
    w = work[("hicervix", "zero_shot")]
    assert w.cost_usd == round(w.tokens_in / 1e6 * 2.5 + w.tokens_out / 1e6 * 10.0, 4)


@pytest.mark.slow
def test_mission_end_to_end_with_fixtures_tiny_conch_and_local_server(tmp_path):
    pytest.importorskip("conch.open_clip_custom")
    from cytoreg.fixtures import build_all
    from tiny_clip import save_tiny_conch

    data = build_all(tmp_path / "data")
    cfg_path, ckpt = save_tiny_conch(tmp_path / "conch")
    env = bare_env(tmp_path, CYTOREG_DATA=str(data), CONCH_CHECKPOINT=str(ckpt))
    with FakeOpenAI(lambda body: "Lymphocyte") as srv:
        args = MISSION + ["-M", f"base_url={srv.base_url}", "--set", f"model.conch.params.model={cfg_path}",
                          "-T", "sampling.test_per_class=2", "--bootstrap", "50", "--no-progress",
                          "-o", str(tmp_path / "run")]
        out = cli(args + ["--check"], env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert srv.requests == []
        out = cli(args, env)
        assert out.returncode == 0, out.stderr
        res = json.loads((tmp_path / "run" / "results.json").read_text())
        got = [(e["task"], e["model"], e["setting"]) for e in res["evaluations"]]
        assert got == [("hicervix", "conch", "zero_shot"), ("bmc", "conch", "zero_shot"),
                       ("hicervix", "gpt4o", "zero_shot"), ("hicervix", "gpt4o", "few_shot"),
                       ("bmc", "gpt4o", "zero_shot"), ("bmc", "gpt4o", "few_shot")]
        n_api = sum(e["n"] for e in res["evaluations"] if e["model"] == "gpt4o")
        assert len(srv.requests) == n_api
        assert all(e["errors"] == 0 for e in res["evaluations"])
    assert res["config"]["overrides"]["set"] == [f"model.conch.params.model={cfg_path}"]
