"""`cytoreg data fetch NAME --from hf` against a Hugging Face Hub stand-in on 127.0.0.1 (tests/fake_hf_hub.py),
through the real huggingface_hub client: fetch → verify → eval, and the failures that must leave nothing
half-written (a file that is not the published one, an unmapped label name, a count mismatch, a cut
connection, no hub, offline mode, no client)."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cytoreg.cli import main
from fake_hf_hub import FakeHub

FIX = Path(__file__).parent / "fixtures" / "bloodmnist"
SUBSET = (FIX / "bloodmnist_subset.npz").read_bytes()
COMMIT = "0123456789abcdef0123456789abcdef01234567"
BLOOD = ["basophil", "eosinophil", "erythroblast", "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
         "lymphocyte", "monocyte", "neutrophil", "platelet"]
# the ClassLabel names of Falah/Blood_8_classes_Dataset (PBC, 8 folders): 'ig', not MedMNIST's long name
MIRROR_NAMES = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """The hub client pointed at a local server: online, its cache under tmp_path."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return monkeypatch


@pytest.fixture
def no_backoff(monkeypatch) -> list[float]:
    """The hub client's retry waits (API calls: 1, 2, 4, 8, 8 s; a broken download: 1 s each), recorded
    instead of slept."""
    import time
    import types

    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    waits: list[float] = []
    fake = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    fake.sleep = waits.append
    monkeypatch.setattr(_http, "time", fake)
    monkeypatch.setattr(file_download, "time", fake)
    return waits


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def run(*argv: str) -> int:
    return main(list(argv))


# -- the published file, byte for byte ---------------------------------------------------------------

def npz_spec(tmp: Path, *, sha256: str | None = None) -> Path:
    dest = tmp / "data" / "medmnist"
    md5 = hashlib.md5(SUBSET).hexdigest()
    lines = ["spec: task/v1", "name: blood-subset", "extends: bloodmnist", "download:", f"  dest: {dest}",
             "  files:", "  - url: https://zenodo.org/records/10519652/files/bloodmnist.npz?download=1",
             "    name: bloodmnist.npz", f"    md5: '{md5}'", f"    size: {len(SUBSET)}", "  hf_mirror:",
             "    repo: test-owner/medmnist", f"    revision: {COMMIT}", "    files:", "    - path: data/bloodmnist.npz"]
    if sha256:
        lines.append(f"      sha256: {sha256}")
    lines += ["data:", f"  root: {dest}", "reference:", "  published_split_sizes: {train: 160, val: 80, test: 240}",
              "  published_counts:"] + [f"    {json.dumps(lab)}: 60" for lab in BLOOD]
    path = tmp / "blood-subset.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_mirrored_published_file_is_fetched_verified_and_evaluated(tmp_path, hub_env, capsys):
    from huggingface_hub.utils import are_progress_bars_disabled

    bars_before = are_progress_bars_disabled()  # other tests' model loads may have turned them off process-wide
    files = {"data/bloodmnist.npz": SUBSET, "data/pathmnist.npz": b"not asked for", "README.md": b"card"}
    spec = npz_spec(tmp_path, sha256=hashlib.sha256(SUBSET).hexdigest())
    with FakeHub("test-owner/medmnist", COMMIT, files, cut_first={"data/bloodmnist.npz": 300_000}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec), "--no-progress") == 0
        # the tree of the pinned commit, then only the allowed file: metadata, a cut GET, the retry
        assert [(m, p) for m, p, _, _ in hub.log] == [
            ("GET", f"/api/datasets/test-owner/medmnist/tree/{COMMIT}"), ("HEAD", "data/bloodmnist.npz"),
            ("GET", "data/bloodmnist.npz"), ("GET", "data/bloodmnist.npz")]
    out, err = capsys.readouterr()
    assert "Fetching" not in err  # --no-progress silences the hub client's bars, for this call only
    assert are_progress_bars_disabled() == bars_before
    dest = tmp_path / "data" / "medmnist"
    assert f"installed {dest / 'bloodmnist.npz'}" in " ".join(out.split())
    assert tree(dest) == ["bloodmnist.npz"]  # nothing else: no staging folder, no other mirror file
    assert (dest / "bloodmnist.npz").read_bytes() == SUBSET
    # a second fetch sees it and asks the hub nothing
    assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 0
    assert f"present: {dest / 'bloodmnist.npz'} (MD5 matches)" in " ".join(capsys.readouterr().out.split())
    assert run("data", "verify", "blood-subset", "--include", str(spec), "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["checksums"] == {str(dest / "bloodmnist.npz"): "ok"}
    assert [(s["split"], s["found"]) for s in rep["splits"]] == [("train", 160), ("val", 80), ("test", 240)]
    run_dir = tmp_path / "run"
    assert run("eval", "--tasks", "blood-subset", "--models", "random", "--include", str(spec), "-o", str(run_dir),
               "--no-progress", "--bootstrap", "20") == 0
    task = json.loads((run_dir / "results.json").read_text())["tasks"]["blood-subset"]
    assert task["class_counts"] == {lab: 29 for lab in BLOOD}


def test_the_builtin_mirror_is_checked_against_the_publishers_file(tmp_path, hub_env, monkeypatch, capsys):
    """bloodmnist names albertvillanova/medmnist-v2@0472595; a mirror serving other bytes (here the
    subset) is refused by the publisher's size, and nothing lands in $CYTOREG_DATA."""
    from cytoreg.datahub.spec import read_download
    from cytoreg.registry.catalog import Catalog

    m = read_download(Catalog.load().task("bloodmnist")).hf_mirror
    assert (m.repo, m.revision) == ("albertvillanova/medmnist-v2", "0472595ab51916346dc4ad40f7b77551f2171403")
    assert [(f.path, f.name, f.sha256) for f in m.files] == [
        ("data/bloodmnist.npz", "bloodmnist.npz", "062023e186f537e26b3c21ea3b2614ddfc475e8a14825dfd20663bbb7e37bddc")]
    assert read_download(Catalog.load().task("bloodmnist-224")).hf_mirror is None  # the mirror has 28 px only
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "data"))
    with FakeHub(m.repo, m.revision, {"data/bloodmnist.npz": SUBSET}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "bloodmnist", "--from", "hf") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"data/bloodmnist.npz is not the published bloodmnist.npz ({len(SUBSET)} bytes, the published file " \
           "has 35461855)" in err and "nothing was installed" in err
    assert not (tmp_path / "data").exists()


def test_a_mirror_file_with_the_wrong_md5_is_refused(tmp_path, hub_env, capsys):
    spec = npz_spec(tmp_path)
    spec.write_text(spec.read_text().replace(hashlib.md5(SUBSET).hexdigest(), "0" * 32))
    with FakeHub("test-owner/medmnist", COMMIT, {"data/bloodmnist.npz": SUBSET}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"MD5 {hashlib.md5(SUBSET).hexdigest()}, the publisher's is {'0' * 32}" in err
    assert not (tmp_path / "data").exists()


def test_a_connection_cut_every_time_leaves_nothing_and_the_next_run_completes(tmp_path, hub_env, no_backoff,
                                                                              capsys):
    spec = npz_spec(tmp_path)
    with FakeHub("test-owner/medmnist", COMMIT, {"data/bloodmnist.npz": SUBSET},
                 cut_always={"data/bloodmnist.npz": 0}) as hub:  # headers, then the socket closes
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
        gets = [e for e in hub.log if e[0] == "GET" and e[1] == "data/bloodmnist.npz"]
        assert len(gets) == 6 and no_backoff == [1] * 5  # the client's own retries, then the clear message
    err = " ".join(capsys.readouterr().err.split())
    assert "task 'blood-subset': could not download test-owner/medmnist@0123456789ab from" in err
    assert "Nothing was installed" in err and "cytoreg data fetch blood-subset" in err
    assert not (tmp_path / "data").exists()
    with FakeHub("test-owner/medmnist", COMMIT, {"data/bloodmnist.npz": SUBSET}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 0
    assert (tmp_path / "data" / "medmnist" / "bloodmnist.npz").read_bytes() == SUBSET
    # a file that is there but is not the published one (truncated by hand here) is named, not kept silently
    (tmp_path / "data" / "medmnist" / "bloodmnist.npz").write_bytes(SUBSET[:1000])
    capsys.readouterr()
    assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "bloodmnist.npz is there but is not the published file (MD5 " in err
    assert "delete it and run `cytoreg data fetch blood-subset --from hf` again" in err


def test_no_hub_offline_mode_and_no_client_each_say_what_to_do(tmp_path, hub_env, monkeypatch, no_backoff, capsys):
    import socket
    import sys

    from huggingface_hub import constants

    spec = npz_spec(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"could not download test-owner/medmnist@0123456789ab from http://127.0.0.1:{port}" in err
    assert "check the network (and HF_ENDPOINT)" in err
    assert len(no_backoff) == 5  # the client's own retries, then the clear message
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "HF_HUB_OFFLINE=1 is set" in err and "HF_HUB_OFFLINE=0" in err and "test-owner/medmnist" in err
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "needs huggingface_hub: pip install 'cytoreg[data]'" in err and "test-owner/medmnist" in err
    assert not (tmp_path / "data").exists()
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    pq_spec = parquet_spec(tmp_path)
    assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(pq_spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "laying out the parquet mirror test-owner/blood-8 needs pyarrow: pip install 'cytoreg[data]'" in err


def test_a_moved_or_gated_mirror_says_which_and_what_to_do(tmp_path, hub_env, capsys):
    spec = npz_spec(tmp_path)
    with FakeHub("someone-else/medmnist", COMMIT, {"data/bloodmnist.npz": SUBSET}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"{hub.url} has no dataset test-owner/medmnist at commit {COMMIT} (RepositoryNotFoundError); the " \
               "mirror moved: fix download.hf_mirror" in err
    with FakeHub("test-owner/medmnist", COMMIT, {"data/bloodmnist.npz": SUBSET}, gated=True) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-subset", "--from", "hf", "--include", str(spec)) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"test-owner/medmnist is gated (GatedRepoError): accept its conditions at {hub.url}/datasets/" \
               "test-owner/medmnist and log in (hf auth login, or HF_TOKEN)" in err
    assert not (tmp_path / "data").exists()


def test_a_task_without_a_mirror_says_so(capsys):
    assert run("data", "fetch", "bloodmnist-224", "--from", "hf") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "task 'bloodmnist-224' has no download.hf_mirror" in err and "cytoreg data fetch bloodmnist-224" in err


def test_data_list_shows_the_mirror(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    assert run("data", "list", "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {n for n, r in rows.items() if r["hf_mirror"]} == {"bloodmnist", "pathmnist", "dermamnist", "han-t1-crc"}
    assert rows["han-t1-crc"]["hf_mirror"] == "1aurent/NCT-CRC-HE@7730e52" and rows["han-t1-crc"]["get"] == "manual"
    assert rows["pathmnist"]["hf_mirror"] == "albertvillanova/medmnist-v2@0472595"
    assert run("data", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("hf mirror (--from hf)" in line for line in lines[:4])
    blood = next(line for line in lines if line.startswith("│ bloodmnist "))
    assert "│ fetch │ albertvillanova/medmnist-v2@0472595 │" in " ".join(blood.split())
    blood64 = next(line for line in lines if line.startswith("│ bloodmnist-64 "))
    assert "│ fetch │ - │" in " ".join(blood64.split())


# -- parquet images + ClassLabel labels, laid out as class folders ------------------------------------

def parquet_split(images: np.ndarray, labels: np.ndarray, names: list[str]) -> tuple[bytes, list[bytes]]:
    """A `datasets` parquet file (image: Image, label: ClassLabel(names)) and the PNG bytes it holds."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    pngs = []
    for arr in images:
        buf = io.BytesIO()
        PILImage.fromarray(arr).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    ds = Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in pngs], "label": [int(v) for v in labels]},
                           features=Features({"image": Image(), "label": ClassLabel(names=names)}))
    buf = io.BytesIO()
    ds.to_parquet(buf)
    return buf.getvalue(), pngs


@pytest.fixture(scope="module")
def mirror_files() -> tuple[dict[str, bytes], dict[str, list[bytes]], dict[str, np.ndarray]]:
    raw = np.load(FIX / "bloodmnist_subset.npz", allow_pickle=False)
    files, pngs, labels = {}, {}, {}
    for split in ("train", "test"):
        lab = raw[f"{split}_labels"].ravel()
        files[f"data/{split}-00000-of-00001.parquet"], pngs[split] = parquet_split(raw[f"{split}_images"], lab,
                                                                                   MIRROR_NAMES)
        labels[split] = lab
    return files, pngs, labels


def parquet_spec(tmp: Path, *, label_map: dict | None = None, test_size: int = 240) -> Path:
    dest = tmp / "data" / "pbc8"
    label_map = label_map if label_map is not None else dict(zip(MIRROR_NAMES, BLOOD))
    lines = ["spec: task/v1", "name: blood-parquet", "extends: bloodmnist", "download:", f"  dest: {dest}",
             "  files: null", "  note: null", "  hf_mirror:", "    repo: test-owner/blood-8", f"    revision: {COMMIT}",
             "    source: null", "    files: null",
             "    parquet:", "      splits: {train: data/train-*.parquet, test: data/test-*.parquet}",
             "      image_column: image", "      label_column: label", "      creates: blood", "      label_map:"]
    lines += [f"        {json.dumps(k)}: {json.dumps(v)}" for k, v in label_map.items()]
    lines += ["  splits:", f"    train: {{root: {dest}/blood/train}}", f"    test: {{root: {dest}/blood/test}}",
              "data:", "  source: imagefolder", f"  root: {dest}/blood/test", "  file: null", "  split: null",
              "  class_names: null", "reference:", f"  published_split_sizes: {{train: 160, val: null, test: {test_size}}}",
              "  published_counts:"] + [f"    {json.dumps(lab)}: 50" for lab in BLOOD]
    path = tmp / "blood-parquet.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parquet_mirror_is_laid_out_by_classlabel_names_then_verified_and_evaluated(tmp_path, hub_env, mirror_files,
                                                                                    capsys):
    files, pngs, labels = mirror_files
    spec = parquet_spec(tmp_path)
    with FakeHub("test-owner/blood-8", COMMIT, {**files, "README.md": b"card"}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(spec)) == 0
        assert sorted(p for m, p, _, _ in hub.log if m == "GET" and "parquet" in p) == sorted(files)
    out = " ".join(capsys.readouterr().out.split())
    dest = tmp_path / "data" / "pbc8"
    assert "test-owner/blood-8@0123456789ab: 400 images laid out under" in out
    assert [p.name for p in dest.iterdir()] == ["blood"]  # no temporary folder left
    for split in ("train", "test"):
        written = sorted((dest / "blood" / split).rglob("*.png"))
        assert len(written) == len(labels[split])
        for f in written:
            row = int(f.stem.split("_")[1])
            assert f.parent.name == BLOOD[labels[split][row]]  # ClassLabel index -> mirror name -> task label
            assert f.read_bytes() == pngs[split][row]  # the stored bytes, unchanged
    assert run("data", "verify", "blood-parquet", "--include", str(spec), "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and [(s["split"], s["found"]) for s in rep["splits"]] == [("train", 160), ("test", 240)]
    assert [(c["label"], c["found"]) for c in rep["classes"]] == [(lab, 50) for lab in BLOOD]
    run_dir = tmp_path / "run"
    assert run("eval", "--tasks", "blood-parquet", "--models", "random", "--include", str(spec), "-o", str(run_dir),
               "--no-progress", "--bootstrap", "20") == 0
    task = json.loads((run_dir / "results.json").read_text())["tasks"]["blood-parquet"]
    assert task["class_counts"] == {lab: 29 for lab in BLOOD}


def test_an_unmapped_label_name_installs_nothing(tmp_path, hub_env, mirror_files, capsys):
    files, _, _ = mirror_files
    spec = parquet_spec(tmp_path, label_map={n: b for n, b in zip(MIRROR_NAMES, BLOOD) if n != "ig"})
    with FakeHub("test-owner/blood-8", COMMIT, files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "label name(s) 'ig' are not in download.hf_mirror.parquet.label_map" in err
    assert "Add them:" in err and '"ig": <task label or null>' in err and "nothing was installed" in err
    assert not (tmp_path / "data").exists()


def test_a_count_that_differs_from_the_published_one_installs_nothing(tmp_path, hub_env, mirror_files, capsys):
    files, _, _ = mirror_files
    spec = parquet_spec(tmp_path, test_size=3421)
    with FakeHub("test-owner/blood-8", COMMIT, files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(spec)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "does not hold the published dataset of task 'blood-parquet' (split test: 240 rows, published 3421)" in err
    assert not (tmp_path / "data").exists()


def test_file_names_follow_the_bytes():
    from cytoreg.datahub.hf_mirror import _file_name

    png, jpg = b"\x89PNG\r\n", b"\xff\xd8\xff\xe0"
    assert _file_name("ADI-AAAFLCLY.tif", b"II*\x00rest", "s", 3) == "ADI-AAAFLCLY.tif"
    assert _file_name("ADI-AAAFLCLY.tif", png, "s", 3) == "ADI-AAAFLCLY.png"  # re-encoded: the name says so
    assert _file_name("BA_1.jpeg", jpg, "s", 3) == "BA_1.jpeg"
    assert _file_name("../x.png", png, "test", 7) == "test_000007.png"  # not a plain name
    assert _file_name(None, jpg, "test", 12) == "test_000012.jpg"
    assert _file_name("x.txt", png, "train", 0) == "train_000000.png"


def test_label_map_null_leaves_a_class_out_and_names_without_classlabel_are_asked_for(tmp_path, hub_env, capsys):
    """A string label column is read as names; null in label_map leaves those rows out (counted)."""
    from datasets import Dataset, Features, Image, Value

    raw = np.load(FIX / "bloodmnist_subset.npz", allow_pickle=False)
    buf = io.BytesIO()
    from PIL import Image as PILImage

    def png(a):
        b = io.BytesIO()
        PILImage.fromarray(a).save(b, format="PNG")
        return b.getvalue()

    lab = raw["test_labels"].ravel()
    Dataset.from_dict({"image": [{"bytes": png(a), "path": None} for a in raw["test_images"]],
                       "label": [MIRROR_NAMES[v] for v in lab]},
                      features=Features({"image": Image(), "label": Value("string")})).to_parquet(buf)
    label_map = dict(zip(MIRROR_NAMES, BLOOD))
    label_map["platelet"] = None
    spec = parquet_spec(tmp_path, label_map=label_map)
    text = spec.read_text().replace("{train: data/train-*.parquet, test: data/test-*.parquet}",
                                    "{test: data/test-*.parquet}")
    text = text.split("reference:")[0].replace(f"    train: {{root: {tmp_path}/data/pbc8/blood/train}}\n", "")
    spec.write_text(text + "reference: null\n")
    with FakeHub("test-owner/blood-8", COMMIT, {"data/test-00000-of-00001.parquet": buf.getvalue()}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(spec)) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "210 images laid out" in out and "(30 left out by label_map: null)" in out
    test_dir = tmp_path / "data" / "pbc8" / "blood" / "test"
    assert sorted(p.name for p in test_dir.iterdir()) == sorted(BLOOD[:7])
    # integers without ClassLabel names: the spec must name them
    buf = io.BytesIO()
    Dataset.from_dict({"image": [{"bytes": png(raw["test_images"][0]), "path": None}], "label": [3]},
                      features=Features({"image": Image(), "label": Value("int64")})).to_parquet(buf)
    other = tmp_path / "other"
    other.mkdir()
    spec2 = other / "blood-parquet.yaml"
    commit2 = "f" * 40  # another commit: the hub cache rightly keeps what a commit held
    spec2.write_text(spec.read_text().replace(str(tmp_path / "data"), str(other / "data")).replace(COMMIT, commit2))
    with FakeHub("test-owner/blood-8", commit2, {"data/test-00000-of-00001.parquet": buf.getvalue()}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(spec2)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "column 'label' holds integers without ClassLabel names; give download.hf_mirror.parquet.label_names" in err
    assert not (other / "data").exists()  # not even the folders it would have made
    spec2.write_text(spec2.read_text().replace("      label_column: label\n", "      label_column: label\n"
                                               f"      label_names: {json.dumps(MIRROR_NAMES)}\n"))
    with FakeHub("test-owner/blood-8", commit2, {"data/test-00000-of-00001.parquet": buf.getvalue()}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        assert run("data", "fetch", "blood-parquet", "--from", "hf", "--include", str(spec2)) == 0
    assert tree(other / "data" / "pbc8" / "blood") == ["test", f"test/{BLOOD[3]}", f"test/{BLOOD[3]}/test_000000.png"]


def test_mirror_spec_errors_name_the_field(tmp_path):
    from cytoreg.datahub.spec import read_download
    from cytoreg.errors import CytoregError
    from cytoreg.registry.catalog import Catalog

    spec = npz_spec(tmp_path)
    spec.write_text(spec.read_text().replace("    - path: data/bloodmnist.npz", "    - path: data/blood.npz\n"
                                             "      name: blood.npz"))
    with pytest.raises(CytoregError, match=r"download.hf_mirror.files\[0\].name: 'blood.npz' is none of "
                                           r"download.files' names \(bloodmnist.npz\)"):
        read_download(Catalog.load([str(spec)]).task("blood-subset"))
    spec = npz_spec(tmp_path)
    spec.write_text(spec.read_text().replace(COMMIT, "main"))
    with pytest.raises(CytoregError, match="revision"):
        Catalog.load([str(spec)]).task("blood-subset")


# -- han-t1-crc: 1aurent/NCT-CRC-HE's layout, split folders straight under dest ----------------------

KATHER = ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]


def kather_shard(prefix: str, rows: list[tuple[int, str]]) -> bytes:
    """A parquet shard as the mirror's loading script made it: Image() from the original .tif files
    (datasets keeps their bytes and file name), label ClassLabel(ADI..TUM)."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    images = []
    for i, (lab, name) in enumerate(rows):
        buf = io.BytesIO()
        PILImage.new("RGB", (8, 8), (lab * 20, i % 256, 7)).save(buf, format="TIFF")
        images.append({"bytes": buf.getvalue(), "path": name})
    ds = Dataset.from_dict({"image": images, "label": [lab for lab, _ in rows]},
                           features=Features({"image": Image(), "label": ClassLabel(names=KATHER)}))
    out = io.BytesIO()
    ds.to_parquet(out)
    return out.getvalue()


def test_han_t1_crc_mirror_lays_out_the_published_folders_with_the_original_file_names(tmp_path, hub_env,
                                                                                      monkeypatch, capsys):
    from cytoreg.datahub.spec import read_download
    from cytoreg.registry.catalog import Catalog

    m = read_download(Catalog.load().task("han-t1-crc")).hf_mirror
    assert (m.repo, m.revision) == ("1aurent/NCT-CRC-HE", "7730e526210509fb83dd87c6fb3e4e89457a1b76")
    train = [(i % 9, f"{KATHER[i % 9]}-TRAIN{i:03d}.tif") for i in range(18)]
    val = [(i % 9, f"{KATHER[i % 9]}-TCGA-VAL{i:03d}.tif") for i in range(9)]
    files = {"data/NCT_CRC_HE_100K-00000-of-00002-9780c9afe3d80c58.parquet": kather_shard("t", train[:10]),
             "data/NCT_CRC_HE_100K-00001-of-00002-89eb0ee8f756b1d1.parquet": kather_shard("t", train[10:]),
             "data/CRC_VAL_HE_7K-00000-of-00001-cce1097526b69125.parquet": kather_shard("v", val),
             "data/NCT_CRC_HE_100K_NONORM-00000-of-00001-32b2c2a836ee093d.parquet": b"not asked for"}
    monkeypatch.setenv("CYTOREG_DATA", str(tmp_path / "data"))
    with FakeHub(m.repo, m.revision, files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.url)
        # the built-in spec: the published sizes (100,000 / 7,180) are checked before anything is written
        assert run("data", "fetch", "han-t1-crc", "--from", "hf") == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "(split NCT-CRC-HE-100K: 18 rows, published 100000; split CRC-VAL-HE-7K: 9 rows, published 7180)" in err
        assert not (tmp_path / "data").exists()
        got = sorted(p for meth, p, _, _ in hub.log if meth == "GET" and p.endswith(".parquet"))
        assert got == sorted(f for f in files if "NONORM" not in f)  # the other split is not downloaded
        spec = tmp_path / "crc-mini.yaml"
        spec.write_text("spec: task/v1\nname: crc-mini\nextends: han-t1-crc\nreference:\n  published_split_sizes:\n"
                        "    NCT-CRC-HE-100K: 18\n    CRC-VAL-HE-7K: 9\n")
        assert run("data", "fetch", "crc-mini", "--from", "hf", "--include", str(spec)) == 0
    kather = tmp_path / "data" / "kather"
    assert sorted(p.name for p in kather.iterdir()) == ["CRC-VAL-HE-7K", "NCT-CRC-HE-100K"]
    assert tree(kather / "CRC-VAL-HE-7K" / "ADI") == ["ADI-TCGA-VAL000.tif"]
    assert (kather / "CRC-VAL-HE-7K" / "ADI" / "ADI-TCGA-VAL000.tif").read_bytes()[:4] == b"II*\x00"  # the TIFF bytes
    assert sorted(p.relative_to(kather / "NCT-CRC-HE-100K").as_posix()
                  for p in (kather / "NCT-CRC-HE-100K").rglob("*.tif")) == sorted(f"{n[:n.index('-')]}/{n}"
                                                                                   for _, n in train)
    capsys.readouterr()
    assert run("data", "verify", "crc-mini", "--include", str(spec), "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert [(s["split"], s["expected"], s["found"]) for s in rep["splits"]] == [("NCT-CRC-HE-100K", 18, 18),
                                                                               ("CRC-VAL-HE-7K", 9, 9)]
    assert [(c["label"], c["found"]) for c in rep["classes"]] == [
        ("adipose", 3), ("background", 3), ("cancer-associated stroma", 3), ("colorectal adenocarcinoma epithelium", 3),
        ("debris", 3), ("lymphocytes", 3), ("mucus", 3), ("normal colon mucosa", 3), ("smooth muscle", 3)]
