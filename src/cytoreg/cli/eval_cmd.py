"""``cytoreg eval``: run tasks × models."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console, _split
from cytoreg.errors import CytoregError


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


def register(sub, common) -> None:
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
