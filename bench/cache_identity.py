"""How many requests an edit re-sends: a 40-sample run of an OpenAI-protocol model against a local
server, then re-runs (same --cache) after one edit each. Edits that do not change the request
should re-send 0; those that do should re-send all 40.

    python bench/cache_identity.py [--src DIR]    # --src: the cytoreg source tree (default ./src)
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from fake_openai import FakeOpenAI  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--src", default=str(Path(__file__).parents[1] / "src"))
args = parser.parse_args()

TASK = "spec: task/v1\nname: forty\nextends: demo\nsampling: {test_per_class: 4}\nsettings: [zero_shot]\n"
MODEL = ("spec: model/v1\nname: m\nadapter: openai\nparams: {{model: {model}, base_url: '{url}'}}\n"
         "generation: {{temperature: {temp}, max_tokens: 20}}\nexecution: {{concurrency: {conc}}}\n{extra}")


def run(d: Path, tmp: Path, n: int) -> None:
    env = dict(os.environ, PYTHONPATH=args.src, OPENAI_API_KEY="sk-bench")
    subprocess.run([sys.executable, "-m", "cytoreg.cli", "eval", "--tasks", "forty", "--models", "m", "--include",
                    str(d), "--limit", "40", "--no-progress", "--bootstrap", "0", "-o", str(tmp / f"run{n}"),
                    "--cache", str(tmp / "cache.sqlite")], env=env, capture_output=True, text=True, check=False)


with tempfile.TemporaryDirectory() as t, FakeOpenAI() as a, FakeOpenAI() as b:
    tmp = Path(t)
    d = tmp / "specs"
    d.mkdir()
    base = dict(model="vlm-1", url=a.base_url, temp=0, conc=8, extra="")
    edits = [("first run", {}, None), ("description + tags", {"extra": "description: edited\ntags: [x]\n"}, None),
             ("execution.concurrency 8 -> 2", {"conc": 2}, None), ("local server port", {"url": b.base_url}, None),
             ("model name as sent", {"model": "vlm-2"}, None), ("temperature 0 -> 0.5", {"temp": 0.5}, None),
             ("task prompt", {}, "prompts: {zero_shot: 'Which cell type is this?'}\n")]
    print(f"source: {args.src}")
    for n, (what, change, task_extra) in enumerate(edits):
        (d / "t.yaml").write_text(TASK + (task_extra or ""))
        (d / "m.yaml").write_text(MODEL.format(**{**base, **change}))
        before = len(a.requests) + len(b.requests)
        run(d, tmp, n)
        print(f"{what:30s} sent {len(a.requests) + len(b.requests) - before:3d} of 40", flush=True)
