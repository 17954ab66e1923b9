"""``cytoreg review``: blinded expert review of explanations."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError


def cmd_review(args) -> int:
    from cytoreg.report import review

    if args.action == "export":
        if not (args.task and args.model and args.out):
            raise CytoregError("review export needs --task, --model and --output")
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


def register(sub, common) -> None:
    p = sub.add_parser("review", help="expert review of explanations: export a blinded sheet, import ratings")
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("path", help="export: the run folder; import: the review folder")
    p.add_argument("--task")
    p.add_argument("--model")
    p.add_argument("--setting", default="free_text")
    p.add_argument("--per-class", type=int, default=5, help="correct and wrong items per class (default 5 + 5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", "-o", "--out", dest="out",
                   help="export: folder for review.html, review.csv, images/ and key.json (--out is the old name)")
    p.add_argument("--ratings", help="import: the filled CSV (default <folder>/review.csv)")
    p.set_defaults(fn=cmd_review)
