"""Run ``cytoreg`` in a fresh interpreter (as a user would) and report wall time and which heavy
libraries it imported."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
HEAVY = ("torch", "open_clip", "sklearn", "scipy", "transformers", "openai", "PIL")
_CODE = ("import sys, json\nfrom cytoreg.cli import main\nrc = main(sys.argv[1:])\n"
         "print('HEAVY ' + json.dumps([m for m in %r if m in sys.modules]), file=sys.stderr)\n"
         "sys.exit(rc)") % (HEAVY,)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_cli(argv: list[str], cache_dir: Path, cwd: Path | None = None, src: Path = SRC
            ) -> tuple[float, float, list[str]]:
    """(wall seconds, CPU seconds of the child: user + system, heavy modules it imported). On a
    shared machine the wall time includes waiting for a core; the CPU time does not.

    Byte code is cached (in a folder beside ``cache_dir``, not in the source tree) as an installed
    package's is, even where PYTHONDONTWRITEBYTECODE is set: otherwise every run would compile
    cytoreg's sources again (~0.2 s), a cost no installed copy pays."""
    env = {**os.environ, "CYTOREG_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1",
           "PYTHONPYCACHEPREFIX": str(Path(cache_dir).parent / "pycache"),
           "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0, c0 = time.perf_counter(), _children_cpu()
    out = subprocess.run([sys.executable, "-c", _CODE, *argv], capture_output=True, text=True, env=env, cwd=cwd)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if out.returncode != 0:
        raise SystemExit(f"cytoreg {' '.join(argv)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    heavy = json.loads(out.stderr.strip().splitlines()[-1][len("HEAVY "):])
    return wall, cpu, heavy
