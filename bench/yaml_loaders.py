"""Spec parsing: the strict reader on libyaml's C loader vs on the pure-Python loader, over every
built-in spec file (same checks on both: duplicate keys, depth, alias expansion, UTF-8), and the
cost of the checks against PyYAML's plain SafeLoader / CSafeLoader. Also the time to refuse the
441-byte alias bomb that used to run > 120 s.

    python bench/yaml_loaders.py [--repeat 20]
"""
import argparse
import glob
import time
from pathlib import Path

import yaml

from cytoreg.errors import SpecError
from cytoreg.registry import yamlio

parser = argparse.ArgumentParser()
parser.add_argument("--repeat", type=int, default=20)
args = parser.parse_args()

root = Path(__file__).parents[1] / "src" / "cytoreg"
files = sorted(Path(p) for p in glob.glob(str(root / "*" / "specs" / "*.yaml")))
texts = [(str(f), f.read_text(encoding="utf-8")) for f in files]
size = sum(len(t) for _, t in texts)


def best(fn) -> float:
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


strict_py = best(lambda: [yamlio.parse_yaml(t, n, c_loader=False) for n, t in texts])
plain_py = best(lambda: [yaml.load(t, Loader=yaml.SafeLoader) for _, t in texts])
print(f"{len(files)} built-in spec files, {size / 1024:.0f} KiB, best of {args.repeat}")
print(f"strict, pure-Python loader : {strict_py * 1000:8.1f} ms   (plain SafeLoader {plain_py * 1000:.1f} ms)")
if yamlio.C_LOADER_AVAILABLE:
    strict_c = best(lambda: [yamlio.parse_yaml(t, n, c_loader=True) for n, t in texts])
    plain_c = best(lambda: [yaml.load(t, Loader=yaml.CSafeLoader) for _, t in texts])
    print(f"strict, libyaml C loader   : {strict_c * 1000:8.1f} ms   (plain CSafeLoader {plain_c * 1000:.1f} ms)")
    print(f"C loader speed-up: {strict_py / strict_c:.1f}x; checks cost {strict_c / plain_c:.2f}x of plain CSafeLoader")
bomb = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
for c in ([True, False] if yamlio.C_LOADER_AVAILABLE else [False]):
    t0 = time.perf_counter()
    try:
        yamlio.parse_yaml(bomb, "bomb.yaml", c_loader=c)
    except SpecError:
        pass
    print(f"{len(bomb)}-byte alias bomb refused in {(time.perf_counter() - t0) * 1000:.2f} ms "
          f"({'C' if c else 'pure-Python'} loader)")
