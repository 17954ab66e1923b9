"""``cytoreg finetune``: fine-tune generative models on a task's training split at several n per
class, then evaluate them beside the task's heads (see :mod:`cytoreg.finetune`)."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console, _split
from cytoreg.errors import CytoregError


def cmd_finetune(args) -> int:
    from cytoreg.finetune.run import FinetuneConfig, run

    try:
        ns = [int(x) for x in _split([args.n])]
    except ValueError:
        raise CytoregError(f"--n {args.n!r}: give images per class, e.g. 1,5,10,25,50,100,200") from None
    tasks = _split([args.tasks])
    if len(tasks) != 1:
        raise CytoregError(f"--tasks {args.tasks!r}: cytoreg finetune takes one task (its training split); run it "
                           "once per task")
    cfg = FinetuneConfig(task=tasks[0], models=_split(args.models), ns=ns, output=Path(args.output),
                         include=list(args.include), heads=_split(args.heads or []), check=args.check, yes=args.yes,
                         retry_failed=args.retry_failed, device=args.device, bootstrap=args.bootstrap,
                         seed=args.seed, progress=not args.no_progress)
    console = _console()
    out = run(cfg, lambda msg: console.print(msg, markup=False))
    if cfg.check:
        console.print("--check: nothing was uploaded or submitted")
        return 0
    from cytoreg.finetune.curves import render_markdown
    from cytoreg.report.summary import print_summary

    print_summary(out["results"], console)
    if out["results"].get("learning_curves"):
        console.print(render_markdown(out["results"]["learning_curves"]), markup=False)
    console.print(f"results: {cfg.output / 'results.json'}  specs: {cfg.output / 'specs'}  "
                  f"then: cytoreg leaderboard {cfg.output}")
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("finetune", parents=[common], help="fine-tune VLMs on a task's training split at several n "
                       "per class and evaluate them beside the task's heads")
    p.add_argument("--tasks", required=True, help="one task with a training split (e.g. acevedo-heads)")
    p.add_argument("--models", action="append", required=True, help="comma-separated openai or hf model names")
    p.add_argument("--n", required=True, help="images per class, comma-separated, e.g. 1,5,10,25,50,100,200 "
                   "(the probes' nested subsets); 0 adds the base model zero-shot")
    p.add_argument("--heads", action="append", metavar="MODELS", help="feature models whose probe heads are "
                   "compared at each n (e.g. dinobloom-s,dinov2-s)")
    p.add_argument("--output", "-o", required=True, help="folder for the files, job records, specs and results")
    p.add_argument("--check", action="store_true", help="build and validate the training files, print examples, "
                   "tokens and estimated cost; submit nothing")
    p.add_argument("--yes", action="store_true", help="submit the paid fine-tuning jobs")
    p.add_argument("--retry-failed", action="store_true", help="submit again the n whose job failed or was cancelled")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], help="device for LoRA training and local models")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples (CIs, paired tests; default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seed for statistics")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_finetune)
