"""The run loop end to end: results schema, retries against a real local HTTP server,
concurrency cap, cache hits, and a SIGKILL partway that resumes without losing or repeating work."""
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, image_hashes
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.report.results import validate_results

PBC = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc/PBC_dataset_normal_DIB"
PREFIX = {"BNE": "Band Neutrophil", "SNE": "Segmented Neutrophil", "MY": "Myelocyte", "MMY": "Metamyelocyte",
          "PMY": "Promyelocyte", "BA": "Basophil", "EO": "Eosinophil", "ERB": "Erythroblast", "LY": "Lymphocyte",
          "MO": "Monocyte", "PLATELET": "Platelet"}
LABEL_BY_SHA = {hashlib.sha256(p.read_bytes()).hexdigest(): PREFIX.get(p.name.split("_")[0])
                for p in PBC.rglob("*.jpg")}


def oracle(body: dict) -> str:
    """Correct for two thirds of the images, a verbose wrong answer otherwise; query image = last."""
    sha = image_hashes(body)[-1]
    label = LABEL_BY_SHA[sha]
    return f"**{label}**" if int(sha, 16) % 3 else "This looks like a lymphocyte to me."


def specs(tmp_path: Path, url: str, per_class: int = 3, concurrency: int = 4) -> Path:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "small.yaml").write_text(f"spec: task/v1\nname: small\nextends: demo\nsampling: {{test_per_class: {per_class}}}\n"
                                  "settings: [zero_shot]\n")
    (d / "fake.yaml").write_text(f"spec: model/v1\nname: fake\nadapter: openai\nparams: {{model: fake-vlm, base_url: '{url}'}}\n"
                                 "generation: {temperature: 0, max_tokens: 20, seed: 3}\n"
                                 f"execution: {{concurrency: {concurrency}, max_retries: 4, initial_backoff: 0.01, max_backoff: 0.05}}\n")
    return d


def test_demo_baselines_results_validate_and_match_sklearn(tmp_path):
    from sklearn.metrics import f1_score

    res = evaluate(EvalConfig(["demo"], ["random", "prior"], output=tmp_path, progress=False, bootstrap=200))
    assert validate_results(res) == []
    assert validate_results(json.loads((tmp_path / "results.json").read_text())) == []
    lines = [json.loads(l) for l in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 407
    for ev in res["evaluations"]:
        rows = [l for l in lines if l["model"] == ev["model"]]
        f1 = f1_score([r["label"] for r in rows], [r["parsed"] for r in rows], average="weighted")
        assert ev["metrics"]["f1_weighted"] == pytest.approx(f1)
        ci = ev["ci"]["f1_weighted"]
        assert ci["low"] <= ev["metrics"]["f1_weighted"] <= ci["high"]
    assert res["tasks"]["demo"]["sample_ids"]["test"] == [r["id"] for r in lines if r["model"] == "random"]
    # the same seed gives the same ids and the same guesses
    again = evaluate(EvalConfig(["demo"], ["random"], output=tmp_path / "again", progress=False, bootstrap=10))
    assert again["tasks"]["demo"]["sample_ids"] == res["tasks"]["demo"]["sample_ids"]
    assert again["evaluations"][0]["metrics"]["accuracy"] == res["evaluations"][0]["metrics"]["accuracy"]


def test_openai_payload_retries_and_cache(tmp_path):
    with FakeOpenAI(oracle, script=[429, 500], retry_after="0") as srv:
        d = specs(tmp_path, srv.base_url, per_class=2)
        cfg = EvalConfig(["small"], ["fake"], output=tmp_path / "run", include=[str(d)], progress=False,
                         bootstrap=50, concurrency=1)
        res = evaluate(cfg)
        ev = res["evaluations"][0]
        assert srv.statuses[:3] == [429, 500, 200]
        assert ev["requests"]["retries"] == 2 and ev["requests"]["failed"] == 0
        assert ev["requests"]["by_status"] == {"429": 1, "500": 1, "ok": 22}
        assert ev["errors"] == 0 and ev["n"] == 22
        body = srv.requests[-1]
        assert body["model"] == "fake-vlm" and body["temperature"] == 0 and body["max_tokens"] == 20 and body["seed"] == 3
        content = body["messages"][0]["content"]
        assert [p["type"] for p in content] == ["text", "image_url"]
        from cytoreg.registry.catalog import Catalog

        assert content[0]["text"] == Catalog.load().task("acevedo").get("prompts")["zero_shot"]
        assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        samples = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
        assert all(s["parsed"] == s["label"] or s["match"] == "conclusion" for s in samples)
        assert ev["usage"]["total_tokens"] == 13 * 22
        n = len(srv.requests)
        res2 = evaluate(cfg)
        assert len(srv.requests) == n  # everything from cache
        assert res2["evaluations"][0]["requests"]["cached"] == 22
        assert res2["evaluations"][0]["metrics"] == ev["metrics"]


def test_failures_are_recorded_not_invented(tmp_path):
    with FakeOpenAI(oracle, script=[500] * 50) as srv:
        d = specs(tmp_path, srv.base_url, per_class=1, concurrency=2)
        res = evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "run", include=[str(d)], progress=False,
                                  bootstrap=20, circuit_breaker=0))
        ev = res["evaluations"][0]
        assert ev["errors"] == ev["requests"]["failed"] == ev["n_errors"] > 0
        assert ev["n"] == ev["n_answered"] == ev["n_attempted"] - ev["n_errors"]
        assert ev["status"] == "incomplete" and ev["coverage"] == ev["n_answered"] / ev["n_attempted"]
        samples = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
        failed = [s for s in samples if s["error"]]
        assert failed and all(s["parsed"] is None and "gave up after 5 attempts" in s["error"] for s in failed)


def test_concurrency_cap_is_respected(tmp_path):
    with FakeOpenAI(oracle, latency=0.05) as srv:
        d = specs(tmp_path, srv.base_url, per_class=3, concurrency=3)
        evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "run", include=[str(d)], progress=False, bootstrap=10))
        assert srv.max_in_flight == 3


def _cli(args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "cytoreg.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_partway_then_resume_loses_nothing_and_repeats_nothing(tmp_path):
    with FakeOpenAI(oracle, latency=0.03) as srv:
        d = specs(tmp_path, srv.base_url, per_class=5, concurrency=2)
        args = ["eval", "--tasks", "small", "--models", "fake", "--include", str(d), "--no-progress",
                "--bootstrap", "20"]
        proc = _cli(args + ["-o", str(tmp_path / "crash")])
        deadline = time.time() + 120
        while len(srv.statuses) < 20 and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        with sqlite3.connect(tmp_path / "crash" / "cache.sqlite") as db:
            cached = {r[0] for r in db.execute("SELECT sample_id FROM responses")}
        assert 10 <= len(cached) < 55
        time.sleep(0.3)  # requests the killed process sent may still be arriving at the server
        while srv.in_flight:
            time.sleep(0.01)
        first_run = len(srv.requests)
        proc = _cli(args + ["-o", str(tmp_path / "crash")])
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        resumed = srv.requests[first_run:]
        sent_again = {image_hashes(b)[-1] for b in resumed}
        by_sha = {hashlib.sha256((PBC / sid).read_bytes()).hexdigest(): sid for sid in cached}
        assert not sent_again & set(by_sha), "a cached sample was requested again"
        assert len(resumed) == 55 - len(cached)

        proc = _cli(args + ["-o", str(tmp_path / "clean")])
        proc.communicate(timeout=300)
        crash = json.loads((tmp_path / "crash" / "results.json").read_text())
        clean = json.loads((tmp_path / "clean" / "results.json").read_text())
        assert crash["tasks"]["small"]["sample_ids"] == clean["tasks"]["small"]["sample_ids"]
        assert crash["evaluations"][0]["metrics"] == clean["evaluations"][0]["metrics"]
        assert crash["evaluations"][0]["ci"] == clean["evaluations"][0]["ci"]
