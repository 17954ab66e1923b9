"""The ``cytoreg`` command line. ``list``, ``show`` and ``validate`` never import torch."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from cytoreg.errors import CytoregError, SpecError


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and pipes: do not squeeze tables to 80 columns
    return console


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


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
        files += iter_spec_files(path)
    cat = Catalog.load(list(args.include) + [p for p in args.paths if Path(p).exists()], strict=False)
    problems += cat.problems
    if problems:
        for line in problems:
            console.print(f"[red]error[/red] {line}", markup=True)
        console.print(f"{len(problems)} problem(s) in {len(files)} file(s)")
        return 1
    console.print(f"[green]ok[/green] {len(files)} spec file(s) valid")
    return 0


def cmd_eval(args) -> int:
    from cytoreg.engine.runner import EvalConfig, evaluate
    from cytoreg.report.summary import print_summary

    cfg = EvalConfig(tasks=_split(args.tasks), models=_split(args.models), output=Path(args.output),
                     cache=Path(args.cache) if args.cache else None, include=list(args.include),
                     limit=args.limit, device=args.device, concurrency=args.concurrency,
                     bootstrap=args.bootstrap, seed=args.seed, progress=not args.no_progress,
                     judge=args.judge)
    if args.layers:
        try:
            cfg.layers = [int(x) for x in _split([args.layers])]
        except ValueError:
            raise CytoregError(f"--layers {args.layers!r}: give layer numbers, e.g. 8,16,24") from None
    if args.shard:
        from cytoreg.engine.distributed import parse_shard

        cfg.shard = parse_shard(args.shard)
    results = evaluate(cfg)
    if "shard" in results:
        i, n = results["shard"]
        _console().print(f"shard {i}/{n} cached in {cfg.output}; when all {n} are done: cytoreg merge DIRS... "
                         f"--output DIR")
        return 0
    if "evaluations" not in results:  # a rank other than 0 of torchrun / accelerate: rank 0 reports
        return 0
    print_summary(results, _console())
    _console().print(f"results: {cfg.output / 'results.json'}  samples: {cfg.output / 'samples.jsonl'}")
    return 0


def cmd_merge(args) -> int:
    from cytoreg.engine.distributed import merge
    from cytoreg.report.summary import print_summary

    results = merge([Path(d) for d in args.runs], Path(args.output))
    print_summary(results, _console())
    _console().print(f"results: {Path(args.output) / 'results.json'}")
    return 0


def cmd_leaderboard(args) -> int:
    from cytoreg.report.leaderboard import write_leaderboard

    formats = tuple(_split(args.format or ["md,csv,html"]))
    unknown = [f for f in formats if f not in ("md", "csv", "html")]
    if unknown:
        raise CytoregError(f"--format: unknown format(s) {', '.join(unknown)}; choose from md, csv, html")
    written = write_leaderboard([Path(d) for d in args.runs], Path(args.out), args.metric, formats)
    if "md" in written:
        print(written["md"].read_text())
    for fmt, path in written.items():
        _console().print(f"{fmt}: {path}")
    return 0


def cmd_review(args) -> int:
    from cytoreg.report import review

    if args.action == "export":
        if not (args.task and args.model and args.out):
            raise CytoregError("review export needs --task, --model and --out")
        info = review.export_review(Path(args.path), Path(args.out), args.task, args.model, args.per_class,
                                    args.seed, args.setting)
        _console().print(f"{info['items']} items: give {args.out}/review.html and review.csv to the expert "
                         f"(keep key.json); shortfalls: {info['shortfalls'] or 'none'}")
        return 0
    s = review.import_review(Path(args.path), Path(args.ratings) if args.ratings else None)
    for name in ("correct", "wrong"):
        p = s[name]
        if p["n"]:
            _console().print(f"{name}: rating {p['mean']:.2f} ± {p['sd']:.2f} (n = {p['n']}), poor or misleading "
                             f"{100 * p['share_poor_or_misleading']:.0f}%")
    _console().print(f"summary: {Path(args.path) / 'review_summary.json'}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    from cytoreg import __version__

    parser = argparse.ArgumentParser(prog="cytoreg", description="Evaluate vision-language models on "
                                     "cytology and medical-image benchmarks.")
    parser.add_argument("--version", action="version", version=f"cytoreg {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--include", action="append", default=[], metavar="PATH",
                        help="extra spec file or folder (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", parents=[common], help="list tasks, models, metrics, adapters, sources, kinds")
    p.add_argument("what", nargs="?", choices=["tasks", "models", "metrics", "adapters", "sources", "kinds"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("show", parents=[common], help="print the resolved spec of a task or model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("validate", parents=[common], help="validate spec files; lists every error")
    p.add_argument("paths", nargs="+")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("eval", parents=[common], help="run tasks × models")
    p.add_argument("--tasks", action="append", required=True, help="comma-separated task names")
    p.add_argument("--models", action="append", required=True, help="comma-separated model names")
    p.add_argument("--output", "-o", default="runs/latest", help="run folder (results.json, samples.jsonl)")
    p.add_argument("--cache", help="response cache file (default: OUTPUT/cache.sqlite)")
    p.add_argument("--limit", type=int, help="evaluate only the first N test samples of each task")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], help="device for local models")
    p.add_argument("--concurrency", type=int, help="max concurrent API requests (overrides model specs)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for CIs (overrides task specs)")
    p.add_argument("--seed", type=int, default=0, help="seed for statistics and baselines")
    p.add_argument("--layers", metavar="L1,L2,...", help="layer sweep for layer-wise feature models (hf_hidden: "
                   "1 = first block; timm: block index); one evaluation per layer × pooling")
    p.add_argument("--shard", metavar="I/N", help="fill the caches for shard I of N only (job arrays); then "
                   "`cytoreg merge` the N output folders")
    p.add_argument("--judge", metavar="MODEL", help="generative model that maps replies the rules could not "
                   "parse to a label (seed A's answer cleaning, e.g. gpt4o); cached like any request")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("cache", help="inspect or clear the response cache")
    p.add_argument("action", choices=["stats", "clear"])
    p.add_argument("--cache", default="runs/latest/cache.sqlite")
    p.add_argument("--model")
    p.add_argument("--task")
    p.set_defaults(fn=cmd_cache)

    p = sub.add_parser("review", help="expert review of explanations: export a blinded sheet, import ratings")
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("path", help="export: the run folder; import: the review folder")
    p.add_argument("--task")
    p.add_argument("--model")
    p.add_argument("--setting", default="free_text")
    p.add_argument("--per-class", type=int, default=5, help="correct and wrong items per class (default 5 + 5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", help="export: folder for review.html, review.csv, images/ and key.json")
    p.add_argument("--ratings", help="import: the filled CSV (default <folder>/review.csv)")
    p.set_defaults(fn=cmd_review)

    p = sub.add_parser("merge", help="combine `eval --shard I/N` outputs and score them together")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--output", required=True, help="folder for the merged caches and results")
    p.set_defaults(fn=cmd_merge)

    p = sub.add_parser("leaderboard", help="merge run folders into Markdown / CSV / HTML leaderboards")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by `cytoreg eval --output` "
                   "(later ones override earlier ones for the same task × model × setting)")
    p.add_argument("--metric", default="f1_weighted", help="table metric (default f1_weighted)")
    p.add_argument("--format", action="append", default=None, help="md, csv, html (comma-separated; default all)")
    p.add_argument("--out", default="leaderboard", help="output folder (default ./leaderboard)")
    p.set_defaults(fn=cmd_leaderboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except SpecError as exc:
        console = _console(stderr=True)
        for line in exc.problems:
            console.print(f"[red]error[/red] {line}", markup=True)
        return 2
    except CytoregError as exc:
        _console(stderr=True).print(f"[red]error[/red] {exc}", markup=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished responses are in the cache, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
