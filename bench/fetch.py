"""`cytoreg data fetch` against a local HTTP server: what a dropped connection costs.

Serves a random file of SIZE MB on 127.0.0.1 and prints, in one process:
  1. a plain httpx streaming download into a file (the baseline: no checksum, no resume),
  2. cytoreg's download + SHA-256 check of the same file,
  3. the same with the connection cut at half way: bytes sent by the server in total (resume asks
     for the rest with a Range request), against a restart from zero (1.5 x SIZE),
and the time ratios against the baseline.

    python bench/fetch.py [--size 200]
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from fake_files import FileServer  # noqa: E402

from cytoreg.datahub.fetch import check, download  # noqa: E402
from cytoreg.datahub.spec import FileSpec  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=int, default=200, help="MB")
a = ap.parse_args()
blob = os.urandom(a.size * 1_000_000)
digest = hashlib.sha256(blob).hexdigest()


def plain(url: str, out: Path) -> float:
    import httpx

    t = time.perf_counter()
    with httpx.Client() as c, c.stream("GET", url) as r, open(out, "wb") as fh:
        for chunk in r.iter_bytes():
            fh.write(chunk)
    return time.perf_counter() - t


def ours(url: str, out: Path) -> float:
    t = time.perf_counter()
    f = FileSpec(url=url, name=out.name, algo="sha256", digest=digest, size=len(blob))
    check(f, out, download(f, out, backoff=0))  # the checksum is computed while writing
    return time.perf_counter() - t


with tempfile.TemporaryDirectory() as tmp, FileServer({"/f.bin": blob}) as srv:
    url = f"{srv.url}/f.bin"
    base = plain(url, Path(tmp) / "a.bin")
    t_ours = ours(url, Path(tmp) / "b.bin.part")
print(f"file {a.size} MB on 127.0.0.1")
print(f"plain httpx stream, no check     {base:6.2f} s  {a.size / base:7.1f} MB/s  1.00x")
print(f"cytoreg download + SHA-256 check {t_ours:6.2f} s  {a.size / t_ours:7.1f} MB/s  {t_ours / base:.2f}x")

cut = len(blob) // 2
with tempfile.TemporaryDirectory() as tmp, FileServer({"/f.bin": blob}, cut_first={"/f.bin": cut}) as srv:
    t_cut = ours(f"{srv.url}/f.bin", Path(tmp) / "c.bin.part")
    ranges = [(rng, status) for _, rng, status in srv.log]
resumed_from = int(ranges[1][0].split("=")[1].rstrip("-"))
sent = cut + (len(blob) - resumed_from)  # the cut response, then the 206 from the Range start
print(f"cut at {cut:,} bytes, resumed     {t_cut:6.2f} s  requests {ranges}")
print(f"bytes sent: {sent:,} with resume vs {cut + len(blob):,} restarting ({sent / (cut + len(blob)):.2f}x)")
