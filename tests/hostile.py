"""Running ``python -m cytoreg`` in a child process the way a user would, with the child's own
exit status, output, CPU time and peak memory (the rusage of the child, measured by a small
launcher process), for the hostile-input tests."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SRC = Path(__file__).resolve().parent.parent / "src"
#: a hang guard far above any case's CPU bound (the machine is shared: wall time is noisy)
WALL_LIMIT_S = 90.0


@dataclass
class Run:
    code: int
    out: str
    err: str
    cpu_s: float   # user + system seconds of the child
    rss_mb: float  # peak resident memory of the child
    wall_s: float


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CYTOREG_")}
    e.update({"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0", "COLUMNS": "200",
              "PYTHONDONTWRITEBYTECODE": "1"})
    e.update(extra)
    return e


#: Linux keeps a process's peak RSS across exec, so a child forked from a large pytest process
#: would report pytest's size; a small launcher forks the CLI instead and reports its rusage
LAUNCHER = """
import os, resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{u.ru_utime + u.ru_stime} {u.ru_maxrss}")
sys.exit(code if code >= 0 else 128 - code)
"""


def cli(args: list[str], *, cwd: Path, extra_env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None, stdin: bytes | None = None) -> Run:
    """``python -m cytoreg ARGS`` in ``cwd`` (through LAUNCHER); killed after WALL_LIMIT_S."""
    import tempfile

    fd, usage_file = tempfile.mkstemp(prefix="hostile-rusage-")
    os.close(fd)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", LAUNCHER, usage_file, sys.executable, "-m", "cytoreg", *args],
                         cwd=cwd, env=env(**(extra_env or {})),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=preexec, start_new_session=True)
    chunks: dict[str, bytes] = {}

    def read(name: str, stream) -> None:
        chunks[name] = stream.read()

    readers = [threading.Thread(target=read, args=(n, s)) for n, s in (("out", p.stdout), ("err", p.stderr))]
    for t in readers:
        t.start()
    timer = threading.Timer(WALL_LIMIT_S, lambda: os.killpg(p.pid, signal.SIGKILL))  # launcher and CLI
    timer.start()
    try:
        p.wait()
    finally:
        timer.cancel()
    for t in readers:
        t.join()
    try:
        cpu, rss_kb = Path(usage_file).read_text().split() or ("inf", "0")  # empty: killed by the hang guard
    finally:
        os.unlink(usage_file)
    return Run(p.returncode, chunks["out"].decode("utf-8", "replace"), chunks["err"].decode("utf-8", "replace"),
               float(cpu), int(rss_kb) / 1024, time.perf_counter() - t0)


def file_size_limit(nbytes: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return apply


def without_root_override() -> Callable[[], None] | None:
    """For a read-only folder when the tests run as root, who ignores permission bits: the child
    gives up the capabilities that override them (dropped from the bounding set, so they stay
    dropped across exec) and is held to the folder's mode like any user."""
    if os.geteuid() != 0:
        return None

    def apply() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "cannot drop a capability")

    return apply
