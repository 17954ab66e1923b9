"""``cytoreg leaderboard``: merge run folders into Markdown / CSV / HTML leaderboards."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console, _split
from cytoreg.errors import CytoregError


def cmd_leaderboard(args) -> int:
    from cytoreg.report.leaderboard import write_leaderboard

    formats = tuple(_split(args.format or ["md,csv,html"]))
    unknown = [f for f in formats if f not in ("md", "csv", "html")]
    if unknown:
        raise CytoregError(f"--format: unknown format(s) {', '.join(unknown)}; choose from md, csv, html")
    written = write_leaderboard([Path(d) for d in args.runs], Path(args.out), _split([args.metric]), formats,
                                allow_mixed=args.allow_mixed, include_images=args.include_images)
    if "md" in written:
        print(written["md"].read_text())
    for fmt, path in written.items():
        _console().print(f"{fmt}: {path}")
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("leaderboard", help="merge run folders into Markdown / CSV / HTML leaderboards")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by `cytoreg eval --output` "
                   "(later ones override earlier ones for the same task × model × setting)")
    p.add_argument("--metric", default="f1_weighted", help="table metric(s), comma-separated: one table each "
                   "(default f1_weighted)")
    p.add_argument("--format", action="append", default=None, help="md, csv, html (comma-separated; default all)")
    p.add_argument("--output", "-o", "--out", dest="out", default="leaderboard",
                   help="output folder (default ./leaderboard; --out is the old name)")
    p.add_argument("--allow-mixed", action="store_true", help="show cells scored on different samples (e.g. a "
                   "--limit run beside a full run) flagged instead of refusing; they are never bolded or ranked")
    p.add_argument("--include-images", action="store_true", help="copy images also of tasks whose licence forbids "
                   "redistribution (spec `redistributable: false`): for a private copy, not for publishing")
    p.set_defaults(fn=cmd_leaderboard)
