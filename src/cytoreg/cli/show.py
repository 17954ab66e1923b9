"""``cytoreg show``: the resolved spec of a task or model."""
from __future__ import annotations

import json

from cytoreg.errors import CytoregError


def cmd_show(args) -> int:
    import yaml

    from cytoreg.registry.catalog import Catalog

    cat = Catalog.load(args.include)
    found = [reg.get(args.name) for reg in (cat.tasks, cat.models) if args.name in reg]
    if not found:
        from cytoreg.registry.core import suggest

        raise CytoregError(f"no task or model named '{args.name}'"
                           f"{suggest(args.name, cat.tasks.names() + cat.models.names())}")
    for spec in found:
        header = f"# {spec.type} '{spec.name}' from {spec.path} ({spec.origin}); spec hash {spec.hash}"
        if len(spec.chain) > 1:
            header += "\n# merged from: " + " <- ".join(spec.chain)
        print(header)
        print(json.dumps(spec.data, indent=2, ensure_ascii=False) if args.json
              else yaml.safe_dump(spec.data, sort_keys=False, allow_unicode=True, width=100))
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("show", parents=[common], help="print the resolved spec of a task or model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_show)
