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
    if "models" in rows:
        for r in rows["models"]:
            r.update(_model_card(cat, r["name"]), adapter=r["kind"])  # "adapter": the table's column name
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.markup import escape

    console = _console()
    for group, entries in rows.items():
        table = Table(title=group, title_justify="left")
        cols = MODEL_COLUMNS if group == "models" else ("name", "kind", "origin", "description")
        for col in cols:
            if group == "models" and col in ("licence", "description"):  # one line a model; --json has it all
                table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=28 if col == "licence" else 48)
            else:
                table.add_column({"kind": "adapter"}.get(col, col) if group == "models" else col, overflow="fold")
        for r in entries:
            table.add_row(*(escape(str(r.get(c) or "")) for c in cols))
        console.print(table)
    return 0


#: what a model's row shows: the role decides which tasks and settings it can take
MODEL_COLUMNS = ("name", "role", "kind", "licence", "gated", "parameters", "description")


def _model_card(cat, name: str) -> dict:
    """Role (generator / embedder / features / baseline), licence, gating and size from the spec;
    a spec that does not resolve shows its error as the role instead of stopping the listing."""
    from cytoreg.errors import CytoregError
    from cytoreg.registry.builtins import ADAPTERS

    try:
        spec = cat.model(name)
        role = ADAPTERS.get(spec.get("adapter")).capability
    except CytoregError as exc:
        return {"role": f"error: {str(exc).splitlines()[0]}", "licence": None, "gated": None, "parameters": None}
    api = spec.get("open_weights") is False
    if role == "baseline":
        return {"role": role, "licence": "-", "gated": "-", "parameters": "-"}
    return {"role": role, "licence": spec.get("license") or ("provider's terms" if api else None),
            "gated": "yes" if spec.get("gated") else ("API" if api else "no"), "parameters": spec.get("parameters")}


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
