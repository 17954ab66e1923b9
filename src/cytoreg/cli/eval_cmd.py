"""``cytoreg eval``: run tasks × models."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from cytoreg.cli.common import _console, _split
from cytoreg.errors import CytoregError

#: exit status when an evaluation is incomplete or a model was stopped (2: user error, 130: interrupted)
EXIT_INCOMPLETE = 3


def cmd_eval(args) -> int:
    from cytoreg.engine.interrupt import RunInterrupted
    from cytoreg.engine.runner import EvalConfig, evaluate
    from cytoreg.report.summary import print_summary

    if not 0.0 <= args.min_coverage <= 1.0:
        raise CytoregError(f"--min-coverage {args.min_coverage}: give a fraction between 0 and 1 (default 1.0)")
    if args.limit is not None and args.limit < 1:
        raise CytoregError(f"--limit {args.limit}: give a positive number of test samples per task")
    fresh = args.output is None
    if fresh:
        from cytoreg.engine.rundir import fresh_folder

        output = fresh_folder(Path("runs"))
    else:
        output = Path(args.output)
    # default runs share one response cache, so re-running the same command resumes
    cache = Path(args.cache) if args.cache else (Path("runs/cache.sqlite") if fresh else None)
    cfg = EvalConfig(tasks=_split(args.tasks), models=_split(args.models), output=output, cache=cache,
                     include=list(args.include), limit=args.limit, device=args.device, concurrency=args.concurrency,
                     bootstrap=args.bootstrap, seed=args.seed, progress=not args.no_progress,
                     judge=args.judge, min_coverage=args.min_coverage, circuit_breaker=args.circuit_breaker,
                     overwrite=args.overwrite)
    if args.layers:
        try:
            cfg.layers = [int(x) for x in _split([args.layers])]
        except ValueError:
            raise CytoregError(f"--layers {args.layers!r}: give layer numbers, e.g. 8,16,24") from None
    if args.shard:
        from cytoreg.engine.distributed import parse_shard

        cfg.shard = parse_shard(args.shard)
    if args.limit:
        _console(stderr=True).print(
            f"[bold yellow]WARNING: --limit {args.limit}[/bold yellow]: each task is cut to a stratified, seeded subset "
            f"of {args.limit} test samples (round-robin over its classes). The numbers are NOT comparable with full "
            "runs; results.json records the limit.")
    try:
        results = evaluate(cfg)
    except CytoregError:
        if fresh and not any(output.iterdir()):
            output.rmdir()  # nothing ran: leave no empty run folder behind
        raise
    except RunInterrupted:
        _latest(fresh, output)
        again = "the same command" if fresh else f"the same command (-o {output})"
        print(f"interrupted: replies received so far are cached in {cfg.cache or output / 'cache.sqlite'}; "
              f"re-run {again} to resume, only what is missing is requested", file=sys.stderr, flush=True)
        _exit(130)
        return 130
    _latest(fresh, output)
    if "shard" in results:
        i, n = results["shard"]
        _console().print(f"shard {i}/{n} cached in {cfg.output}; when all {n} are done: cytoreg merge DIRS... "
                         f"--output DIR")
        return 0
    if "evaluations" not in results:  # a rank other than 0 of torchrun / accelerate: rank 0 reports
        return 0
    print_summary(results, _console())
    _console().print(f"results: {cfg.output / 'results.json'}  samples: {cfg.output / 'samples.jsonl'}")
    return exit_status(results)


def exit_status(results: dict) -> int:
    """3 when any evaluation is incomplete or stopped: a score that is not final must not pass for one."""
    bad = [ev for ev in results.get("evaluations", []) if ev.get("status", "complete") != "complete"]
    stopped = [m for m, info in results.get("models", {}).items() if info.get("stopped_reason")]
    return EXIT_INCOMPLETE if bad or stopped else 0


def _latest(fresh: bool, output: Path) -> None:
    if fresh and output.exists():
        from cytoreg.engine.rundir import point_latest

        point_latest(output, output.parent)


def _exit(code: int) -> None:
    """Leave now if request threads are still waiting on replies (they would hold the process)."""
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def register(sub, common) -> None:
    p = sub.add_parser("eval", parents=[common], help="run tasks × models")
    p.add_argument("--tasks", action="append", required=True, help="comma-separated task names")
    p.add_argument("--models", action="append", required=True, help="comma-separated model names")
    p.add_argument("--output", "-o", help="run folder (results.json, samples.jsonl); default: a fresh "
                   "runs/<timestamp>/ with runs/latest pointing at it. A finished run folder is only re-used "
                   "by the same configuration (resume)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run of another configuration "
                   "in --output")
    p.add_argument("--cache", help="response cache file (default: OUTPUT/cache.sqlite; runs/cache.sqlite when "
                   "--output is left out)")
    p.add_argument("--limit", type=int, help="a stratified, seeded subset of N test samples per task (round-robin "
                   "over classes); for trials, not comparable with full runs")
    p.add_argument("--min-coverage", type=float, default=1.0, metavar="FRACTION",
                   help="an evaluation answering fewer of its requests is 'incomplete' (exit status 3); "
                   "default 1.0")
    p.add_argument("--circuit-breaker", type=int, metavar="K", help="stop a model after K consecutive failures "
                   "of the same kind (overrides execution.circuit_breaker, default 5; 0: never)")
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
