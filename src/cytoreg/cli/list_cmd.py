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
    if args.json:
        print(json.dumps({g: [{"name": e.name, "kind": e.kind, "origin": e.origin, "description": e.description}
                              for e in reg] for g, reg in chosen.items()}, indent=2))
        return 0
    console = _console()
    for group, reg in chosen.items():
        table = Table(title=group, title_justify="left")
        for col in ("name", "kind", "origin", "description"):
            table.add_column(col, overflow="fold")
        for e in reg:
            table.add_row(e.name, e.kind, e.origin, e.description)
        console.print(table)
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("list", parents=[common], help="list tasks, models, metrics, adapters, sources, kinds")
    p.add_argument("what", nargs="?", choices=["tasks", "models", "metrics", "adapters", "sources", "kinds"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)
