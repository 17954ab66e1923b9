"""cytoreg tasks in VLMEvalKit and inspect_ai (and lmms-eval's file format), and back: export a
small task, run it in the other harness with a model that answers from a fixed table, import the
harness's per-sample output, and get the same per-sample predictions and the same metrics as
cytoreg's own run with the same replies. The harnesses run in subprocesses (VLMEvalKit turns SSL
verification off process-wide on import)."""
import base64
import importlib.util
import csv
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cytoreg.cli import main
from cytoreg.engine.runner import EvalConfig, evaluate
from fake_openai import FakeOpenAI, image_hashes

TASK = "spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 2}\nsettings: [zero_shot, few_shot]\n"
REPLIES = ["{label}", "**{label}**", "The cell is most likely a {label}.", "I cannot tell.", "Lymphocyte",
           "Answer: {label}\n\nThe nucleus is round."]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The small task, a table sample id -> reply, and cytoreg's own run with those replies."""
    root = tmp_path_factory.mktemp("interop")
    specs = root / "specs"
    specs.mkdir()
    (specs / "small.yaml").write_text(TASK)
    out = root / "export-vlmeval"
    assert main(["export", "small", "--to", "vlmeval", "-o", str(out), "--include", str(specs)]) == 0
    man = json.loads((out / "cytoreg_export.json").read_text())
    labels = dict(zip(man["sample_ids"], [None] * len(man["sample_ids"])))
    with (out / f"{man['dataset']}.tsv").open(newline="", encoding="utf-8") as fh:
        tsv = list(csv.DictReader(fh, delimiter="\t"))
    by_sha, table = {}, {}
    for k, row in enumerate(tsv):
        sid, label = row["sample_id"], row["answer"]
        labels[sid] = label
        table[sid] = REPLIES[k % len(REPLIES)].format(label=label)
        by_sha[hashlib.sha256(base64.b64decode(row["image"])).hexdigest()] = sid
    assert list(labels) == man["sample_ids"] and None not in labels.values()
    with FakeOpenAI(lambda body: table[by_sha[image_hashes(body)[-1]]]) as srv:
        (specs / "table.yaml").write_text(f"spec: model/v1\nname: table\nadapter: openai\n"
                                          f"params: {{model: table, base_url: '{srv.base_url}'}}\n")
        own = evaluate(EvalConfig(["small"], ["table"], output=root / "own", include=[str(specs)], progress=False,
                                  bootstrap=100))
    own_rows = {r["id"]: r for r in map(json.loads, (root / "own" / "samples.jsonl").read_text().splitlines())
                if r["setting"] == "zero_shot"}
    return root, specs, man, table, own, own_rows


def _compare(root: Path, imported: dict, own: dict, own_rows: dict) -> None:
    rows = {r["id"]: r for r in map(json.loads, (root / "samples.jsonl").read_text().splitlines())}
    assert set(rows) == set(own_rows)
    for sid, r in rows.items():
        o = own_rows[sid]
        assert (r["response"], r["parsed"], r["match"], r["correct"]) == (o["response"], o["parsed"], o["match"],
                                                                          o["correct"]), sid
    ev = imported["evaluations"][0]
    mine = next(e for e in own["evaluations"] if e["setting"] == "zero_shot")
    for m in ("accuracy", "f1_weighted", "f1_macro", "balanced_accuracy", "invalid_rate"):
        assert ev["metrics"][m] == mine["metrics"][m], m
    assert ev["ci"]["f1_weighted"] == mine["ci"]["f1_weighted"]  # same seeds, same samples: same bootstrap
    assert imported["tasks"]["small"]["sample_ids"]["test"] == own["tasks"]["small"]["sample_ids"]["test"]


VLMEVAL_RUN = """
import json, sys
from pathlib import Path
export, work, table_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
work.mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(export))
import cytoreg_vlmeval
from vlmeval.dataset import build_dataset
from vlmeval.inference import infer_data_job
from vlmeval.vlm.base import BaseModel

man = json.loads((export / "cytoreg_export.json").read_text())
table = json.loads(table_file.read_text())
dataset = build_dataset(man["dataset"])
assert type(dataset).__name__ == "CytoregDataset" and len(dataset) == len(man["sample_ids"])
sid_by_index = dict(zip(dataset.data["index"].astype(str), dataset.data["sample_id"]))
seen = []

class Table(BaseModel):
    INTERLEAVE = True
    def generate_inner(self, message, dataset=None):
        images = [m["value"] for m in message if m["type"] == "image"]
        texts = [m["value"] for m in message if m["type"] == "text"]
        seen.append(("".join("I" if m["type"] == "image" else "T" for m in message), texts[-1]))
        index = Path(images[-1]).name.split("_")[0]
        return table[sid_by_index[index]]

infer_data_job(Table(), work_dir=str(work), model_name="table", dataset=dataset)
pred = next(work.glob("table_*" + man["dataset"] + "*"))
metrics = dataset.evaluate(str(pred))
print(json.dumps({"pred": str(pred), "orders": sorted(set(o for o, _ in seen)), "texts": sorted(set(t for _, t in seen)),
                  "metrics": metrics}))
"""


def test_vlmeval_round_trip(setup, tmp_path):
    if importlib.util.find_spec("vlmeval") is None:  # not imported here: vlmeval changes process-wide state
        pytest.skip("ms-vlmeval is in the dev extra")
    root, specs, man, table, own, own_rows = setup
    out = root / "export-vlmeval"
    (tmp_path / "table.json").write_text(json.dumps(table))
    (tmp_path / "run.py").write_text(VLMEVAL_RUN)
    env = {"LMUData": str(tmp_path / "lmu"), "PRED_FORMAT": "xlsx", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join(sys.path), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "lmu").mkdir()
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(out), str(tmp_path / "work"),
                        str(tmp_path / "table.json")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    from cytoreg.registry.catalog import Catalog

    prompt = Catalog.load([str(specs)]).task("small").get("prompts")["zero_shot"]
    assert info["orders"] == ["TI"] and info["texts"] == [prompt]  # cytoreg's prompt, byte-exact, text then image
    pred = Path(info["pred"])
    assert pred.suffix == ".xlsx"
    assert main(["import", "vlmeval", str(pred), "--task", "small", "--model", "table", "-o", str(root / "imp-v"),
                 "--include", str(specs), "--bootstrap", "100"]) == 0
    imported = json.loads((root / "imp-v" / "results.json").read_text())
    _compare(root / "imp-v", imported, own, own_rows)
    assert info["metrics"]["accuracy"] == imported["evaluations"][0]["metrics"]["accuracy"]  # the dataset's evaluate
    # the imported run sits beside cytoreg's own in one leaderboard column (same samples)
    assert main(["leaderboard", str(root / "own"), str(root / "imp-v"), "--format", "md", "--out",
                 str(tmp_path / "lb")]) == 0


INSPECT_RUN = """
import json, sys
from pathlib import Path
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ModelOutput, get_model
import inspect_ai.model._model as inspect_model

# inspect estimates token counts with tiktoken, whose encodings are downloaded on first use; this
# machine has no network, so the estimate is a length heuristic here (it plays no part in scoring)
inspect_model.count_text_tokens = lambda text: max(1, len(text) // 4)

module, logs, table_file = sys.argv[1], sys.argv[2], Path(sys.argv[3])
table = json.loads(table_file.read_text())
order = json.loads((Path(module).parent / "cytoreg_export.json").read_text())["sample_ids"]
outputs = [ModelOutput.from_content(model="mockllm/model", content=table[sid]) for sid in order]
model = get_model("mockllm/model", custom_outputs=outputs)
log = inspect_eval(module, model=model, log_dir=logs, max_samples=1, display="none")[0]
assert log.status == "success", log.error
scores = log.results.scores[0].metrics
texts = sorted({c.text for s in log.samples for m in s.input if m.role == "user" for c in m.content if c.type == "text"})
kinds = sorted({"".join(c.type[0] for c in m.content) for s in log.samples for m in s.input if m.role == "user"})
print(json.dumps({"log": log.location, "accuracy": scores["accuracy"].value, "texts": texts, "kinds": kinds}))
"""


def test_inspect_round_trip_with_mockllm(setup, tmp_path):
    if importlib.util.find_spec("inspect_ai") is None:
        pytest.skip("inspect-ai is in the dev extra")
    root, specs, man, table, own, own_rows = setup
    out = root / "export-inspect"
    assert main(["export", "small", "--to", "inspect", "-o", str(out), "--include", str(specs)]) == 0
    module = next(out.glob("cytoreg_*.py"))
    (tmp_path / "table.json").write_text(json.dumps(table))
    (tmp_path / "run.py").write_text(INSPECT_RUN)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path),
           "INSPECT_LOG_DIR": str(tmp_path / "logs")}
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), module.name, str(tmp_path / "logs"),
                        str(tmp_path / "table.json")], capture_output=True, text=True, env=env, timeout=300, cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    from cytoreg.registry.catalog import Catalog

    assert info["texts"] == [Catalog.load([str(specs)]).task("small").get("prompts")["zero_shot"]]
    assert info["kinds"] == ["ti"]
    log = Path(info["log"].replace("file://", ""))
    assert main(["import", "inspect", str(log), "--task", "small", "--model", "table", "-o", str(root / "imp-i"),
                 "--include", str(specs), "--bootstrap", "100"]) == 0
    imported = json.loads((root / "imp-i" / "results.json").read_text())
    _compare(root / "imp-i", imported, own, own_rows)
    assert info["accuracy"] == pytest.approx(imported["evaluations"][0]["metrics"]["accuracy"])  # inspect's scorer


def test_lmms_eval_files_follow_its_task_format(setup, tmp_path):
    """lmms-eval is not in the test extras (it brings ~40 packages: wandb, opencv, yt-dlp, ...) and has
    no mock model; the exported task is checked against its documented task format (YAML keys, the
    !function hooks run on the data file) and a --log_samples file in its shape is imported back."""
    import yaml

    root, specs, man, table, own, own_rows = setup
    out = root / "export-lmms"
    assert main(["export", "small", "--to", "lmms-eval", "-o", str(out), "--include", str(specs)]) == 0
    assert main(["export", "small", "--to", "lmms-eval", "--setting", "few_shot", "-o", str(tmp_path / "fs"),
                 "--include", str(specs)]) == 2  # interleaving cannot be kept there: refused, not approximated

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    name = json.loads((out / "cytoreg_export.json").read_text())["lmms_task"]
    cfg = yaml.load((out / f"{name}.yaml").read_text(), Loader=Loader)
    assert cfg["task"] == name and cfg["output_type"] == "generate_until" and cfg["test_split"] == "test"
    assert cfg["dataset_path"] == "json" and Path(cfg["dataset_kwargs"]["data_files"]["test"]) == (out / "samples.jsonl").resolve()
    for hook in ("doc_to_visual", "doc_to_text", "process_results"):
        assert cfg[hook] == ("function", f"utils.{hook}")
    sys.path.insert(0, str(out))
    try:
        import utils as lmms_utils
    finally:
        sys.path.remove(str(out))
    docs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    from cytoreg.registry.catalog import Catalog

    prompt = Catalog.load([str(specs)]).task("small").get("prompts")["zero_shot"]
    log_lines = []
    for k, doc in enumerate(docs):
        assert lmms_utils.doc_to_text(doc) == prompt
        (img,) = lmms_utils.doc_to_visual(doc)
        assert img.size[0] > 50
        reply = table[doc["id"]]
        res = lmms_utils.process_results(doc, [reply])
        assert res["cytoreg_accuracy"] == float(own_rows[doc["id"]]["correct"])
        log_lines.append(json.dumps({"doc_id": k, "doc": {"id": doc["id"], "label": doc["label"]}, "target": doc["label"],
                                     "arguments": [], "resps": [[reply]], "filtered_resps": [reply]}))
    log = tmp_path / f"samples_{name}.jsonl"
    log.write_text("\n".join(log_lines) + "\n")
    assert main(["import", "lmms-eval", str(log), "--task", "small", "--model", "table", "-o", str(root / "imp-l"),
                 "--include", str(specs), "--bootstrap", "100"]) == 0
    _compare(root / "imp-l", json.loads((root / "imp-l" / "results.json").read_text()), own, own_rows)


def test_import_refuses_foreign_samples_and_counts_missing_ones(setup, tmp_path):
    root, specs, man, table, own, own_rows = setup
    lines = [json.dumps({"doc_id": 0, "doc": {"id": "not/a-sample.jpg"}, "filtered_resps": ["Basophil"]})]
    (tmp_path / "foreign.jsonl").write_text("\n".join(lines))
    assert main(["import", "lmms-eval", str(tmp_path / "foreign.jsonl"), "--task", "small", "--model", "x", "-o",
                 str(tmp_path / "f"), "--include", str(specs)]) == 2
    half = list(table)[: len(table) // 2]
    (tmp_path / "half.jsonl").write_text("\n".join(json.dumps({"doc": {"id": s}, "filtered_resps": [table[s]]})
                                                   for s in half))
    assert main(["import", "lmms-eval", str(tmp_path / "half.jsonl"), "--task", "small", "--model", "x", "-o",
                 str(tmp_path / "h"), "--include", str(specs), "--bootstrap", "20"]) in (0, 3)
    rows = [json.loads(x) for x in (tmp_path / "h" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == len(table)
    assert sum(1 for r in rows if r["error"]) == len(table) - len(half)


def test_no_harness_is_imported_into_the_test_process():
    """VLMEvalKit turns SSL verification and autograd off process-wide on import: it runs in subprocesses only."""
    import sys

    assert "vlmeval" not in sys.modules
