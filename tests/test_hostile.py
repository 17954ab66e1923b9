"""A corpus of hostile and broken inputs, each run as a user would: ``python -m cytoreg ...`` in
a child process. Every case asserts the exit status, one clean message naming the culprit, no
traceback, no partial output (no stray temporary files, previous results kept), and bounded
work: the child's CPU time under 5 s and its peak memory under 1 GB (CPU time, not wall time:
the test machine is shared, and a hang is caught by the hang guard in hostile.py).

Spec cases run ``cytoreg validate``; run-folder cases ``cytoreg leaderboard``; server cases
``cytoreg eval`` against tests/fake_openai.py sending broken replies; file-system cases use a
read-only folder and RLIMIT_FSIZE."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from fake_openai import FakeOpenAI
from hostile import Run, cli, env, file_size_limit, without_root_override

CPU_LIMIT_S = 5.0
RSS_LIMIT_MB = 1024.0
KEY = "sk-hostile-0123456789abcdefXYZ"  # the "API key" every case runs with; it must never appear

GOOD_TASK = ("spec: task/v1\nname: {name}\nkind: classification\ndata:\n  source: imagefolder\n  root: /tmp\n"
             "labels: [Alpha, Beta]\n")
LOL = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
       + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")


def clean(run: Run, *, code: int | tuple[int, ...], culprit: str | None, fragments: list[str],
          messages: int | None = 1) -> None:
    """The assertions every case shares."""
    text = run.out + run.err
    codes = code if isinstance(code, tuple) else (code,)
    assert run.code in codes, f"exit {run.code}, expected {codes}\n{text}"
    assert "Traceback" not in text, text
    assert KEY not in text, "the API key was printed"
    errors = [line for line in text.splitlines() if line.startswith("error ")]
    if messages is not None:
        assert len(errors) == messages, f"expected {messages} error line(s), got:\n{text}"
    for frag in fragments:
        assert frag in text, f"{frag!r} not in:\n{text}"
    if culprit is not None:
        assert any(culprit in line for line in errors) or (messages == 0 and culprit in text), \
            f"no message names {culprit!r}:\n{text}"
    assert run.cpu_s < CPU_LIMIT_S, f"{run.cpu_s:.1f} s of CPU"
    assert run.rss_mb < RSS_LIMIT_MB, f"{run.rss_mb:.0f} MB peak"


def no_temp_files(root: Path) -> None:
    stray = [p for p in root.rglob(".*") if p.name.endswith(".tmp") or ".samples.jsonl." in p.name
             or ".results.json." in p.name]
    assert not stray, f"temporary files left behind: {stray}"


# --------------------------------------------------------------------------------------------
# specs: `cytoreg validate FILE` exits 1 with one message naming the file


@dataclass
class SpecCase:
    id: str
    content: bytes | str | Callable[[], bytes]
    fragments: list[str]
    filename: str = "hostile.yaml"
    env: dict[str, str] = field(default_factory=dict)
    extra_files: dict[str, bytes | str] = field(default_factory=dict)

    def data(self) -> bytes:
        c = self.content() if callable(self.content) else self.content
        return c.encode() if isinstance(c, str) else c


LATIN1 = (GOOD_TASK.format(name="latin") + "description: 'Éosinophile'\n").encode("latin-1")
JSON_LATIN1 = '{"spec": "model/v1", "name": "Éo", "adapter": "random"}'.encode("latin-1")
LATIN1_OFFSET = str(LATIN1.index("É".encode("latin-1")))

SPEC_CASES = [
    SpecCase("alias-bomb", LOL, ["aliases", "expand to more than 100,000 values"]),
    SpecCase("alias-bomb-in-task", GOOD_TASK.format(name="b") + "prompts:\n" + "".join(
        "  " + line + "\n" for line in LOL.splitlines()), ["expand to more than"]),
    SpecCase("alias-recursive", GOOD_TASK.format(name="r") + "tags: &t [x, *t]\n", ["recursive structure"]),
    SpecCase("deep-block-20000", lambda: ("- " * 20000 + "x\n").encode(), ["nesting deeper than 64 levels"]),
    SpecCase("deep-flow-20000", lambda: ("[" * 20000 + "]" * 20000 + "\n").encode(), ["nesting deeper than 64 levels"]),
    SpecCase("deep-mapping-200", lambda: "".join(" " * i + f"k{i}:\n" for i in range(200)).encode() + b" " * 200 + b"v\n",
             ["nesting deeper than 64 levels"]),
    SpecCase("latin-1", LATIN1, ["not valid UTF-8 at byte offset", LATIN1_OFFSET, "save the file as UTF-8"]),
    SpecCase("utf-16", GOOD_TASK.format(name="u16").encode("utf-16"), ["not valid UTF-8 at byte offset 0"]),
    SpecCase("png-named-yaml", PNG, ["not valid UTF-8 at byte offset 0"]),
    SpecCase("nul-byte", b"spec: task/v1\nname: a\x00b\n", ["invalid YAML"]),
    SpecCase("duplicate-key", GOOD_TASK.format(name="d") + "kind: classification\n", ["duplicate key 'kind'"]),
    SpecCase("huge-integer", GOOD_TASK.format(name="h") + "seed: " + "9" * 5000 + "\n", ["more than 4300 digits"]),
    SpecCase("binary-tag", GOOD_TASK.format(name="b") + "description: !!binary aGVsbG8=\n",
             ["tag:yaml.org,2002:binary is not allowed"]),
    SpecCase("python-object-tag", GOOD_TASK.format(name="p") + "description: !!python/object/apply:os.system "
             "['touch PWNED']\n", ["invalid YAML", "could not determine a constructor"]),
    SpecCase("list-as-key", GOOD_TASK.format(name="k") + "? [a, b]\n: 1\n", ["mapping key must be a plain value"]),
    SpecCase("nine-megabytes", lambda: (GOOD_TASK.format(name="big") + "description: '" + "x" * (9 * 1024 * 1024)
                                        + "'\n").encode(), ["larger than 8 MiB"]),
    SpecCase("two-documents", GOOD_TASK.format(name="a") + "---\n" + GOOD_TASK.format(name="b"),
             ["invalid YAML", "another document"]),
    SpecCase("env-expansion-bomb", GOOD_TASK.format(name="e") + "description: '" + "${HOSTILE_BIG}" * 20 + "'\n",
             ["expansion makes the spec longer than 1,048,576 characters"], env={"HOSTILE_BIG": "x" * 100_000}),
    SpecCase("json-deep", lambda: b"[" * 100_000 + b"]" * 100_000, ["nesting too deep"], filename="hostile.json"),
    SpecCase("json-truncated", '{"spec": "model/v1", "name": "m", "adapter": "ran', ["invalid JSON"],
             filename="hostile.json"),
    SpecCase("json-latin-1", JSON_LATIN1, [f"not valid UTF-8 at byte offset {JSON_LATIN1.index(0xC9)}"],
             filename="hostile.json"),
    SpecCase("markup-label", GOOD_TASK.format(name="m").replace("[Alpha, Beta]", "['Baso[/]phil', '[bold]x', "
             "'Baso[/]phil']"), ["labels[2]: duplicate label 'Baso[/]phil'"]),
    SpecCase("empty-file", "", ["must contain one mapping"]),
    SpecCase("spec-tag-is-a-list", "spec: [task/v1]\nname: a\n", ["is not a known spec type"]),
    SpecCase("numeric-and-null-keys", GOOD_TASK.format(name="n") + "1: x\n", ["1: unknown key '1'"]),
    SpecCase("extends-binary-file", GOOD_TASK.format(name="x") + "extends: ./garbage.yaml\n",
             ["garbage.yaml", "not valid UTF-8"], extra_files={"garbage.yaml": b"\xff\xfe\x00junk"}),
    SpecCase("label-map-value-a-list", GOOD_TASK.format(name="lm").replace("  root: /tmp\n", "  root: /tmp\n  label_map: "
             "{a: [Alpha]}\n"), ["data.label_map.a", "is not of type 'string', 'null'"]),
    SpecCase("secret-in-wrong-field", GOOD_TASK.format(name="s").replace("labels: [Alpha, Beta]",
             "labels: ${HOSTILE_API_KEY}"), ["labels", "is not of type 'array'", "***"]),
]


@pytest.mark.parametrize("case", SPEC_CASES, ids=[c.id for c in SPEC_CASES])
def test_hostile_spec(case: SpecCase, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    target = folder / case.filename
    target.write_bytes(case.data())
    for name, data in case.extra_files.items():
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    run = cli(["validate", str(target)], cwd=tmp_path, extra_env={"HOSTILE_API_KEY": KEY, **case.env})
    culprit = next((n for n in case.extra_files if n in run.out), case.filename)
    clean(run, code=1, culprit=culprit, fragments=case.fragments)
    assert not (tmp_path / "PWNED").exists()


def test_markup_in_a_path_is_printed_as_written(tmp_path):
    folder = tmp_path / "x[blast]" / "[red]specs"
    folder.mkdir(parents=True)
    (folder / "t.yaml").write_text(GOOD_TASK.format(name="t") + "lables: [x]\n")
    run = cli(["validate", str(folder)], cwd=tmp_path)
    clean(run, code=1, culprit="x[blast]/[red]specs/t.yaml", fragments=["unknown key 'lables'"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_not_read(tmp_path):
    """Reading a FIFO would block forever; validate names it instead."""
    os.mkfifo(tmp_path / "spec.yaml")
    run = cli(["validate", "spec.yaml"], cwd=tmp_path)
    clean(run, code=1, culprit="spec.yaml", fragments=["not a regular file or folder"])


def test_both_yaml_loaders_reject_the_same_inputs(tmp_path):
    """libyaml's C loader (used when available) and the pure-Python loader give the same verdict
    on every YAML case of the corpus, and the same message apart from the parser's own wording."""
    from cytoreg.errors import SpecError
    from cytoreg.registry import yamlio

    if not yamlio.C_LOADER_AVAILABLE:
        pytest.skip("PyYAML built without libyaml")
    cases = [c for c in SPEC_CASES if c.filename.endswith(".yaml") and not c.env and not c.extra_files]
    assert len(cases) >= 20
    for case in cases:
        path = tmp_path / f"{case.id}.yaml"
        path.write_bytes(case.data())
        verdicts = []
        for c_loader in (True, False):
            try:
                verdicts.append(("ok", yamlio.read_structured(path, c_loader=c_loader)))
            except SpecError as exc:
                msg = exc.problems[0]
                verdicts.append(("error", msg if "invalid YAML" not in msg else msg.split("invalid YAML")[0]))
        assert verdicts[0] == verdicts[1], (case.id, verdicts)


# --------------------------------------------------------------------------------------------
# show / the pipe


@pytest.mark.parametrize("args", [["show", "demo"], ["list"]], ids=["show-plain-print", "list-rich-table"])
def test_output_into_a_closed_pipe_is_silent(tmp_path, args):
    """`cytoreg show demo | head -1`: the reader goes away; exit 141 (as after SIGPIPE), no noise,
    for plain prints and for rich tables alike (rich alone would exit 1)."""
    p = subprocess.Popen([sys.executable, "-m", "cytoreg", *args], cwd=tmp_path, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the child writes anything
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert err == ""


def test_show_and_validate_mask_expanded_secrets(tmp_path):
    (tmp_path / "m.yaml").write_text("spec: model/v1\nname: gateway\nadapter: openai\nparams:\n  model: x\n"
                                     "  base_url: http://127.0.0.1:9/v1\n  extra_body: {token: '${MY_GATEWAY_CRED}'}\n")
    extra = {"MY_GATEWAY_CRED": KEY}
    run = cli(["show", "gateway", "--include", "m.yaml"], cwd=tmp_path, extra_env=extra)
    clean(run, code=0, culprit=None, fragments=["token: ***"], messages=0)
    run = cli(["show", "gateway", "--include", "m.yaml", "--json"], cwd=tmp_path, extra_env=extra)
    clean(run, code=0, culprit=None, fragments=['"token": "***"'], messages=0)


def test_show_unknown_name(tmp_path):
    run = cli(["show", "[bold]demo"], cwd=tmp_path)
    clean(run, code=2, culprit="'[bold]demo'", fragments=["no task or model named"])


# --------------------------------------------------------------------------------------------
# run folders: `cytoreg leaderboard`


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_run")
    run = cli(["eval", "--tasks", "demo", "--models", "random,prior", "--limit", "12", "--bootstrap", "20",
               "--no-progress", "--output", str(root / "run")], cwd=root)
    assert run.code == 0, run.out + run.err
    return root / "run"


def _copy_run(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@dataclass
class RunCase:
    id: str
    damage: Callable[[Path], None]
    culprit: str
    fragments: list[str]
    formats: str = "md,csv"


def _set_results(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        results = json.loads((run / "results.json").read_text())
        new = fn(results)
        (run / "results.json").write_text(json.dumps(results if new is None else new))

    return damage


RUN_CASES = [
    RunCase("results-truncated", lambda r: _truncate(r / "results.json"), "results.json",
            ["not valid JSON", "ends early", "re-run `cytoreg eval`"]),
    RunCase("results-empty", lambda r: (r / "results.json").write_bytes(b""), "results.json", ["not valid JSON"]),
    RunCase("results-a-list", lambda r: (r / "results.json").write_text("[1, 2]"), "results.json",
            ["not a results object"]),
    RunCase("results-latin-1", lambda r: (r / "results.json").write_bytes(
        (r / "results.json").read_bytes().replace(b'"schema"', b'"sch\xe9ma"', 1)), "results.json", ["not valid UTF-8"]),
    RunCase("results-deep", lambda r: (r / "results.json").write_bytes(b"[" * 200_000), "results.json",
            ["nested too deeply"]),
    RunCase("results-evaluation-without-task", _set_results(lambda res: [res["evaluations"][0].pop("task"), None][1]),
            "results.json", ["evaluations[0]: 'task' is required but missing"]),
    RunCase("results-evaluations-not-a-list", _set_results(lambda res: res.update(evaluations=7)),
            "results.json", ["evaluations: not a list"]),
    RunCase("results-ci-not-a-number", _set_results(lambda res: res["evaluations"][1]["ci"]["f1_weighted"].update(
        low="x")), "results.json", ["evaluations[1].ci.f1_weighted.low: 'x' is not of type 'number', 'null'"]),
    RunCase("results-comparison-model-a-list", _set_results(lambda res: res["comparisons"][0].update(a=[])),
            "results.json", ["comparisons[0].a: missing or not text"]),
    RunCase("results-config-text", _set_results(lambda res: res.update(config="x")), "results.json",
            ["config: 'x' is not of type 'object'"]),
    RunCase("results-foreign-schema", _set_results(lambda res: res.update(schema="other/v9")), "results.json",
            ["is not cytoreg/results/v1"]),
    RunCase("samples-truncated", lambda r: _truncate(r / "samples.jsonl", 0.57), "samples.jsonl",
            ["not valid JSON", "cut short"], formats="html"),
    RunCase("samples-line-is-a-number", lambda r: (r / "samples.jsonl").write_text(
        (r / "samples.jsonl").read_text() + "42\n"), "samples.jsonl", ["not a sample row"], formats="html"),
    RunCase("samples-row-model-is-a-list", lambda r: (r / "samples.jsonl").write_text(
        (r / "samples.jsonl").read_text().replace('"model": "random"', '"model": ["random"]', 1)), "samples.jsonl",
        ["samples.jsonl:1: model: missing or not text"], formats="html"),
    RunCase("samples-scores-not-numbers", lambda r: (r / "samples.jsonl").write_text(
        (r / "samples.jsonl").read_text() + json.dumps({"task": "demo", "model": "random", "setting": "zero_shot", "id": "x",
                                                        "response": {"a": "high"}}) + "\n"), "samples.jsonl",
        ["response: scores that are not numbers"], formats="html"),
    RunCase("samples-binary", lambda r: (r / "samples.jsonl").write_bytes(PNG), "samples.jsonl",
            ["not valid UTF-8"], formats="html"),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c.id for c in RUN_CASES])
def test_hostile_run_folder(case: RunCase, base_run, tmp_path):
    run_dir = _copy_run(base_run, tmp_path / "run")
    case.damage(run_dir)
    out = tmp_path / "lb"
    res = cli(["leaderboard", str(run_dir), "--out", str(out), "--format", case.formats], cwd=tmp_path)
    clean(res, code=2, culprit=case.culprit, fragments=case.fragments)
    assert not (out / "index.html").exists() and not (out / "leaderboard.md").exists()  # nothing half-made
    no_temp_files(tmp_path)


def test_hostile_names_and_labels_render_as_text(base_run, tmp_path):
    """Spec-provided text with Markdown / HTML / rich markup / TeX in it: escaped everywhere."""
    run_dir = _copy_run(base_run, tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text())
    evil_model = "<svg onload=alert(1)>|x"
    evil_labels = ["$\\frac{1}{$", "Baso[/]phil", "<b>bold</b>", "a|b"]
    for ev in results["evaluations"]:
        if ev["model"] == "random":
            ev["model"] = evil_model
        cm = ev["metrics"]["confusion_matrix"]
        cm["labels"][: len(evil_labels)] = evil_labels
        cm["columns"][: len(evil_labels)] = evil_labels
        per_class = ev["metrics"]["per_class"]
        ev["metrics"]["per_class"] = {(evil_labels[i] if i < len(evil_labels) else k): v
                                      for i, (k, v) in enumerate(per_class.items())}
    results["tasks"]["demo"]["reference"] = {"metric": "f1_weighted", "values": {"<img src=x onerror=alert(2)>": 0.5}}
    (run_dir / "results.json").write_text(json.dumps(results))
    out = tmp_path / "lb"
    res = cli(["leaderboard", str(run_dir), "--out", str(out)], cwd=tmp_path)
    clean(res, code=0, culprit=None, fragments=["&lt;svg onload=alert(1)&gt;\\|x"], messages=0)
    md = (out / "leaderboard.md").read_text()
    page = (out / "index.html").read_text()
    assert not re.search(r"(?<!\\)<", md), md  # every < escaped: no raw HTML reaches a Markdown renderer
    assert "&lt;img src=x onerror=alert(2)&gt;" in md
    assert "<svg onload" not in page and "<img src=x" not in page and "&lt;svg onload=alert(1)&gt;" in page
    assert len(list((out / "img").glob("cm-*.png"))) == 2  # the TeX-like label did not stop the plots


# --------------------------------------------------------------------------------------------
# file-system faults


def test_leaderboard_into_a_read_only_folder(base_run, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    shutil.copytree(base_run, tmp_path / "run")
    os.chmod(tmp_path, 0o755)
    res = cli(["leaderboard", str(tmp_path / "run"), "--out", str(ro / "lb")], cwd=tmp_path, preexec=without_root_override())
    clean(res, code=2, culprit=str(ro / "lb"), fragments=["permission denied"])
    assert list(ro.iterdir()) == []


def test_eval_into_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    os.chmod(tmp_path, 0o755)
    res = cli(["eval", "--tasks", "demo", "--models", "random", "--limit", "3", "--no-progress",
               "--output", str(ro / "out")], cwd=tmp_path, preexec=without_root_override())
    clean(res, code=2, culprit=str(ro / "out"), fragments=["permission denied"])


def test_eval_output_is_a_file(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    res = cli(["eval", "--tasks", "demo", "--models", "random", "--limit", "3", "--no-progress",
               "--output", "out"], cwd=tmp_path)
    clean(res, code=2, culprit="out", fragments=["already exists and is not a folder"])


def test_eval_past_the_file_size_limit_keeps_the_previous_results(tmp_path):
    """RLIMIT_FSIZE between the sizes of samples.jsonl and results.json (a 200-label task, whose
    confusion matrices make results.json the larger): the failed run leaves the previous
    results.json / samples.jsonl pair byte for byte, and no temporary file."""
    from PIL import Image

    labels = [f"c{i:03d}" for i in range(200)]
    for lab in labels:
        (tmp_path / "data" / lab).mkdir(parents=True)
        Image.new("RGB", (2, 2)).save(tmp_path / "data" / lab / f"{lab}.png")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "many.yaml").write_text(
        f"spec: task/v1\nname: many\nkind: classification\ndata: {{source: imagefolder, root: {tmp_path / 'data'}}}\n"
        f"labels: [{', '.join(labels)}]\nsampling: {{test_per_class: 1}}\nsettings: [zero_shot]\n")
    args = ["eval", "--tasks", "many", "--models", "random,prior", "--no-progress", "--bootstrap", "5",
            "--include", "specs", "--output", "out"]
    first = cli(args, cwd=tmp_path)
    assert first.code == 0, first.err
    before = {n: (tmp_path / "out" / n).read_bytes() for n in ("results.json", "samples.jsonl")}
    small, large = len(before["samples.jsonl"]), len(before["results.json"])
    limit = (small + large) // 2
    assert small < limit < large and limit > 64 * 1024  # above SQLite's 32 KiB shared-memory file
    res = cli([*args, "--seed", "5", "--overwrite"], cwd=tmp_path, preexec=file_size_limit(limit))  # another config
    clean(res, code=2, culprit="results.json", fragments=["file-size limit", "unchanged"])
    assert {n: (tmp_path / "out" / n).read_bytes() for n in before} == before
    no_temp_files(tmp_path)


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    """ENOSPC on the second file: neither file is replaced, no temporary file remains."""
    import errno

    from cytoreg.errors import CytoregError
    from cytoreg.report import results as results_mod

    (tmp_path / "samples.jsonl").write_text("old samples\n")
    (tmp_path / "results.json").write_text("old results")
    real_fsync = os.fsync
    calls = []

    def full(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(results_mod.os, "fsync", full)
    with pytest.raises(CytoregError) as err:
        results_mod.atomic_write_many([(tmp_path / "samples.jsonl", "new\n"), (tmp_path / "results.json", "{}")])
    assert "no space left on the device" in str(err.value) and "results.json" in str(err.value)
    assert (tmp_path / "samples.jsonl").read_text() == "old samples\n"
    assert (tmp_path / "results.json").read_text() == "old results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "samples.jsonl"]


@pytest.mark.parametrize("damage", ["middle", "garbage"])
def test_corrupt_cache_is_moved_aside_and_the_run_goes_on(tmp_path, damage):
    args = ["eval", "--tasks", "demo", "--models", "random", "--limit", "3", "--no-progress", "--bootstrap", "10",
            "--output", "out"]
    assert cli(args, cwd=tmp_path).code == 0
    cache = tmp_path / "out" / "cache.sqlite"
    if damage == "middle":
        import sqlite3

        con = sqlite3.connect(cache)
        con.execute("CREATE TABLE pad (x BLOB)")
        con.executemany("INSERT INTO pad VALUES (?)", [(os.urandom(3000),) for _ in range(60)])
        con.commit()
        con.close()
        data = bytearray(cache.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 8192] = b"\xa5" * 8192
        cache.write_bytes(bytes(data))
    else:
        cache.write_bytes(b"this is not a database " * 400)
    res = cli(args, cwd=tmp_path)
    clean(res, code=0, culprit=None, fragments=["is corrupt", "moved it to", "started a fresh cache"], messages=0)
    assert list((tmp_path / "out").glob("cache.sqlite.corrupt-*"))
    assert json.loads((tmp_path / "out" / "results.json").read_text())["evaluations"]


def test_cache_command_on_a_corrupt_file(tmp_path):
    (tmp_path / "c.sqlite").write_bytes(b"\x00garbage" * 1000)
    res = cli(["cache", "stats", "--cache", "c.sqlite"], cwd=tmp_path)
    clean(res, code=0, culprit=None, fragments=["c.sqlite is corrupt", "total: 0 responses"], messages=0)


# --------------------------------------------------------------------------------------------
# server replies: `cytoreg eval` against a server that answers badly


REPLIES: dict[str, tuple[int, bytes, str]] = {
    "html-page": (200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "html-as-json": (200, b"<html><body>oops</body></html>", "application/json"),
    "truncated-json": (200, b'{"choices": [{"message": {"content": "Lymph', "application/json"),
    "empty-body": (200, b"", "application/json"),
    "json-list": (200, b"[1, 2, 3]", "application/json"),
    "empty-choices": (200, json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                       "choices": []}).encode(), "application/json"),
    "null-content": (200, json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": None}}]}).encode(),
        "application/json"),
    "choice-without-message": (200, json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                                "choices": [{"index": 0}]}).encode(), "application/json"),
    "401-echoes-key": (401, json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode(),
                       "application/json"),
    "500-html": (500, b"<html>Internal Server Error</html>", "text/html"),
}
REPLY_MESSAGES = {
    "html-page": "not a chat completion", "html-as-json": "not valid JSON", "truncated-json": "not valid JSON",
    "empty-body": "not valid JSON", "json-list": "not a chat completion", "empty-choices": "no choices",
    "null-content": "no text (content null", "choice-without-message": "without a message",
    "401-echoes-key": "HTTP 401", "500-html": "HTTP 500",
}
GEMINI_REPLIES = {
    "gemini-html": ((200, b"<html>captive portal</html>", "text/html"), "not a Gemini response"),
    "gemini-truncated": ((200, b'{"candidates": [{"content": ', "application/json"), "not a Gemini response"),
    "gemini-wrong-types": ((200, b'{"candidates": [], "usageMetadata": {"promptTokenCount": "many"}}',
                            "application/json"), "not a Gemini response"),
    "gemini-no-candidates": ((200, b'{"candidates": []}', "application/json"), "no candidate"),
}


@pytest.fixture(scope="module")
def bad_server():
    def raw(body: dict, headers: dict):
        model = body.get("model")
        if model in REPLIES:
            return REPLIES[model]
        return None

    with FakeOpenAI(raw=raw) as srv:
        yield srv


def _reply_specs(folder: Path, url: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "tiny.yaml").write_text("spec: task/v1\nname: tiny\nextends: demo\nsampling: {test_per_class: 1}\n"
                                      "settings: [zero_shot]\n")
    for name in REPLIES:
        (folder / f"{name}.yaml").write_text(
            f"spec: model/v1\nname: bad-{name}\nadapter: openai\nparams: {{model: {name}, base_url: '{url}', "
            "api_key_env: HOSTILE_API_KEY}\nexecution: {concurrency: 2, max_retries: 0}\n")


@pytest.mark.slow  # an eval with the openai SDK per case: seconds each on a shared machine
@pytest.mark.parametrize("name", list(REPLIES))
def test_hostile_server_reply(name, bad_server, tmp_path):
    _reply_specs(tmp_path / "specs", bad_server.base_url)
    res = cli(["eval", "--tasks", "tiny", "--models", f"bad-{name}", "--limit", "3", "--no-progress", "--bootstrap",
               "0", "--include", "specs", "--output", "out"], cwd=tmp_path, extra_env={"HOSTILE_API_KEY": KEY})
    clean(res, code=(0, 3), culprit=None, fragments=[], messages=0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert r["error"] and REPLY_MESSAGES[name] in r["error"], r["error"]
        for bad in ("AttributeError", "IndexError", "TypeError", "Traceback", KEY):
            assert bad not in r["error"]
    assert not any(KEY.encode() in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GEMINI_REPLIES))
def test_hostile_gemini_reply(name, tmp_path):
    reply, fragment = GEMINI_REPLIES[name]
    with FakeOpenAI(raw=lambda body, headers: reply) as srv:
        specs = tmp_path / "specs"
        specs.mkdir()
        (specs / "tiny.yaml").write_text("spec: task/v1\nname: tiny\nextends: demo\nsampling: {test_per_class: 1}\n"
                                         "settings: [zero_shot]\n")
        (specs / "g.yaml").write_text(f"spec: model/v1\nname: gem\nadapter: gemini\nparams: {{model: gem-test, base_url: "
                                      f"'{srv.base_url.rsplit('/v1', 1)[0]}'}}\nexecution: {{max_retries: 0}}\n")
        res = cli(["eval", "--tasks", "tiny", "--models", "gem", "--limit", "2", "--no-progress", "--bootstrap", "0",
                   "--include", "specs", "--output", "out"], cwd=tmp_path, extra_env={"GEMINI_API_KEY": KEY})
    clean(res, code=(0, 3), culprit=None, fragments=[], messages=0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert rows and all(r["error"] and fragment in r["error"] for r in rows), [r["error"] for r in rows]


ANTHROPIC_REPLIES = {
    "claude-html": ((200, b"<html>maintenance</html>", "text/html"), "not a Messages API message"),
    "claude-truncated": ((200, b'{"content": [{"type": "text", "text": "Lym', "application/json"), "not valid JSON"),
    "claude-content-null": ((200, json.dumps({"id": "m", "type": "message", "role": "assistant", "model": "c",
                                              "content": None, "stop_reason": "end_turn",
                                              "usage": {"input_tokens": 1, "output_tokens": 1}}).encode(),
                             "application/json"), "not a Messages API message"),
    "claude-401-echo": ((401, json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                                     "message": f"invalid x-api-key {KEY}"}}).encode(),
                         "application/json"), "HTTP 401"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ANTHROPIC_REPLIES))
def test_hostile_anthropic_reply(name, tmp_path):
    pytest.importorskip("anthropic")
    reply, fragment = ANTHROPIC_REPLIES[name]
    with FakeOpenAI(raw=lambda body, headers: reply) as srv:
        specs = tmp_path / "specs"
        specs.mkdir()
        (specs / "tiny.yaml").write_text("spec: task/v1\nname: tiny\nextends: demo\nsampling: {test_per_class: 1}\n"
                                         "settings: [zero_shot]\n")
        (specs / "c.yaml").write_text(f"spec: model/v1\nname: cl\nadapter: anthropic\nparams: {{model: claude-test, "
                                      f"base_url: '{srv.base_url.rsplit('/v1', 1)[0]}'}}\nexecution: {{max_retries: 0}}\n")
        res = cli(["eval", "--tasks", "tiny", "--models", "cl", "--limit", "2", "--no-progress", "--bootstrap", "0",
                   "--include", "specs", "--output", "out"], cwd=tmp_path, extra_env={"ANTHROPIC_API_KEY": KEY})
    clean(res, code=(0, 3), culprit=None, fragments=[], messages=0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert rows and all(r["error"] and fragment in r["error"] for r in rows), [r["error"] for r in rows]
    assert not any(KEY.encode() in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# the error boundary itself


def test_debug_flag_and_env_show_the_traceback(tmp_path):
    for args, extra in ((["--debug", "leaderboard", "nowhere"], {}), (["leaderboard", "nowhere", "--debug"], {}),
                        (["leaderboard", "nowhere"], {"CYTOREG_DEBUG": "1"})):
        res = cli(args, cwd=tmp_path, extra_env=extra)
        assert res.code == 2
        assert "Traceback" in res.err and "error no results.json in nowhere" in res.err
    res = cli(["leaderboard", "nowhere"], cwd=tmp_path)
    clean(res, code=2, culprit="nowhere", fragments=["no results.json"])


def test_corpus_is_large_enough():
    n = (len(SPEC_CASES) + len(RUN_CASES) + len(REPLIES) + len(GEMINI_REPLIES) + len(ANTHROPIC_REPLIES) + len(MANIFEST_CASES) + len(BROKEN_IMAGES) + len(REVIEW_CASES)
         + 14)  # the single tests: paths, fifo, loaders, pipe ×2, show ×2, names, read-only ×2, file ×2, cache ×3
    assert n >= 40


# --------------------------------------------------------------------------------------------
# secret hygiene, end to end


def test_no_key_in_any_output_file_or_stream(tmp_path):
    """A gateway that echoes the key: in a 401 body for one request in three, inside the answer
    text for the others. The key comes from `api_key_env` (a name no pattern would guess), a
    second secret from `${…}` in the spec. After eval, leaderboard (md, csv, html), show,
    validate and cache stats, no file under the folder and no output stream holds either."""
    key, cred = "gw-Zq8v1xKeyThatIsLong", "cred-9a8b7c6d5e4f"
    seen: list[str] = []

    def raw(body: dict, headers: dict):
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        seen.append(auth)
        n = len(seen)
        if n % 3 == 0:  # a 401 stops the model (fail fast), so the first two are answered
            return 401, json.dumps({"error": {"message": f"invalid key {auth.split()[-1]} for this gateway"}}).encode(), \
                "application/json"
        text = f"Lymphocyte (request signed with {auth.split()[-1]}, extra {body.get('cred')})"
        return 200, json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "gw", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}).encode(), \
            "application/json"

    extra = {"MY_GATEWAY": key, "HOSTILE_CRED": cred}
    with FakeOpenAI(raw=raw) as srv:
        specs = tmp_path / "specs"
        specs.mkdir()
        (specs / "tiny.yaml").write_text("spec: task/v1\nname: tiny\nextends: demo\nsampling: {test_per_class: 1}\n"
                                         "settings: [zero_shot]\n")
        (specs / "gw.yaml").write_text(
            f"spec: model/v1\nname: gw\nadapter: openai\ndescription: 'signed with ${{HOSTILE_CRED}}'\nparams:\n"
            f"  model: gw\n  base_url: '{srv.base_url}'\n  api_key_env: MY_GATEWAY\n"
            "  extra_body: {cred: '${HOSTILE_CRED}'}\nexecution: {concurrency: 1, max_retries: 0}\n")
        runs = [cli(["eval", "--tasks", "tiny", "--models", "gw", "--limit", "6", "--no-progress", "--bootstrap", "0",
                     "--include", "specs", "--output", "out"], cwd=tmp_path, extra_env=extra)]
    assert seen and all(key in a for a in seen), "the key was not sent, the test would prove nothing"
    runs.append(cli(["leaderboard", "out", "--out", "lb"], cwd=tmp_path, extra_env=extra))
    runs.append(cli(["show", "gw", "--include", "specs"], cwd=tmp_path, extra_env=extra))
    runs.append(cli(["list", "models", "--include", "specs"], cwd=tmp_path, extra_env=extra))
    runs.append(cli(["validate", "specs"], cwd=tmp_path, extra_env=extra))
    runs.append(cli(["cache", "stats", "--cache", "out/cache.sqlite"], cwd=tmp_path, extra_env=extra))
    for r in runs:
        assert r.code in (0, 3), r.out + r.err
        for secret in (key, cred):
            assert secret not in r.out and secret not in r.err
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "specs" not in p.parts]
    assert any(p.name == "index.html" for p in files) and any(p.name == "cache.sqlite" for p in files)
    for p in files:
        data = p.read_bytes()
        for secret in (key, cred):
            assert secret.encode() not in data, f"{secret} in {p}"
    samples = (tmp_path / "out" / "samples.jsonl").read_text()
    assert "invalid key *** for this gateway" in samples and "signed with ***, extra ***" in samples


# --------------------------------------------------------------------------------------------
# large label sets


@pytest.mark.slow
def test_leaderboard_with_1000_labels_stays_under_1gb(tmp_path):
    """A real 1,000-label run (random and prior baselines): the leaderboard and HTML report cut the
    confusion-matrix and F1 plots to readable top-k views with a note, within 1 GB (the full
    matrix plot needed a 38,000-pixel square: MemoryError at 7.2 GB before)."""
    from PIL import Image

    labels = [f"class_{i:04d}" for i in range(1000)]
    img = Image.new("RGB", (2, 2))
    for lab in labels:
        (tmp_path / "data" / lab).mkdir(parents=True)
        img.save(tmp_path / "data" / lab / f"{lab}.png")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "big.yaml").write_text(
        f"spec: task/v1\nname: big\nkind: classification\ndata: {{source: imagefolder, root: {tmp_path / 'data'}}}\n"
        f"labels: [{', '.join(labels)}]\nsampling: {{test_per_class: 1}}\nsettings: [zero_shot]\n")
    run = cli(["eval", "--tasks", "big", "--models", "random,prior", "--no-progress", "--bootstrap", "10",
               "--include", "specs", "--output", "out"], cwd=tmp_path)
    assert run.code == 0, run.err
    res = cli(["leaderboard", "out", "--out", "lb"], cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.rss_mb < 1024, f"{res.rss_mb:.0f} MB"
    page = (tmp_path / "lb" / "index.html").read_text()
    assert page.count("confusion matrix: the 30 of 1000 true classes with the most errors") == 2
    assert page.count("per-class F1: the 40 of 1000 classes with the lowest F1") == 2
    from PIL import Image as PILImage

    for png in (tmp_path / "lb" / "img").glob("*.png"):
        w, h = PILImage.open(png).size
        assert w * h < 4_000_000, (png.name, w, h)


# --------------------------------------------------------------------------------------------
# manifests (the readers belong to the data sources, issue 16; here: one message through the CLI)


MANIFEST_CASES = [
    ("manifest-latin-1", "m.csv", "path,label\na.png,Alpha\nb.png,Bëta\n".encode("latin-1"),
     ["m.csv:3", "not valid UTF-8", "data.encoding"]),
    ("manifest-broken-jsonl-line", "m.jsonl", b'{"path": "a.png", "label": "Alpha"}\n{"path": "b.png", "label": \n',
     ["m.jsonl:2: not valid JSON"]),
    ("manifest-json-list-with-int", "m.json", json.dumps([{"path": "a.png", "label": "Alpha"}, 5]).encode(),
     ["m.json:1: item 1 of the list", "not an object"]),
    ("manifest-binary", "m.csv", PNG, ["m.csv", "not valid UTF-8"]),
    ("manifest-json-deep", "m.json", b"[" * 100_000 + b"]" * 100_000, ["m.json: JSON nested too deeply"]),
    ("manifest-jsonl-deep", "m.jsonl", b'{"path": "a.png", "label": "Alpha"}\n' + b"[" * 100_000 + b"]" * 100_000,
     ["m.jsonl:2: JSON nested too deeply"]),
]


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_hostile_manifest(case, tmp_path):
    _, name, data, fragments = case
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    (tmp_path / name).write_bytes(data)
    (tmp_path / "t.yaml").write_text(f"spec: task/v1\nname: man\nkind: classification\ndata: {{source: manifest, root: "
                                     f"'{tmp_path}', manifest: {name}, path_column: path, label_column: label}}\n"
                                     "labels: [Alpha, Bëta]\nsettings: [zero_shot]\n", encoding="utf-8")
    res = cli(["eval", "--tasks", "man", "--models", "random", "--include", "t.yaml", "--output", "out", "--no-progress",
               "--bootstrap", "0"], cwd=tmp_path)
    clean(res, code=2, culprit=name, fragments=fragments)
    assert not (tmp_path / "out" / "results.json").exists()


# --------------------------------------------------------------------------------------------
# images (the decode path belongs to the data sources; here: broken files never stop a run)


BROKEN_IMAGES = {
    "MO_empty.png": lambda good_tif: b"",
    "MO_garbage.png": lambda good_tif: b"not an image at all " * 20,
    "MO_garbage.tif": lambda good_tif: b"II*\x00" + b"\x00" * 40,
    "MO_truncated.tif": lambda good_tif: good_tif[: len(good_tif) // 3],
    "MO_text.jpg": lambda good_tif: b"<html>404 not found</html>",
}


@pytest.mark.slow
def test_broken_images_become_error_records_naming_the_file(tmp_path):
    import io

    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for name in ("LY_ok.png", "MO_ok.png"):
        Image.new("RGB", (8, 8), (120, 30, 200)).save(data / name)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "TIFF")
    for name, make in BROKEN_IMAGES.items():
        (data / name).write_bytes(make(buf.getvalue()))
    with FakeOpenAI() as srv:
        specs = tmp_path / "specs"
        specs.mkdir()
        (specs / "t.yaml").write_text(f"spec: task/v1\nname: imgs\nextends: demo\ndata: {{root: '{data}'}}\n"
                                      "sampling: {test_per_class: 10, fewshot_per_class: 0}\nsettings: [zero_shot]\n")
        (specs / "m.yaml").write_text(f"spec: model/v1\nname: fk\nadapter: openai\nparams: {{model: x, base_url: "
                                      f"'{srv.base_url}'}}\nexecution: {{max_retries: 0}}\n")
        res = cli(["eval", "--tasks", "imgs", "--models", "fk", "--include", "specs", "--output", "out",
                   "--no-progress", "--bootstrap", "0"], cwd=tmp_path, extra_env={"OPENAI_API_KEY": KEY})
    clean(res, code=(0, 3), culprit=None, fragments=[], messages=0)
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "samples.jsonl").read_text().splitlines())}
    assert rows["LY_ok.png"]["error"] is None and rows["MO_ok.png"]["error"] is None
    for name in BROKEN_IMAGES:
        err = rows[name]["error"]
        assert err and name in err and "Traceback" not in err, (name, err)


# --------------------------------------------------------------------------------------------
# review import: sheets come back from spreadsheets


KEY_JSON = {"run": "r", "task": "t", "model": "m", "setting": "free_text", "per_class": 1, "seed": 1, "shortfalls": [],
            "items": [{"item": 1, "sample_id": "a", "true_label": "Alpha", "predicted": "Alpha", "correct": True,
                       "confidence": None}]}

REVIEW_CASES = [
    ("sheet-cp1252", "review.csv", "item,image,explanation,rating,expert_label,mistakes\n1,x,y,2,Éosinophile,\n"
     .encode("cp1252"), ["review.csv:2: not UTF-8", "CSV UTF-8"]),
    ("sheet-short-row", "review.csv", b"item,image,explanation,rating\n", ["1 item(s) missing from the sheet"]),
    ("sheet-row-without-item", "review.csv", b"rating,item\n3\n", ["review.csv:2: no item number"]),
    ("key-truncated", "key.json", json.dumps(KEY_JSON)[:60].encode(), ["key.json:1: not valid JSON"]),
    ("key-not-a-review-key", "key.json", b'{"items": [1, 2]}', ["not a review key"]),
]


@pytest.mark.parametrize("case", REVIEW_CASES, ids=[c[0] for c in REVIEW_CASES])
def test_hostile_review_import(case, tmp_path):
    _, name, data, fragments = case
    folder = tmp_path / "review"
    folder.mkdir()
    (folder / "key.json").write_text(json.dumps(KEY_JSON))
    (folder / "review.csv").write_text("item,image,explanation,rating,expert_label,mistakes\n1,x,y,2,Alpha,\n")
    (folder / name).write_bytes(data)
    res = cli(["review", "import", "review"], cwd=tmp_path)
    culprit = name
    text = res.out + res.err
    assert res.code == 2 and "Traceback" not in text, text
    assert culprit in text and all(f in text for f in fragments), text
    assert res.cpu_s < CPU_LIMIT_S and res.rss_mb < RSS_LIMIT_MB
    assert not (folder / "review_summary.json").exists()
