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


def test_gated_and_missing_say_where_to_accept_the_licence(cache, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    rc = main(["models", "check", "virchow2,medsiglip", "gpt4o"])
    out = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out.out + out.err
    assert ("get it   accept the licence at https://huggingface.co/paige-ai/Virchow2, then hf auth login "
            "and hf download paige-ai/Virchow2 on a machine with network") in out.out
    assert (f"missing: google/medsiglip-448 (params.model) is not in the Hugging Face cache {cache} "
            "(models--google--medsiglip-448; HF_HUB_OFFLINE is set)") in out.out
    assert "gpt4o  (openai: served by the openai adapter)" in out.out
    assert "  key      missing: environment variable OPENAI_API_KEY is not set" in out.out
    assert out.out.count("NOT READY") == 3


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
    assert f"  loads    no: {snap}: ValueError:" in out and "no-such-model" in out and "Traceback" not in out
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


@pytest.fixture
def no_keys(monkeypatch):
    for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
              "LLAVA_MED_BASE_URL", "LLAVA_MED_API_KEY", "CONCH_CHECKPOINT", "PATHGEN_CLIP_CHECKPOINT"):
        monkeypatch.delenv(k, raising=False)


def _report(out: str) -> dict[str, list[str]]:
    """models check's text report: model name -> its indented lines."""
    models: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line and not line.startswith(" "):
            models[line.split()[0]] = cur = []
        elif line.strip():
            cur.append(line.strip())
    return models


def test_a_model_that_cannot_run_is_never_ready(cache, no_keys, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pathgen-clip.pt is read relative to the current folder
    rc = main(["models", "check", "pathgen-clip", "gpt-5", "claude-opus-4-7", "gemini-2.5-pro", "llava-med", "conch"])
    r = _report(capsys.readouterr().out)
    assert rc == 1
    from cytoreg.registry.catalog import Catalog

    pg = Catalog.load([]).model("pathgen-clip").get("params")
    assert r["pathgen-clip"] == [
        f"weights  missing: the checkpoint file {pg['pretrained']} (params.pretrained, relative to the current "
        f"folder {tmp_path}) does not exist", f"get it   {' '.join(pg['download_hint'].split())}", "status   NOT READY"]
    assert r["gpt-5"][0] == ("key      missing: environment variable OPENAI_API_KEY is not set; export your API key "
                             "there (never written to disk); or point -M base_url=... at a local server")
    assert r["claude-opus-4-7"][0].startswith("key      missing: environment variable ANTHROPIC_API_KEY is not set")
    assert r["gemini-2.5-pro"][0].startswith(
        "key      missing: environment variable GEMINI_API_KEY or GOOGLE_API_KEY is not set")
    assert r["llava-med"][0].startswith("endpoint missing: environment variable LLAVA_MED_BASE_URL is not set")
    # a gated hub reference is a hub id with a "get it" line, never a file path
    assert r["conch"][0] == (f"weights  missing: pytorch_model.bin of MahmoodLab/conch (params.checkpoint) is not in "
                             f"the Hugging Face cache {cache} (models--MahmoodLab--conch; HF_HUB_OFFLINE is set)")
    assert r["conch"][1].startswith("get it   accept the licence at https://huggingface.co/MahmoodLab/CONCH, then hf auth login")
    assert all(v[-1] == "status   NOT READY" for v in r.values()), r
    # with the key / endpoint set they are ready, and the key is never shown
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    monkeypatch.setenv("LLAVA_MED_BASE_URL", "http://127.0.0.1:8000/v1")
    assert main(["models", "check", "gpt-5", "llava-med"]) == 0
    out = capsys.readouterr().out
    assert "key      OPENAI_API_KEY is set (never shown)" in out and "sk-secret" not in out
    assert "endpoint http://127.0.0.1:8000/v1" in out


def test_checkpoint_paths_are_shown_not_masked(cache, no_keys, capsys, monkeypatch):
    monkeypatch.setenv("CONCH_CHECKPOINT", "/nope/conch.bin")
    monkeypatch.setenv("PATHGEN_CLIP_CHECKPOINT", "/nope/pathgen-clip.pt")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-stay-hidden-42")
    assert main(["models", "check", "conch", "pathgen-clip"]) == 1
    out = capsys.readouterr().out
    assert "***" not in out
    assert "weights  missing: the checkpoint file /nope/conch.bin (params.checkpoint) does not exist" in out
    assert "weights  missing: the checkpoint file /nope/pathgen-clip.pt (params.pretrained) does not exist" in out
    from cytoreg import secrets

    assert secrets.redact("at /nope/conch.bin, key sk-must-stay-hidden-42") == "at /nope/conch.bin, key ***"


def _uni_in_cache(cache, tmp_path):
    from tiny_encoders import save_twin

    save_twin(tmp_path / "uni", "uni")
    return _put_in_hf_cache(cache, "MahmoodLab/UNI", tmp_path / "uni")


def test_truncated_and_corrupt_files_are_named_with_the_fix(cache, tmp_path, capsys):
    snap = _uni_in_cache(cache, tmp_path)
    # a whole (tiny) twin: ready, with a warning that it is far below the spec's 303M parameters
    assert main(["models", "check", "uni"]) == 0
    out = capsys.readouterr().out
    assert "warning: " in out and "far below what the spec's parameters 303M needs (at least 0.30 GB)" in out
    # the 2-byte file of the audit
    (snap / "pytorch_model.bin").write_bytes(b"ab")
    assert main(["models", "check", "uni"]) == 1
    out = capsys.readouterr().out
    assert (f"weights  damaged: {snap / 'pytorch_model.bin'} (2 bytes) is neither a torch checkpoint (zip archive) "
            "nor safetensors; a truncated or corrupt download: download it again with hf download MahmoodLab/UNI "
            "--force-download") in out
    assert "weights_only" not in out and "present" not in out
    # a torch zip archive cut in half
    save_twin_bytes = (tmp_path / "uni" / "pytorch_model.bin").read_bytes()
    (snap / "pytorch_model.bin").write_bytes(save_twin_bytes[: len(save_twin_bytes) // 2])
    assert main(["models", "check", "uni"]) == 1
    assert "is a zip archive (torch's format) without its end: cut short at" in capsys.readouterr().out
    # a config.json that is not JSON: named, with the file
    (snap / "pytorch_model.bin").write_bytes(save_twin_bytes)
    (snap / "config.json").write_text("<html>rate limited</html>")
    assert main(["models", "check", "uni"]) == 1
    out = capsys.readouterr().out
    assert f"damaged: {snap / 'config.json'} is not valid JSON (Expecting value: line 1 column 1 (char 0))" in out
    assert "JSONDecodeError" not in out


def test_a_cut_short_safetensors_file(cache, tmp_path, capsys):
    from tiny_encoders import save_twin

    save_twin(tmp_path / "v2", "virchow2")
    snap = _put_in_hf_cache(cache, "paige-ai/Virchow2", tmp_path / "v2")
    data = (snap / "model.safetensors").read_bytes()
    (snap / "model.safetensors").write_bytes(data[:-100])
    assert main(["models", "check", "virchow2"]) == 1
    assert (f"is cut short: its header promises {len(data)} bytes, the file has {len(data) - 100}"
            in capsys.readouterr().out)


def test_json_output_and_exit_codes(cache, no_keys, capsys):
    assert main(["models", "check", "random", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r == {"name": "random", "adapter": "random", "source": "a weightless baseline", "ready": True,
                 "lines": [{"key": "weights", "text": "a weightless baseline"}], "problems": [], "warnings": []}
    assert main(["models", "check", "random,medsiglip", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [x["ready"] for x in rows] == [True, False]
    (p,) = rows[1]["problems"]
    assert p["category"] == "weights" and p["message"].startswith(
        "model 'medsiglip': weights missing: google/medsiglip-448 (params.model) is not in the Hugging Face cache")


def test_a_checkpoint_with_pickled_objects_is_refused_before_any_load(cache, tmp_path, capsys):
    """What timm would refuse with "retry with weights_only=False" is named here, without that advice."""
    import numpy as np
    import torch

    snap = _uni_in_cache(cache, tmp_path)
    sd = torch.load(snap / "pytorch_model.bin", weights_only=True)
    torch.save({"model": sd, "best_acc": np.float64(0.9)}, snap / "pytorch_model.bin")
    assert main(["models", "check", "uni"]) == 1
    out = capsys.readouterr().out
    assert (f"weights  unsafe: {snap / 'pytorch_model.bin'} holds pickled Python objects (numpy._core.multiarray."
            "scalar, numpy.dtype) that a weights-only load refuses, and cytoreg never unpickles them") in out
    assert "weights_only=False" not in out


def test_library_words_never_advise_an_unsafe_load():
    from cytoreg.models.weights import hub_missing, library_words

    timm_words = RuntimeError("weights_only=True blocked loading this checkpoint because it requires non-allowlisted "
                              "pickle globals. No automatic unsafe pickle fallback is performed. If this checkpoint "
                              "is trusted, retry with weights_only=False.")
    for exc in (timm_words, hub_missing("uni", "MahmoodLab/UNI", "", None, timm_words)):
        text = library_words(exc) if isinstance(exc, RuntimeError) else str(exc)
        assert "weights_only=False" not in text and "retry" not in text
        assert "holds pickled Python objects a weights-only load refuses, or is corrupt" in text
    assert library_words(ValueError("bad value\nmore")) == "ValueError: bad value"


def test_the_check_never_reaches_the_network(cache, monkeypatch, capsys):
    """Without HF_HUB_OFFLINE a missing model is reported at once, not after hub retries."""
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(*a, **k):
        raise AssertionError("the check opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert main(["models", "check", "phikon-v2", "conch", "clip-vit-b32"]) == 1
    out = capsys.readouterr().out
    assert out.count("NOT READY") == 3 and "HF_HUB_OFFLINE is set" not in out and "AssertionError" not in out


def test_a_damaged_weight_file_at_load_time_never_advises_weights_only_false(monkeypatch):
    """Past the preflight (a direct load), torch's refusal of a damaged file, as timm passes it on, is
    not repeated with its 'retry with weights_only=False' advice nor blamed on model_kwargs."""
    import pickle

    import timm

    from cytoreg.errors import ModelLoadError
    from cytoreg.models.timm_features import TimmFeatures
    from cytoreg.registry.catalog import Catalog

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed. ... If this checkpoint is trusted, retry with "
                                     "weights_only=False.")

    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(ModelLoadError) as exc:
        TimmFeatures(Catalog.load().model("uni")).load()
    msg = str(exc.value)
    assert "weights_only=False" not in msg and "model_kwargs" not in msg
    assert "`cytoreg models check uni` names the file; delete it and download it again" in msg


def _eval_check(tmp_path, model, capsys):
    (tmp_path / "t.yaml").write_text("spec: task/v1\nname: zoo-probe\nkind: probe\nextends: demo\n"
                                     "sampling: {seed: 42, test_per_class: 2, train_per_class: 3, val_per_class: 1}\n")
    rc = main(["eval", "--check", "--tasks", "zoo-probe", "--models", model, "--include", str(tmp_path / "t.yaml"),
               "-o", str(tmp_path / "run")])
    return rc, " ".join(capsys.readouterr().out.split())  # rich wraps long lines


def test_a_partial_snapshot_is_caught_by_the_shallow_check(cache, tmp_path, capsys):
    """The audit's two: hibou-b with config and weights but no preprocessor_config.json, and KEEP whose
    config.json auto_map names modeling_keep.py that the snapshot lacks. ``eval --check`` (nothing
    loaded) and ``models check`` both say which file and how to get it; the whole snapshots pass."""
    from tiny_hf_encoders import save_hibou_twin
    from tiny_keep import save_tiny_keep

    save_hibou_twin(tmp_path / "hibou")
    snap = _put_in_hf_cache(cache, "histai/hibou-b", tmp_path / "hibou")
    save_tiny_keep(tmp_path / "keep", "a photo of a cell")
    ksnap = _put_in_hf_cache(cache, "Astaxanthin/KEEP", tmp_path / "keep")
    rc, out = _eval_check(tmp_path, "hibou-b,keep", capsys)
    assert rc == 0 and "preflight ok" in out, out
    (snap / "preprocessor_config.json").unlink()
    (ksnap / "modeling_keep.py").unlink()
    rc, out = _eval_check(tmp_path, "hibou-b", capsys)
    want = (f"model 'hibou-b': files preprocessor_config.json or processor_config.json is missing from the snapshot "
            f"{snap}, and the hf_features adapter's loader reads it (a partial download?): hf download histai/hibou-b "
            "--force-download")
    assert rc == 1 and "preflight ok" not in out and want in out, out
    rc, out = _eval_check(tmp_path, "keep", capsys)
    assert rc == 1 and (f"model 'keep': files modeling_keep.py is missing from the snapshot {ksnap}, and the "
                        "hf_remote_clip adapter's loader reads it (a partial download?): hf download Astaxanthin/KEEP "
                        "--force-download") in out, out
    assert main(["models", "check", "hibou-b", "keep"]) == 1
    r = _report(capsys.readouterr().out)
    assert r["hibou-b"][-2].startswith("files    preprocessor_config.json or processor_config.json is missing")
    assert r["keep"][-2].startswith("files    modeling_keep.py is missing from the snapshot")
    assert r["hibou-b"][-1] == r["keep"][-1] == "status   NOT READY"
    # a module the named one imports relatively is needed too (transformers fetches it)
    (snap / "preprocessor_config.json").write_text((tmp_path / "hibou" / "preprocessor_config.json").read_text())
    (snap / "modeling_dinov2.py").write_text("from .configuration_dinov2 import Dinov2Config\n"
                                             "from .helpers_dinov2 import Block\n")
    rc, out = _eval_check(tmp_path, "hibou-b", capsys)
    assert rc == 1 and "files helpers_dinov2.py is missing from the snapshot" in out, out


def test_transformers_words_for_a_partial_snapshot_never_leak(cache, tmp_path, monkeypatch):
    """The audit's raw messages (a URL made of a cache path, "couldn't connect" while HF_HUB_OFFLINE is
    set and the repo is cached, "a local directory with the same name") become: FILE is missing from
    SNAPSHOT (a partial download?): hf download REPO --force-download."""
    from tiny_hf_encoders import save_hibou_twin
    from tiny_keep import save_tiny_keep

    from cytoreg.errors import ModelLoadError
    from cytoreg.models.weights import hub_missing, library_words
    from cytoreg.registry.builtins import ADAPTERS
    from cytoreg.registry.catalog import Catalog

    save_tiny_keep(tmp_path / "keep", "a photo of a cell")
    ksnap = _put_in_hf_cache(cache, "Astaxanthin/KEEP", tmp_path / "keep")
    (ksnap / "modeling_keep.py").unlink()
    save_hibou_twin(tmp_path / "hibou")
    hsnap = _put_in_hf_cache(cache, "histai/hibou-b", tmp_path / "hibou")
    (hsnap / "preprocessor_config.json").unlink()
    cat = Catalog.load([])
    for name, snap, repo, file in (("keep", ksnap, "Astaxanthin/KEEP", "modeling_keep.py"),
                                   ("hibou-b", hsnap, "histai/hibou-b", "preprocessor_config.json")):
        spec = cat.model(name)
        with pytest.raises(ModelLoadError) as err:  # the adapters' real loads, past the preflight
            ADAPTERS.get(spec.get("adapter"))(spec, device="cpu").load()
        msg = str(err.value)
        assert msg.endswith(f": {file} is missing from the snapshot {snap} (a partial download?): hf download {repo} "
                            "--force-download"), msg
        assert "https://" not in msg and "connect" not in msg and "local directory" not in msg
    # the transformers words of the audit, one by one: a snapshot path given as the model id
    raw = OSError(f"{ksnap} does not appear to have a file named modeling_keep.py. Checkout "
                  f"'https://huggingface.co/{ksnap}/tree/None' for available files.")
    assert library_words(raw) == "OSError: modeling_keep.py is missing"
    assert str(hub_missing("keep", str(ksnap), "", None, raw)) == (
        f"model 'keep': cannot load {ksnap}: modeling_keep.py is missing from the snapshot {ksnap} (a partial "
        "download?): hf download Astaxanthin/KEEP --force-download")
    offline = OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in "
                      "the cached files.\nCheck your internet connection or see how to run the library in offline mode")
    assert library_words(offline) == ("OSError: a file the loader needs is missing (HF_HUB_OFFLINE is set, so "
                                      "nothing was fetched)")
    same = OSError("Can't load image processor for 'histai/hibou-b'. If you were trying to load it from "
                   "'https://huggingface.co/models', make sure you don't have a local directory with the same name. "
                   "Otherwise, make sure 'histai/hibou-b' is the correct path to a directory containing a "
                   "preprocessor_config.json file")
    assert library_words(same) == "OSError: preprocessor_config.json is missing"
    # a repo that is not in the cache keeps the "not here, get it" wording
    assert "looked in the Hugging Face cache" in str(hub_missing("x", "org/absent", "", None, offline))
