"""Trustworthy numbers (issue 15): errors are not answers, dead endpoints stop at once, limits are
stratified samples, cache keys mean the request, interrupts keep what arrived, one run per folder."""
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fake_openai import FakeOpenAI, image_hashes
from test_engine import LABEL_BY_SHA, PBC, oracle, specs
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.report.results import validate_results

SECRET = "sk-test-SECRET-0123456789"


def cli(args, cwd=None, env=None, **kw):
    e = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OPENAI_API_KEY=SECRET, **(env or {}))
    e["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), e.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "cytoreg.cli", *args], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, **kw)


def model_spec(d: Path, name: str, url: str, model: str = "fake-vlm", extra: str = "") -> None:
    (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}\nadapter: openai\n"
                                    f"params: {{model: {model}, base_url: '{url}'}}\n{extra}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fail fast -----------------------------------------------------------------------------------

def test_dead_endpoints_stop_within_seconds_name_the_cause_and_score_nothing(tmp_path):
    """401, 404 (unknown model), connection refused and DNS failure: four models in one run, each
    stopped after its first wave of requests, with one message naming model, endpoint and fix; the
    baseline beside them still runs; exit 3; no score for the dead ones; the key never written."""
    with FakeOpenAI(script=[401] * 1000) as s401, FakeOpenAI(script=[404] * 1000) as s404:
        d = specs(tmp_path, s401.base_url, per_class=4)
        model_spec(d, "auth", s401.base_url, extra="execution: {concurrency: 2}\n")
        model_spec(d, "nomodel", s404.base_url, model="no-such-model", extra="execution: {concurrency: 2}\n")
        refused = f"http://127.0.0.1:{free_port()}/v1"
        model_spec(d, "refused", refused)
        model_spec(d, "nodns", "http://cytoreg-test-host.invalid/v1")
        t0 = time.perf_counter()
        p = cli(["eval", "--tasks", "small", "--models", "auth,nomodel,refused,nodns,prior", "--include", str(d),
                 "--no-progress", "--bootstrap", "20", "-o", str(tmp_path / "run")])
        out, err = p.communicate(timeout=120)
        wall = time.perf_counter() - t0
        assert p.returncode == 3, err
        assert wall < 30, wall  # before: ~4 min per unreachable model (7 tries × backoff per sample)
        assert len(s401.requests) <= 2 and len(s404.requests) <= 2  # one wave of `concurrency`, then stop
    lines = [l for l in err.splitlines() if l.startswith("error: model")]
    assert len(lines) == 4, err
    by_model = {l.split("'")[1]: l for l in lines}
    assert "HTTP 401" in by_model["auth"] and "authentication failed" in by_model["auth"]
    assert s401.base_url in by_model["auth"] and "OPENAI_API_KEY" in by_model["auth"]
    assert "HTTP 404" in by_model["nomodel"] and "params.model ('no-such-model')" in by_model["nomodel"]
    assert "connection refused" in by_model["refused"] and refused in by_model["refused"]
    assert "start the server" in by_model["refused"]
    assert "DNS failure" in by_model["nodns"] and "cytoreg-test-host.invalid" in by_model["nodns"]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert validate_results(res) == []
    for ev in res["evaluations"]:
        if ev["model"] == "prior":
            assert ev["status"] == "complete" and ev["coverage"] == 1.0 and ev["metrics"]["f1_weighted"] >= 0
            continue
        assert ev["status"] == "stopped" and ev["n_answered"] == 0 and ev["coverage"] == 0.0
        assert ev["metrics"] == {} and ev["ci"] == {} and ev["n"] == 0, "a stopped model must show no score"
        assert ev["stopped_reason"] == by_model[ev["model"]][len("error: "):]
        assert res["models"][ev["model"]]["stopped_reason"]
    samples = (tmp_path / "run" / "samples.jsonl").read_text()
    assert "not sent: model 'refused' stopped" in samples
    for text in (out, err, samples, json.dumps(res)):
        assert SECRET not in text
    assert "0.000 [0.000, 0.000]" not in out and "STOPPED 0%" in out


def test_missing_key_is_refused_before_anything_is_sent(tmp_path):
    """The preflight (merged from main) refuses a missing key before any model runs: exit 2, the
    variable named, no results that could pass for a run. (A key that goes missing after the
    preflight stops only that model: the runner's ModelLoadError path.)"""
    d = tmp_path / "specs"
    d.mkdir()
    (d / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 1}\n")
    (d / "paid.yaml").write_text("spec: model/v1\nname: paid\nadapter: openai\n"
                                 "params: {model: gpt-4o, api_key_env: CYTOREG_TEST_NO_SUCH_KEY}\n")
    p = cli(["eval", "--tasks", "small", "--models", "paid,random", "--include", str(d), "--no-progress",
             "--bootstrap", "10", "-o", str(tmp_path / "run")])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    assert "CYTOREG_TEST_NO_SUCH_KEY is not set" in err and not (tmp_path / "run" / "results.json").exists()


def test_circuit_breaker_stops_after_k_consecutive_failures_of_one_kind(tmp_path):
    with FakeOpenAI(oracle, status_for=lambda body: 500) as srv:
        d = specs(tmp_path, srv.base_url, per_class=3, concurrency=1)
        res = evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "run", include=[str(d)], progress=False,
                                  bootstrap=10, circuit_breaker=3))
    ev = res["evaluations"][0]
    assert len(srv.requests) == 3  # three 500s in a row, then nothing more
    assert ev["status"] == "stopped" and "3 consecutive failures of the same kind (HTTP 500)" in ev["stopped_reason"]


def test_rate_limits_are_retried_not_counted_by_the_breaker(tmp_path):
    with FakeOpenAI(oracle, script=[429] * 4, retry_after="0") as srv:
        d = specs(tmp_path, srv.base_url, per_class=1, concurrency=1)
        res = evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "run", include=[str(d)], progress=False,
                                  bootstrap=10, circuit_breaker=2))
    ev = res["evaluations"][0]
    assert ev["status"] == "complete" and ev["requests"]["retries"] == 4


# -- errors vs answers ------------------------------------------------------------------------------

def half_failing(body: dict) -> int:
    return 400 if int(image_hashes(body)[-1], 16) % 2 else 200


def test_half_failing_run_is_incomplete_everywhere_and_scored_on_answers_only(tmp_path):
    from sklearn.metrics import accuracy_score, f1_score

    with FakeOpenAI(oracle, status_for=half_failing) as srv:
        url = srv.base_url
        d = specs(tmp_path, srv.base_url, per_class=4)
        p = cli(["eval", "--tasks", "small", "--models", "fake", "--include", str(d), "--no-progress",
                 "--bootstrap", "50", "--circuit-breaker", "0", "-o", str(tmp_path / "run")])
        out, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    ev = res["evaluations"][0]
    rows = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r["error"]]
    answered = [r for r in rows if not r["error"]]
    assert failed and answered and all("HTTP 400" in r["error"] and r["correct"] is None for r in failed)
    assert ev["n_attempted"] == len(rows) == 44 and ev["n_errors"] == ev["errors"] == len(failed)
    assert ev["n"] == ev["n_answered"] == len(answered)
    assert ev["coverage"] == pytest.approx(len(answered) / 44) and 0.3 < ev["coverage"] < 0.7
    assert ev["status"] == "incomplete" and ev["stopped_reason"] is None
    y, pred = [r["label"] for r in answered], [r["parsed"] or "__invalid__" for r in answered]
    assert ev["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert ev["metrics"]["f1_weighted"] == pytest.approx(
        f1_score(y, pred, labels=res["tasks"]["small"]["labels"], average="weighted", zero_division=0))
    assert f"INCOMPLETE {ev['coverage']:.0%}" in out and f"{len(answered)}/44" in out
    # with a lower bar the same answers are complete (the errors, never cached, are asked again)
    with FakeOpenAI(oracle, status_for=half_failing) as srv:
        (d / "fake.yaml").write_text((d / "fake.yaml").read_text().replace(url, srv.base_url))
        p = cli(["eval", "--tasks", "small", "--models", "fake", "--include", str(d), "--no-progress", "--bootstrap",
                 "50", "--min-coverage", "0.3", "--circuit-breaker", "0", "-o", str(tmp_path / "run2"), "--cache",
                 str(tmp_path / "run/cache.sqlite")])
        out, err = p.communicate(timeout=120)
        assert len(srv.requests) == len(failed)
    res2 = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert res2["evaluations"][0]["status"] == "complete" and p.returncode == 0, err


def _corrupt_dataset(root: Path) -> Path:
    """4 real images per class plus 4 files that do not decode, in the PBC layout."""
    data = root / "pbc"
    for cls_dir in sorted(PBC.iterdir()):
        (data / cls_dir.name).mkdir(parents=True)
        for f in sorted(cls_dir.glob("*.jpg"))[:4]:
            (data / cls_dir.name / f.name).write_bytes(f.read_bytes())
    for name in ("lymphocyte/LY_broken1.jpg", "monocyte/MO_broken2.jpg", "basophil/BA_broken3.jpg",
                 "eosinophil/EO_broken4.jpg"):
        (data / name).write_bytes(b"\xff\xd8\xff this is not a jpeg")
    return data


@pytest.mark.torch
def test_auc_and_ece_with_errors_equal_sklearn_on_answered_samples(tmp_path):
    pytest.importorskip("open_clip")
    from sklearn.metrics import roc_auc_score

    from tiny_clip import save_tiny_clip

    save_tiny_clip(tmp_path / "tiny")
    data = _corrupt_dataset(tmp_path)
    d = tmp_path / "specs"
    d.mkdir()
    (d / "tiny.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                 f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\nexecution: {{workers: 0}}\n")
    (d / "broken.yaml").write_text(f"spec: task/v1\nname: broken\nextends: demo\ndata: {{root: '{data}'}}\n"
                                   "sampling: {test_per_class: all, fewshot_per_class: 0, order: [test]}\nsettings: [zero_shot]\n"
                                   "metrics: [accuracy, f1_weighted, auc_macro, auc_per_class, ece]\n"
                                   "prompts:\n  clip:\n    templates: ['an image of {label}']\n")
    res = evaluate(EvalConfig(["broken"], ["tiny-clip"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=20, device="cpu"))
    ev = res["evaluations"][0]
    rows = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    ok = [r for r in rows if not r["error"]]
    assert sorted(r["id"] for r in rows if r["error"]) == ["basophil/BA_broken3.jpg", "eosinophil/EO_broken4.jpg",
                                                           "lymphocyte/LY_broken1.jpg", "monocyte/MO_broken2.jpg"]
    assert ev["n_attempted"] == len(rows) and ev["n"] == len(ok) == len(rows) - 4 and ev["n_errors"] == 4
    assert ev["status"] == "incomplete" and ev["coverage"] == pytest.approx(len(ok) / len(rows))
    labels = res["tasks"]["broken"]["labels"]
    scores = np.array([[r["response"][lab] for lab in labels] for r in ok])
    y = np.array([labels.index(r["label"]) for r in ok])
    per = {lab: roc_auc_score(y == k, scores[:, k]) for k, lab in enumerate(labels) if 0 < (y == k).sum() < len(y)}
    assert ev["metrics"]["auc_macro"] == pytest.approx(np.mean(list(per.values())), abs=1e-4)
    for lab, v in per.items():
        assert ev["metrics"]["auc_per_class"][lab] == pytest.approx(v, abs=1e-4)
    conf, pred = scores.max(axis=1), scores.argmax(axis=1)
    correct = (pred == y).astype(float)
    bins = np.minimum((np.ceil(conf * 15) - 1).clip(0), 14).astype(int)  # (lo, hi] bins, 0 in the first
    ece = sum((bins == b).mean() * abs(correct[bins == b].mean() - conf[bins == b].mean())
              for b in range(15) if (bins == b).any())
    assert ev["metrics"]["ece"] == pytest.approx(ece, abs=1e-4)


# -- limits ---------------------------------------------------------------------------------------

def test_limit_20_on_demo_is_stratified_warned_and_recorded(tmp_path):
    p = cli(["eval", "--tasks", "demo", "--models", "prior", "--limit", "20", "--no-progress", "--bootstrap", "10",
             "-o", str(tmp_path / "run")])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "WARNING: --limit 20" in err and "NOT comparable with full runs" in err and "[/" not in err  # styled, not raw markup
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["limit"] == 20 and res["config"]["limit"] == 20
    counts = res["tasks"]["demo"]["class_counts"]
    assert sum(counts.values()) == 20 and sum(1 for c in counts.values() if c) >= 10
    assert max(counts.values()) - min(c for c in counts.values() if c) <= 1
    full = evaluate(EvalConfig(["demo"], ["random"], output=tmp_path / "full", progress=False, bootstrap=0))
    full_ids = full["tasks"]["demo"]["sample_ids"]["test"]
    ids = res["tasks"]["demo"]["sample_ids"]["test"]
    assert set(ids) <= set(full_ids) and ids == [i for i in full_ids if i in set(ids)]  # a seeded subset
    label = {json.loads(l)["id"]: json.loads(l)["label"] for l in (tmp_path / "full" / "samples.jsonl").open()}
    for lab, k in counts.items():  # per class, the first k of the seeded order
        assert [i for i in ids if label[i] == lab] == [i for i in full_ids if label[i] == lab][:k]
    again = evaluate(EvalConfig(["demo"], ["random"], output=tmp_path / "again", progress=False, bootstrap=0,
                                limit=20))
    assert again["tasks"]["demo"]["sample_ids"]["test"] == ids


# -- cache identity -------------------------------------------------------------------------------

def _run(tmp_path, d, name="run"):
    return evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / name, include=[str(d)], progress=False,
                               bootstrap=0, cache=tmp_path / "cache.sqlite"))


def test_cache_keys_mean_the_request(tmp_path):
    with FakeOpenAI(oracle) as a, FakeOpenAI(oracle) as b:
        d = specs(tmp_path, a.base_url, per_class=2)
        _run(tmp_path, d)
        assert len(a.requests) == 22
        fake = (d / "fake.yaml").read_text()
        # description, tags, execution settings and the local server's port: nothing re-sent
        (d / "fake.yaml").write_text(fake.replace(a.base_url, b.base_url).replace("concurrency: 4", "concurrency: 2")
                                     + "description: another text\ntags: [x]\n")
        res = _run(tmp_path, d, "run2")
        assert len(b.requests) == 0 and res["evaluations"][0]["requests"]["cached"] == 22
        sent = len(b.requests)
        for edit in (lambda t: t.replace("model: fake-vlm", "model: fake-vlm-2"),   # the model as sent
                     lambda t: t.replace("temperature: 0", "temperature: 0.5"),     # a generation setting
                     lambda t: t + "cache_key: server-upgraded\n"):                  # a deliberate bump
            (d / "fake.yaml").write_text(edit(fake.replace(a.base_url, b.base_url)))
            _run(tmp_path, d, f"run{sent}")
            assert len(b.requests) - sent == 22
            sent = len(b.requests)
        (d / "fake.yaml").write_text(fake.replace(a.base_url, b.base_url))
        (d / "small.yaml").write_text((d / "small.yaml").read_text() + "prompts: {zero_shot: 'Which cell is it?'}\n")
        _run(tmp_path, d, "prompt")
        assert len(b.requests) - sent == 22  # another prompt: all re-sent
    p = cli(["cache", "stats", "--cache", str(tmp_path / "cache.sqlite"), "--tasks", "small", "--models", "fake",
             "--include", str(d)])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "would reuse 22 of 22 requests; 0 would be sent" in out
    (d / "small.yaml").write_text((d / "small.yaml").read_text().replace("Which cell", "What cell"))
    p = cli(["cache", "stats", "--cache", str(tmp_path / "cache.sqlite"), "--tasks", "small", "--models", "fake",
             "--include", str(d)])
    out, _ = p.communicate(timeout=120)
    assert "would reuse 0 of 22 requests; 22 would be sent" in out
    # the planned run's overrides count as in the run itself (the plan is the run's own preflight)
    p = cli(["cache", "stats", "--cache", str(tmp_path / "cache.sqlite"), "--tasks", "small", "--models", "fake",
             "--include", str(d), "--set", "task.small.prompts.zero_shot=Which cell is it?"])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "would reuse 22 of 22 requests; 0 would be sent" in out
    p = cli(["cache", "stats", "--cache", str(tmp_path / "cache.sqlite"), "--tasks", "small", "--models", "fake",
             "--include", str(d), "--settings", "few_shot"])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "--settings few_shot" in err  # small offers zero_shot only


def test_remote_hosts_stay_in_the_identity_and_local_ports_do_not(tmp_path):
    from cytoreg.models.failures import remote_host

    assert remote_host("http://127.0.0.1:8000/v1") is None and remote_host("http://localhost:1/v1") is None
    assert remote_host("http://10.1.2.3:8000/v1") is None and remote_host("http://gpu-box:8000/v1") is None
    assert remote_host("https://openrouter.ai/api/v1") == "openrouter.ai"
    from cytoreg.models.anthropic_api import AnthropicChat
    from cytoreg.models.gemini_api import GeminiChat
    from cytoreg.models.openai_api import OpenAIChat
    from cytoreg.registry.specs import Spec

    def identity(cls, adapter, url):  # every API adapter: the same rule
        params = {"model": "m", **({"base_url": url} if url else {})}
        return cls(Spec("model", "x", {"spec": "model/v1", "name": "x", "adapter": adapter, "params": params},
                        "x.yaml", "test")).weights_identity()

    for cls, adapter, host in ((OpenAIChat, "openai", "api.openai.com"), (GeminiChat, "gemini",
                               "generativelanguage.googleapis.com"), (AnthropicChat, "anthropic", "api.anthropic.com")):
        assert identity(cls, adapter, "http://127.0.0.1:8000/v1") == identity(cls, adapter, "http://127.0.0.1:9/v1")
        assert identity(cls, adapter, "http://127.0.0.1:8000") == "m@local"
        assert identity(cls, adapter, "https://gw.example.org/v1") == "m@gw.example.org"
        assert identity(cls, adapter, None) == f"m@{host}"


def test_embedding_identity_ignores_batch_size_and_workers(tmp_path):
    from cytoreg.registry.builtins import ADAPTERS
    from cytoreg.registry.catalog import Catalog

    d = tmp_path / "specs"
    d.mkdir()
    (d / "a.yaml").write_text("spec: model/v1\nname: clip-a\nextends: clip-vit-b32\n"
                              "execution: {batch_size: 3, workers: 0}\ndescription: edited\n")
    (d / "b.yaml").write_text("spec: model/v1\nname: clip-b\nextends: clip-vit-b32\nparams: {precision: fp16}\n")
    cat = Catalog.load([d])
    fps = {}
    for name in ("clip-vit-b32", "clip-a", "clip-b"):
        spec = cat.model(name)
        fps[name] = ADAPTERS.get(spec.get("adapter"))(spec).fingerprint()
    assert fps["clip-vit-b32"] == fps["clip-a"] != fps["clip-b"]


# -- interrupts and concurrency --------------------------------------------------------------------

def _wait(cond, timeout=60.0):
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, "timed out"
        time.sleep(0.02)


def test_ctrl_c_caches_replies_in_flight_and_resume_resends_none(tmp_path):
    with FakeOpenAI(oracle, latency=1.5) as srv:
        d = specs(tmp_path, srv.base_url, per_class=4, concurrency=4)
        args = ["eval", "--tasks", "small", "--models", "fake", "--include", str(d), "--no-progress",
                "--bootstrap", "10", "-o", str(tmp_path / "run")]
        p = cli(args)
        _wait(lambda: len(srv.statuses) >= 4 and srv.in_flight == 4)  # a wave done, the next in flight
        in_flight_at_interrupt = len(srv.requests)
        t0 = time.perf_counter()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        waited = time.perf_counter() - t0
        assert p.returncode == 130, err
        assert "re-run the same command (-o" in err and waited < 5
        assert len(srv.requests) == in_flight_at_interrupt  # nothing sent after Ctrl-C
        with sqlite3.connect(tmp_path / "run" / "cache.sqlite") as db:
            cached = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert cached == len(srv.requests)  # the replies in flight arrived and were cached
        before = len(srv.requests)
        p = cli(args)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        resumed = srv.requests[before:]
        first = {image_hashes(b)[-1] for b in srv.requests[:before]}
        assert len(resumed) == 44 - cached and not first & {image_hashes(b)[-1] for b in resumed}


def test_second_ctrl_c_quits_at_once(tmp_path):
    with FakeOpenAI(oracle, latency=30) as srv:
        d = specs(tmp_path, srv.base_url, per_class=1, concurrency=2)
        p = cli(["eval", "--tasks", "small", "--models", "fake", "--include", str(d), "--no-progress",
                 "-o", str(tmp_path / "run")])
        _wait(lambda: srv.in_flight == 2)
        p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        t0 = time.perf_counter()
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
        assert p.returncode == 130 and time.perf_counter() - t0 < 3


def test_second_run_on_a_locked_folder_refuses_naming_the_pid(tmp_path):
    with FakeOpenAI(oracle, latency=0.5) as srv:
        d = specs(tmp_path, srv.base_url, per_class=2, concurrency=1)
        args = ["eval", "--tasks", "small", "--models", "fake", "--include", str(d), "--no-progress",
                "--bootstrap", "10", "-o", str(tmp_path / "run")]
        first = cli(args)
        _wait(lambda: len(srv.requests) >= 1)
        second = cli(args)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert f"being written by another cytoreg run (pid {first.pid}" in " ".join(err.split())
        n = len(srv.requests)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert len(srv.requests) - n <= 1  # the refused run sent nothing
        # the dead holder's lock is taken over
        third = cli(args)
        out, err = third.communicate(timeout=120)
        assert third.returncode == 0 and "taking over the lock" in err, err


def test_a_finished_folder_is_reused_only_by_the_same_configuration(tmp_path):
    run = str(tmp_path / "run")
    base = ["eval", "--tasks", "demo", "--no-progress", "--bootstrap", "10", "-o", run]
    p = cli(base + ["--models", "random,prior"])
    p.communicate(timeout=120)
    before = (tmp_path / "run" / "results.json").read_text()
    p = cli(base + ["--models", "random", "--limit", "20"])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "holds a finished run of another configuration" in err
    assert "models: ['random', 'prior'] there, ['random'] now" in " ".join(err.split()) and "--overwrite" in err
    assert (tmp_path / "run" / "results.json").read_text() == before
    p = cli(base + ["--models", "random,prior"])  # the same configuration: a resume
    assert p.wait(timeout=120) == 0
    p = cli(base + ["--models", "random", "--overwrite"])
    assert p.wait(timeout=120) == 0
    assert [e["model"] for e in json.loads((tmp_path / "run" / "results.json").read_text())["evaluations"]] == ["random"]


def test_default_output_is_a_fresh_folder_with_runs_latest_pointing_at_it(tmp_path):
    for _ in range(2):
        p = cli(["eval", "--tasks", "demo", "--models", "random", "--limit", "11", "--no-progress", "--bootstrap",
                 "0"], cwd=tmp_path)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        time.sleep(1.1)
    runs = sorted(x for x in (tmp_path / "runs").iterdir() if x.is_dir() and not x.is_symlink())
    assert len(runs) == 2 and all((r / "results.json").exists() for r in runs)
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink() and latest.resolve() == runs[-1].resolve()
    assert (tmp_path / "runs" / "cache.sqlite").exists()


def test_http_failures_are_classified_by_what_retrying_can_fix():
    from cytoreg.models.base import FatalError, PermanentError, TransientError
    from cytoreg.models.failures import http_failure

    kw = dict(model="m-1", endpoint="https://api.example.org/v1", key_env="MY_KEY")
    cases = {(401, "bad key", None): ("HTTP 401 auth", FatalError), (403, "no", None): ("HTTP 403", FatalError),
             (404, "The model `m-1` does not exist.", None): ("HTTP 404 not found", FatalError),
             (400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"): ("HTTP 400 auth", FatalError),
             (400, "model 'm-1' not found", None): ("HTTP 400 not found", FatalError),
             (429, "You exceeded your current quota", "insufficient_quota"): ("HTTP 429 quota", FatalError),
             (429, "slow down", "rate_limit_exceeded"): ("HTTP 429", TransientError),
             (503, "overloaded", None): ("HTTP 503", TransientError),
             (400, "Invalid image", None): ("HTTP 400", PermanentError)}
    for (status, msg, code), (kind, cls) in cases.items():
        exc = http_failure(status, msg, code=code, **kw)
        assert type(exc) is cls and exc.kind == kind, (status, msg)
        if cls is FatalError:
            assert kw["endpoint"] in str(exc) and exc.fix
    assert "MY_KEY" in http_failure(401, "x", **kw).fix


def test_stopped_model_leaves_other_requests_unsent_and_keeps_cached_answers(tmp_path):
    """Answers cached before the model broke are kept and scored; the rest are errors, not answers."""
    with FakeOpenAI(oracle) as srv:
        d = specs(tmp_path, srv.base_url, per_class=1, concurrency=1)
        first = evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "a", include=[str(d)], progress=False,
                                    bootstrap=0, limit=5, cache=tmp_path / "c.sqlite"))
    assert first["evaluations"][0]["n"] == 5
    with FakeOpenAI(oracle, status_for=lambda body: 401) as srv:
        text = (d / "fake.yaml").read_text()
        (d / "fake.yaml").write_text(re.sub(r"base_url: '[^']*'", f"base_url: '{srv.base_url}'", text))
        res = evaluate(EvalConfig(["small"], ["fake"], output=tmp_path / "b", include=[str(d)], progress=False,
                                  bootstrap=0, cache=tmp_path / "c.sqlite"))
    ev = res["evaluations"][0]
    assert len(srv.requests) == 1 and ev["requests"]["cached"] == 5
    assert ev["status"] == "stopped" and ev["n"] == ev["n_answered"] == 5 and ev["n_errors"] == 6
    assert ev["metrics"]["accuracy"] == first["evaluations"][0]["metrics"]["accuracy"]
