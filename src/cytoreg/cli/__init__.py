"""The ``cytoreg`` command line: one module per command, each with ``register(sub, common)``.
``list``, ``show`` and ``validate`` never import torch."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError, SpecError

# command modules in the order `cytoreg --help` lists them
COMMANDS = ("list_cmd", "show", "validate", "eval_cmd", "finetune", "cache", "review", "merge", "leaderboard", "view",
            "interop", "data_cmd")


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    from cytoreg import __version__

    parser = argparse.ArgumentParser(prog="cytoreg", description="Evaluate vision-language models on "
                                     "cytology and medical-image benchmarks.")
    parser.add_argument("--version", action="version", version=f"cytoreg {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--include", action="append", default=[], metavar="PATH",
                        help="extra spec file or folder (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        import_module(f"cytoreg.cli.{name}").register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SpecError as exc:
        console = _console(stderr=True)
        for line in exc.problems:
            console.print(f"[red]error[/red] {line}", markup=True)
        return 2
    except CytoregError as exc:
        _console(stderr=True).print(f"[red]error[/red] {exc}", markup=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished responses are in the cache, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
