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
        unsent = _unsent(spec) if spec.type == "model" else []
        if unsent:
            header += f"\n# not sent to the API: {', '.join(unsent)}"
        print(header)
        print(json.dumps(spec.data, indent=2, ensure_ascii=False) if args.json
              else yaml.safe_dump(spec.data, sort_keys=False, allow_unicode=True, width=100))
    return 0


def _unsent(spec) -> list[str]:
    """Generation keys the spec states but its adapter leaves out of the request (models that
    reject sampling parameters), so the printed spec does not suggest greedy decoding."""
    params, gen = spec.get("params") or {}, spec.get("generation") or {}
    why = None
    if spec.get("adapter") == "anthropic" and (params.get("sampling") is False or "thinking" in params):
        why = "params.sampling false" if params.get("sampling") is False else "params.thinking"
    elif spec.get("adapter") == "openai" and params.get("reasoning"):
        why = "params.reasoning"
    keys = [k for k in ("temperature", "top_p") if k in gen]
    if "top_k" in gen and spec.get("adapter") == "anthropic":  # OpenAI-compatible servers get top_k in extra_body
        keys.append("top_k")
    return [f"generation.{k} ({why})" for k in keys] if why else []


def register(sub, common) -> None:
    p = sub.add_parser("show", parents=[common], help="print the resolved spec of a task or model")
    p.add_argument("name", help="a task or model name (cytoreg list shows them)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_show)
