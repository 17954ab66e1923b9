"""``cytoreg cache``: inspect or clear the response cache; with ``--tasks/--models``, how many
requests of that planned run the cache would answer."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console, _split
from cytoreg.errors import CytoregError


def default_cache() -> str:
    """The shared cache of default runs if there is one, else the latest run's."""
    return "runs/cache.sqlite" if Path("runs/cache.sqlite").exists() else "runs/latest/cache.sqlite"


def cmd_cache(args) -> int:
    from rich.table import Table

    from cytoreg.cache import ResponseCache

    path = Path(args.cache or default_cache())
    if not path.exists():
        raise CytoregError(f"no cache at {path}; pass --cache PATH (default: runs/cache.sqlite, else "
                           "runs/latest/cache.sqlite)")
    planned_only = args.settings or args.model_args or args.task_args or args.set
    if planned_only and not args.tasks:
        raise CytoregError("--settings, -M, -T and --set describe a planned run: give them with `cache stats "
                           "--tasks ... --models ...`")
    if (args.tasks or args.models) and not (args.tasks and args.models and args.action == "stats"):
        raise CytoregError("--tasks and --models go together, with `cache stats`: they describe the planned run "
                           "whose reuse is counted")
    cache = ResponseCache(path)
    try:
        if args.action == "stats" and args.tasks:
            from cytoreg.engine.planned import planned_reuse
            from cytoreg.scoring import EvalConfig

            cfg = EvalConfig(tasks=_split(args.tasks), models=_split(args.models), include=list(args.include),
                             limit=args.limit, settings=_split(args.settings) if args.settings else None,
                             overrides={"model_args": list(args.model_args), "task_args": list(args.task_args),
                                        "set": list(args.set)})
            rows = planned_reuse(cfg, cache)
            table = Table(title=f"planned run against {path}")
            for col in ("task", "model", "setting", "requests", "cached", "to send"):
                table.add_column(col)
            for r in rows:
                table.add_row(r["task"], r["model"], r["setting"], str(r["requests"]), str(r["cached"]),
                              str(r["requests"] - r["cached"]))
            _console().print(table)
            total, cached = sum(r["requests"] for r in rows), sum(r["cached"] for r in rows)
            _console().print(f"would reuse {cached} of {total} requests; {total - cached} would be sent")
        elif args.action == "stats":
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
    p = sub.add_parser("cache", parents=[common], help="inspect or clear the response cache")
    p.add_argument("action", choices=["stats", "clear"])
    p.add_argument("--cache", help="cache file (default: runs/cache.sqlite, else runs/latest/cache.sqlite)")
    p.add_argument("--model", help="clear: only this model's responses")
    p.add_argument("--task", help="clear: only this task's responses")
    p.add_argument("--tasks", action="append", help="stats: a planned run's tasks (with --models): how many of "
                   "its requests the cache answers")
    p.add_argument("--models", action="append", help="stats: a planned run's models")
    p.add_argument("--limit", type=int, help="stats: the planned run's --limit")
    p.add_argument("--settings", action="append", metavar="S1,S2", help="stats: the planned run's --settings")
    p.add_argument("-M", "--model-args", action="append", default=[], metavar="KEY=VALUE",
                   help="stats: the planned run's -M overrides")
    p.add_argument("-T", "--task-args", action="append", default=[], metavar="KEY=VALUE",
                   help="stats: the planned run's -T overrides")
    p.add_argument("--set", action="append", default=[], metavar="model.NAME.PATH=V",
                   help="stats: the planned run's --set overrides")
    p.set_defaults(fn=cmd_cache)
