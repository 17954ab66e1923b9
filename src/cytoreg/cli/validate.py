"""``cytoreg validate``: every problem of every spec file at once."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console, styled


def cmd_validate(args) -> int:
    from cytoreg.registry.catalog import Catalog
    from cytoreg.registry.specs import iter_spec_files

    console = _console()
    problems: list[str] = []
    files = []
    for p in args.paths:
        path = Path(p)
        if not path.exists():
            problems.append(f"{p}: no such file or folder")
            continue
        if not (path.is_file() or path.is_dir()):
            problems.append(f"{p}: not a regular file or folder (a pipe or device?); give a spec file or a folder")
            continue
        files += iter_spec_files(path)
    cat = Catalog.load(list(args.include) + [p for p in args.paths if Path(p).is_file() or Path(p).is_dir()],
                       strict=False)
    problems += cat.problems
    if problems:
        for line in problems:
            console.print(styled("error", "red", line))
        console.print(f"{len(problems)} problem(s) in {len(files)} file(s)")
        return 1
    console.print(styled("ok", "green", f"{len(files)} spec file(s) valid"))
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("validate", parents=[common], help="validate spec files; lists every error")
    p.add_argument("paths", nargs="+")
    p.set_defaults(fn=cmd_validate)
