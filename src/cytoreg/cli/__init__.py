"""The ``cytoreg`` command line: one module per command, each with ``register(sub, common)``.
``list``, ``show`` and ``validate`` never import torch.

:func:`main` is the one error boundary: every exception that reaches it becomes one message
(see :mod:`cytoreg.cli.failures`) and an exit status, never a traceback unless ``--debug`` (or
``CYTOREG_DEBUG=1``) asks for one; everything printed passes through secret redaction."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from cytoreg.cli.common import _console, styled

# command modules in the order `cytoreg --help` lists them
COMMANDS = ("list_cmd", "show", "validate", "models_cmd", "eval_cmd", "finetune", "cache", "review", "merge",
            "leaderboard", "view", "interop", "data_cmd", "new", "completion")
LEVELS = ("debug", "info", "warning", "error", "critical")


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    from cytoreg import __version__

    parser = argparse.ArgumentParser(prog="cytoreg", description="Evaluate vision-language models on "
                                     "cytology and medical-image benchmarks.")
    parser.add_argument("--version", action="version", version=f"cytoreg {__version__}")
    debug_help = "show the traceback of an error (also: CYTOREG_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--include", action="append", default=[], metavar="PATH",
                        help="extra spec file or folder (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        import_module(f"cytoreg.cli.{name}").register(sub, common)
    for p in sub.choices.values():  # `cytoreg eval ... --debug` works too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
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
    from cytoreg.cli import failures

    debug = os.environ.get("CYTOREG_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = failures.RedactingStream(real_out), failures.RedactingStream(real_err)
    failures.ignore_file_size_signal()
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args)
        debug = debug or bool(getattr(args, "debug", False))
        try:
            code = args.fn(args)
            sys.stdout.flush()
            return code
        except (Exception, KeyboardInterrupt) as exc:  # the one error boundary
            return _report(exc, debug)
    finally:
        sys.stdout, sys.stderr = real_out, real_err


def _report(exc: BaseException, debug: bool) -> int:
    from cytoreg.cli import failures

    code, lines = failures.describe(exc)
    if code == failures.BROKEN_PIPE:
        failures.silence_stdout()
        return code
    try:
        if debug:
            import traceback

            sys.stderr.write("".join(traceback.format_exception(exc)))
        console = _console(stderr=True)
        for line in lines:
            console.print(line if code == failures.INTERRUPTED else styled("error", "red", line))
    except (BrokenPipeError, OSError):
        pass  # stderr is gone too: the exit status is all that is left
    return code


if __name__ == "__main__":
    sys.exit(main())
