"""The VLMEvalKit bridge: a small BaseModel subclass registered in supported_VLM, driven through a
full run in a separate worker process; failure strings become errors; SSL stays on in our process."""
import importlib.util
import json
import os
import re
import ssl

import pytest

from cytoreg.errors import DataError
from cytoreg.models.base import ChatRequest, Message, TextPart
from cytoreg.models.vlmeval_bridge import to_vlmeval

pytestmark = pytest.mark.slow  # importing vlmeval in the worker takes 10-25 s


def _specs(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 1}\n"
                                  "settings: [zero_shot, few_shot]\nprompts: {system: 'Be brief.'}\n")
    for name, model in (("bridged", "cytoreg-oracle"), ("failing", "cytoreg-failing"), ("typo", "cytoreg-oracel")):
        (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}\nadapter: vlmeval\n"
                                        f"params: {{model: {model}, imports: [vlmeval_tiny], dataset: MMBench}}\n"
                                        "execution: {batch_size: 4}\n")
    return d


def test_message_conversion_keeps_order_and_puts_system_first(tmp_path):
    from cytoreg.tasks.samples import ImageRef
    from cytoreg.models.base import ImagePart

    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (9, 8, 7)).save(buf, "PNG")
    png = buf.getvalue()
    img = ImageRef(loader=lambda: png, description="in-memory")
    req = ChatRequest([Message("user", [TextPart("a"), ImagePart(img), TextPart("b")]),
                       Message("system", [TextPart("sys")])], {})
    out = to_vlmeval(req, tmp_path)
    assert [(m["type"], m["value"] if m["type"] == "text" else os.path.splitext(m["value"])[1]) for m in out] == \
        [("text", "sys"), ("text", "a"), ("image", ".png"), ("text", "b")]
    assert open(out[2]["value"], "rb").read() == png  # a clean PNG is passed as it is
    # an undecodable image never reaches VLMEvalKit
    bad = ImageRef(loader=lambda: b"\x89PNG\r\n\x1a\nxx", description="in-memory")
    with pytest.raises(DataError, match="^in-memory: does not decode: "):
        to_vlmeval(ChatRequest([Message("user", [ImagePart(bad)])], {}), tmp_path)


def test_bridge_runs_in_a_worker_process_and_maps_failures(tmp_path):
    if importlib.util.find_spec("vlmeval") is None:  # find, not import: importing it here would turn SSL checks off
        pytest.skip("the vlmeval extra (ms-vlmeval) is not installed")
    from cytoreg.engine.runner import EvalConfig, evaluate

    d = _specs(tmp_path)
    res = evaluate(EvalConfig(["small"], ["bridged", "failing"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=10))
    samples = [json.loads(l) for l in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    ok = [s for s in samples if s["model"] == "bridged"]
    assert ok and all(s["parsed"] == s["label"] and s["error"] is None for s in ok)
    pids = {s["response"].split("pid=")[1].split()[0] for s in ok}
    assert len(pids) == 1 and pids != {str(os.getpid())}
    assert all("ssl=off" in s["response"] for s in ok)  # vlmeval's import did that, in the worker only
    assert ssl._create_default_https_context is not ssl._create_unverified_context
    n_labels = len(res["tasks"]["small"]["labels"])
    zero = [s for s in ok if s["setting"] == "zero_shot"]
    few = [s for s in ok if s["setting"] == "few_shot"]
    assert all("order=TTI " in s["response"] and "dataset=MMBench" in s["response"] for s in zero)
    assert all(f"order={'T' + 'TI' * n_labels + 'TI'} " in s["response"] for s in few)
    assert all("first_text='Be brief.'" in s["response"] for s in ok)
    bad = [s for s in samples if s["model"] == "failing"]
    assert bad and all(s["parsed"] is None and s["error"].startswith("VLMEvalKit reported a failure") for s in bad)
    failing = [e for e in res["evaluations"] if e["model"] == "failing"]
    assert all(e["n"] == 0 and e["errors"] == e["n_attempted"] > 0 and e["metrics"] == {} for e in failing)
    # an unknown model stops that model (others would go on), with the suggestion
    typo = evaluate(EvalConfig(["small"], ["typo"], output=tmp_path / "typo", include=[str(d)], progress=False))
    assert all(e["status"] == "stopped" and e["metrics"] == {} for e in typo["evaluations"])
    assert re.search("'cytoreg-oracel' is not in VLMEvalKit's supported_VLM .*did you mean cytoreg-oracle",
                     typo["evaluations"][0]["stopped_reason"])
