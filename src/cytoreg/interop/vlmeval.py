"""VLMEvalKit: the task as a custom dataset (its TSV with base64 images plus a small dataset class
that registers it) and its prediction files (``*.xlsx`` / ``*.tsv`` / ``*.csv`` with ``index`` and
``prediction``) read back."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

from cytoreg.errors import CytoregError
from cytoreg.interop.requests import MANIFEST, Exported, write_json, write_samples

EXT = {"image/png": "png", "image/jpeg": "jpg", "image/tiff": "tif", "image/webp": "webp"}


def dataset_name(task: str, setting: str) -> str:
    return "CYTOREG_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{task}_{setting}").upper().strip("_")


def export(ex: Exported, out: Path) -> list[Path]:
    name = dataset_name(ex.task, ex.setting)
    out.mkdir(parents=True, exist_ok=True)
    cols = ["index", "image", "image_path", "question", "answer", "category", "sample_id", "parts", "system"]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(cols)
    for i, s in enumerate(ex.samples):
        b64 = [base64.b64encode(b).decode() for b in s.images]
        paths = [f"{i}_{k}.{EXT.get(m, 'png')}" for k, m in enumerate(s.mimes)]
        w.writerow([i, b64[0] if len(b64) == 1 else repr(b64), paths[0] if len(paths) == 1 else repr(paths),
                    s.prompt_text(), s.label, s.label, s.id, json.dumps(s.parts, ensure_ascii=False),
                    s.system or ""])
    tsv = out / f"{name}.tsv"
    tsv.write_text(buf.getvalue(), encoding="utf-8")
    module = out / "cytoreg_vlmeval.py"
    module.write_text(DATASET_MODULE.replace("@@NAME@@", name), encoding="utf-8")
    write_json(out / MANIFEST, ex.manifest("vlmeval") | {"dataset": name})
    write_json(out / "task.json", ex.spec_data)
    write_samples(ex, out / "samples.jsonl", images=False)  # for the scorer: ids, labels, options
    readme = out / "README.md"
    readme.write_text(README.replace("@@NAME@@", name).replace("@@TASK@@", ex.task).replace("@@SETTING@@", ex.setting),
                      encoding="utf-8")
    return [tsv, module, readme]


def read_predictions(path: Path) -> dict[str, str]:
    """sample id -> reply, from a VLMEvalKit prediction file (the dataset's columns kept, plus
    ``prediction``); rows are matched on our ``sample_id`` column."""
    import pandas as pd

    path = Path(path)
    try:
        if path.suffix == ".xlsx":
            df = pd.read_excel(path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for a damaged file
        raise CytoregError(f"{path}: cannot read it as a VLMEvalKit prediction file ({exc})") from exc
    missing = [c for c in ("sample_id", "prediction") if c not in df.columns]
    if missing:
        raise CytoregError(f"{path}: no column {', '.join(missing)}; pass the prediction file VLMEvalKit wrote for a "
                           "dataset exported by `cytoreg export --to vlmeval` (it keeps the sample_id column)")
    return {str(i): str(p) for i, p in zip(df["sample_id"], df["prediction"])}


DATASET_MODULE = '''"""A cytoreg task exported as a VLMEvalKit dataset (written by `cytoreg export --to vlmeval`).

Import this module before building the dataset; the TSV beside it is read in place (no download):

    import cytoreg_vlmeval                      # registers @@NAME@@
    from vlmeval.dataset import build_dataset
    dataset = build_dataset("@@NAME@@")

Prompts are cytoreg's, byte-exact, with the images in cytoreg's order (column ``parts``).
``evaluate`` re-scores the predictions with cytoreg's answer extraction when cytoreg is installed.
"""
import json
import os.path as osp

from vlmeval.dataset import DATASET_CLASSES
from vlmeval.dataset.image_base import ImageBaseDataset
from vlmeval.smp import load, toliststr

HERE = osp.dirname(osp.abspath(__file__))
NAME = "@@NAME@@"


class CytoregDataset(ImageBaseDataset):
    TYPE = "VQA"
    MODALITY = "IMAGE"
    DATASET_URL = {NAME: ""}
    DATASET_MD5 = {}

    @classmethod
    def supported_datasets(cls):
        return [NAME]

    def load_data(self, dataset):
        return load(osp.join(HERE, f"{dataset}.tsv"))

    def build_prompt(self, line):
        if isinstance(line, int):
            line = self.data.iloc[line]
        paths = toliststr(self.dump_image(line))
        msgs = []
        system = line.get("system") if hasattr(line, "get") else None
        if isinstance(system, str) and system:
            msgs.append(dict(type="text", value=system))  # VLMEvalKit messages have no system role
        for part in json.loads(line["parts"]):
            if part["type"] == "text":
                msgs.append(dict(type="text", value=part["text"]))
            else:
                msgs.append(dict(type="image", value=paths[part["index"]]))
        return msgs

    def evaluate(self, eval_file, **judge_kwargs):
        from cytoreg.interop.rescore import score_predictions

        return score_predictions("vlmeval", [eval_file], HERE)


if CytoregDataset not in DATASET_CLASSES:
    DATASET_CLASSES.append(CytoregDataset)
'''

README = '''# @@TASK@@ (@@SETTING@@) for VLMEvalKit

Written by `cytoreg export @@TASK@@ --to vlmeval --setting @@SETTING@@`: the same test samples
(ids in `sample_id` and `cytoreg_export.json`), prompts and image order as `cytoreg eval`.

Run a VLMEvalKit model on it (Python, so the dataset class is registered first):

    import sys; sys.path.insert(0, "THIS_FOLDER")
    import cytoreg_vlmeval
    from vlmeval.config import supported_VLM
    from vlmeval.dataset import build_dataset
    from vlmeval.inference import infer_data_job
    dataset = build_dataset("@@NAME@@")
    model = supported_VLM["Qwen2-VL-7B-Instruct"]()
    infer_data_job(model, work_dir="outputs", model_name="Qwen2-VL-7B-Instruct", dataset=dataset)

Then score the replies with cytoreg's extraction and statistics, as a cytoreg run that
`cytoreg leaderboard` merges beside cytoreg's own:

    cytoreg import vlmeval outputs/Qwen2-VL-7B-Instruct_@@NAME@@.xlsx --task @@TASK@@ --model qwen2-vl-7b -o runs/qwen
'''
