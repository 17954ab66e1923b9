"""Claude (Messages API), OpenAI reasoning models and Gemini 2.5 thinking against real local
servers speaking each protocol: request bodies field by field, rate-limit headers, usage with
reasoning tokens, through `cytoreg eval` where the run matters."""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from fake_anthropic import FakeAnthropic, image_hashes as claude_images
from fake_openai import FakeOpenAI, image_hashes
from test_engine import LABEL_BY_SHA
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.errors import ModelLoadError
from cytoreg.models.base import ChatRequest, Message, PermanentError, TextPart, TransientError
from cytoreg.registry.catalog import Catalog

SMALL = ("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 2}\nsettings: [zero_shot]\n"
         "prompts: {system: 'You are a haematologist.'}\n")
N = 22  # 11 labels x 2
FAST = "execution: {concurrency: 1, max_retries: 4, initial_backoff: 0.01, max_backoff: 0.05}\n"


def specs(tmp_path, model_yaml: str):
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "small.yaml").write_text(SMALL)
    (d / "m.yaml").write_text(model_yaml)
    return d


def run(tmp_path, d, model="m"):
    return evaluate(EvalConfig(["small"], [model], output=tmp_path / "run", include=[str(d)], progress=False,
                               bootstrap=20))["evaluations"][0]


# -- Claude -----------------------------------------------------------------------------------

def claude_oracle(body):
    return LABEL_BY_SHA[claude_images(body)[-1]]


def test_claude_request_shape_retries_and_usage(tmp_path, monkeypatch):
    pytest.importorskip("anthropic")
    monkeypatch.setenv("CYTOREG_TEST_ANTHROPIC_KEY", "test-key")
    with FakeAnthropic(claude_oracle, script=[(429, {"retry-after": "0"}), (529, {})],
                       usage={"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 0},
                       thinking="Maybe a Basophil? No.") as srv:
        d = specs(tmp_path, "spec: model/v1\nname: m\nadapter: anthropic\n"
                            f"params: {{model: claude-test-1, base_url: '{srv.base_url}', "
                            "api_key_env: CYTOREG_TEST_ANTHROPIC_KEY}\n"
                            "generation: {temperature: 0, max_tokens: 20, top_k: 5, seed: 7}\n" + FAST)
        ev = run(tmp_path, d)
    assert srv.statuses[:3] == [429, 529, 200] and ev["requests"]["retries"] == 2 and ev["errors"] == 0
    assert ev["n"] == N and ev["metrics"]["accuracy"] == 1.0  # the thinking block is not read as the answer
    assert ev["usage"] == {"prompt_tokens": 12 * N, "completion_tokens": 4 * N, "total_tokens": 16 * N}
    assert set(srv.paths) == {"/v1/messages"}
    head = srv.headers[-1]
    # the key travels as x-api-key (older SDKs) or a bearer token (newer), the API version header always
    assert head.get("x-api-key") == "test-key" or head.get("authorization") == "Bearer test-key"
    assert head["anthropic-version"]
    body = srv.requests[-1]
    assert sorted(body) == ["max_tokens", "messages", "model", "system", "temperature", "top_k"]  # no seed
    assert body["model"] == "claude-test-1" and body["max_tokens"] == 20
    assert body["temperature"] == 0 and body["top_k"] == 5
    assert body["system"] == "You are a haematologist."  # top-level, not a message
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    prompt = Catalog.load().task("acevedo").get("prompts")["zero_shot"]
    text, image = msg["content"]
    assert text == {"type": "text", "text": prompt}
    assert image["type"] == "image" and sorted(image["source"]) == ["data", "media_type", "type"]
    assert image["source"]["type"] == "base64" and image["source"]["media_type"] == "image/jpeg"
    assert hashlib.sha256(base64.b64decode(image["source"]["data"])).hexdigest() in LABEL_BY_SHA


def _claude(srv_url: str, **params):
    from cytoreg.models.anthropic_api import AnthropicChat
    from cytoreg.registry.specs import Spec

    p = {"model": "claude-x", "base_url": srv_url, "api_key_env": "CYTOREG_TEST_ANTHROPIC_KEY", **params}
    return AnthropicChat(Spec("model", "c", {"spec": "model/v1", "name": "c", "adapter": "anthropic", "params": p},
                              "c.yaml", "test"))


def test_claude_rate_limit_headers_set_the_wait(monkeypatch):
    pytest.importorskip("anthropic")
    from cytoreg.models.anthropic_api import rate_limit_wait

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    h = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
         "anthropic-ratelimit-tokens-remaining": "5000", "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:00Z"}
    assert rate_limit_wait(h, now) == 30.0  # the exhausted limit decides, not the other one
    assert rate_limit_wait({**h, "anthropic-ratelimit-input-tokens-remaining": "0",
                            "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:45Z"}, now) == 45.0
    assert rate_limit_wait({**h, "retry-after": "7"}, now) == 7.0  # retry-after wins when sent
    assert rate_limit_wait({"anthropic-ratelimit-tokens-remaining": "10"}, now) is None
    monkeypatch.setenv("CYTOREG_TEST_ANTHROPIC_KEY", "k")
    reset = (datetime.now(timezone.utc) + timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    req = ChatRequest([Message("user", [TextPart("hi")])], {"max_tokens": 5})
    with FakeAnthropic(script=[(429, {"anthropic-ratelimit-requests-remaining": "0",
                                      "anthropic-ratelimit-requests-reset": reset}), (400, {})]) as srv:
        adapter = _claude(srv.base_url)
        with pytest.raises(TransientError) as exc:
            adapter.generate(req)
        assert exc.value.status == 429 and 17 < exc.value.retry_after <= 20
        with pytest.raises(PermanentError, match="HTTP 400"):
            adapter.generate(req)


def test_claude_models_that_reject_sampling_get_none(monkeypatch):
    pytest.importorskip("anthropic")
    req = ChatRequest([Message("system", [TextPart("S")]), Message("user", [TextPart("hi")])],
                      {"temperature": 0, "top_p": 0.9, "top_k": 5, "max_tokens": 64})
    body = _claude("http://127.0.0.1:9", sampling=False).payload(req)
    assert body == {"model": "claude-x", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                    "max_tokens": 64, "system": "S"}
    body = _claude("http://127.0.0.1:9", thinking={"type": "enabled", "budget_tokens": 1024}).payload(req)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "temperature" not in body
    spec = Catalog.load().model("claude-opus-4-7")
    assert spec.get("params") == {"model": "claude-opus-4-7", "sampling": False}


def test_claude_specs_are_current_models_with_a_release():
    cat = Catalog.load()
    claude = [n for n in cat.models.names() if n.startswith("claude-")]
    assert {"claude-sonnet-4-6", "claude-opus-4-6", "claude-opus-4-7"} <= set(claude)
    for n in claude:
        spec = cat.model(n)
        assert spec.get("adapter") == "anthropic" and spec.get("release") and spec.get("params")["model"].startswith(
            "claude-")


def test_claude_missing_key_names_the_variable(monkeypatch):
    pytest.importorskip("anthropic")
    monkeypatch.delenv("CYTOREG_TEST_ANTHROPIC_KEY", raising=False)
    with pytest.raises(ModelLoadError, match="CYTOREG_TEST_ANTHROPIC_KEY is not set"):
        _claude("http://127.0.0.1:9").load()


# -- OpenAI reasoning models --------------------------------------------------------------------

def openai_oracle(body):
    return LABEL_BY_SHA[image_hashes(body)[-1]]


REASONING_USAGE = {"prompt_tokens": 100, "completion_tokens": 80, "total_tokens": 180,
                   "completion_tokens_details": {"reasoning_tokens": 64}}


def test_gpt5_sends_max_completion_tokens_no_temperature_and_records_reasoning_tokens(tmp_path):
    with FakeOpenAI(openai_oracle, usage=REASONING_USAGE) as srv:
        d = specs(tmp_path, f"spec: model/v1\nname: m\nextends: gpt-5\nparams: {{base_url: '{srv.base_url}'}}\n" + FAST)
        ev = run(tmp_path, d)
    body = srv.requests[-1]
    assert sorted(body) == ["max_completion_tokens", "messages", "model", "reasoning_effort", "seed"]
    assert body["model"] == "gpt-5-2025-08-07" and body["max_completion_tokens"] == 4096
    assert body["reasoning_effort"] == "low" and body["seed"] == 0
    assert body["messages"][0] == {"role": "system", "content": "You are a haematologist."}
    assert ev["metrics"]["accuracy"] == 1.0
    assert ev["usage"] == {"prompt_tokens": 100 * N, "completion_tokens": 80 * N, "total_tokens": 180 * N,
                           "reasoning_tokens": 64 * N}


def test_reasoning_flag_drops_temperature_and_top_p(tmp_path):
    with FakeOpenAI(openai_oracle) as srv:
        d = specs(tmp_path, "spec: model/v1\nname: m\nadapter: openai\n"
                            f"params: {{model: o-test, base_url: '{srv.base_url}', reasoning: true}}\n"
                            "generation: {temperature: 0, top_p: 0.5, max_tokens: 300}\n" + FAST)
        ev = run(tmp_path, d)
    assert sorted(srv.requests[-1]) == ["max_completion_tokens", "messages", "model"]
    assert srv.requests[-1]["max_completion_tokens"] == 300
    assert "reasoning_tokens" not in ev["usage"]  # the server sent no completion_tokens_details


def test_gpt41_is_not_a_reasoning_model(tmp_path):
    with FakeOpenAI(openai_oracle, usage={**REASONING_USAGE, "completion_tokens_details": {"reasoning_tokens": 0}}) as srv:
        d = specs(tmp_path, f"spec: model/v1\nname: m\nextends: gpt-4.1\nparams: {{base_url: '{srv.base_url}'}}\n" + FAST)
        ev = run(tmp_path, d)
    body = srv.requests[-1]
    assert sorted(body) == ["max_tokens", "messages", "model", "seed", "temperature"]
    assert (body["model"], body["temperature"], body["max_tokens"], body["seed"]) == ("gpt-4.1-2025-04-14", 0, 256, 0)
    assert ev["usage"]["reasoning_tokens"] == 0


# -- Gemini 2.5 thinking ------------------------------------------------------------------------

def test_gemini_25_sends_the_thinking_budget_and_records_thought_tokens(tmp_path, monkeypatch):
    pytest.importorskip("google.genai")
    monkeypatch.setenv("CYTOREG_TEST_GEMINI_KEY", "k")
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 50, "totalTokenCount": 63}
    with FakeOpenAI(openai_oracle_gemini, gemini_usage=usage, gemini_thought="Could be a Basophil.") as srv:
        root = srv.base_url.rsplit("/v1", 1)[0]
        d = specs(tmp_path, "spec: model/v1\nname: m\nextends: gemini-2.5-flash\n"
                            f"params: {{base_url: '{root}', api_key_env: CYTOREG_TEST_GEMINI_KEY}}\n" + FAST)
        ev = run(tmp_path, d)
    assert set(srv.paths) == {"/v1beta/models/gemini-2.5-flash:generateContent"}
    config = dict(srv.requests[-1]["generationConfig"])
    thinking = config.pop("thinkingConfig")
    assert config == {"temperature": 0, "maxOutputTokens": 2048, "seed": 0}
    # the SDK writes the field name as it likes (google-genai 3.x: snake case); the API reads both
    assert thinking in ({"thinkingBudget": 1024}, {"thinking_budget": 1024})
    assert ev["metrics"]["accuracy"] == 1.0  # the thought part is not read as the answer
    assert ev["usage"] == {"prompt_tokens": 10 * N, "completion_tokens": 3 * N, "total_tokens": 63 * N,
                           "reasoning_tokens": 50 * N}


def openai_oracle_gemini(body):
    return LABEL_BY_SHA[image_hashes(body)[-1]]


def test_claude_dead_key_and_refused_port_stop_the_model(monkeypatch):
    """Claude follows the same failure rules as the OpenAI and Gemini adapters: a 401 or a port nobody
    listens on stops the model (FatalError naming the endpoint and the fix), and an echoed key is masked."""
    pytest.importorskip("anthropic")
    import socket

    from cytoreg.models.base import FatalError

    monkeypatch.setenv("CYTOREG_TEST_ANTHROPIC_KEY", "sk-ant-secret-123456")
    req = ChatRequest([Message("user", [TextPart("hi")])], {"max_tokens": 5})
    with FakeAnthropic(script=[(401, {}), (404, {})]) as srv:
        adapter = _claude(srv.base_url)
        with pytest.raises(FatalError) as exc:
            adapter.generate(req)
        assert exc.value.kind == "HTTP 401 auth" and srv.base_url in str(exc.value)
        assert "CYTOREG_TEST_ANTHROPIC_KEY" in exc.value.fix and "sk-ant-secret" not in str(exc.value)
        with pytest.raises(FatalError, match="model or endpoint not found"):
            adapter.generate(req)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    with pytest.raises(FatalError) as exc:
        _claude(f"http://127.0.0.1:{port}").generate(req)
    assert exc.value.kind == "connection refused"


def test_a_gateways_html_error_page_is_one_short_line():
    from cytoreg.models.failures import http_failure

    page = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
            "<body><h1>Bad Gateway</h1>" + "<p>upstream detail</p>" * 500 + "</body></html>")
    exc = http_failure(403, page, model="m", endpoint="https://gw.example.org/v1", key_env="K")
    assert "HTML page: 502 Bad Gateway" in str(exc) and "<" not in str(exc) and len(str(exc)) < 400
    long = http_failure(400, "x " * 1000, model="m", endpoint="https://e/v1", key_env="K")  # 1,999 once collapsed
    assert "(1699 more characters)" in str(long)
