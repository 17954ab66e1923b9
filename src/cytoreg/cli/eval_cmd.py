"""``cytoreg eval``: run tasks × models."""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from cytoreg.cli.common import _console, _split
from cytoreg.errors import CytoregError

#: --config keys (a flag's long name, - or _) and how a value from the file is read
CONFIG_LISTS = ("tasks", "models", "settings", "include")           # list or "a,b"
CONFIG_ASSIGN = ("model_args", "task_args", "set")                   # mapping or list of key=value
CONFIG_SCALARS = {"output": str, "cache": str, "limit": int, "device": str, "concurrency": int, "bootstrap": int,
                  "seed": int, "layers": str, "shard": str, "judge": str, "no_progress": bool, "check": bool,
                  "min_coverage": float, "circuit_breaker": int, "overwrite": bool}
# no default output: a run without one gets a fresh runs/<timestamp>/ (cmd_eval)
DEFAULTS = {"seed": 0, "no_progress": False, "check": False, "min_coverage": 1.0, "overwrite": False}
#: exit status when an evaluation is incomplete or a model was stopped (2: user error, 130: interrupted)
EXIT_INCOMPLETE = 3


def load_run_config(path: str) -> dict[str, Any]:
    """A ``--config run.yaml``: any of the eval flags by their long name. Unknown keys are errors."""
    from cytoreg.registry.core import suggest
    from cytoreg.registry.yamlio import read_structured

    p = Path(path).expanduser()
    if not p.is_file():
        raise CytoregError(f"--config {path}: no such file")
    data = read_structured(p)
    if not isinstance(data, dict):
        raise CytoregError(f"--config {path}: must be a mapping of flag names to values (e.g. tasks: [demo])")
    known = list(CONFIG_LISTS) + list(CONFIG_ASSIGN) + list(CONFIG_SCALARS)
    out: dict[str, Any] = {}
    problems = []
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            problems.append(f"--config {path}: {raw_key}: not an eval option{suggest(key, known)} "
                            f"(valid: {', '.join(sorted(known))})")
            continue
        if key in CONFIG_LISTS:
            items = value if isinstance(value, list) else [value]
            out[key] = [str(v) for v in items]
        elif key in CONFIG_ASSIGN:
            if isinstance(value, dict):
                out[key] = [f"{k}={_yaml_scalar(v)}" for k, v in value.items()]
            elif isinstance(value, list):
                out[key] = [str(v) for v in value]
            else:
                out[key] = [str(value)]
        else:
            typ = CONFIG_SCALARS[key]
            if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"--config {path}: {raw_key}: expected an integer, got {value!r}")
                continue
            if typ is bool and not isinstance(value, bool):
                problems.append(f"--config {path}: {raw_key}: expected true or false, got {value!r}")
                continue
            out[key] = value if typ is not str else str(value)
    if problems:
        from cytoreg.errors import SpecError

        raise SpecError(problems)
    return out


def _yaml_scalar(v: Any) -> str:
    import json

    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def merge_config(args, config: dict[str, Any]) -> None:
    """Command-line flags win over the file; ``-M``/``-T``/``--set`` from both apply, the file's first."""
    for key in CONFIG_LISTS:
        if not getattr(args, key, None) and key in config:
            setattr(args, key, config[key])
    for key in CONFIG_ASSIGN:
        setattr(args, key, list(config.get(key, [])) + list(getattr(args, key, None) or []))
    for key in CONFIG_SCALARS:
        if getattr(args, key, None) is None and key in config:
            setattr(args, key, config[key])
    for key, default in DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, default)


def build_config(args):
    from cytoreg.scoring import EvalConfig

    if args.config:
        merge_config(args, load_run_config(args.config))
    else:
        merge_config(args, {})
    if not args.tasks or not args.models:
        raise CytoregError("eval needs --tasks and --models (on the command line or in --config FILE)")
    settings = _split(args.settings) if args.settings else None
    if not 0.0 <= float(args.min_coverage) <= 1.0:
        raise CytoregError(f"--min-coverage {args.min_coverage}: give a fraction between 0 and 1 (default 1.0)")
    if args.limit is not None and args.limit < 1:
        raise CytoregError(f"--limit {args.limit}: give a positive number of test samples per task")
    fresh = args.output is None  # cmd_eval picks runs/<timestamp>; default runs share one cache, so re-running resumes
    cfg = EvalConfig(tasks=_split(args.tasks), models=_split(args.models),
                     output=Path(args.output) if not fresh else Path("runs/latest"),
                     cache=Path(args.cache) if args.cache else (Path("runs/cache.sqlite") if fresh else None),
                     include=list(args.include), min_coverage=float(args.min_coverage),
                     circuit_breaker=args.circuit_breaker, overwrite=bool(args.overwrite),
                     limit=args.limit, device=args.device, concurrency=args.concurrency,
                     bootstrap=args.bootstrap, seed=args.seed, progress=not args.no_progress,
                     judge=args.judge, settings=settings,
                     overrides={"model_args": list(args.model_args), "task_args": list(args.task_args),
                                "set": list(args.set)},
                     config_file=str(Path(args.config).resolve()) if args.config else None)
    if args.layers:
        try:
            cfg.layers = [int(x) for x in _split([str(args.layers)])]
        except ValueError:
            raise CytoregError(f"--layers {args.layers!r}: give layer numbers, e.g. 8,16,24") from None
    if args.shard:
        from cytoreg.engine.distributed import parse_shard

        cfg.shard = parse_shard(args.shard)
    cfg.fresh_output = fresh
    return cfg


def cmd_eval(args) -> int:
    from cytoreg.engine.runner import evaluate
    from cytoreg.report.summary import print_summary

    from cytoreg.engine.interrupt import RunInterrupted

    cfg = build_config(args)
    if args.check:
        return check(cfg)
    fresh = cfg.fresh_output
    if fresh:
        from cytoreg.engine.rundir import fresh_folder

        cfg.output = fresh_folder(Path("runs"))
    if args.limit:
        from rich.text import Text

        _console(stderr=True).print(Text.assemble(
            (f"WARNING: --limit {args.limit}", "bold yellow"), ": each task is cut to a stratified, seeded subset "
            f"of {args.limit} test samples (round-robin over its classes). The numbers are NOT comparable with full "
            "runs; results.json records the limit."))
    output = cfg.output
    try:
        results = evaluate(cfg)
    except CytoregError:
        if fresh and output.exists() and not any(output.iterdir()):
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
        return EXIT_INCOMPLETE if results.get("stopped") else 0  # its caches lack the stopped models' work
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


def check(cfg) -> int:
    """``--check``: the preflight report; exit 1 when anything would stop the run."""
    from cytoreg.engine.preflight import render, run_preflight
    from cytoreg.registry.catalog import Catalog

    rep = run_preflight(cfg, Catalog.load(cfg.include), explicit=True)
    render(rep, _console())
    return 0 if rep.ok else 1


def register(sub, common) -> None:
    p = sub.add_parser("eval", parents=[common], help="run tasks × models")
    p.add_argument("--tasks", action="append", help="comma-separated task names, or your own images: a folder "
                   "with one sub-folder per class (./my_cells) or a CSV/TSV with columns path,label; a task spec "
                   "file (.yaml) works too")
    p.add_argument("--models", action="append", help="comma-separated model names")
    p.add_argument("--output", "-o", help="run folder (results.json, samples.jsonl); default: a fresh "
                   "runs/<timestamp>/ with runs/latest pointing at it. A finished run folder is only re-used "
                   "by the same configuration (resume)")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace a finished run of another configuration in --output")
    p.add_argument("--cache", help="response cache file (default: OUTPUT/cache.sqlite; runs/cache.sqlite when "
                   "--output is left out)")
    p.add_argument("--limit", type=int, help="a stratified, seeded subset of N test samples per task (round-robin "
                   "over classes); for trials, not comparable with full runs")
    p.add_argument("--min-coverage", type=float, metavar="FRACTION",
                   help="an evaluation answering fewer of its requests is 'incomplete' (exit status 3); "
                   "default 1.0")
    p.add_argument("--circuit-breaker", type=int, metavar="K", help="stop a model after K consecutive failures "
                   "of the same kind (overrides execution.circuit_breaker, default 5; 0: never)")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], help="device for local models")
    p.add_argument("--concurrency", type=int, help="max concurrent API requests (overrides model specs)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for CIs (overrides task specs)")
    p.add_argument("--seed", type=int, help="seed for statistics and baselines (default 0)")
    p.add_argument("--layers", metavar="L1,L2,...", help="layer sweep for layer-wise feature models (hf_hidden: "
                   "1 = first block; timm: block index); one evaluation per layer × pooling")
    p.add_argument("--shard", metavar="I/N", help="fill the caches for shard I of N only (job arrays); then "
                   "`cytoreg merge` the N output folders")
    p.add_argument("--judge", metavar="MODEL", help="generative model that maps replies the rules could not "
                   "parse to a label (seed A's answer cleaning, e.g. gpt4o); cached like any request")
    p.add_argument("--settings", action="append", metavar="S1,S2",
                   help="run only these settings (zero_shot, few_shot, probe, features, free_text)")
    p.add_argument("-M", "--model-args", action="append", default=[], metavar="KEY=VALUE",
                   help="for every model: a params / generation / execution key (temperature=0.2, "
                   "model=gpt-4o-mini, base_url=http://127.0.0.1:8000/v1) or a dotted path (generation.tries=3)")
    p.add_argument("-T", "--task-args", action="append", default=[], metavar="KEY=VALUE",
                   help="for every task: a dotted path in the task spec (sampling.test_per_class=10)")
    p.add_argument("--set", action="append", default=[], metavar="model.NAME.PATH=V",
                   help="one spec: model.NAME.path=value or task.NAME.path=value (null deletes the key)")
    p.add_argument("--config", metavar="RUN.yaml", help="a YAML file holding any of these flags by long name "
                   "(tasks, models, settings, model_args, task_args, set, output, limit, ...); flags win")
    p.add_argument("--check", action="store_true", default=None,
                   help="preflight only: list every problem (data, weights, keys, few-shot pools, judge) and "
                   "the requests / tokens / cost the run would need; loads and sends nothing")
    p.add_argument("--no-progress", action="store_true", default=None)
    p.set_defaults(fn=cmd_eval)
