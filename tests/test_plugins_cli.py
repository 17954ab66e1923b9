"""Plugins through the real entry-point machinery, and the CLI's light start-up path."""
import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).parent / "plugin_pkg"


def run_cli(*args, env_extra=None, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cytoreg.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def plugin_env():
    return {"PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")])}


def test_plugin_registers_adapter_metric_and_specs():
    out = run_cli("list", "--json", env_extra=plugin_env())
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    models = {e["name"]: e for e in data["models"]}
    assert models["first-label"]["origin"] == "package cytoreg-plugin-demo (first-label.yaml)"
    adapters = {e["name"]: e for e in data["adapters"]}
    assert adapters["first_label"]["origin"] == "package cytoreg-plugin-demo"
    metrics = {e["name"]: e for e in data["metrics"]}
    assert metrics["mode_share"]["origin"] == "package cytoreg-plugin-demo"
    assert "plugin-demo" in {e["name"] for e in data["tasks"]}


def test_plugin_model_and_metric_run_end_to_end(tmp_path):
    out = run_cli("eval", "--tasks", "plugin-demo", "--models", "first-label", "-o", str(tmp_path / "run"),
                  "--no-progress", "--bootstrap", "50", env_extra=plugin_env())
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    ev = res["evaluations"][0]
    assert ev["metrics"]["mode_share"] == 1.0
    # every answer is the first label, so accuracy = its share of the test set (3 per class, 11 classes)
    assert ev["metrics"]["accuracy"] == 3 / 33


def test_without_plugin_its_names_are_unknown():
    out = run_cli("show", "first-label")
    assert out.returncode == 2
    assert "no task or model named 'first-label'" in out.stderr


def test_list_show_validate_import_no_heavy_libraries(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("spec: model/v1\nname: m\nadapter: open_clip\nparams: {model: 'hf-hub:x/y'}\n")
    code = (
        "import sys\n"
        "from cytoreg.cli import main\n"
        f"assert main(['list']) == 0\n"
        f"assert main(['show', 'demo']) == 0\n"
        f"assert main(['validate', {str(spec)!r}]) == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'timm', 'datasets', 'openai') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout


def test_unknown_names_suggest(tmp_path):
    out = run_cli("eval", "--tasks", "dem", "--models", "random", "-o", str(tmp_path))
    assert out.returncode == 2
    assert "unknown task 'dem'" in out.stderr and "did you mean 'demo'" in out.stderr
    assert "Traceback" not in out.stderr
