"""``cytoreg list``: what is registered, and from where."""
from __future__ import annotations

import json

from cytoreg.cli.common import _console


def cmd_list(args) -> int:
    from rich.table import Table

    from cytoreg.registry.builtins import ADAPTERS, METRICS, SOURCES, TASK_KINDS
    from cytoreg.registry.catalog import Catalog

    cat = Catalog.load(args.include)
    what = args.what or "all"
    groups = {"tasks": cat.tasks, "models": cat.models, "metrics": METRICS, "adapters": ADAPTERS,
              "sources": SOURCES, "kinds": TASK_KINDS}
    chosen = groups if what == "all" else {what: groups[what]}
    rows = {g: [_row(e, g) for e in reg] for g, reg in chosen.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.markup import escape

    console = _console()
    for group, entries in rows.items():
        table = Table(title=group, title_justify="left")
        for col in ("name", "kind", "origin", "description"):
            table.add_column(col, overflow="fold")
        for r in entries:
            table.add_row(*(escape(r[c] or "") for c in ("name", "kind", "origin", "description")))
        console.print(table)
    return 0


def _row(e, group: str) -> dict:
    """One entry; a plugin's code entry (adapter, metric, kind, source) is imported to show its
    kind and the first line of its docstring."""
    from cytoreg.registry.plugins import describe

    kind, desc = e.kind, e.description
    if group not in ("tasks", "models") and not e.origin.startswith("built-in"):
        kind, desc = describe(e, group)
    return {"name": e.name, "kind": kind, "origin": e.origin, "description": desc}


def register(sub, common) -> None:
    p = sub.add_parser("list", parents=[common], help="list tasks, models, metrics, adapters, sources, kinds")
    p.add_argument("what", nargs="?", choices=["tasks", "models", "metrics", "adapters", "sources", "kinds"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)
