"""lmms-eval: the task as a task YAML + ``utils.py`` (doc_to_visual / doc_to_text /
process_results) loadable with ``--include_path``, its data as a JSON-lines file; and the
``--log_samples`` JSONL read back."""
from __future__ import annotations

import json
import re
from pathlib import Path

from cytoreg.errors import CytoregError
from cytoreg.interop.requests import MANIFEST, Exported, write_json, write_samples


def task_name(task: str, setting: str) -> str:
    return "cytoreg_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{task}_{setting}").lower().strip("_")


def export(ex: Exported, out: Path) -> list[Path]:
    if ex.setting != "zero_shot":
        raise CytoregError("lmms-eval's generate_until hands a model its images apart from the text, so cytoreg's "
                           "interleaved few-shot prompt cannot be reproduced there; export --setting zero_shot (or use "
                           "--to vlmeval / --to inspect, which keep the interleaving)")
    if any(sum(p["type"] == "image" for p in s.parts) != 1 or s.parts[-1]["type"] != "image" for s in ex.samples):
        raise CytoregError(f"task '{ex.task}': lmms-eval export expects one image after the text per sample")
    out.mkdir(parents=True, exist_ok=True)
    name = task_name(ex.task, ex.setting)
    data = out / "samples.jsonl"
    write_samples(ex, data)
    write_json(out / "task.json", ex.spec_data)
    write_json(out / MANIFEST, ex.manifest("lmms-eval") | {"lmms_task": name})
    yaml_path = out / f"{name}.yaml"
    yaml_path.write_text(TASK_YAML.format(name=name, data=json.dumps(str(data.resolve())), task=ex.task),
                         encoding="utf-8")
    utils = out / "utils.py"
    utils.write_text(UTILS, encoding="utf-8")
    readme = out / "README.md"
    readme.write_text(README.replace("@@NAME@@", name).replace("@@TASK@@", ex.task), encoding="utf-8")
    return [yaml_path, utils, data, readme]


def read_samples(path: Path) -> dict[str, str]:
    """sample id -> reply from an lmms-eval ``--log_samples`` JSONL (one document per line with
    ``doc`` and ``filtered_resps`` / ``resps``); the id is the document's ``id`` field."""
    out = {}
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                doc = row.get("doc") or {}
                sid = doc.get("id")
                resp = row.get("filtered_resps") or row.get("resps")
                while isinstance(resp, list):
                    resp = resp[0] if resp else None
            except (json.JSONDecodeError, AttributeError) as exc:
                raise CytoregError(f"{path}:{n}: not an lmms-eval sample line ({exc})") from exc
            if sid is None:
                raise CytoregError(f"{path}:{n}: the logged doc has no 'id'; log the task exported by `cytoreg export "
                                   "--to lmms-eval` with --log_samples")
            if resp is not None:
                out[str(sid)] = str(resp)
    return out


TASK_YAML = """# cytoreg task {task} (zero_shot) for lmms-eval, written by `cytoreg export --to lmms-eval`.
# The data file's path is absolute: export again if this folder moves.
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: label
generation_kwargs:
  max_new_tokens: 256
  temperature: 0
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: cytoreg_accuracy
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0.0
  cytoreg_task: {task}
"""

UTILS = '''"""lmms-eval hooks for a task exported by cytoreg: the prompt is cytoreg's, byte-exact; replies are
read with cytoreg's answer extraction (cytoreg must be installed where lmms-eval runs)."""
import base64
import io
from pathlib import Path

HERE = Path(__file__).parent
_extract = None


def doc_to_visual(doc):
    from PIL import Image

    return [Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB") for uri in doc["images"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return "\\n".join(p["text"] for p in doc["parts"] if p["type"] == "text")


def process_results(doc, results):
    global _extract
    if _extract is None:
        from cytoreg.interop.requests import extractor_for_export

        _extract = extractor_for_export(HERE)
    label, _ = _extract(doc["id"], results[0])
    return {"cytoreg_accuracy": float(label == doc["label"])}
'''

README = '''# @@TASK@@ (zero-shot) for lmms-eval

Written by `cytoreg export @@TASK@@ --to lmms-eval`: cytoreg's test samples (ids in `samples.jsonl`),
its prompt byte-exact, replies scored with cytoreg's extraction.

    lmms-eval --model qwen2_vl --tasks @@NAME@@ --include_path THIS_FOLDER --log_samples --output_path logs

Then as a cytoreg run:

    cytoreg import lmms-eval logs/**/*@@NAME@@*.jsonl --task @@TASK@@ --model qwen2-vl-lmms -o runs/qwen2-vl
'''
