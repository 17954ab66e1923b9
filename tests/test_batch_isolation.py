"""One bad image in a batch of 16 through the tiny transformers VLM fails only itself: directly
through the adapter (the batch falls back to one request at a time) and through a run (the image
pre-check leaves it out of the batch)."""
import json
import shutil

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.torch

from dataset_fixtures import PBC  # noqa: E402
from tiny_vlm import save_tiny_llava  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402
from cytoreg.tasks.samples import ImageRef, Sample  # noqa: E402

PROMPT = "Which cell type is this? Answer Basophil Eosinophil or Lymphocyte."


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("iso")
    save_tiny_llava(root / "llava", extra_text=PROMPT)
    data = root / "data"
    for cls, n in (("Basophil", 8), ("Lymphocyte", 7)):
        (data / cls).mkdir(parents=True)
        for f in sorted((PBC / cls.lower()).glob("*.jpg"))[:n]:
            shutil.copy(f, data / cls / f.name)
    good = sorted((PBC / "lymphocyte").glob("*.jpg"))[-1].read_bytes()
    bad = data / "Lymphocyte" / "LY_cut.jpg"
    bad.write_bytes(good[: len(good) // 2])
    d = root / "specs"
    d.mkdir()
    (d / "m.yaml").write_text(f"spec: model/v1\nname: tiny-llava\nadapter: hf\nparams: {{model: '{root / 'llava'}'}}\n"
                              "generation: {max_tokens: 3, temperature: 0}\nexecution: {batch_size: 16}\n")
    (d / "t.yaml").write_text(f"spec: task/v1\nname: sixteen\nkind: classification\n"
                              "labels: [Basophil, Eosinophil, Lymphocyte]\nsampling: {test_per_class: all}\n"
                              f"prompts: {{zero_shot: '{PROMPT}'}}\ndata: {{source: imagefolder, root: '{data}'}}\n")
    return d, bad


def test_batch_of_16_with_one_bad_image_through_the_adapter(setup):
    from cytoreg.models.hf_generate import HFGenerator

    specs, bad = setup
    cat = Catalog.load([specs])
    kind = TASK_KINDS.get("classification")(cat.task("sixteen"))
    good = [s for s in kind.prepare().test if s.id != "Lymphocyte/LY_cut.jpg"]
    assert len(good) == 15
    samples = good[:5] + [Sample("bad", "Lymphocyte", ImageRef(path=bad))] + good[5:]
    adapter = HFGenerator(cat.model("tiny-llava"))
    out = adapter.generate_batch([kind.chat_request(s, "zero_shot", [], {"max_tokens": 3}, 0) for s in samples])
    assert len(out) == 16
    assert [i for i, r in enumerate(out) if r.error] == [5]
    assert out[5].error.startswith(f"ImageDecodeError: {bad}: does not decode: image file is truncated")
    clean = adapter.generate_batch([kind.chat_request(s, "zero_shot", [], {"max_tokens": 3}, 0) for s in good])
    assert [r.text for r in out if not r.error] == [r.text for r in clean]  # the fallback changes no answer
    assert all(isinstance(r.text, str) for r in clean)


def test_batch_of_16_with_one_bad_image_through_a_run(setup, tmp_path):
    specs, bad = setup
    out = tmp_path / "run"
    res = evaluate(EvalConfig(["sixteen"], ["tiny-llava"], output=out, include=[str(specs)], progress=False,
                              bootstrap=0))
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 16
    errors = [r for r in recs if r["error"]]
    assert len(errors) == 1 and errors[0]["id"] == "Lymphocyte/LY_cut.jpg"
    assert errors[0]["error"].startswith(f"{bad}: does not decode: image file is truncated")
    assert all(isinstance(r["response"], str) for r in recs if not r["error"])
    ev = res["evaluations"][0]
    assert ev["errors"] == 1 and ev["requests"]["sent"] == 15  # the bad image never reached the model
