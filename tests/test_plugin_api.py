"""The plugin API as documented in docs/plugins.md: a package written by `cytoreg new plugin`,
pip-installed into a target folder and evaluated; the adapter lifecycle (load once, numpy
preprocess); broken entry points; CYTOREG_PLUGINS; extends with null; CIs for plugin metrics."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.models.base import Embedder
from cytoreg.registry.builtins import ADAPTERS

PLUGIN = Path(__file__).parent / "plugin_pkg"


def cli(*args, env_extra=None, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cytoreg", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


def with_path(*paths) -> dict:
    """Plugin folders first, then this checkout's PYTHONPATH made absolute (runs may change cwd)."""
    inherited = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([*map(str, paths), *inherited])}


@pytest.mark.slow
def test_new_plugin_pip_installed_and_evaluated(tmp_path):
    pytest.importorskip("torch")
    out = cli("new", "plugin", "cyto-tiny", "-o", str(tmp_path / "plug"))
    assert out.returncode == 0, out.stderr
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                          "--target", str(site), str(tmp_path / "plug")], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    assert (site / "cyto_tiny" / "data" / "pbc" / "basophil").is_dir()  # data travels in the wheel
    env = with_path(site)
    listed = json.loads(cli("list", "--json", env_extra=env).stdout)
    adapters = {e["name"]: e for e in listed["adapters"]}
    assert adapters["cyto_tiny_embedder"]["kind"] == "embedder"
    assert adapters["cyto_tiny_embedder"]["origin"] == "package cyto-tiny"
    assert adapters["cyto_tiny_embedder"]["description"].startswith("Random-projection embedder")
    metrics = {e["name"]: e for e in listed["metrics"]}
    assert metrics["cyto_tiny_error_rate"]["kind"] == "metric"
    run = tmp_path / "run"
    out = cli("eval", "--tasks", "cyto-tiny-demo", "--models", "cyto-tiny-tiny", "-o", str(run), "--no-progress",
              "--bootstrap", "200", env_extra=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads((run / "results.json").read_text())
    task = res["tasks"]["cyto-tiny-demo"]
    assert task["labels"] == ["Basophil", "Eosinophil", "Lymphocyte"] and task["n_test"] == 12
    assert task["origin"] == "package cyto-tiny (cyto-tiny-demo.yaml)"
    assert res["plugins"] == {"cyto-tiny": "0.1.0"}
    assert res["models"]["cyto-tiny-tiny"]["plugin"] == {"name": "cyto-tiny", "version": "0.1.0"}
    (ev,) = res["evaluations"]
    assert ev["errors"] == 0  # load() ran before encode_batch, the numpy preprocess stacked
    m = ev["metrics"]
    assert m["cyto_tiny_error_rate"] == pytest.approx(1 - m["accuracy"])
    ci = ev["ci"]["cyto_tiny_error_rate"]
    assert ci["resamples"] == 200 and ci["low"] <= m["cyto_tiny_error_rate"] <= ci["high"]
    assert ev["folds"]["cyto_tiny_error_rate"]["k"] == 4  # 4 per class: the fifth fold is empty
    samples = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    assert all("/cyto_tiny/data/pbc/" in s["image"] for s in samples)


class CountingEmbedder(Embedder):
    """Numpy preprocess, weights only after load()."""

    loads = 0
    params_schema = {"type": "object"}

    def load(self):
        type(self).loads += 1
        self._w = np.random.RandomState(0).standard_normal((8, 3 * 4 * 4))

    def preprocess(self, image):
        return np.asarray(image.convert("RGB").resize((4, 4)), dtype=np.float32).transpose(2, 0, 1) / 255

    def encode_batch(self, batch):
        x = batch.numpy().reshape(len(batch), -1) @ self._w.T
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode_texts(self, texts):
        v = np.stack([np.random.RandomState(len(t)).standard_normal(8) for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def logit_scale(self):
        return 10.0


def test_engine_calls_load_once_and_stacks_numpy(tmp_path):
    ADAPTERS.add("counting_test", CountingEmbedder, kind="embedder", replace=True)
    d = tmp_path / "specs"
    d.mkdir()
    (d / "m.yaml").write_text("spec: model/v1\nname: counting\nadapter: counting_test\nexecution: {batch_size: 4, workers: 0}\n")
    (d / "t.yaml").write_text("spec: task/v1\nname: demo-small\nextends: demo\nsampling: {test_per_class: 2}\n")
    CountingEmbedder.loads = 0
    res = evaluate(EvalConfig(["demo", "demo-small"], ["counting"], output=tmp_path / "run", include=[str(d)],
                              progress=False, bootstrap=0, limit=10))
    assert CountingEmbedder.loads == 1  # two tasks, one model: load() once
    assert [e["errors"] for e in res["evaluations"]] == [0, 0]
    # rerun: everything from the cache, load() not called at all
    CountingEmbedder.loads = 0
    evaluate(EvalConfig(["demo"], ["counting"], output=tmp_path / "rerun", cache=tmp_path / "run" / "cache.sqlite",
                        include=[str(d)], progress=False, bootstrap=0, limit=10))  # another configuration: own folder
    assert CountingEmbedder.loads == 0


def _fake_dist(root: Path, name: str, entry_points: str, module: str = "") -> None:
    info = root / f"{name.replace('-', '_')}-0.2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (root / f"{name.replace('-', '_')}.py").write_text(module)


def test_broken_entry_point_is_a_warning_and_plugins_can_be_selected(tmp_path):
    _fake_dist(tmp_path, "broken-plugin", "[cytoreg.models]\nbad = not a reference\n"
               "[cytoreg.tasks]\nnokind = broken_plugin:x\n[cytoreg.specs]\nmissing = no_such_pkg_anywhere\n"
               "[cytoreg.metrics]\ngood_metric = broken_plugin:good\n",
               "def good(p):\n    '''Always one.'''\n    return 1.0\n")
    env = with_path(tmp_path, PLUGIN)
    out = cli("list", "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert "package broken-plugin: entry point 'bad' = 'not a reference' is not of the form" in out.stderr
    assert "package broken-plugin: entry point 'nokind' in group cytoreg.tasks must be named" in out.stderr
    assert "package broken-plugin: cytoreg.specs entry 'missing'" in out.stderr
    data = json.loads(out.stdout)
    metrics = {e["name"]: e for e in data["metrics"]}
    assert metrics["good_metric"]["description"] == "Always one." and metrics["good_metric"]["kind"] == "metric"
    adapters = {e["name"]: e for e in data["adapters"]}
    assert adapters["first_label"]["kind"] == "baseline"
    assert adapters["first_label"]["description"] == "Always answers the task's first label."
    # the other plugin still evaluates
    out = cli("eval", "--tasks", "plugin-demo", "--models", "first-label", "-o", str(tmp_path / "run"),
              "--no-progress", "--bootstrap", "20", "-q", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # -q: warnings are not shown
    # CYTOREG_PLUGINS selects by distribution name
    only = json.loads(cli("list", "--json", env_extra={**env, "CYTOREG_PLUGINS": "cytoreg_plugin_demo"}).stdout)
    assert "first_label" in {e["name"] for e in only["adapters"]}
    assert "good_metric" not in {e["name"] for e in only["metrics"]}
    none = cli("list", "--json", env_extra={**env, "CYTOREG_PLUGINS": "none"})
    assert none.stderr == ""
    none = json.loads(none.stdout)
    assert "first_label" not in {e["name"] for e in none["adapters"]} and "plugin-demo" not in {
        e["name"] for e in none["tasks"]}
    typo = cli("list", "metrics", env_extra={**env, "CYTOREG_PLUGINS": "cytoreg-plugin-dem"})
    assert "CYTOREG_PLUGINS names 'cytoreg-plugin-dem', which is not an installed cytoreg plugin" in typo.stderr


def test_extends_null_deletes_inherited_keys(tmp_path):
    from cytoreg.registry.catalog import Catalog

    (tmp_path / "sub.yaml").write_text(
        "spec: task/v1\nname: three\nextends: demo\nlabels: [Basophil, Eosinophil, Lymphocyte]\naliases: null\n"
        "reference: null\nprompts: {few_shot: null}\nsettings: [zero_shot]\n"
        "data:\n  label_map: {BNE: null, SNE: null, MY: null, MMY: null, PMY: null, ERB: null, MO: null, PLATELET: null}\n")
    spec = Catalog.load([str(tmp_path)]).task("three")
    assert "aliases" not in spec.data and "reference" not in spec.data and "few_shot" not in spec.data["prompts"]
    assert spec.data["prompts"]["clip"]  # the rest of the mapping is inherited
    lm = spec.data["data"]["label_map"]
    assert lm["BNE"] is None and lm["BA"] == "Basophil"  # under label_map null still means "exclude"
    from cytoreg.registry.builtins import TASK_KINDS

    prep = TASK_KINDS.get("classification")(spec).prepare()
    assert sorted({s.label for s in prep.test}) == ["Basophil", "Eosinophil", "Lymphocyte"]


def test_metric_ci_unless_declared():
    from cytoreg.scoring import wants_ci
    from cytoreg.registry.builtins import METRICS, load_builtin_metrics

    load_builtin_metrics()

    def share(p):
        return 0.5

    def no_ci(p):
        return 0.5

    no_ci.ci = False
    METRICS.add("share_test", share, replace=True)
    METRICS.add("no_ci_test", no_ci, replace=True)
    assert wants_ci("share_test", 0.5) and not wants_ci("no_ci_test", 0.5)
    assert wants_ci("invalid_rate", 0.1) and not wants_ci("auc_macro", 0.9)
    assert not wants_ci("per_class", {"a": 1}) and not wants_ci("share_test", float("nan"))


def test_package_data_roots(tmp_path):
    from cytoreg.errors import DataError
    from cytoreg.tasks.sources.base import resolve_path

    assert resolve_path("package:demo_data/pbc") == Path(str(__import__("cytoreg").__path__[0])) / "demo_data/pbc"
    assert resolve_path("package:cytoreg:demo_data/pbc") == resolve_path("package:demo_data/pbc")
    with pytest.raises(DataError, match="package 'no_such_plugin_pkg' is not installed"):
        resolve_path("package:no_such_plugin_pkg:data")


def test_progress_labels_are_literal_and_cached_work_is_not_a_rate():
    from cytoreg.engine.progress import RunProgress

    rp = RunProgress(30)
    adv = rp.add("demo × gpt4o [zero_shot]", 20)
    adv(15, cached=True)
    tasks = {t.description: t for t in rp.progress.tasks}
    assert tasks["demo × gpt4o [zero_shot]"].fields["rate"] == "cached"
    label = rp.progress.columns[0].render(tasks["demo × gpt4o [zero_shot]"]).plain
    assert label == "demo × gpt4o [zero_shot]"
    adv(2)
    t = {t.description: t for t in rp.progress.tasks}["demo × gpt4o [zero_shot]"]
    assert t.fields["rate"].endswith(("/s", "/min")) and t.fields["eta"].startswith("ETA ")
    assert float(t.fields["rate"].split("/")[0]) < 1e5  # two items done now, not 17
    overall = {t.description: t for t in rp.progress.tasks}["all"]
    assert overall.total == 30 and overall.completed == 17


def test_cli_conveniences(tmp_path):
    pytest.importorskip("shtab")
    out = cli("completion", "bash")
    assert out.returncode == 0 and "_shtab_cytoreg" in out.stdout and "--model-args" in out.stdout
    out = cli("data", "fixtures", str(tmp_path / "fx"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "fx/hicervix/test.csv").is_file() and (tmp_path / "fx/nejm/image_challenge_dataset.json").is_file()
    again = cli("data", "fixtures", str(tmp_path / "fx"))
    assert again.returncode == 2 and "already holds acevedo" in again.stderr
    run = tmp_path / "run"
    assert cli("eval", "--tasks", "demo", "--models", "random", "-o", str(run), "--limit", "5", "--no-progress",
               "--bootstrap", "10").returncode == 0
    for flag in ("--output", "-o", "--out"):
        dest = tmp_path / f"lb{flag}"
        out = cli("leaderboard", str(run), flag, str(dest), "--format", "csv")
        assert out.returncode == 0, out.stderr
        assert (dest / "leaderboard.csv").is_file()
    out = cli("eval", "--tasks", "demo", "--models", "random", "-o", str(run), "--check", "--verbosity", "debug")
    assert out.returncode == 0 and "preflight ok" in out.stdout


def test_new_task_from_folder(tmp_path):
    from PIL import Image

    for cls, n in (("blast", 3), ("normal cell", 4)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "empty").mkdir()
    out = cli("new", "task", "my-cells", "--from-folder", str(tmp_path / "imgs"), "-o", str(tmp_path / "specs"))
    assert out.returncode == 2 and "class folder(s) empty hold no images" in out.stderr  # as eval says (data error)
    (tmp_path / "imgs" / "empty").rmdir()
    out = cli("new", "task", "my-cells", "--from-folder", str(tmp_path / "imgs"), "-o", str(tmp_path / "specs"))
    assert out.returncode == 0, out.stderr
    spec = tmp_path / "specs" / "my-cells.yaml"
    out = cli("eval", "--include", str(spec), "--tasks", "my-cells", "--models", "random", "-o", str(tmp_path / "r"),
              "--no-progress", "--bootstrap", "10")
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["tasks"]["my-cells"]["labels"] == ["blast", "normal cell"]
    assert res["tasks"]["my-cells"]["n_test"] == 2  # 3 and 4 images: 1 few-shot, (3 - 1) // 2 = 1 test each, rest train
