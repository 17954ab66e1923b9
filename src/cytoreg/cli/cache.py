"""``cytoreg cache``: inspect or clear the response cache."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError


def cmd_cache(args) -> int:
    from rich.table import Table

    from cytoreg.cache import ResponseCache

    path = Path(args.cache)
    if not path.exists():
        raise CytoregError(f"no cache at {path}; pass --cache PATH (default: runs/latest/cache.sqlite)")
    cache = ResponseCache(path)
    try:
        if args.action == "stats":
            table = Table(title=f"response cache {path}")
            for col in ("model", "task", "responses"):
                table.add_column(col)
            rows = cache.stats()
            for r in rows:
                table.add_row(r["model"], r["task"], str(r["responses"]))
            _console().print(table)
            _console().print(f"total: {sum(r['responses'] for r in rows)} responses")
        else:
            n = cache.clear(model=args.model, task=args.task)
            _console().print(f"removed {n} responses")
    finally:
        cache.close()
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("cache", help="inspect or clear the response cache")
    p.add_argument("action", choices=["stats", "clear"])
    p.add_argument("--cache", default="runs/latest/cache.sqlite")
    p.add_argument("--model")
    p.add_argument("--task")
    p.set_defaults(fn=cmd_cache)
