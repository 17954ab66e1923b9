"""inspect_ai: the task as a ``@task`` module (samples with images as data URIs, cytoreg's prompt
parts in order, a scorer that reads replies with cytoreg's extraction), and ``.eval`` / ``.json``
logs read back (sample id -> the model's completion)."""
from __future__ import annotations

import re
from pathlib import Path

from cytoreg.errors import CytoregError
from cytoreg.interop.requests import MANIFEST, Exported, write_json, write_samples


def task_function(task: str, setting: str) -> str:
    return "cytoreg_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{task}_{setting}").lower().strip("_")


def export(ex: Exported, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_samples(ex, out / "samples.jsonl")
    write_json(out / "task.json", ex.spec_data)
    write_json(out / MANIFEST, ex.manifest("inspect"))
    fn = task_function(ex.task, ex.setting)
    module = out / f"{fn}.py"
    module.write_text(TASK_MODULE.replace("@@FN@@", fn).replace("@@TASK@@", ex.task)
                      .replace("@@SETTING@@", ex.setting), encoding="utf-8")
    readme = out / "README.md"
    readme.write_text(README.replace("@@FN@@", fn).replace("@@TASK@@", ex.task).replace("@@SETTING@@", ex.setting),
                      encoding="utf-8")
    return [module, out / "samples.jsonl", readme]


def read_log(path: Path) -> dict[str, str]:
    """sample id -> completion, from an inspect log (``.eval`` or ``.json``); samples that ended in
    an error give no reply (they become error records on import)."""
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise CytoregError("reading inspect logs needs inspect_ai: pip install inspect-ai") from None
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # inspect raises its own types for damaged logs
        raise CytoregError(f"{path}: cannot read it as an inspect log ({exc})") from exc
    out = {}
    for s in log.samples or []:
        if s.error is None and s.output is not None:
            out[str(s.id)] = s.output.completion
    return out


TASK_MODULE = '''"""cytoreg task @@TASK@@ (@@SETTING@@) as an inspect_ai task (written by `cytoreg export --to inspect`).

    inspect eval @@FN@@.py --model openai/gpt-4o

Samples are cytoreg's test samples (ids kept), the prompt is cytoreg's byte-exact with the images
(data URIs) in cytoreg's order; the scorer reads each reply with cytoreg's answer extraction.
"""
import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, ContentImage, ContentText
from inspect_ai.scorer import CORRECT, INCORRECT, Score, accuracy, scorer, stderr
from inspect_ai.solver import generate

HERE = Path(__file__).parent


def samples():
    with (HERE / "samples.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            content = [ContentText(text=p["text"]) if p["type"] == "text" else ContentImage(image=r["images"][p["index"]])
                       for p in r["parts"]]
            messages = ([ChatMessageSystem(content=r["system"])] if r["system"] else []) + [ChatMessageUser(content=content)]
            yield Sample(id=r["id"], input=messages, target=r["label"], metadata=r["meta"])


@scorer(metrics=[accuracy(), stderr()])
def cytoreg_extraction():
    """Correct when cytoreg's extraction reads the reply as the target label."""
    from cytoreg.interop.requests import extractor_for_export

    extract = extractor_for_export(HERE)

    async def score(state, target):
        label, step = extract(state.sample_id, state.output.completion)
        return Score(value=CORRECT if label == target.text else INCORRECT, answer=label or "",
                     explanation=f"read by cytoreg's extraction ({step})")

    return score


@task
def @@FN@@():
    return Task(dataset=MemoryDataset(list(samples()), name="@@FN@@"), solver=generate(),
                scorer=cytoreg_extraction())
'''

README = '''# @@TASK@@ (@@SETTING@@) for inspect_ai

Written by `cytoreg export @@TASK@@ --to inspect --setting @@SETTING@@`: the same test samples
(ids kept), prompts and image order as `cytoreg eval`; the scorer uses cytoreg's extraction
(`pip install cytoreg` where inspect runs).

    inspect eval @@FN@@.py --model openai/gpt-4o --log-dir logs

Then as a cytoreg run, beside cytoreg's own in `cytoreg leaderboard`:

    cytoreg import inspect logs/*.eval --task @@TASK@@ --model gpt-4o-inspect -o runs/gpt4o-inspect
'''
