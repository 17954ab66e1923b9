"""``cytoreg data``: list the datasets the task specs describe, fetch them, verify them."""
from __future__ import annotations

import json

from rich.text import Text

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return "?"


def _rows(catalog) -> list[dict]:
    from cytoreg.datahub.spec import read_download
    from cytoreg.datahub.verify import present

    rows = []
    for e in catalog.tasks:
        spec = catalog.task(e.name)
        dl = read_download(spec)
        here, path = present(spec)
        root = str((spec.get("data") or {}).get("root", ""))
        how = ("shipped" if root.startswith("package:") else "fetch" if dl and dl.files
               else "manual" if dl and dl.manual else "-")
        rows.append({"name": e.name, "size": dl.size if dl else None, "license": spec.get("license", "?"),
                     "source": spec.get("download_url") or spec.get("homepage") or (dl.files[0].url if dl and dl.files
                                                                                    else "?"),
                     "get": how, "hf_mirror": (f"{dl.hf_mirror.repo}@{dl.hf_mirror.revision[:7]}"
                                               if dl and dl.hf_mirror else None),
                     "present": here, "path": path})
    return rows


def cmd_list(args) -> int:
    from rich.table import Table

    from cytoreg.registry.catalog import Catalog

    rows = _rows(Catalog.load(args.include))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="datasets (present = found at the spec's data path; built-ins read $CYTOREG_DATA)",
                  title_justify="left")
    for col in ("task", "size", "licence", "from", "get", "hf mirror (--from hf)", "present"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mark = {True: Text("yes", "green"), False: Text("no", "red"), None: Text("-")}[r["present"]]
        table.add_row(r["name"], _size(r["size"]), r["license"], r["source"], r["get"], r["hf_mirror"] or "-",
                      Text.assemble(mark, " ", r["path"]) if r["path"] else mark)
    _console().print(table)
    return 0


def _data_home() -> str:
    """What ``$CYTOREG_DATA`` stands for in the steps: the variable, else the built-in specs' default."""
    import os
    from pathlib import Path

    return os.environ.get("CYTOREG_DATA") or str(Path("~/cytoreg-data").expanduser())


def _manual(console, dl, spec) -> None:
    console.print(Text.assemble((spec.name, "bold"), " needs a manual step (no direct download):"))
    home = _data_home()
    for i, step in enumerate(dl.manual, 1):
        console.print(f"  {i}. {step.replace('${CYTOREG_DATA}', home).replace('$CYTOREG_DATA', home)}")
    if spec.get("layout"):
        console.print(f"  Expected layout: {spec.get('layout')}")
    console.print(f"  Then check it with: cytoreg data verify {spec.name}")


def _task(catalog, name: str):
    """A task name, or a folder / CSV / task spec file as `eval --tasks` takes them."""
    from cytoreg.tasks.folder_task import task_or_folder

    return task_or_folder(catalog, name)


def cmd_fetch(args) -> int:
    from cytoreg.datahub.fetch import fetch
    from cytoreg.datahub.spec import read_download
    from cytoreg.registry.catalog import Catalog

    spec = _task(Catalog.load(args.include), args.name)
    dl = read_download(spec)
    console = _console()
    root = str((spec.get("data") or {}).get("root", ""))
    if root.startswith("package:"):
        from cytoreg.tasks.sources.base import resolve_path

        console.print(f"{spec.name} ships with cytoreg ({resolve_path(root)}); nothing to fetch")
        return 0
    if dl is None:  # a manual step like any other, only with the steps taken from the spec's fields
        data = spec.get("data") or {}
        console.print(Text.assemble((spec.name, "bold"), " needs a manual step (cytoreg has no download recipe):"))
        console.print(f"  1. Get the data from {spec.get('download_url') or spec.get('homepage') or '(no URL in ' + str(spec.path) + ')'}")
        console.print(f"  2. Put it at {data.get('root') or data.get('file') or data.get('manifest')}"
                      + (f", laid out as {spec.get('layout')}" if spec.get("layout") else ""))
        console.print(f"  Then check it with: cytoreg data verify {spec.name}")
        return 1  # nothing was downloaded
    if args.source == "hf":
        import time

        from cytoreg.datahub.hf_mirror import fetch_mirror

        t0 = time.perf_counter()
        installed = fetch_mirror(dl, spec, progress=not args.no_progress, report=lambda m: console.print(m))
        for p in installed:
            console.print(f"installed {p}")
        if installed:
            console.print(f"from {dl.hf_mirror.repo}@{dl.hf_mirror.revision[:12]} in {time.perf_counter() - t0:.1f} s")
        console.print(f"check it with: cytoreg data verify {spec.name}")
        return 0
    if not dl.files:
        _manual(console, dl, spec)
        return 1  # nothing was downloaded
    installed = fetch(dl, progress=not args.no_progress, attempts=args.attempts,
                      report=lambda m: console.print(m))
    for p in installed:
        console.print(f"installed {p}")
    if dl.note:
        console.print(dl.note)
    console.print(f"check it with: cytoreg data verify {spec.name}")
    return 0


def cmd_verify(args) -> int:
    from rich.table import Table

    from cytoreg.datahub.verify import verify
    from cytoreg.registry.catalog import Catalog

    spec = _task(Catalog.load(args.include), args.name)
    rep = verify(spec)
    if args.json:
        print(json.dumps({"task": rep.task, "ok": rep.ok,
                          "classes": [{"label": c.label, "expected": c.expected, "found": c.found,
                                       "status": c.status} for c in rep.classes],
                          "splits": [{"split": s, "expected": e, "found": n} for s, e, n in rep.splits],
                          "extra_files": [{"path": p, "reason": r} for p, r in rep.extra_files],
                          "excluded": rep.excluded, "checksums": dict(rep.checksums),
                          "missing_files": rep.missing_files, "problems": rep.problems}, indent=2))
        return 0 if rep.ok else 1
    console = _console()
    table = Table(title=f"{spec.name}: files per label", title_justify="left")
    for col in ("label", "published", "found", "status"):
        table.add_column(col)
    for c in rep.classes:
        table.add_row(c.label, "?" if c.expected is None else str(c.expected), str(c.found),
                      "found" if c.unpublished else c.status if c.status == "ok" else Text(c.status, "red"))
    console.print(table)
    for s, e, n in rep.splits:
        console.print(Text.assemble(f"split {s}: {n} (published {'?' if e is None else e})",
                                    ("" if e in (None, n) else "  differs", "red")))
    for problem in rep.problems:
        console.print(Text(problem, "red"))
    for path, state in rep.checksums:
        console.print(f"checksum {path}: {state}")
    if rep.excluded:
        console.print(f"{rep.excluded} file(s) left out on purpose by data.label_map (null)")
    if rep.missing_files:
        console.print(Text.assemble((f"{len(rep.missing_files)} file(s) listed in the data but not on disk", "red"),
                                    ":"))
        for p in rep.missing_files[:args.show]:
            console.print(f"  {p}")
    if rep.extra_files:
        console.print(Text.assemble((f"{len(rep.extra_files)} extra file(s)", "red"), " the task cannot use:"))
        for p, r in rep.extra_files[:args.show]:
            console.print(f"  {p}: {r}")
        if len(rep.extra_files) > args.show:
            console.print(f"  ... and {len(rep.extra_files) - args.show} more (--show N)")
    if rep.note:
        console.print(rep.note)
    unpublished = bool(rep.classes) and rep.classes[0].unpublished and not any(e is not None for _, e, _ in rep.splits)
    console.print(Text.assemble(("found", "green"), f": {sum(c.found for c in rep.classes)} files; no published "
                                "numbers to compare with") if rep.ok and unpublished else
                  Text.assemble(("OK", "green"), ": matches the published counts") if rep.ok else
                  Text.assemble(("does not match", "red"), " the published numbers (see above)"))
    return 0 if rep.ok else 1


def cmd_fixtures(args) -> int:
    """``data fixtures DIR``: the layout fixtures (:mod:`cytoreg.fixtures`) for trials and tests."""
    from pathlib import Path

    from cytoreg.fixtures import build_all

    root = build_all(Path(args.dir))
    _console().print(f"layout fixtures written to {root}; try:\n  CYTOREG_DATA={root} cytoreg eval --tasks "
                     "hicervix,acevedo,bmc,wbcatt,mll23,nejm --models random,prior -o runs/fixtures")
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("data", help="list, fetch and verify the datasets of the task specs")
    dsub = p.add_subparsers(dest="data_command", required=True)
    pl = dsub.add_parser("list", parents=[common], help="each dataset: size, licence, source, present or not")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(fn=cmd_list)
    pf = dsub.add_parser("fetch", parents=[common], help="download, check and unpack a task's dataset into its "
                         "data folder ($CYTOREG_DATA, default ~/cytoreg-data; resumable); where a manual step is "
                         "needed, prints the steps and exits 1")
    pf.add_argument("name", help="task name (or a task spec file)")
    pf.add_argument("--attempts", type=int, default=5, help="tries per file (each resumes where the last ended)")
    pf.add_argument("--no-progress", action="store_true")
    pf.add_argument("--from", dest="source", choices=("publisher", "hf"), default="publisher",
                    help="publisher: the spec's download.files (default); hf: the Hugging Face datasets mirror in "
                    "download.hf_mirror, through huggingface_hub (`cytoreg data list` shows which tasks have one)")
    pf.set_defaults(fn=cmd_fetch)
    pv = dsub.add_parser("verify", parents=[common], help="per-label file counts against the published ones; "
                         "extra files; checksums (exit 1 on a difference, 2 when the data is absent)")
    pv.add_argument("name", help="task name, or a folder / CSV / task spec file as `eval --tasks` takes")
    pv.add_argument("--show", type=int, default=20, metavar="N", help="how many extra / missing files to list "
                    "(default 20)")
    pv.add_argument("--json", action="store_true")
    pv.set_defaults(fn=cmd_verify)
    px = dsub.add_parser("fixtures", help="build every benchmark dataset in its published layout under DIR "
                         "(made-up rows, shipped PBC images), for CYTOREG_DATA=DIR")
    px.add_argument("dir", metavar="DIR")
    px.set_defaults(fn=cmd_fixtures)
