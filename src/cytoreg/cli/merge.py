"""``cytoreg merge``: combine ``eval --shard I/N`` outputs and score them together."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console


def cmd_merge(args) -> int:
    from cytoreg.cli.eval_cmd import exit_status
    from cytoreg.engine.distributed import merge
    from cytoreg.report.summary import print_summary

    results = merge([Path(d) for d in args.runs], Path(args.output))
    print_summary(results, _console())
    _console().print(f"results: {Path(args.output) / 'results.json'}")
    return exit_status(results)  # 3 when an evaluation is incomplete, as for `cytoreg eval`


def register(sub, common) -> None:
    p = sub.add_parser("merge", help="combine `eval --shard I/N` outputs and score them together")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--output", "-o", required=True, help="folder for the merged caches and results")
    p.set_defaults(fn=cmd_merge)
