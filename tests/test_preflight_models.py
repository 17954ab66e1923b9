"""Each built-in adapter's check(): what would stop load(), found without loading or sending."""
import pytest

from cytoreg.registry.builtins import ADAPTERS
from cytoreg.registry.catalog import Catalog


@pytest.fixture
def bare(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for k in ("HF_HUB_CACHE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
              "GOOGLE_API_KEY", "LLAVA_MED_BASE_URL", "CONCH_CHECKPOINT"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path / "hf" / "hub"


def check(name):
    spec = Catalog.load().model(name)
    return ADAPTERS.get(spec.get("adapter"))(spec).check()


@pytest.mark.parametrize("model, fragments", [
    ("gpt4o", ["environment variable OPENAI_API_KEY is not set"]),
    ("gemini-2.0-flash", ["GEMINI_API_KEY or GOOGLE_API_KEY is not set"]),
    ("claude-haiku-4-5", ["environment variable ANTHROPIC_API_KEY is not set"]),
    ("llava-med", ["set LLAVA_MED_BASE_URL to its OpenAI-compatible URL"]),
    ("plip", ["weights vinid/plip are not in the Hugging Face cache", "models--vinid--plip", "hf download vinid/plip"]),
    ("biomedclip", ["models--microsoft--BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"]),
    ("clip-vit-b32", ["models--timm--vit_base_patch32_clip_224.openai"]),
    ("dinov2-s", ["models--timm--vit_small_patch14_dinov2.lvd142m"]),
    ("llama-3.2-11b-vision", ["models--meta-llama--Llama-3.2-11B-Vision-Instruct"]),
    ("conch", ["models--MahmoodLab--conch", "hf download MahmoodLab/conch"]),
])
def test_missing_things_are_named(bare, model, fragments):
    if model in ("biomedclip", "clip-vit-b32"):
        pytest.importorskip("open_clip")
    problems = check(model)
    assert len(problems) == 1, problems
    for f in fragments:
        assert f in problems[0]
    assert str(bare) in problems[0] or "environment variable" in problems[0] or "URL" in problems[0]


def test_present_things_pass(bare, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert check("gpt4o") == [] and check("random") == []
    snap = bare / "models--vinid--plip" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (bare / "models--vinid--plip" / "refs").mkdir()
    (bare / "models--vinid--plip" / "refs" / "main").write_text("abc")  # the hub cache's layout
    assert check("plip") == []
