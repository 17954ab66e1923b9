"""API throughput against a local OpenAI-protocol server with a fixed latency (in its own process,
as a real server would be, so it does not compete with the client for the GIL).

Prints the call phase (first request to last answer) against the concurrency bound
(requests × latency / concurrency) and the end-to-end time of ``evaluate`` (catalog, sampling,
request preparation, calls, scoring, writing) against the call phase. Optionally a sequential
loop over the first ``--sequential N`` requests through the same SDK client, for the speed-up.

    python bench/api_concurrency.py [--requests 800] [--latency 0.3] [--concurrency 16] [--sequential 0]
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import openai  # noqa: E402,F401  (imported before timing: the SDK import is not a per-run cost)

from _report import emit, row  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--requests", type=int, default=800, help="at least this many (demo images × tries)")
parser.add_argument("--latency", type=float, default=0.3)
parser.add_argument("--concurrency", type=int, default=16)
parser.add_argument("--sequential", type=int, default=0, help="also time N requests one at a time")
parser.add_argument("--close", action="store_true", help="server closes each connection (HTTP/1.0)")
args = parser.parse_args()

def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


server = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "tests/fake_openai.py"),
                           "--latency", str(args.latency)] + (["--close"] if args.close else []), stdout=subprocess.PIPE, text=True)
base_url = server.stdout.readline().strip()
try:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "specs"
        d.mkdir()
        images = len(TASK_KINDS.get("classification")(Catalog.load().task("demo")).prepare().test)
        tries = max(1, math.ceil(args.requests / images))
        (d / "t.yaml").write_text("spec: task/v1\nname: bench\nextends: demo\nsettings: [zero_shot]\n")
        (d / "m.yaml").write_text(f"spec: model/v1\nname: fake\nadapter: openai\n"
                                  f"params: {{model: m, base_url: '{base_url}'}}\n"
                                  f"execution: {{concurrency: {args.concurrency}}}\ngeneration: {{tries: {tries}}}\n")
        cat = Catalog.load([d])
        cfg = EvalConfig(["bench"], ["fake"], output=Path(tmp) / "run", include=[str(d)], progress=False)
        t0, cpu0, srv0 = time.perf_counter(), time.process_time(), _cpu(server.pid)
        res = evaluate(cfg, cat)
        total = time.perf_counter() - t0
        cpu, srv = time.process_time() - cpu0, _cpu(server.pid) - srv0
        ev = res["evaluations"][0]
        n, calls = ev["requests"]["sent"], ev["requests"]["wall_s"]
        bound = n * args.latency / args.concurrency
        print(f"{n} requests ({images} images x {tries} tries), server latency {args.latency * 1000:.0f} ms, "
              f"concurrency {args.concurrency}: call phase {calls:.2f} s, end to end {total:.2f} s, "
              f"concurrency bound {bound:.2f} s")
        print(f"CPU per request: client {cpu / n * 1000:.1f} ms, server {srv / n * 1000:.1f} ms "
              f"(on {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f})")
        rows = [row(f"API call phase share of the concurrency bound (c={args.concurrency}, "
                    f"{args.latency:g} s, {n} req)", bound / calls, 0.95, "x", higher_is_better=True),
                row("API total minus call phase", total - calls, 2.0)]
        if args.sequential:
            from cytoreg.models.openai_api import OpenAIChat

            kind = TASK_KINDS.get("classification")(cat.task("bench"))
            test = kind.prepare().test[:args.sequential]
            adapter = OpenAIChat(cat.model("fake"))
            adapter.load()
            t0 = time.perf_counter()
            for s in test:
                adapter.generate(kind.chat_request(s, "zero_shot", [], {}, 0))
            per_request = (time.perf_counter() - t0) / len(test)
            adapter.close()
            rows.append(row("API speed-up vs a sequential loop (extrapolated)", per_request * n / total, 10, "x",
                            higher_is_better=True))
        emit(rows)
finally:
    server.terminate()
    server.wait()
