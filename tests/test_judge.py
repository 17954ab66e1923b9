"""The judge step (seed A's answer cleaning) wired into a run: only replies the rules could not map
go to the judge, as text only with the task's review prompt; its reply must map to a label; NA stays
invalid; judge calls are cached; the step is recorded per sample and counted per evaluation."""
import json

from fake_openai import FakeOpenAI, image_hashes
from test_engine import LABEL_BY_SHA
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.registry.catalog import Catalog

BY_CODE = {sha[:8]: label for sha, label in LABEL_BY_SHA.items()}


def _reply(body: dict) -> str:
    text = body["messages"][-1]["content"]
    if isinstance(text, str) or all(p["type"] == "text" for p in text):  # a judge request: text only
        prompt = text if isinstance(text, str) else "".join(p["text"] for p in text)
        code = prompt.split("specimen ", 1)[1][:8]
        return "NA" if int(code, 16) % 4 == 0 else BY_CODE[code]
    sha = image_hashes(body)[-1]
    if int(sha, 16) % 2:
        return LABEL_BY_SHA[sha]
    return f"Hard to say for specimen {sha[:8]}; the chromatin is dense and the cytoplasm scant."


def test_judge_maps_only_unparsed_replies_and_is_cached(tmp_path):
    with FakeOpenAI(_reply) as srv:
        d = tmp_path / "specs"
        d.mkdir()
        (d / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 3}\n"
                                      "settings: [zero_shot]\n")
        for name in ("vlm", "cleaner"):
            (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}\nadapter: openai\n"
                                            f"params: {{model: {name}, base_url: '{srv.base_url}'}}\n"
                                            "generation: {temperature: 0, max_tokens: 50}\n")
        cfg = EvalConfig(["small"], ["vlm"], output=tmp_path / "run", include=[str(d)], progress=False,
                         bootstrap=10, judge="cleaner")
        res = evaluate(cfg)
        samples = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
        vague = [s for s in samples if s["response"].startswith("Hard to say")]
        judged = [r for r in srv.requests if r["model"] == "cleaner"]
        assert vague and len(judged) == len(vague)  # only the unparsed replies went to the judge
        template = Catalog.load().task("acevedo").get("prompts")["judge"]
        first = judged[0]["messages"][0]["content"]
        text = "".join(p["text"] for p in first) if isinstance(first, list) else first
        assert text in {template.replace("{answer}", s["response"]) for s in vague}
        assert not image_hashes(judged[0])
        for s in vague:
            code = s["response"].split("specimen ", 1)[1][:8]
            if int(code, 16) % 4 == 0:
                assert s["parsed"] is None and s["match"] == "invalid" and "judge: NA" in s["match_detail"]
            else:
                assert s["match"] == "judge" and s["parsed"] == s["label"] and s["judge_response"] == s["label"]
        ev = res["evaluations"][0]
        n_na = sum(1 for s in vague if int(s["response"].split("specimen ", 1)[1][:8], 16) % 4 == 0)
        assert 0 < n_na < len(vague)
        assert ev["matched_by"] == {k: v for k, v in {"exact": len(samples) - len(vague), "judge": len(vague) - n_na,
                                                       "invalid": n_na}.items() if v}
        assert ev["metrics"]["invalid_rate"] == n_na / len(samples)
        assert ev["usage"]["judge_total_tokens"] == 13 * len(vague)
        assert res["config"]["judge"] == "cleaner"
        n = len(srv.requests)
        again = evaluate(cfg)
        assert len(srv.requests) == n  # model replies and judge replies both from the cache
        assert again["evaluations"][0]["metrics"] == ev["metrics"]


def test_judge_must_be_generative(tmp_path):
    import pytest

    from cytoreg.errors import IncompatibleError

    with pytest.raises(IncompatibleError, match="judge model 'random' is not a generative model"):
        evaluate(EvalConfig(["demo"], ["prior"], output=tmp_path, progress=False, judge="random"))
    with pytest.raises(IncompatibleError, match="--judge: .*gpt5"):
        evaluate(EvalConfig(["demo"], ["prior"], output=tmp_path, progress=False, judge="gpt5"))
