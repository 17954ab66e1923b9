"""Heavy libraries stay out of the paths that do not use them: ``cytoreg list`` and a fully cached
rerun of a CLIP zero-shot run (each checked in a fresh interpreter)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
HEAVY = ("torch", "open_clip", "sklearn", "scipy", "transformers", "openai", "PIL")


def _imports_after(tmp_path, argv: list[str], cache_dir: Path) -> tuple[list[str], str]:
    code = ("import sys, json\nfrom cytoreg.cli import main\nrc = main(%r)\n"
            "print(json.dumps({'rc': rc, 'heavy': [m for m in %r if m in sys.modules]}))" % (argv, HEAVY))
    env = {**os.environ, "PYTHONPATH": str(SRC), "CYTOREG_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    last = json.loads(out.stdout.strip().splitlines()[-1])
    return last["heavy"], out.stdout


def test_cytoreg_list_imports_nothing_heavy(tmp_path):
    for run in ("cold", "warm"):  # the first call fills the catalog cache, the second reads it
        heavy, stdout = _imports_after(tmp_path, ["list", "tasks"], tmp_path / "cache")
        assert heavy == [], run
        assert "demo" in stdout


@pytest.mark.torch
def test_fully_cached_clip_rerun_never_imports_torch(tmp_path):
    pytest.importorskip("open_clip")
    from tiny_clip import save_tiny_clip

    save_tiny_clip(tmp_path / "tiny")
    d = tmp_path / "specs"
    d.mkdir()
    (d / "tiny.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                 f"params: {{model: 'local-dir:{tmp_path / 'tiny'}'}}\n")
    (d / "t.yaml").write_text("spec: task/v1\nname: small-clip\nextends: demo\nsampling: {test_per_class: 3}\n")
    argv = ["eval", "--tasks", "small-clip", "--models", "tiny-clip", "--include", str(d),
            "--output", str(tmp_path / "run"), "--bootstrap", "50", "--no-progress"]
    heavy, _ = _imports_after(tmp_path, argv, tmp_path / "cache")
    assert "torch" in heavy and "open_clip" in heavy  # the first run computes
    first = json.loads((tmp_path / "run" / "results.json").read_text())
    heavy, _ = _imports_after(tmp_path, argv, tmp_path / "cache")
    # PIL stays: the run's image pre-check (engine/imagecheck.py) decodes every test image each run
    assert set(heavy) <= {"PIL"}, heavy
    again = json.loads((tmp_path / "run" / "results.json").read_text())
    (e1,), (e2,) = first["evaluations"], again["evaluations"]
    assert e2["metrics"] == e1["metrics"] and e2["ci"] == e1["ci"]
    assert e2["requests"]["cached"] == e2["n"] == e1["n"] > 0
