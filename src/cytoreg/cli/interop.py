"""``cytoreg export`` / ``cytoreg import``: cytoreg tasks in VLMEvalKit, lmms-eval and inspect_ai, and
their per-sample results back as cytoreg runs."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError

TARGETS = ("vlmeval", "lmms-eval", "inspect")


def cmd_export(args) -> int:
    from cytoreg.interop import inspect_io, lmms, vlmeval
    from cytoreg.interop.requests import export_task

    writer = {"vlmeval": vlmeval.export, "lmms-eval": lmms.export, "inspect": inspect_io.export}[args.to]
    ex = export_task(args.task, args.setting, list(args.include), args.limit)
    written = writer(ex, Path(args.output))
    _console().print(f"{len(ex.samples)} samples of '{ex.task}' ({ex.setting}) for {args.to}: " +
                     ", ".join(str(p) for p in written) + f"; see {Path(args.output) / 'README.md'}")
    return 0


def cmd_import(args) -> int:
    from cytoreg.interop.rescore import import_run
    from cytoreg.report.summary import print_summary

    if not args.files:
        raise CytoregError("give the harness's result files")
    results = import_run(args.harness, [Path(f) for f in args.files], args.task, args.model, Path(args.output),
                         args.setting, list(args.include), args.limit, args.bootstrap)
    print_summary(results, _console())
    _console().print(f"results: {Path(args.output) / 'results.json'}")
    return 0


def register_export(sub, common) -> None:
    p = sub.add_parser("export", parents=[common], help="write a task (its sampled split, exact prompts) for "
                       "VLMEvalKit, lmms-eval or inspect_ai")
    p.add_argument("task", help="task name (or a view, e.g. wbcatt.cell_size), or a folder / CSV as `eval --tasks` takes")
    p.add_argument("--to", required=True, choices=TARGETS)
    p.add_argument("--setting", default="zero_shot", help="zero_shot (default) or few_shot")
    p.add_argument("--limit", type=int, help="the same --limit as the cytoreg runs to compare with")
    p.add_argument("--output", "-o", required=True, help="folder to write")
    p.set_defaults(fn=cmd_export)


def register_import(sub, common) -> None:
    p = sub.add_parser("import", parents=[common], help="score another harness's per-sample outputs with cytoreg "
                       "and write a run folder")
    p.add_argument("harness", choices=TARGETS)
    p.add_argument("files", nargs="+", metavar="RESULT_FILE", help="VLMEvalKit *.xlsx/*.tsv predictions, lmms-eval "
                   "--log_samples *.jsonl, or inspect *.eval / *.json logs")
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True, help="the name the model gets in results and leaderboards")
    p.add_argument("--setting", default="zero_shot")
    p.add_argument("--limit", type=int)
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for CIs (overrides the task spec)")
    p.add_argument("--output", "-o", required=True, help="run folder to write")
    p.set_defaults(fn=cmd_import)


def register(sub, common) -> None:
    register_export(sub, common)
    register_import(sub, common)
