"""What a dead endpoint costs: a 40-sample run of an OpenAI-protocol model whose every request
fails (HTTP 401, HTTP 404 unknown model, connection refused, DNS failure), timed end to end as a
user runs it (the CLI in a subprocess, default retry settings). Prints seconds, the exit status
and whether a score was printed, per case.

    python bench/dead_endpoint.py [--src DIR]    # --src: the cytoreg source tree to time (default ./src)
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from fake_openai import FakeOpenAI  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--src", default=str(Path(__file__).parents[1] / "src"))
parser.add_argument("--cases", default="401,404,refused,dns")
args = parser.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(case: str, url: str, tmp: Path, server=None) -> None:
    d = tmp / case
    d.mkdir()
    (d / "t.yaml").write_text("spec: task/v1\nname: forty\nextends: demo\nsampling: {test_per_class: 4}\n"
                              "settings: [zero_shot]\n")
    (d / "m.yaml").write_text(f"spec: model/v1\nname: dead\nadapter: openai\nparams: {{model: some-vlm, base_url: '{url}'}}\n")
    env = dict(os.environ, PYTHONPATH=args.src, OPENAI_API_KEY="sk-bench-not-a-key")
    before = len(server.requests) if server else 0
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "cytoreg.cli", "eval", "--tasks", "forty", "--models", "dead",
                        "--include", str(d), "--limit", "40", "--no-progress", "--bootstrap", "20",
                        "-o", str(d / "run")], env=env, capture_output=True, text=True, cwd=d)
    dt = time.perf_counter() - t0
    scored = "f1_weighted" in r.stdout and "0.000 [0.000, 0.000]" in r.stdout
    first = next((l for l in r.stderr.splitlines() if "stopped" in l or "error" in l.lower()), "")[:160]
    sent = f"{len(server.requests) - before:3d} requests" if server else "      -     "
    print(f"{case:8s} {dt:7.1f} s  {sent}  exit {r.returncode}  zero score printed: {scored}  | {first}", flush=True)


with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(script=[401] * 10000) as s401, \
        FakeOpenAI(script=[404] * 10000) as s404:
    urls = {"401": s401.base_url, "404": s404.base_url, "refused": f"http://127.0.0.1:{free_port()}/v1",
            "dns": "http://cytoreg-dead-endpoint.invalid/v1"}
    print(f"source: {args.src}")
    for case in args.cases.split(","):
        run(case, urls[case], Path(tmp), {"401": s401, "404": s404}.get(case))
