"""``cytoreg data``: dataset helpers. ``data fixtures DIR`` builds every benchmark dataset in its
published layout from the shipped PBC images (for trials and tests; see ``cytoreg.fixtures``)."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console


def cmd_fixtures(args) -> int:
    from cytoreg.fixtures import build_all

    root = build_all(Path(args.dir))
    _console().print(f"layout fixtures written to {root}; try:\n  CYTOREG_DATA={root} cytoreg eval --tasks "
                     "hicervix,acevedo,bmc,wbcatt,mll23,nejm --models random,prior -o runs/fixtures")
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("data", help="dataset helpers (fixtures DIR: every benchmark layout from shipped images)")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="{fixtures}")
    f = dsub.add_parser("fixtures", help="build every benchmark dataset in its published layout under DIR "
                        "(made-up rows, shipped PBC images), for CYTOREG_DATA=DIR")
    f.add_argument("dir", metavar="DIR")
    f.set_defaults(fn=cmd_fixtures)
