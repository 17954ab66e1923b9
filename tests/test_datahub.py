"""`cytoreg data list / fetch / verify` against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from cytoreg.cli import main
from fake_files import FileServer

PBC_DIR = Path(__file__).parents[1] / "src/cytoreg/demo_data/pbc"

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d7"
                    "63f8cfc000000301010018dd8db40000000049454e44ae426082")


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # stored: the cut lands mid-file
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def cells(n_a: int = 3, n_b: int = 2) -> dict[str, bytes]:
    # distinct bytes per file, and padding so the archive is large enough to cut in the middle
    out = {f"cells/a/a_{i}.png": PNG + bytes([i]) * 5000 for i in range(n_a)}
    out.update({f"cells/b/b_{i}.png": PNG + bytes([100 + i]) * 5000 for i in range(n_b)})
    return out


def write_spec(tmp: Path, url: str, *, digest: str | None = None, extract: str | None = "zip",
               counts: dict | None = None, name: str = "mini", manual: list[str] | None = None) -> Path:
    dest = tmp / "data" / name
    lines = ["spec: task/v1", f"name: {name}", "kind: classification", "license: CC BY 4.0",
             f"download_url: {url}", "data:", "  source: imagefolder", f"  root: {dest}/cells",
             "labels: [a, b]", "download:"]
    if manual:
        lines += ["  manual:"] + [f"  - {json.dumps(s)}" for s in manual]
    else:
        lines += [f"  dest: {dest}", "  files:", f"  - url: {url}", "    size: null"][:-1]
        if digest:
            lines.append(f"    sha256: '{digest}'")
        if extract:
            lines += [f"    extract: {extract}", "    creates: cells"]
    if counts:
        lines += ["reference:", "  published_counts:"] + [f"    {k}: {v}" for k, v in counts.items()]
    path = tmp / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*argv: str) -> int:
    return main(list(argv))


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_fetch_resumes_after_a_dropped_connection_and_installs_the_layout(tmp_path, capsys):
    members = cells()
    blob = make_zip(members)
    cut = len(blob) // 2
    with FileServer({"/mini.zip": blob}, cut_first={"/mini.zip": cut}) as srv:
        spec = write_spec(tmp_path, f"{srv.url}/mini.zip", digest=hashlib.sha256(blob).hexdigest(),
                          counts={"a": 3, "b": 2})
        assert run("data", "fetch", "mini", "--include", str(spec), "--no-progress") == 0
        # first request: whole file, cut; second: resumes exactly where the cut left off
        assert srv.log == [("/mini.zip", None, 200), ("/mini.zip", f"bytes={cut}-", 206)]
        dest = tmp_path / "data" / "mini"
        assert tree(dest) == sorted(["cells", "cells/a", "cells/b"] + list(members))
        for name, data in members.items():
            assert (dest / name).read_bytes() == data
        # a second fetch sees the dataset and downloads nothing
        assert run("data", "fetch", "mini", "--include", str(spec), "--no-progress") == 0
        assert len(srv.log) == 2
    capsys.readouterr()
    assert run("data", "verify", "mini", "--include", str(spec), "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is True
    assert [(c["label"], c["expected"], c["found"]) for c in rep["classes"]] == [("a", 3, 3), ("b", 2, 2)]


def test_a_cut_with_no_attempts_left_keeps_the_part_and_the_next_run_resumes(tmp_path):
    from cytoreg.datahub.fetch import download
    from cytoreg.datahub.spec import FileSpec
    from cytoreg.errors import DataError

    blob = bytes(range(256)) * 400
    with FileServer({"/x.bin": blob}, cut_first={"/x.bin": 30000}) as srv:
        f = FileSpec(url=f"{srv.url}/x.bin", name="x.bin", algo="sha256", digest=hashlib.sha256(blob).hexdigest())
        part = tmp_path / "x.bin.part"
        with pytest.raises(DataError, match="resumes from there"):
            download(f, part, attempts=1, backoff=0)
        assert part.stat().st_size == 30000
        # the next run hashes the 30000 bytes on disk once, then the rest as it arrives
        assert download(f, part, attempts=1, backoff=0) == hashlib.sha256(blob).hexdigest()
        assert part.read_bytes() == blob
        assert srv.log[-1] == ("/x.bin", "bytes=30000-", 206)


def test_a_server_without_range_support_restarts_from_zero(tmp_path):
    from cytoreg.datahub.fetch import download
    from cytoreg.datahub.spec import FileSpec

    blob = bytes(range(256)) * 400
    with FileServer({"/x.bin": blob}, cut_first={"/x.bin": 30000}, ranges=False) as srv:
        f = FileSpec(url=f"{srv.url}/x.bin", name="x.bin", algo="md5", digest=None)
        part = tmp_path / "x.bin.part"
        got = download(f, part, attempts=3, backoff=0)
        assert part.read_bytes() == blob  # not 30000 stale bytes + the whole file
        assert got == hashlib.md5(blob).hexdigest()  # the running checksum restarted with the file
        assert [s for _, _, s in srv.log] == [200, 200]


def test_wrong_checksum_leaves_nothing_half_written(tmp_path, capsys):
    blob = make_zip(cells())
    with FileServer({"/mini.zip": blob}, cut_first={"/mini.zip": len(blob) // 3}) as srv:
        spec = write_spec(tmp_path, f"{srv.url}/mini.zip", digest="0" * 64)
        assert run("data", "fetch", "mini", "--include", str(spec), "--no-progress") == 2
    err = capsys.readouterr().err
    assert "SHA256 " + hashlib.sha256(blob).hexdigest() in err and "0" * 64 in err
    assert "nothing was installed" in err
    assert tree(tmp_path / "data" / "mini") == []  # no .part, no staging folder, no extracted files


def test_wrong_md5_is_reported_as_md5(tmp_path):
    from cytoreg.datahub.fetch import check
    from cytoreg.datahub.spec import FileSpec
    from cytoreg.errors import DataError

    p = tmp_path / "f.npz"
    p.write_bytes(b"abc")
    with pytest.raises(DataError, match="MD5 900150983cd24fb0d6963f7d28e17f72, the spec says 0{32}"):
        check(FileSpec(url="http://x/f.npz", name="f.npz", algo="md5", digest="0" * 32), p)
    assert not p.exists()
    p.write_bytes(b"abc")
    check(FileSpec(url="http://x/f.npz", name="f.npz", algo="md5", digest="900150983cd24fb0d6963f7d28e17f72"), p)
    assert p.exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "cells/../../evil.txt", "/tmp/evil-abs.txt"])
def test_zip_with_a_member_outside_the_folder_is_refused(tmp_path, capsys, evil):
    members = cells()
    members[evil] = b"pwned"
    blob = make_zip(members)
    with FileServer({"/mini.zip": blob}) as srv:
        spec = write_spec(tmp_path, f"{srv.url}/mini.zip", digest=hashlib.sha256(blob).hexdigest())
        assert run("data", "fetch", "mini", "--include", str(spec), "--no-progress") == 2
    err = capsys.readouterr().err
    assert "refused" in err and evil in err
    dest = tmp_path / "data" / "mini"
    assert [p for p in tree(dest) if not p.startswith(".cytoreg-download")] == []
    assert not (tmp_path / "data" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_with_a_symlink_is_refused(tmp_path):
    from cytoreg.datahub.fetch import extract
    from cytoreg.errors import DataError

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("cells/a/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    arc = tmp_path / "x.tar.gz"
    arc.write_bytes(buf.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="cells/a/link.png"):
        extract(arc, "tar", dest, "cells")
    assert tree(dest) == []


def test_tar_extracts_into_the_published_layout(tmp_path):
    from cytoreg.datahub.fetch import extract

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in cells(1, 1).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    arc = tmp_path / "x.tar.gz"
    arc.write_bytes(buf.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    assert extract(arc, "tar", dest, "cells") == ["cells"]
    assert tree(dest) == ["cells", "cells/a", "cells/a/a_0.png", "cells/b", "cells/b/b_0.png"]


def test_verify_counts_missing_and_extra_files(tmp_path, capsys):
    root = tmp_path / "data" / "mini" / "cells"
    for rel in ["a/a_0.png", "a/a_1.png", "a/a_2.png", "b/b_0.png", "c/c_0.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(PNG)
    (root / "a" / "notes.txt").write_text("x")
    (root / "stray.png").write_bytes(PNG)
    spec = write_spec(tmp_path, "http://127.0.0.1:9/none.zip", counts={"a": 3, "b": 2})
    # labels a, b only: c is not a task label, so allow it through imagefolder (no label_map)
    assert run("data", "verify", "mini", "--include", str(spec), "--json") == 1
    rep = json.loads(capsys.readouterr().out)
    assert [(c["label"], c["expected"], c["found"], c["status"]) for c in rep["classes"]] == [
        ("a", 3, 3, "ok"), ("b", 2, 1, "missing 1"), ("c", None, 1, "extra label")]
    assert rep["extra_files"] == [{"path": "a/notes.txt", "reason": "not an image (.txt)"},
                                  {"path": "stray.png", "reason": "no label could be read from the path"}]
    assert run("data", "verify", "mini", "--include", str(spec)) == 1
    out = capsys.readouterr().out
    assert "missing 1" in out and "2 extra file(s)" in out and "does not match" in out


def test_manual_sources_print_the_steps(tmp_path, capsys, monkeypatch):
    spec = write_spec(tmp_path, "https://example.org/dataset", manual=["Open https://example.org and accept the "
                                                                       "licence", "Unzip it into $CYTOREG_DATA/mini"])
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "home"))
    assert run("data", "fetch", "mini", "--include", str(spec)) == 1
    out = capsys.readouterr().out
    assert "1. Open https://example.org and accept the licence\n" in out
    assert f"2. Unzip it into {tmp_path / 'home'}/mini\n" in out  # the folder it stands for, not the variable
    assert "cytoreg data verify mini" in out


def test_list_shows_presence_size_and_licence(tmp_path, capsys):
    spec = write_spec(tmp_path, "http://127.0.0.1:9/none.zip")
    assert run("data", "list", "--include", str(spec), "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mini"]["present"] is False and rows["mini"]["license"] == "CC BY 4.0"
    assert rows["mini"]["get"] == "fetch"
    assert rows["demo"]["present"] is True  # shipped inside the package
    (tmp_path / "data" / "mini" / "cells").mkdir(parents=True)
    assert run("data", "list", "--include", str(spec), "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mini"]["present"] is True


def test_builtin_manual_sources_print_their_steps(capsys):
    assert run("data", "fetch", "bmc") == 1
    out = capsys.readouterr().out
    assert "bmc needs a manual step" in out and "IBM Aspera" in out
    assert "BM_cytomorphology_data/<ABBR>" in out and "cytoreg data verify bmc" in out


def test_verify_counts_every_published_split_of_a_manifest_task(tmp_path, monkeypatch, capsys):
    """HiCervix's published counts cover train + val + test; the task reads test.csv only, so verify
    counts the splits named in download.splits (the fixture has test and train, no val)."""
    from dataset_fixtures import HICERVIX_N, build_hicervix

    root = tmp_path / "data"
    build_hicervix(root, iter(sorted(PBC_DIR.rglob("*.jpg")) * 4))
    monkeypatch.setenv("CYTOREG_DATA", str(root))
    assert run("data", "verify", "hicervix", "--json") == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["splits"] == [{"split": "train", "expected": 28160, "found": 26},
                             {"split": "val", "expected": 4018, "found": 0},
                             {"split": "test", "expected": 8051, "found": sum(HICERVIX_N.values())}]
    assert len(rep["problems"]) == 1 and rep["problems"][0].startswith("split val: ") and "val.csv" in rep["problems"][0]
    normal = next(c for c in rep["classes"] if c["label"] == "Normal cell")
    assert (normal["expected"], normal["found"], normal["status"]) == (3454, 3 + 1, "missing 3450")
    assert rep["extra_files"] == [] and rep["missing_files"] == []
    # a row whose image is gone is missing, not found
    gone = next((root / "hicervix" / "test").glob("*.jpg"))
    gone.unlink()
    assert run("data", "verify", "hicervix", "--json") == 1
    rep2 = json.loads(capsys.readouterr().out)
    assert rep2["missing_files"] == [str(gone)]
    assert sum(c["found"] for c in rep2["classes"]) == sum(c["found"] for c in rep["classes"]) - 1


def test_a_failed_fetch_says_what_is_kept_and_the_offline_route(tmp_path, capsys):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens: every attempt fails before a byte arrives
    spec = write_spec(tmp_path, f"http://127.0.0.1:{port}/mini.zip")
    assert run("data", "fetch", "mini", "--include", str(spec), "--no-progress", "--attempts", "1") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "nothing was written" in err and "resumes from there" not in err  # no .part to resume from
    assert f"download http://127.0.0.1:{port}/mini.zip on another machine, unpack it into" in err
    assert not (tmp_path / "data" / "mini").exists()  # "nothing was written": not even an empty folder


def test_a_present_file_that_is_not_the_published_one_is_named(tmp_path, capsys):
    blob = b"the published bytes" * 100
    dest = tmp_path / "data" / "one"
    spec = tmp_path / "one.yaml"
    spec.write_text("spec: task/v1\nname: one\nkind: classification\nlabels: [a, b]\n"
                    f"data: {{source: npz, file: {dest}/one.npz}}\n"
                    f"download: {{dest: '{dest}', files: [{{url: 'http://127.0.0.1:9/one.npz', "
                    f"sha256: '{hashlib.sha256(blob).hexdigest()}'}}]}}\n")
    dest.mkdir(parents=True)
    (dest / "one.npz").write_bytes(blob)
    assert run("data", "fetch", "one", "--include", str(spec), "--no-progress") == 0
    assert "SHA256 matches" in capsys.readouterr().out
    (dest / "one.npz").write_bytes(blob[:-5])  # truncated by hand
    assert run("data", "fetch", "one", "--include", str(spec), "--no-progress") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{dest / 'one.npz'} is there but is not the published file" in err and "delete it" in err


def test_demo_ships_and_verify_without_published_counts_is_not_a_failure(capsys):
    assert run("data", "fetch", "demo") == 0
    assert "demo ships with cytoreg" in capsys.readouterr().out
    assert run("data", "verify", "demo") == 0
    out = capsys.readouterr().out
    assert "extra label" not in out and "no published numbers to compare with" in out


def test_absent_or_broken_npz_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path))
    from cytoreg.registry.catalog import Catalog

    assert run("data", "verify", "bloodmnist") == 2
    err = capsys.readouterr().err
    assert err.count("not found") == 1 and "cytoreg data fetch bloodmnist" in err
    npz = Catalog.load().task("bloodmnist").get("data")
    target = Path(npz["root"]) / npz["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("<html>not the file</html>")  # what a captive portal or an error page leaves behind
    assert run("data", "verify", "bloodmnist") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not an .npz (zip) archive" in err and "allow_pickle" not in err and err.count("not an .npz") == 1


def test_verify_takes_a_folder_and_a_task_without_recipe_prints_steps(tmp_path, monkeypatch, capsys):
    import shutil

    folder = tmp_path / "cells"
    shutil.copytree(PBC_DIR / "PBC_dataset_normal_DIB", folder)
    assert run("data", "verify", str(folder)) == 0  # the same forms `eval --tasks` takes
    assert "found: 474 files" in " ".join(capsys.readouterr().out.split())
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "home"))
    assert run("data", "fetch", "han-t2-pannuke") == 1  # a manual step, as for the tasks with written steps
    out = " ".join(capsys.readouterr().out.split())
    assert "han-t2-pannuke needs a manual step (cytoreg has no download recipe)" in out
    assert "1. Get the data from https://warwick.ac.uk" in out and "cytoreg data verify han-t2-pannuke" in out
