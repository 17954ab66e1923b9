"""MUSK through the built-in spec. CI cannot install MUSK (GitHub only, CC-BY-NC-ND), so the adapter
runs against an interface double of the ``musk`` package (tests/musk_double: same module and
function names and signatures, tiny model) and the tests assert what the adapter asks of the
package — README arguments, tokenizer ids and padding, transform numbers, checkpoint layout — and
that the probabilities equal the README's recipe computed directly. ``test_real_musk_*`` run the
same against the real package where it is importable (PYTHONPATH=/path/to/MUSK)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("torchvision")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from musk_twin import README, install_double, purge_musk, readme_ids, readme_probs, readme_transform  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

ROOT = Path(__file__).parents[1]
# the double and the real package register the same timm name; each test imports one afresh
pytestmark = pytest.mark.filterwarnings("ignore:Overwriting musk_large_patch16_384 in registry")
TASK = ("spec: task/v1\nname: zoo-musk\nextends: demo\nsampling: {seed: 3, test_per_class: 1}\n"
        "prompts:\n  clip:\n    templates: ['an image of {label}', 'a blood smear showing a {label}']\n")


def _words() -> str:
    demo = Catalog.load([]).task("demo")
    labels = " ".join(demo.get("labels"))
    return f"{labels} an image of a blood smear showing {labels.lower()} histopathology"


@pytest.fixture
def double(tmp_path, monkeypatch):
    """The double on sys.path as ``musk`` (a fresh import), removed afterwards."""
    root = install_double(tmp_path / "pkg", _words())
    purge_musk()
    monkeypatch.syspath_prepend(str(root))
    import musk

    musk.CALLS.clear()
    yield root
    purge_musk()


def _save_twin(folder: Path, seed: int = 0):
    import timm
    from safetensors.torch import save_file

    from musk import modeling  # noqa: F401 - registers the timm name

    torch.manual_seed(seed)
    model = timm.create_model("musk_large_patch16_384").eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.3)  # not CLIP's init, so exp() vs the parameter itself shows
    folder.mkdir(parents=True)
    save_file(model.state_dict(), str(folder / "model.safetensors"))  # the layout of xiangjx/musk
    return model


def _specs(tmp_path, checkpoint) -> Path:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "m.yaml").write_text(f"spec: model/v1\nname: musk-twin\nextends: musk\nparams: {{checkpoint: '{checkpoint}'}}\n"
                              "execution: {batch_size: 4, workers: 0}\n")
    (d / "t.yaml").write_text(TASK)
    return d


def test_musk_spec_states_the_readme_recipe():
    from timm.data.constants import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD

    s = Catalog.load([]).model("musk")
    p = s.get("params")
    assert s.get("adapter") == "musk" and p["arch"] == "musk_large_patch16_384"
    assert p["checkpoint"] == "hf_hub:xiangjx/musk" or os.environ.get("MUSK_CHECKPOINT")
    assert p["max_len"] == README["max_len"] and p["precision"] == "fp16"
    assert p["preprocess"] == {"resize": 384, "crop": 384, "interpolation": "bicubic",
                               "mean": list(IMAGENET_INCEPTION_MEAN), "std": list(IMAGENET_INCEPTION_STD)}
    assert s.get("gated") == "https://huggingface.co/xiangjx/musk" and "CC-BY-NC-ND 4.0" in s.get("license")


def test_musk_transform_is_the_readmes(tmp_path):
    """Same tensor as the README's torchvision pipeline, on demo images of other shapes too."""
    from cytoreg.models.musk_adapter import Musk
    from cytoreg.tasks.samples import open_image

    ad = Musk(Catalog.load([]).model("musk"))
    demo = Catalog.load([]).task("demo")
    from cytoreg.registry.builtins import TASK_KINDS

    prep = TASK_KINDS.get("classification")(demo).prepare()
    imgs = [open_image(s.image.read_bytes()) for s in prep.test[:2]]
    imgs.append(imgs[0].resize((500, 300)))
    for im in imgs:
        got, want = ad.preprocess(im), readme_transform()(im)
        assert got.shape == (3, 384, 384)
        assert torch.equal(got, want)


def test_musk_missing_package_says_how_to_install(tmp_path, monkeypatch, capsys):
    from cytoreg.cli import main
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.musk_adapter import Musk

    purge_musk()
    monkeypatch.setitem(sys.modules, "musk", None)  # `import musk` fails, find_spec says absent
    ckpt = tmp_path / "w" / "model.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    d = _specs(tmp_path, ckpt.parent)
    with pytest.raises(ModelLoadError, match=r"git clone https://github.com/lilab-stanford/MUSK && pip install -e"):
        Musk(Catalog.load([d]).model("musk-twin")).load()
    problems = Musk(Catalog.load([d]).model("musk-twin")).check()
    assert any("needs musk (lilab-stanford/MUSK)" in p and "PyPI's `musk` is an unrelated package" in p
               for p in problems)
    rc = main(["eval", "--tasks", "zoo-musk", "--models", "musk-twin", "-o", str(tmp_path / "run"), "--include", str(d),
               "--no-progress"])
    out = capsys.readouterr()
    assert rc == 2 and "Traceback" not in out.out + out.err
    assert "needs musk (lilab-stanford/MUSK). Install: git clone https://github.com/lilab-stanford/MUSK" in out.out + out.err


def test_musk_tokenizer_ids_are_the_readmes(double):
    """transformers 5 must read tokenizer.spm as the README's XLMRobertaTokenizer did (its
    ``vocab_file=`` route silently gives a 5-token vocabulary); xlm_tokenizer pads to 100."""
    from transformers import XLMRobertaTokenizer

    from cytoreg.models.musk_adapter import load_xlmr_tokenizer

    spm = double / "musk" / "models" / "tokenizer.spm"
    tok = load_xlmr_tokenizer(spm, "test")
    from musk import utils

    texts = ["an image of Band Neutrophil", "a blood smear showing a segmented neutrophil", "Ünïcode  words ß", ""]
    for t in texts:
        assert utils.xlm_tokenizer(t, tok, max_len=100) == readme_ids(spm, t, 100)
    long = " ".join(["neutrophil"] * 200)
    ids, pad = utils.xlm_tokenizer(long, tok, max_len=100)
    assert (len(ids), ids[0], ids[-1], sum(pad)) == (100, 0, 2, 0)
    silent = XLMRobertaTokenizer(vocab_file=str(spm))  # what the adapter must not use (transformers 5)
    if len(silent) < 10:
        assert set(silent.encode(texts[0])[1:-1]) == {3}


def test_musk_twin_zero_shot_is_the_readme_recipe(double, tmp_path):
    import musk
    from safetensors.torch import load_file

    from cytoreg.cli import main
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.tasks.samples import open_image

    model = _save_twin(tmp_path / "w")
    d = _specs(tmp_path, tmp_path / "w")
    out = tmp_path / "run"
    rc = main(["eval", "--tasks", "zoo-musk", "--models", "musk-twin", "-o", str(out), "--include", str(d),
               "--bootstrap", "10", "--no-progress"])
    assert rc == 0
    # what the adapter asked of the package
    loads = [c for name, c in musk.CALLS if name == "load_model_and_may_interpolate"]
    assert loads == [{"ckpt_path": str(tmp_path / "w" / "model.safetensors"), "model_key": README["model_key"],
                      "model_prefix": README["model_prefix"]}]
    forwards = [c for name, c in musk.CALLS if name == "forward"]
    assert forwards and all({k: c[k] for k in README["call"]} == README["call"] for c in forwards)
    images = [c for c in forwards if c["image"]]
    texts = [c for c in forwards if c["text_description"]]
    assert all(c["image"][1:] == (3, 384, 384) and c["image_dtype"] == "torch.float32" for c in images)
    assert all(c["text_description"][1] == README["max_len"] and c["padding_mask"] is not None for c in texts)
    toks = [c for name, c in musk.CALLS if name == "xlm_tokenizer"]
    assert {c["max_len"] for c in toks} == {README["max_len"]} and {c["tokenizer"] for c in toks} == {"XLMRobertaTokenizer"}
    assert len(toks) == 22  # 11 labels x 2 templates, one call per text as the README does
    # the numbers: the README's recipe computed directly on the saved weights
    reloaded = type(model)()
    reloaded.load_state_dict(load_file(str(tmp_path / "w" / "model.safetensors")), strict=True)
    reloaded.eval()
    kind = TASK_KINDS.get("classification")(Catalog.load([d]).task("zoo-musk"))
    prep = kind.prepare()
    imgs = [open_image(s.image.read_bytes()) for s in prep.test]
    expected = readme_probs(reloaded, double / "musk" / "models" / "tokenizer.spm", imgs, kind.class_prompts())
    recs = {json.loads(x)["id"]: json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()}
    got = np.array([[recs[s.id]["response"][lab] for lab in prep.labels] for s in prep.test])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)  # stored to 6 decimals
    with torch.no_grad():  # exp(logit_scale), CLIP's convention, would give other numbers
        sharper = readme_probs(_rescaled(reloaded), double / "musk" / "models" / "tokenizer.spm", imgs,
                               kind.class_prompts())
    assert np.abs(sharper - got).max() > 1e-2
    (ev,) = json.loads((out / "results.json").read_text())["evaluations"]
    assert ev["n_answered"] == len(prep.test) == 11 and "auc_macro" in ev["metrics"]


def _rescaled(model):
    import copy

    m = copy.deepcopy(model)
    m.logit_scale.data = model.logit_scale.data.exp()
    return m


def test_musk_checkpoint_that_does_not_fit_is_an_error(double, tmp_path):
    from safetensors.torch import load_file, save_file

    from cytoreg.errors import ModelLoadError
    from cytoreg.models.musk_adapter import Musk

    _save_twin(tmp_path / "w")
    state = load_file(str(tmp_path / "w" / "model.safetensors"))
    state.pop("vision_head.weight")
    state["language_head.weight"] = torch.zeros(8, 8)
    state["pooler.dense.weight"] = torch.zeros(2)
    (tmp_path / "bad").mkdir()
    save_file(state, str(tmp_path / "bad" / "model.safetensors"))
    d = _specs(tmp_path, tmp_path / "bad")
    with pytest.raises(ModelLoadError, match=r"1 weights missing \['vision_head.weight'\], 1 of another shape "
                                             r"\['language_head.weight'\]"):
        Musk(Catalog.load([d]).model("musk-twin")).load()
    d2 = _specs(tmp_path, tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="MUSK checkpoint .*nowhere does not exist"):
        Musk(Catalog.load([d2]).model("musk-twin")).load()


def test_musk_package_without_tokenizer_file(tmp_path, monkeypatch):
    """A plain `pip install git+…MUSK` wheel has no musk/models/tokenizer.spm: say so."""
    from cytoreg.errors import ModelLoadError
    from cytoreg.models.musk_adapter import Musk

    root = install_double(tmp_path / "pkg", "", tokenizer=False)
    purge_musk()
    monkeypatch.syspath_prepend(str(root))
    try:
        _save_twin(tmp_path / "w")
        d = _specs(tmp_path, tmp_path / "w")
        ad = Musk(Catalog.load([d]).model("musk-twin"))
        assert any("has no models/tokenizer.spm" in p for p in ad.check())
        with pytest.raises(ModelLoadError, match="has no models/tokenizer.spm.*params.tokenizer"):
            ad.load()
    finally:
        purge_musk()


def test_musk_models_check(double, tmp_path, capsys):
    from cytoreg.models.check import check

    _save_twin(tmp_path / "w")
    d = _specs(tmp_path, tmp_path / "w")
    c = check(Catalog.load([d]).model("musk-twin"))
    assert c.ready, c.lines
    assert dict(c.lines)["loads"].startswith("musk musk_large_patch16_384: 10 weights fit; XLM-R tokenizer")
    c = check(Catalog.load([]).model("musk"))
    if not os.environ.get("MUSK_CHECKPOINT"):
        assert not c.ready and "xiangjx/musk" in dict(c.lines)["weights"]


# -- the real package, where it is installed ------------------------------------------------------

def _real_musk_dir() -> Path:
    purge_musk()
    try:
        import importlib.util

        spec = importlib.util.find_spec("musk")
        path = Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None
    finally:
        purge_musk()
    if path is None or not (path / "modeling.py").is_file() or (path / "utils.py").read_text().find("MultiScaleForward") < 0:
        pytest.skip("the real MUSK package (lilab-stanford/MUSK) is not importable here")
    pytest.importorskip("fairscale")
    return path


def test_real_musk_tokenizer_ids_are_the_readmes():
    path = _real_musk_dir()
    from cytoreg.models.musk_adapter import load_xlmr_tokenizer

    purge_musk()
    try:
        from musk import utils

        spm = path / "models" / "tokenizer.spm"
        tok = load_xlmr_tokenizer(spm, "test")
        assert len(tok) == 64002
        for t in ["histopathology image of lung adenocarcinoma", "an image of Segmented Neutrophil", "Ünïcode  ß 中文"]:
            assert utils.xlm_tokenizer(t, tok, max_len=100) == readme_ids(spm, t, 100)
    finally:
        purge_musk()


@pytest.mark.slow
def test_real_musk_architecture_through_eval(tmp_path):
    """bench/musk_real_package.py: the real musk_large_patch16_384 with random weights, saved as
    model.safetensors, through ``cytoreg eval``, against the README recipe computed directly."""
    path = _real_musk_dir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path.parent)]), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "musk_real_package.py"), "--limit", "2",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("max abs diff")][0]
    assert float(line.split()[3]) < 1e-5, out.stdout


def test_musks_own_imports_are_checked_only_where_its_code_has_them(tmp_path):
    """fairscale / einops are needs of MUSK's vendored torchscale, not of cytoreg: the check reads
    them from the installed package's source (the double imports neither)."""
    from cytoreg.models.musk_adapter import _package_needs

    pkg = tmp_path / "musk"
    (pkg / "torchscale").mkdir(parents=True)
    (pkg / "modeling.py").write_text("import torch\n")
    assert _package_needs(pkg) == ()
    (pkg / "torchscale" / "moe.py").write_text("from fairscale import nn\nimport einops\n")
    assert _package_needs(pkg) == ("fairscale", "einops")
    assert _package_needs(None) == ()
