"""A broken dataset run end to end: every row has exactly one fate (a record in samples.jsonl or a
count under a named reason in results.json), bad images are error records naming the file for
every model, the API server never receives an undecodable file, and the run finishes."""
import base64
import hashlib
import io
import json
from collections import Counter

import pytest
from PIL import Image

from dataset_fixtures import BROKEN_LABELS, EXIF_UPRIGHT, broken_specs, build_broken
from fake_openai import FakeOpenAI
from cytoreg.engine.runner import EvalConfig, evaluate
from cytoreg.errors import DataError
from cytoreg.registry.builtins import TASK_KINDS
from cytoreg.registry.catalog import Catalog
from cytoreg.report.results import validate_results


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return build_broken(tmp_path_factory.mktemp("broken"))


def prepare(specs, name):
    spec = Catalog.load([specs]).task(name)
    return TASK_KINDS.get(spec.get("kind"))(spec).prepare()


def sent_images(body: dict) -> list[bytes]:
    return [base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            for m in body["messages"] if isinstance(m["content"], list)
            for part in m["content"] if part["type"] == "image_url"]


def answer_from_colour(body: dict) -> str:
    img = Image.open(io.BytesIO(sent_images(body)[-1]))
    img.load()  # the server refuses what does not decode, as a real API would
    return "Lymphocyte"


def test_unknown_labels_stop_the_run_by_default_with_the_fix(broken, tmp_path):
    specs = broken_specs(tmp_path / "specs", broken, policy=None)
    with pytest.raises(DataError) as err:
        prepare(specs, "broken-folder")
    msg = str(err.value)
    assert "task 'broken-folder': 3 row(s) have a label that is not one of the task's labels" in msg
    assert f"'basophil': 2 row(s), e.g. {broken['folder'] / 'basophil/lower_1.jpg'}" in msg
    assert f"'blast': 1 row(s), e.g. {broken['folder'] / 'blast/blast_1.jpg'}" in msg
    assert "\n    basophil: Basophil\n" in msg and "blast:" not in msg.split("Add to data.label_map")[1]
    assert "on_unknown_label: skip" in msg and str(specs / "broken-folder.yaml") in msg


def test_conflicting_duplicate_ids_name_both_rows(broken, tmp_path):
    man = tmp_path / "dup.csv"
    man.write_text("id,path,label\nx1,Basophil/good_1.jpg,Basophil\nx2,Basophil/good_2.jpg,Basophil\n"
                   "x1,Eosinophil/good_1.jpg,Eosinophil\n")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "dup.yaml").write_text(
        f"spec: task/v1\nname: dup\nkind: classification\nlabels: {BROKEN_LABELS}\n"
        f"data: {{source: manifest, root: '{broken['folder']}', manifest: '{man}', id_column: id}}\n")
    with pytest.raises(DataError) as err:
        prepare(specs, "dup")
    msg = str(err.value)
    assert f"id 'x1' appears twice with different labels: {man}:2 says 'Basophil', {man}:4 says 'Eosinophil'" in msg
    assert "data.id_column" in msg


def test_every_row_has_one_fate_and_bad_images_are_error_records(broken, tmp_path):
    specs = broken_specs(tmp_path / "specs", broken)
    with FakeOpenAI(answer_from_colour) as srv:
        (specs / "api.yaml").write_text(f"spec: model/v1\nname: api\nadapter: openai\n"
                                        f"params: {{model: fake-vlm, base_url: '{srv.base_url}'}}\n"
                                        "execution: {concurrency: 2, max_retries: 0}\n")
        out = tmp_path / "run"
        res = evaluate(EvalConfig(["broken-folder", "broken-manifest"], ["random", "prior", "api"], output=out,
                                  include=[str(specs)], progress=False, bootstrap=0))
    assert validate_results(res) == []
    assert srv.statuses and set(srv.statuses) == {200}  # the server decoded every image it got
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    folder, files, bad = broken["folder"], broken["files"], broken["bad_images"]

    # -- the image folder: 16 files, each kept (one record per model) or dropped under a reason
    data = res["tasks"]["broken-folder"]["data"]
    assert data["rows_seen"] == len(files) == 16
    assert data["kept"] == 12 and data["dropped_total"] == 4
    assert {k: v["count"] for k, v in data["dropped"].items()} == {"not_in_label_set": 3, "system_file": 1}
    assert data["dropped"]["not_in_label_set"]["values"] == {"basophil": 2, "blast": 1}
    assert data["suggested_label_map"] == ["basophil: Basophil"]
    assert res["tasks"]["broken-folder"]["skipped"]["count"] == 4
    dropped_where = [ex["where"] for v in data["dropped"].values() for ex in v["examples"]]
    dropped_rel = sorted(str(w).replace(str(folder) + "/", "") for w in dropped_where)
    assert dropped_rel == ["Basophil/.DS_Store", "basophil/lower_1.jpg", "basophil/lower_2.jpg", "blast/blast_1.jpg"]
    for model in ("random", "prior", "api"):
        ids = [r["id"] for r in recs if r["task"] == "broken-folder" and r["model"] == model]
        assert len(ids) == len(set(ids)) == 12
        assert sorted(ids + dropped_rel) == sorted(files)  # every file exactly once
        errors = {r["id"]: r["error"] for r in recs if r["task"] == "broken-folder" and r["model"] == model
                  and r["error"]}
        assert set(errors) == set(bad)
        for rel, problem in bad.items():
            assert errors[rel].startswith(f"{folder / rel}: {problem}: "), errors[rel]
            assert "BytesIO" not in errors[rel]
    assert data["image_errors"]["count"] == 5
    assert data["image_errors"]["by_problem"] == {"does not decode": 3, "missing file": 1, "too large": 1}
    assert data["sampled"]["test"] == 12 and data["not_sampled"] == 0
    ev = next(e for e in res["evaluations"] if e["task"] == "broken-folder" and e["model"] == "api")
    # scored on the 7 answered samples; the 5 bad images are errors, not wrong answers
    assert ev["errors"] == ev["n_errors"] == 5 and ev["n"] == 7 and ev["n_attempted"] == 12
    assert ev["status"] == "incomplete" and ev["coverage"] == 7 / 12

    # -- the API got the 7 good images of the folder task (the manifest's 3 good rows are the same
    # images: cache hits), each decodable, the clean JPEGs byte for byte, the rest as PNG, and the
    # EXIF-rotated one upright
    bad_shas = {hashlib.sha256((folder / rel).read_bytes()).hexdigest() for rel in bad
                if (folder / rel).exists()}
    sent = [img for body in srv.requests for img in sent_images(body)]
    assert len(srv.requests) == 7
    assert not {hashlib.sha256(b).hexdigest() for b in sent} & bad_shas
    forms = {r["id"]: r.get("image_sent") for r in recs if r["task"] == "broken-folder" and r["model"] == "api"}
    assert forms == {"Basophil/good_1.jpg": "original", "Basophil/good_2.jpg": "original",
                     "Eosinophil/good_1.jpg": "original", "Lymphocyte/good_1.jpg": "original",
                     "Lymphocyte/cmyk.jpg": "png: mode CMYK converted to RGB",
                     "Lymphocyte/gray16.png": "png: mode I;16 converted to RGB",
                     "Lymphocyte/exif_rotated.jpg": "png: EXIF orientation applied",
                     **{rel: None for rel in bad}}
    originals = {hashlib.sha256(files[rel]).hexdigest() for rel, form in forms.items() if form == "original"}
    assert originals <= {hashlib.sha256(b).hexdigest() for b in sent}
    pngs = [Image.open(io.BytesIO(b)) for b in sent if b.startswith(b"\x89PNG")]
    upright = [im.convert("RGB") for im in pngs if im.size == EXIF_UPRIGHT]
    assert len(upright) == 1
    w, h = EXIF_UPRIGHT
    left, right = upright[0].getpixel((w // 4, h // 2)), upright[0].getpixel((3 * w // 4, h // 2))
    assert left[0] > 180 and left[2] < 80 and right[2] > 180 and right[0] < 80  # red left, blue right

    # -- the manifest: 9 rows = 6 kept (3 with bad images) + 1 duplicate + 2 unknown labels
    mdata = res["tasks"]["broken-manifest"]["data"]
    assert (mdata["rows_seen"], mdata["kept"]) == (len(broken["rows"]), 6)
    assert {k: v["count"] for k, v in mdata["dropped"].items()} == {"duplicate_id": 1, "not_in_label_set": 2}
    assert mdata["dropped"]["duplicate_id"]["examples"][0]["where"] == f"{broken['manifest']}:4"
    assert mdata["suggested_label_map"] == ["Lymphocytes: Lymphocyte"]
    merrs = {r["id"]: r["error"] for r in recs if r["task"] == "broken-manifest" and r["model"] == "prior"}
    assert sorted(merrs) == ["m1", "m2", "m3", "m6", "m7", "m8"]
    assert merrs["m3"] == f"{folder / 'Eosinophil/missing.jpg'}: missing file: no such file"
    assert merrs["m8"] == f"{folder / 'Eosinophil/dangling.jpg'}: missing file: dangling symlink to no-such-target.jpg"
    assert merrs["m7"].startswith(f"{folder / 'Eosinophil/truncated.jpg'}: does not decode: image file is truncated")
    assert merrs["m1"] is None and merrs["m6"] is None
    counts = Counter((r["task"], r["model"]) for r in recs)
    assert set(counts.values()) == {12, 6} and len(counts) == 6
    from cytoreg.report.summary import data_notes

    assert data_notes(res)[0] == (
        "broken-folder: 16 rows seen, 12 kept, 4 dropped (not_in_label_set 3, system_file 1); 5 sampled image(s) "
        "unusable (does not decode 3, missing file 1, too large 1), error records; label_map lines to consider: "
        "basophil: Basophil (results.json tasks.broken-folder.data)")


def test_malformed_manifests_are_one_clean_error(broken, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()

    def task(man, extra=""):
        (specs / "m.yaml").write_text(
            f"spec: task/v1\nname: m\nkind: classification\nlabels: {BROKEN_LABELS}\nsampling: {{test_per_class: all}}\n"
            f"data: {{source: manifest, root: '{broken['folder']}', manifest: '{man}'{extra}}}\n")
        return lambda: prepare(specs, "m")

    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,label,note\nBasophil/good_1.jpg,Basophil,ok\n"
                      "Basophil/good_2.jpg,Basophil,Präparat\n".encode("latin-1"))
    offset = latin.read_bytes().index(b"\xe4")
    with pytest.raises(DataError) as err:
        task(latin)()
    assert str(err.value) == (f"{latin}:3: byte b'\\xe4' at offset {offset} is not valid UTF-8 text. Save the "
                              f"file as UTF-8, or set data.encoding (e.g. latin-1 or cp1252) in {specs / 'm.yaml'}.")
    prep = task(latin, ", encoding: latin-1")()
    assert sorted(s.meta["note"] for s in prep.test) == ["Präparat", "ok"]

    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"path": "Basophil/good_1.jpg", "label": "Basophil"}\n\n'
                     '{"path": "Basophil/good_2.jpg", "label": "Basophil"\n')
    col = len('{"path": "Basophil/good_2.jpg", "label": "Basophil"') + 1  # where the closing brace is missing
    with pytest.raises(DataError, match=rf"^{jsonl}:3: not valid JSON \(Expecting ',' delimiter, column {col}\); "):
        task(jsonl)()

    js = tmp_path / "rows.json"
    js.write_text('[\n {"path": "Basophil/good_1.jpg", "label": "Basophil"},\n 7,\n'
                  ' {"path": "Basophil/good_2.jpg", "label": "Basophil"}\n]\n')
    with pytest.raises(DataError, match=rf"^{js}:3: item 1 of the list is a int \(7\), not an object"):
        task(js)()

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("path,label\nBasophil/good_1.jpg,Basophil\nBasophil/good_2.jpg,Basophil,extra\n")
    with pytest.raises(DataError, match=rf"^{ragged}:3: 3 fields where the header has 2"):
        task(ragged)()


@pytest.mark.parametrize("adapter", ["openai", "gemini"])
def test_api_adapters_never_send_an_undecodable_file_even_without_the_pre_check(broken, tmp_path, monkeypatch,
                                                                                  adapter):
    """The adapters' own guard: requests built by hand go straight to the executor."""
    from cytoreg.engine.execute import CallStats, run_generator
    from cytoreg.models.base import ChatRequest, ImagePart, Message, TextPart
    from cytoreg.registry.builtins import ADAPTERS
    from cytoreg.tasks.samples import ImageRef

    monkeypatch.setenv("CYTOREG_TEST_KEY", "k")
    folder = broken["folder"]
    names = ["Basophil/good_1.jpg", "Eosinophil/truncated.jpg", "Eosinophil/garbled.jpg", "Eosinophil/zero.jpg",
             "Lymphocyte/bomb.png", "Lymphocyte/cmyk.jpg"]
    with FakeOpenAI(lambda body: "Basophil") as srv:
        url = srv.base_url if adapter == "openai" else srv.base_url.rsplit("/v1", 1)[0]
        d = tmp_path / "specs"
        d.mkdir()
        (d / "m.yaml").write_text(f"spec: model/v1\nname: m\nadapter: {adapter}\n"
                                  f"params: {{model: fake-vlm, base_url: '{url}', api_key_env: CYTOREG_TEST_KEY}}\n"
                                  "execution: {concurrency: 1, max_retries: 0}\n")
        model = ADAPTERS.get(adapter)(Catalog.load([d]).model("m"))
        reqs = [ChatRequest([Message("user", [TextPart("Which cell?"), ImagePart(ImageRef(path=folder / n))])], {})
                for n in names]
        got = {}
        run_generator(model, reqs, lambda i, r: got.__setitem__(names[i], r), CallStats())
    assert len(srv.requests) == 2  # the good JPEG and the CMYK one (as PNG)
    assert got["Basophil/good_1.jpg"].text == "Basophil" and got["Lymphocyte/cmyk.jpg"].text == "Basophil"
    for n, problem in broken["bad_images"].items():
        if n in got:
            assert f"{folder / n}: {problem}: " in got[n].error, got[n].error
