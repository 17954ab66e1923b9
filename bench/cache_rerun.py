"""Re-running a finished eval from the response cache vs the first run, in one process, against a
local OpenAI-protocol server with fixed latency.

    python bench/cache_rerun.py [--per-class 10] [--latency 0.05] [--concurrency 8]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from fake_openai import FakeOpenAI  # noqa: E402

from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--per-class", type=int, default=10)
parser.add_argument("--latency", type=float, default=0.05)
parser.add_argument("--concurrency", type=int, default=8)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(lambda b: "Lymphocyte", latency=args.latency) as srv:
    d = Path(tmp) / "specs"
    d.mkdir()
    (d / "t.yaml").write_text(f"spec: task/v1\nname: bench\nextends: demo\nsampling: {{test_per_class: {args.per_class}}}\n"
                              "settings: [zero_shot]\n")
    (d / "m.yaml").write_text(f"spec: model/v1\nname: fake\nadapter: openai\nparams: {{model: m, base_url: '{srv.base_url}'}}\n"
                              f"execution: {{concurrency: {args.concurrency}}}\n")
    cfg = EvalConfig(["bench"], ["fake"], output=Path(tmp) / "run", include=[str(d)], progress=False, bootstrap=200)
    t0 = time.perf_counter()
    res = evaluate(cfg)
    first = time.perf_counter() - t0
    n = res["evaluations"][0]["n"]
    t0 = time.perf_counter()
    evaluate(cfg)
    rerun = time.perf_counter() - t0
    print(f"{n} samples, server latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
    print(f"first run {first:.2f} s ({len(srv.requests)} requests); rerun from cache {rerun:.2f} s "
          f"(requests after rerun: {len(srv.requests)})")
    print(f"ratio first / cached rerun: {first / rerun:.1f}x")
