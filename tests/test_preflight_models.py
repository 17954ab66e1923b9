"""The preflight's model checks (``eval --check`` and before every run) are the answer of
``cytoreg models check`` (cytoreg.models.check): found without loading or sending, with the same words."""
import pytest

from cytoreg.cli import main
from cytoreg.models.check import check as model_check
from cytoreg.registry.builtins import ADAPTERS
from cytoreg.registry.catalog import Catalog

PROBE = ("spec: task/v1\nname: zoo-probe\nkind: probe\nextends: demo\n"
         "sampling: {seed: 42, test_per_class: 2, train_per_class: 3, val_per_class: 1}\n")


@pytest.fixture
def bare(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for k in ("HF_HUB_CACHE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
              "GOOGLE_API_KEY", "LLAVA_MED_BASE_URL", "CONCH_CHECKPOINT", "PATHGEN_CLIP_CHECKPOINT"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path / "hf" / "hub"


def check(name):
    spec = Catalog.load().model(name)
    return model_check(spec, ADAPTERS.get(spec.get("adapter"))(spec), deep=False).messages()


@pytest.mark.parametrize("model, fragments", [
    ("gpt4o", ["environment variable OPENAI_API_KEY is not set"]),
    ("gemini-2.0-flash", ["GEMINI_API_KEY or GOOGLE_API_KEY is not set"]),
    ("claude-haiku-4-5", ["environment variable ANTHROPIC_API_KEY is not set"]),
    ("llava-med", ["set LLAVA_MED_BASE_URL to its OpenAI-compatible URL"]),
    ("plip", ["weights missing: vinid/plip (params.model) is not in the Hugging Face cache", "models--vinid--plip",
              "hf download vinid/plip"]),
    ("biomedclip", ["models--microsoft--BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"]),
    ("clip-vit-b32", ["models--timm--vit_base_patch32_clip_224.openai"]),
    ("dinov2-s", ["models--timm--vit_small_patch14_dinov2.lvd142m"]),
    ("llama-3.2-11b-vision", ["models--meta-llama--Llama-3.2-11B-Vision-Instruct"]),
    ("conch", ["models--MahmoodLab--conch", "hf download MahmoodLab/conch"]),
    # the adapters the preflight did not check before (hf_features, hf_hidden)
    ("dinov3-b", ["models--facebook--dinov3-vitb16-pretrain-lvd1689m",
                  "accept the licence at https://huggingface.co/facebook/dinov3-vitb16-pretrain-lvd1689m"]),
    ("hibou-l", ["models--histai--hibou-L"]),
    ("phikon-v2", ["models--owkin--phikon-v2", "hf download owkin/phikon-v2"]),
    ("midnight", ["is not in the Hugging Face cache"]),
    ("idefics-9b-hidden", ["models--HuggingFaceM4--idefics-9b"]),
])
def test_missing_things_are_named(bare, model, fragments):
    if model in ("biomedclip", "clip-vit-b32"):
        pytest.importorskip("open_clip")
    problems = check(model)
    assert len(problems) == 1, problems
    for f in fragments:
        assert f in problems[0]
    assert str(bare) in problems[0] or "environment variable" in problems[0]


def test_present_things_pass(bare, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert check("gpt4o") == [] and check("random") == []
    snap = bare / "models--vinid--plip" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (bare / "models--vinid--plip" / "refs").mkdir()
    (bare / "models--vinid--plip" / "refs" / "main").write_text("abc")  # the hub cache's layout
    assert check("plip") == ["model 'plip': weights missing: " + str(snap) +
                             " has no weight file (*.safetensors, *.bin, *.pth). Get it: on a machine with network "
                             "run `hf download vinid/plip` and copy the HF cache"]
    from safetensors.numpy import save_file
    import numpy as np

    save_file({"w": np.zeros(4, dtype=np.float32)}, str(snap / "model.safetensors"))
    (snap / "preprocessor_config.json").write_text("{}")  # the processor AutoProcessor reads
    assert check("plip") == []


def test_base_class_check_is_the_shared_answer_and_an_override_only_adds(bare):
    """hf_features has no check() of its own: the base class gives the shared answer. A plugin's
    override is asked once the shared checks pass, and only then."""
    from cytoreg.models.base import ModelAdapter
    from cytoreg.models.hf_features import HFFeatures

    spec = Catalog.load().model("phikon-v2")
    assert HFFeatures.check is ModelAdapter.check
    assert HFFeatures(spec).check() == model_check(spec, deep=False).messages() != []

    class Extra(ModelAdapter):
        def check(self):
            return super().check() + [f"model '{self.name}': needs the frobnicator"]

    # the shared answer once (the override's super() repeats it), then what only the adapter knows
    shared = model_check(spec, deep=False).messages()
    assert model_check(spec, Extra(spec), deep=False).messages() == shared + ["model 'phikon-v2': needs the frobnicator"]
    random = Catalog.load().model("random")
    assert model_check(random, Extra(random), deep=False).messages() == ["model 'random': needs the frobnicator"]


def _check_run(tmp_path, models, capsys, *extra):
    (tmp_path / "t.yaml").write_text(PROBE)
    rc = main(["eval", "--check", "--tasks", "zoo-probe", "--models", models, "--include", str(tmp_path / "t.yaml"),
               "-o", str(tmp_path / "run"), *extra])
    return rc, capsys.readouterr().out


def test_eval_check_lists_every_encoder_and_a_run_stops_before_its_folder(bare, tmp_path, capsys):
    rc, out = _check_run(tmp_path, "dinov3-b,hibou-l,virchow2,phikon-v2,idefics-9b-hidden", capsys)
    assert rc == 1
    for repo in ("facebook--dinov3-vitb16-pretrain-lvd1689m", "histai--hibou-L", "paige-ai--Virchow2",
                 "owkin--phikon-v2", "HuggingFaceM4--idefics-9b"):
        assert f"(models--{repo};" in out, repo
    assert "5 problem(s)" in out
    (tmp_path / "t.yaml").write_text(PROBE)
    rc = main(["eval", "--tasks", "zoo-probe", "--models", "dinov3-b", "--include", str(tmp_path / "t.yaml"),
               "-o", str(tmp_path / "run2"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "models--facebook--dinov3-vitb16-pretrain-lvd1689m" in err
    assert "image processor" not in err and not (tmp_path / "run2").exists()


def test_eval_check_and_models_check_say_the_same(bare, tmp_path, capsys, monkeypatch):
    rc, out = _check_run(tmp_path, "dinov3-b", capsys)
    assert rc == 1
    want = ("accept the licence at https://huggingface.co/facebook/dinov3-vitb16-pretrain-lvd1689m, then hf auth "
            "login and hf download facebook/dinov3-vitb16-pretrain-lvd1689m on a machine with network")
    assert f"Get it: {want}" in " ".join(out.split())  # rich wraps long lines
    assert main(["models", "check", "dinov3-b"]) == 1
    assert f"get it   {want}" in capsys.readouterr().out
    # a checkpoint path set through ${CONCH_CHECKPOINT} is shown, not masked as a secret
    monkeypatch.setenv("CONCH_CHECKPOINT", "/nope/conch.bin")
    rc, out = _check_run(tmp_path, "conch", capsys)
    assert rc == 1 and "***" not in out and "/nope/conch.bin" in out


def test_another_adapters_params_are_read_only_where_they_are_clear(bare, tmp_path):
    """A plugin's spec: a hub reference or a path is checked; a bare name is left to its own check()."""
    from pathlib import Path

    from cytoreg.registry.specs import Spec

    def spec(params):
        return Spec("model", "p", {"adapter": "my-plugin", "params": params}, Path(tmp_path / "p.yaml"), "test")

    (msg,) = model_check(deep=False, spec=spec({"model": "hf_hub:org/musk"})).messages()
    assert msg.startswith(f"model 'p': weights missing: org/musk (params.model) is not in the Hugging Face cache {bare}")
    (msg,) = model_check(deep=False, spec=spec({"model": str(tmp_path / "w.pt")})).messages()
    assert msg == f"model 'p': weights missing: the checkpoint file {tmp_path / 'w.pt'} (params.model) does not exist"
    c = model_check(deep=False, spec=spec({"model": "ViT-B/16"}))
    assert c.ready and c.lines == [("weights", "no weights cytoreg can locate in the spec's params (my-plugin "
                                               "adapter: ViT-B/16); the adapter's own check() answers")]


def test_a_missing_package_is_filed_as_a_package(bare, tmp_path, capsys, monkeypatch):
    """The audit: `models check musk --json` filed the missing musk package under "weights", and
    `eval --check` printed `problem [weights] model 'musk' needs musk`."""
    import json

    from cytoreg.models import check as check_mod
    from cytoreg.models import musk_adapter

    monkeypatch.setattr(musk_adapter, "package_dir", lambda: None)  # musk not installed
    assert main(["models", "check", "musk", "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    cats = {p["message"].split(" needs ")[0] if " needs " in p["message"] else p["message"][:40]: p["category"]
            for p in row["problems"]}
    assert cats["model 'musk'"] == "package"
    assert [p["category"] for p in row["problems"] if "is not in the Hugging Face cache" in p["message"]] == ["weights"]
    rc, out = _check_run(tmp_path, "musk", capsys)
    assert rc == 1 and "problem [package] model 'musk' needs" in out and "[weights] model 'musk' needs" not in out
    # the shared package check (an adapter's imports) uses the same category
    monkeypatch.setitem(check_mod.PACKAGES, "timm", (("no_such_module_xyz",), "pip install xyz"))
    c = model_check(Catalog.load().model("dinov2-s"), deep=False)
    assert ("package", "model 'dinov2-s': packages missing: no_such_module_xyz (the timm adapter imports them). "
                       "Get it: pip install xyz") in c.problems
