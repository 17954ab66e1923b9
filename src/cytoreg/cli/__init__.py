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
            "interop", "data_cmd", "new", "completion")
LEVELS = ("debug", "info", "warning", "error", "critical")


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
    for p in [parser, *sub.choices.values()]:  # before or after the command: cytoreg -v eval / eval -v
        _add_verbosity(p)
    return parser


def _add_verbosity(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("logging")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more log output (-v info, -vv debug)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="errors only")
    g.add_argument("--verbosity", choices=LEVELS, type=str.lower, default=argparse.SUPPRESS,
                   help="log level (default warning)")


def setup_logging(args) -> None:
    """``logging`` for cytoreg's messages (plugin warnings, preflight notes, ...) on stderr."""
    import logging

    if getattr(args, "verbosity", None):
        level = getattr(logging, args.verbosity.upper())
    elif getattr(args, "quiet", False):
        level = logging.ERROR
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(getattr(args, "verbose", 0), logging.DEBUG)
    from rich.logging import RichHandler

    handler = RichHandler(console=_console(stderr=True), show_time=False, show_path=False, markup=False,
                          rich_tracebacks=False)
    logger = logging.getLogger("cytoreg")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    from rich.markup import escape

    args = build_parser().parse_args(argv)
    setup_logging(args)
    try:
        return args.fn(args)
    except SpecError as exc:
        console = _console(stderr=True)
        for line in exc.problems:
            console.print(f"[red]error[/red] {escape(line)}", markup=True)
        return 2
    except CytoregError as exc:
        _console(stderr=True).print(f"[red]error[/red] {escape(str(exc))}", markup=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished responses are in the cache, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
