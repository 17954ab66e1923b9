"""The gemini adapter against a real local HTTP server speaking Gemini's generateContent REST
protocol: exact payload, retries, few-shot order, usage, cache, and the missing-key error."""
import json

import pytest

pytest.importorskip("google.genai")

from fake_openai import FakeOpenAI, image_hashes  # noqa: E402
from test_engine import LABEL_BY_SHA  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.errors import ModelLoadError  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402


def _specs(tmp_path, url, settings="[zero_shot]"):
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 2}\n"
                                  f"settings: {settings}\nprompts: {{system: 'You are a haematologist.'}}\n")
    (d / "gem.yaml").write_text("spec: model/v1\nname: gem\nadapter: gemini\n"
                                f"params: {{model: gemini-test-001, base_url: '{url}', api_key_env: CYTOREG_TEST_GEMINI_KEY}}\n"
                                "generation: {temperature: 0, max_tokens: 20, seed: 7, top_k: 5}\n"
                                "execution: {concurrency: 1, max_retries: 4, initial_backoff: 0.01, max_backoff: 0.05}\n")
    return d


def _gemini_oracle(body):
    return LABEL_BY_SHA[image_hashes(body)[-1]]  # the query image is the last one


def test_gemini_payload_retries_usage_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOREG_TEST_GEMINI_KEY", "test-key")
    with FakeOpenAI(_gemini_oracle, script=[429, 503], retry_after="0") as srv:
        root = srv.base_url.rsplit("/v1", 1)[0]
        d = _specs(tmp_path, root)
        cfg = EvalConfig(["small"], ["gem"], output=tmp_path / "run", include=[str(d)], progress=False, bootstrap=20)
        res = evaluate(cfg)
        ev = res["evaluations"][0]
        assert srv.statuses[:3] == [429, 503, 200]
        assert ev["requests"]["retries"] == 2 and ev["errors"] == 0 and ev["n"] == 22
        assert ev["metrics"]["accuracy"] == 1.0
        assert ev["usage"] == {"prompt_tokens": 220, "completion_tokens": 66, "total_tokens": 286}
        assert set(srv.paths) == {"/v1beta/models/gemini-test-001:generateContent"}, set(srv.paths)
        body = srv.requests[-1]
        assert body["systemInstruction"]["parts"] == [{"text": "You are a haematologist."}]
        assert body["generationConfig"] == {"temperature": 0, "maxOutputTokens": 20, "seed": 7, "topK": 5}
        (content,) = body["contents"]
        assert content["role"] == "user"
        prompt = Catalog.load().task("acevedo").get("prompts")["zero_shot"]
        assert content["parts"][0] == {"text": prompt}
        assert content["parts"][1]["inlineData"]["mime_type"] == "image/jpeg"
        samples = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
        assert all(s["match"] == "exact" for s in samples)
        n = len(srv.requests)
        again = evaluate(cfg)
        assert len(srv.requests) == n and again["evaluations"][0]["requests"]["cached"] == 22


def test_gemini_few_shot_interleaves_examples_in_label_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOREG_TEST_GEMINI_KEY", "k")
    with FakeOpenAI(_gemini_oracle) as srv:
        d = _specs(tmp_path, srv.base_url.rsplit("/v1", 1)[0], settings="[few_shot]")
        res = evaluate(EvalConfig(["small"], ["gem"], output=tmp_path / "run", include=[str(d)], progress=False,
                                  bootstrap=10, limit=1))
        parts = srv.requests[0]["contents"][0]["parts"]
        texts = [p["text"] for p in parts if "text" in p]
        demo = Catalog.load().task("demo")
        labels, fs = demo.get("labels"), demo.get("prompts")["few_shot"]
        assert texts[:-1] == [fs["example"].format(label=lab) for lab in labels]
        assert texts[-1].startswith("Consider this image.")
        assert [("text" in p) for p in parts] == [True, False] * len(labels) + [True, False]
        assert len(image_hashes(srv.requests[0])) == len(labels) + 1
        assert res["evaluations"][0]["setting"] == "few_shot"


def test_gemini_missing_key_names_the_variables(tmp_path, monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ModelLoadError, match="GEMINI_API_KEY or GOOGLE_API_KEY is not set"):
        evaluate(EvalConfig(["demo"], ["gemini-2.0-flash"], output=tmp_path, progress=False, limit=2))
