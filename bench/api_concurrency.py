"""API throughput: cytoreg's concurrent requests vs a sequential loop and vs the concurrency bound
(n × latency / concurrency), against a local OpenAI-protocol server with a fixed latency. The server
runs in its own process (as a real server would), so it does not compete with the client for the
GIL. The sequential baseline uses the same openai SDK client, one request at a time.

    python bench/api_concurrency.py [--per-class 20] [--latency 0.2] [--concurrency 16]
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import openai  # noqa: E402  (imported before timing, for both sides)
import sklearn.metrics  # noqa: E402,F401

from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--per-class", type=int, default=20)
parser.add_argument("--latency", type=float, default=0.2)
parser.add_argument("--concurrency", type=int, default=16)
args = parser.parse_args()

server = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "tests/fake_openai.py"),
                           "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True)
base_url = server.stdout.readline().strip()

with tempfile.TemporaryDirectory() as tmp:
    d = Path(tmp) / "specs"
    d.mkdir()
    (d / "t.yaml").write_text(f"spec: task/v1\nname: bench\nextends: demo\nsampling: {{test_per_class: {args.per_class}}}\n"
                              "settings: [zero_shot]\n")
    (d / "m.yaml").write_text(f"spec: model/v1\nname: fake\nadapter: openai\nparams: {{model: m, base_url: '{base_url}'}}\n"
                              f"execution: {{concurrency: {args.concurrency}}}\n")
    cat = Catalog.load([d])
    kind = TASK_KINDS.get("classification")(cat.task("bench"))
    prep = kind.prepare()
    n = len(prep.test)

    # sequential baseline: the same requests, one at a time, through the same SDK client
    from cytoreg.models.openai_api import OpenAIChat

    adapter = OpenAIChat(cat.model("fake"))
    adapter.load()
    t0 = time.perf_counter()
    for s in prep.test:
        adapter.generate(kind.chat_request(s, "zero_shot", [], {}, 0))
    sequential = time.perf_counter() - t0
    adapter.close()

    cfg = EvalConfig(["bench"], ["fake"], output=Path(tmp) / "run", include=[str(d)], progress=False, bootstrap=0)
    t0 = time.perf_counter()
    res = evaluate(cfg, cat)
    ours = time.perf_counter() - t0
    calls = res["evaluations"][0]["requests"]["wall_s"]
    bound = n * args.latency / args.concurrency
    print(f"{n} requests, server latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
    print(f"sequential loop {sequential:.2f} s; cytoreg end to end {ours:.2f} s, of which requests {calls:.2f} s; "
          f"concurrency bound {bound:.2f} s")
    print(f"speed-up vs sequential, end to end: {sequential / ours:.1f}x (target >= 10x)")
    print(f"request throughput vs the concurrency bound: {bound / calls:.2f} (target >= 0.9)")
    print(f"end-to-end time vs the concurrency bound (adds sampling, client start-up, scoring, writing): "
          f"{bound / ours:.2f}")

server.terminate()
server.wait()
