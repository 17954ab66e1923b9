"""``cytoreg models check NAME...``: packages, weights, key and endpoint per model spec, the same
answer the preflight gives (:mod:`cytoreg.models.check`), plus config and processor loaded."""
from __future__ import annotations

import json

from cytoreg.cli.common import _split
from cytoreg.errors import CytoregError


def cmd_models_check(args) -> int:
    from cytoreg.models.check import check
    from cytoreg.registry.builtins import ADAPTERS
    from cytoreg.registry.catalog import Catalog
    from cytoreg.registry.core import suggest

    cat = Catalog.load(args.include)
    names = _split(args.names)
    unknown = [n for n in names if n not in cat.models]
    if unknown:
        hint = suggest(unknown[0], cat.models.names())
        raise CytoregError(f"no model named '{unknown[0]}'{hint}" + ("" if hint else "; `cytoreg list models` shows them"))
    results = []
    for name in names:
        spec = cat.model(name)
        try:
            adapter = ADAPTERS.get(spec.get("adapter"))(spec)
        except Exception:  # noqa: BLE001 - the shared checks still answer; the run will name it
            adapter = None
        results.append(check(spec, adapter, deep=True))
    if args.json:
        print(json.dumps([c.to_json() for c in results], indent=2))
    else:
        for c in results:
            print(f"{c.name}  ({c.adapter}: {c.source})")
            for key, text in c.lines:
                print(f"  {key:<8} {text}")
            print(f"  {'status':<8} {'ready' if c.ready else 'NOT READY'}")
    return 0 if all(c.ready for c in results) else 1


def register(sub, common) -> None:
    p = sub.add_parser("models", help="model utilities: check that weights, keys and endpoints are here")
    msub = p.add_subparsers(dest="models_command", required=True)
    c = msub.add_parser("check", parents=[common],
                        help="are the packages, weights (HF cache / local path; complete, not truncated), API key "
                             "and endpoint of these models here, and do their config and processor load? The same "
                             "answer as `eval --check`; exit 1 if any is not ready")
    c.add_argument("names", nargs="+", metavar="NAME", help="model names (comma-separated or repeated)")
    c.add_argument("--json", action="store_true", help="print the result as JSON (a list, one object per model)")
    c.set_defaults(fn=cmd_models_check)
