"""``cytoreg view``: the sample explorer (``samples.html``) for run folders, or serve one on localhost."""
from __future__ import annotations

from pathlib import Path

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError


def cmd_view(args) -> int:
    from cytoreg.report.explorer import load_board, write_explorer

    paths = [Path(p) for p in args.paths]
    runs = [p for p in paths if (p / "results.json").exists() or p.name == "results.json"]
    pages = [p for p in paths if p not in runs and (p / "samples.html").exists()]
    unknown = [p for p in paths if p not in runs and p not in pages]
    if unknown:
        raise CytoregError(f"{', '.join(map(str, unknown))}: neither a run folder (results.json) nor a folder with "
                           "samples.html (from `cytoreg leaderboard` or `cytoreg view`)")
    if runs and pages:
        raise CytoregError("give run folders, or one folder that already has samples.html, not both")
    if len(pages) > 1:
        raise CytoregError("--serve takes one folder with samples.html")
    if runs:
        out = Path(args.output)
        page = write_explorer(load_board(runs), out, include_images=args.include_images)
        _console().print(f"samples: {page}")
        folder = out
    else:
        folder = pages[0]
    if args.serve:
        serve(folder, args.port)
    return 0


def serve(folder: Path, port: int = 0) -> None:
    """Serve ``folder`` on 127.0.0.1 until Ctrl-C (for runs too large to embed in the page)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a) -> None:  # no request log on the console
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        _console().print(f"serving {folder} at http://127.0.0.1:{httpd.server_address[1]}/samples.html (Ctrl-C stops)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def register(sub, common) -> None:
    p = sub.add_parser("view", help="browse every sample of runs in a static page (samples.html), or serve it")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_FOLDER", help="run folders (later override earlier), or a "
                   "folder that already holds samples.html (a leaderboard)")
    p.add_argument("--output", "-o", default="view", help="folder for samples.html and its images (default ./view)")
    p.add_argument("--include-images", action="store_true", help="copy images also of tasks whose licence forbids "
                   "redistribution")
    p.add_argument("--serve", action="store_true", help="serve the folder on 127.0.0.1 (needed when the rows are "
                   "too many to embed and live in samples.json)")
    p.add_argument("--port", type=int, default=0, help="port for --serve (default: a free one)")
    p.set_defaults(fn=cmd_view)
