"""``cytoreg models check``: weights found in the Hugging Face cache or a local folder, config and
processor loaded without reading weights, gated repos named with where to accept the licence, and
broken checkpoints reported as a line, never a traceback."""
import json
import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("timm")

from cytoreg.cli import main  # noqa: E402


def _put_in_hf_cache(cache, repo, folder):
    """The hub cache layout huggingface_hub itself writes: models--org--name/{refs/main,snapshots/<sha>/}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    sha = "0" * 40
    shutil.copytree(folder, root / "snapshots" / sha)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    return root / "snapshots" / sha


@pytest.fixture
def cache(tmp_path, monkeypatch):
    c = tmp_path / "hub"
    c.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(c))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return c


def test_gated_and_missing_say_where_to_accept_the_licence(cache, capsys):
    rc = main(["models", "check", "virchow2,medsiglip", "gpt4o"])
    out = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out.out + out.err
    assert ("get it   accept the licence at https://huggingface.co/paige-ai/Virchow2, then hf auth login "
            "and hf download paige-ai/Virchow2") in out.out
    assert f"missing: google/medsiglip-448 is not in the Hugging Face cache {cache}" in out.out
    assert "gpt4o  (openai: served by the openai adapter: no local weights)" in out.out
    assert out.out.count("NOT READY") == 2


def test_present_in_the_cache_and_loadable(cache, tmp_path, capsys):
    from tiny_encoders import save_twin
    from tiny_hf_encoders import save_hf_twin

    save_hf_twin(tmp_path / "phikon", "phikon-v2")
    _put_in_hf_cache(cache, "owkin/phikon-v2", tmp_path / "phikon")
    save_twin(tmp_path / "v2", "virchow2")
    _put_in_hf_cache(cache, "paige-ai/Virchow2", tmp_path / "v2")
    rc = main(["models", "check", "phikon-v2", "virchow2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "  loads    Dinov2Config (dinov2), BitImageProcessor" in out
    assert "  loads    timm architecture vit_huge_patch14_224" in out
    assert "gated repo; its licence was accepted at https://huggingface.co/paige-ai/Virchow2" in out
    assert out.count("status   ready") == 2


def test_broken_checkpoints_are_a_line_not_a_traceback(cache, tmp_path, capsys):
    from tiny_hf_encoders import save_hf_twin

    save_hf_twin(tmp_path / "p", "phikon-v2")
    snap = _put_in_hf_cache(cache, "owkin/phikon-v2", tmp_path / "p")
    (snap / "config.json").write_text('{"model_type": "no-such-model"}')
    assert main(["models", "check", "phikon-v2"]) == 1
    out = capsys.readouterr().out
    assert "  loads    no: ValueError:" in out and "no-such-model" in out and "Traceback" not in out
    # a sharded checkpoint with a shard missing
    (snap / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert main(["models", "check", "phikon-v2"]) == 1
    assert "incomplete:" in capsys.readouterr().out


def test_local_folder_spec_and_unknown_name(tmp_path, capsys):
    from tiny_siglip import save_tiny_siglip

    save_tiny_siglip(tmp_path / "w", "a photo of a cell")
    (tmp_path / "m.yaml").write_text(f"spec: model/v1\nname: sig-twin\nextends: medsiglip\n"
                                     f"params: {{model: '{tmp_path / 'w'}'}}\n")
    assert main(["models", "check", "sig-twin", "--include", str(tmp_path / "m.yaml")]) == 0
    assert "SiglipConfig (siglip), SiglipProcessor" in capsys.readouterr().out
    assert main(["models", "check", "virchow"]) == 2
    assert "no model named 'virchow'" in capsys.readouterr().err


def test_list_models_names_the_zoo_families(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    for name in ("uni", "uni2-h", "virchow2", "h-optimus-0", "h-optimus-1", "prov-gigapath", "phikon-v2",
                 "hibou-b", "hibou-l", "midnight", "dinov3-b", "medsiglip", "pathgen-clip", "medgemma-4b",
                 "medgemma-27b", "qwen2.5-vl-7b", "qwen3-vl-8b", "internvl3-8b", "lingshu-7b", "smolvlm2-2.2b"):
        assert f"│ {name} " in out, name
