"""``cytoreg models check NAME...``: weights present and loadable, per model spec."""
from __future__ import annotations

from cytoreg.cli.common import _split
from cytoreg.errors import CytoregError


def cmd_models_check(args) -> int:
    from cytoreg.models.check import check
    from cytoreg.registry.catalog import Catalog
    from cytoreg.registry.core import suggest

    cat = Catalog.load(args.include)
    names = _split(args.names)
    unknown = [n for n in names if n not in cat.models]
    if unknown:
        raise CytoregError(f"no model named '{unknown[0]}'{suggest(unknown[0], cat.models.names())}; "
                           "`cytoreg list models` shows them")
    ok = True
    for name in names:
        c = check(cat.model(name))
        ok &= c.ready
        print(f"{c.name}  ({c.adapter}: {c.source})")
        for key, text in c.lines:
            print(f"  {key:<8} {text}")
        print(f"  {'status':<8} {'ready' if c.ready else 'NOT READY'}")
    return 0 if ok else 1


def register(sub, common) -> None:
    p = sub.add_parser("models", help="model utilities: check that weights are present and loadable")
    msub = p.add_subparsers(dest="models_command", required=True)
    c = msub.add_parser("check", parents=[common],
                        help="are the weights of these models here (HF cache / local path) and do their config "
                             "and processor load? exit 1 if any is not ready")
    c.add_argument("names", nargs="+", metavar="NAME", help="model names (comma-separated or repeated)")
    c.set_defaults(fn=cmd_models_check)
