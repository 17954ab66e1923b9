"""cytoreg finetune, OpenAI route, against a local server speaking the Files and fine-tuning
endpoints with the real openai SDK: the uploaded JSONL per n (examples, images, answers), one job
per n with the base model, evaluation through the ft: ids, resumption without new uploads or
jobs, failed jobs as clear errors, --check and --yes; the combined learning curve beside heads."""
import base64
import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("openai")

from fake_openai_ft import FakeFineTuning  # noqa: E402
from cytoreg.cli import main  # noqa: E402
from cytoreg.errors import CytoregError  # noqa: E402
from cytoreg.finetune import openai_limits as limits  # noqa: E402
from cytoreg.finetune.run import FinetuneConfig, run  # noqa: E402
from cytoreg.registry.builtins import TASK_KINDS  # noqa: E402
from cytoreg.registry.catalog import Catalog  # noqa: E402
from cytoreg.tasks.probe_heads import subsample_per_class  # noqa: E402

TASK = ("spec: task/v1\nname: demo-ft\nkind: probe\nextends: demo\n"
        "sampling: {seed: 42, test_per_class: 3, train_per_class: 12, val_per_class: 0, fewshot_per_class: 1,"
        " order: [fewshot, test, train]}\n"
        "probe: {method: logistic, seed: 3, n_per_class: [1, 2, 12], repeats: 2}\n"
        "statistics: {bootstrap: 50, paired_bootstrap: 200}\n")
NS = [1, 2, 12]


def model_spec(url: str, name: str = "ftgpt") -> str:
    return (f"spec: model/v1\nname: {name}\nadapter: openai\n"
            f"params: {{model: gpt-4o-2024-08-06, base_url: '{url}', image_detail: low}}\n"
            "generation: {temperature: 0, max_tokens: 20}\n"
            "execution: {concurrency: 4, max_retries: 0}\n"
            "finetune: {base: gpt-4o-2024-08-06, epochs: 2, poll_interval: 0.01, max_poll_interval: 0.02}\n")


def _sha_of_url(url: str) -> str:
    return hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()


@pytest.fixture
def setup(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "task.yaml").write_text(TASK)
    truth: dict[str, str] = {}

    def answer(body):  # the n=12 model knows every image; the others always say Lymphocyte
        shas = [_sha_of_url(p["image_url"]["url"]) for m in body["messages"] if isinstance(m["content"], list)
                for p in m["content"] if p["type"] == "image_url"]
        if "-n12:" in body["model"]:
            return truth.get(shas[0], "Lymphocyte")
        return "Lymphocyte"

    with FakeFineTuning(answer, polls_to_finish=3) as srv:
        (d / "model.yaml").write_text(model_spec(srv.base_url))
        cat = Catalog.load([str(d)])
        kind = TASK_KINDS.get("probe")(cat.task("demo-ft"))
        split = kind.training_split()
        for s in split.train + kind.prepare().test:
            truth[hashlib.sha256(s.image.read_bytes()).hexdigest()] = s.label
        yield d, srv, split, kind


def cfg(d, out, **kw):
    base = dict(task="demo-ft", models=["ftgpt"], ns=NS, output=out, include=[str(d)], yes=True, progress=False,
                bootstrap=None)
    base.update(kw)
    return FinetuneConfig(**base)


def test_openai_route_files_jobs_eval_and_resume(setup, tmp_path):
    d, srv, split, kind = setup
    out = tmp_path / "run"
    log: list[str] = []
    res = run(cfg(d, out), log.append)
    # one upload and one job per n, with the base model and the spec's epochs
    assert len(srv.uploads) == 3 and len(srv.created) == 3
    assert [c["model"] for c in srv.created] == ["gpt-4o-2024-08-06"] * 3
    assert all(c["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
               for c in srv.created)
    y = [s.label for s in split.train]
    have = {lab: y.count(lab) for lab in kind.labels}
    assert min(have.values()) == 10 and max(have.values()) == 12  # MMY / PMY: 14 images - 1 few-shot - 3 test
    prompt = kind.prompts["zero_shot"]
    by_sha = {hashlib.sha256(s.image.read_bytes()).hexdigest(): s for s in split.train}
    for n, job in zip(NS, srv.created):
        lines = srv.file_lines(job["training_file"])
        assert len(lines) == sum(min(n, c) for c in have.values())  # n × classes, fewer only where short
        chosen = [split.train[i] for i in subsample_per_class(y, n, 3)]  # the probes' subset (probe seed 3)
        seen = []
        for line in lines:
            msgs = line["messages"]
            assert [m["role"] for m in msgs] == ["user", "assistant"]
            parts = msgs[0]["content"]
            assert [p["type"] for p in parts] == ["text", "image_url"]  # one image each
            assert parts[0]["text"] == prompt and parts[1]["image_url"]["detail"] == "low"
            s = by_sha[_sha_of_url(parts[1]["image_url"]["url"])]
            assert msgs[1]["content"] == s.label  # the answer is the label
            seen.append(s.id)
        assert sorted(seen) == sorted(s.id for s in chosen)
    assert [line for line in log if "fewer than 12" in line] == [
        "n=12: fewer than 12 training images in Metamyelocyte (10), Promyelocyte (10); all of them are used"]
    # the specs extend the base and name the ft: ids; evaluation went to those ids
    ft_ids = {srv.jobs[j]["fine_tuned_model"] for j in srv.jobs}
    spec = (out / "specs" / "ftgpt-ft-demo-ft-n12.yaml").read_text()
    assert "extends: ftgpt" in spec and "model: ft:gpt-4o-2024-08-06:cytoreg-test:demo-ft-n12:0003" in spec
    assert {b["model"] for b in srv.requests} == ft_ids
    assert len(srv.requests) == 3 * len(kind.prepare().test)
    results = json.loads((out / "results.json").read_text())
    from cytoreg.report.results import validate_results

    assert validate_results(results) == [] and results["learning_curves"][0]["base_model"] == "ftgpt"
    f1 = {e["model"]: e["metrics"]["f1_weighted"] for e in results["evaluations"]}
    assert f1["ftgpt-ft-demo-ft-n12"] == 1.0 and f1["ftgpt-ft-demo-ft-n1"] < 0.2
    state = json.loads((out / "finetune" / "state.json").read_text())
    assert sorted(j["status"] for j in state["jobs"].values()) == ["succeeded"] * 3
    assert sorted(j["trained_tokens"] for j in state["jobs"].values()) == sorted(
        100 * len(srv.file_lines(c["training_file"])) for c in srv.created)
    # a rerun uploads nothing, creates nothing, asks nothing (cached)
    n_req = len(srv.requests)
    run(cfg(d, out, yes=False), log.append)
    assert (len(srv.uploads), len(srv.created), len(srv.requests)) == (3, 3, n_req)
    # a kill between an API call and the state write: the files and jobs are found on the server
    (out / "finetune" / "state.json").unlink()
    run(cfg(d, out, yes=True), log.append)
    assert (len(srv.uploads), len(srv.created), len(srv.requests)) == (3, 3, n_req)
    assert res["finetuned"] == {"ftgpt": {n: f"ftgpt-ft-demo-ft-n{n}" for n in NS}}


def test_failed_job_is_a_clear_error_and_retry(setup, tmp_path, capsys):
    d, srv, _, _ = setup
    srv.outcome = lambda job: (("failed", "The job failed due to an invalid training file. Line 3: image "
                                          "contains people") if job["id"] == "ftjob-0002" else ("succeeded", None))
    out = tmp_path / "run"
    code = main(["finetune", "--tasks", "demo-ft", "--models", "ftgpt", "--n", "1,2", "-o", str(out),
                 "--include", str(d), "--yes", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "fine-tuning job ftjob-0002 (model 'ftgpt', task 'demo-ft', n=2) failed: The job failed due to an " \
           "invalid training file. Line 3: image contains people" in " ".join(err.split())
    assert "--retry-failed" in err and not srv.requests  # nothing evaluated
    # a rerun reports the same failure without creating a job; --retry-failed submits that n again
    assert main(["finetune", "--tasks", "demo-ft", "--models", "ftgpt", "--n", "1,2", "-o", str(out),
                 "--include", str(d), "--no-progress"]) == 2
    assert len(srv.created) == 2
    srv.outcome = lambda job: ("succeeded", None)
    assert main(["finetune", "--tasks", "demo-ft", "--models", "ftgpt", "--n", "1,2", "-o", str(out),
                 "--include", str(d), "--no-progress", "--retry-failed", "--yes"]) == 0
    assert len(srv.created) == 3 and len(srv.uploads) == 2  # same file, a new job


def test_check_and_yes_submit_nothing(setup, tmp_path, capsys, monkeypatch):
    d, srv, _, _ = setup
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "run"
    assert main(["finetune", "--tasks", "demo-ft", "--models", "ftgpt", "--n", "1,12", "-o", str(out),
                 "--include", str(d), "--check"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "ftgpt n=1: 11 examples, 11 images" in text and "ftgpt n=12: 128 examples, 128 images" in text
    # 11 examples x (85 image tokens at detail low + prompt text + 3 x 4 message tokens + 3) x 2 epochs at $25 / 1M
    assert "× 2 epochs" in text and "nothing was uploaded or submitted" in text
    assert not srv.uploads and not srv.created and not srv.paths
    with pytest.raises(CytoregError, match=r"2 fine-tuning job\(s\) of 'ftgpt' would be submitted .*--yes"):
        run(cfg(d, out, ns=[1, 12], yes=False), lambda m: None)
    assert not srv.uploads and not srv.created


def test_limits_and_token_estimate():
    import io

    from PIL import Image

    def line(img_mode="RGB", n_images=1, fmt="PNG"):
        buf = io.BytesIO()
        Image.new(img_mode, (360, 363)).save(buf, fmt)
        url = f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()
        parts = [{"type": "text", "text": "abcd" * 10}] + [{"type": "image_url", "image_url": {"url": url,
                                                                                              "detail": "low"}}] * n_images
        return {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "Basophil"}]}

    rep = limits.check_lines([line()] * 10, "gpt-4o-2024-08-06", "f")
    assert rep.problems == []
    # per example: 3 + 2 messages × 4 + 10 text tokens + 85 image tokens + 2 ("Basophil" = 8 bytes / 4)
    assert rep.tokens == 10 * (3 + 8 + 10 + 85 + 2) and rep.images == 10
    assert limits.cost(rep.tokens, 2, "gpt-4o-2024-08-06", None) == pytest.approx(rep.tokens * 2 * 25 / 1e6)
    assert limits.cost(rep.tokens, "auto", "other", None) is None
    bad = limits.check_lines([line("L"), line(n_images=11)] + [line()] * 7, "gpt-4o-2024-08-06", "f")
    assert bad.problems == ["f line 1: image mode L is not RGB or RGBA",
                            "f line 2: 11 images, more than the 10 allowed",
                            "f: 9 examples, fewer than the 10 OpenAI requires; use a larger n (n × classes ≥ 10)"]
    # the vision guide's worked examples, and an Acevedo-sized image (one tile)
    assert limits.image_tokens(2048, 4096, "high") == 1105 and limits.image_tokens(1024, 1024, "high") == 765
    assert limits.image_tokens(360, 363, "high") == 85 + 170 and limits.image_tokens(360, 363, "auto") == 255


def test_learning_curve_beside_heads_in_results_leaderboard_and_html(setup, tmp_path):
    pytest.importorskip("timm")
    pytest.importorskip("matplotlib")
    from sklearn.metrics import f1_score
    from tiny_features import save_tiny_dinobloom, spec_text

    from cytoreg.report.leaderboard import write_leaderboard

    d, srv, split, kind = setup
    save_tiny_dinobloom(tmp_path / "bloom.pth")
    (d / "bloom.yaml").write_text(spec_text("tinybloom", tmp_path / "bloom.pth"))
    (d / "task.yaml").write_text(TASK.replace("repeats: 2", "repeats: 1"))  # one repeat: the curve = the paired fit
    out = tmp_path / "run"
    res = run(cfg(d, out, ns=[0, 1, 12], heads=["tinybloom"]), lambda m: None)["results"]
    assert {(e["model"], e["setting"]) for e in res["evaluations"]} == {
        ("ftgpt", "zero_shot"), ("ftgpt-ft-demo-ft-n1", "zero_shot"), ("ftgpt-ft-demo-ft-n12", "zero_shot"),
        ("tinybloom", "probe")}
    [curve] = res["learning_curves"]
    assert curve["task"] == "demo-ft" and curve["base_model"] == "ftgpt" and curve["metric"] == "f1_weighted"
    assert [p["n"] for p in curve["points"]] == [0, 1, 12]
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    head_ev = next(e for e in res["evaluations"] if e["model"] == "tinybloom")
    curve_f1 = {p["x"]: p["value"] for p in head_ev["probe"]["curves"]["f1_weighted"]}
    for p in curve["points"]:
        rows = [r for r in samples if r["model"] == p["model"]]
        y, pred = [r["label"] for r in rows], [r["parsed"] or "(invalid)" for r in rows]
        assert p["value"] == pytest.approx(f1_score(y, pred, labels=sorted(set(y)), average="weighted",
                                                    zero_division=0))
        if p["n"] == 0:
            assert p["heads"] == []  # no head at n = 0
            continue
        [h] = p["heads"]
        assert h["model"] == "tinybloom" and h["same_train_images"] and h["n_test"] == len(rows)
        assert h["value"] == pytest.approx(curve_f1[p["n"]])  # the head's own curve point
        pb = h["paired_bootstrap"]
        assert pb["a"] == p["model"] and pb["b"] == "tinybloom" and pb["resamples"] == 200
        assert pb["difference"] == pytest.approx(p["value"] - h["value"]) and pb["low"] <= pb["difference"] <= pb["high"]
    assert any(c["task"] == "demo-ft" for c in res["comparisons"])
    written = write_leaderboard([out], tmp_path / "lb")
    md = written["md"].read_text()
    assert "### learning curve: ftgpt fine-tuned vs heads on demo-ft (f1\\_weighted)" in md
    assert "| 12 | 1.000 [1.000, 1.000] |" in md
    page = written["html"].read_text()
    assert "learning curves: fine-tuned VLMs vs heads" in page and 'class="plot ftcurve"' in page
    assert next((tmp_path / "lb" / "img").glob("ftcurve-*.png")).stat().st_size > 1000


def test_kill_9_while_polling_then_rerun_continues(setup, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    d, srv, _, _ = setup
    srv.polls_to_finish = 10 ** 9  # the jobs keep running while the first process polls
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "cytoreg", "finetune", "--tasks", "demo-ft", "--models", "ftgpt",
                             "--n", "1,2,12", "-o", str(out), "--include", str(d), "--yes", "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "finetune" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        polled = [j for j in srv.jobs.values() if j["_polls"] >= 2]
        if len(polled) == 3 and state.exists() and len(json.loads(state.read_text())["jobs"]) == 3:
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (len(srv.uploads), len(srv.created)) == (3, 3) and not srv.requests
    recorded = json.loads(state.read_text())["jobs"]
    assert sorted(j["status"] for j in recorded.values()) == ["running"] * 3
    srv.polls_to_finish = 1
    res = run(cfg(d, out, yes=False), lambda m: None)  # no --yes needed: nothing new is submitted
    assert (len(srv.uploads), len(srv.created)) == (3, 3)
    assert sorted(res["finetuned"]["ftgpt"]) == NS and len(srv.requests) == 3 * 33


def test_refusals_name_the_fix(setup, tmp_path, capsys):
    d, _, _, _ = setup
    (d / "plain.yaml").write_text("spec: task/v1\nname: demo-plain\nextends: demo\n")
    cases = [(["--tasks", "demo-plain", "--models", "ftgpt", "--n", "1"], "task 'demo-plain' has no training split"),
             (["--tasks", "demo-ft", "--models", "random", "--n", "1"], "model 'random' uses the 'random' adapter"),
             (["--tasks", "demo-ft", "--models", "ftgpt", "--n", "1", "--heads", "ftgpt"], "--heads ftgpt: not a "
                                                                                            "feature or embedding model"),
             (["--tasks", "demo-ft", "--models", "ftgpt", "--n", "1,x"], "--n '1,x': give images per class")]
    for argv, msg in cases:
        assert main(["finetune", *argv, "-o", str(tmp_path / "o"), "--include", str(d)]) == 2
        assert msg in " ".join(capsys.readouterr().err.split())


def test_an_n_past_every_class_reuses_the_job_of_the_same_examples(setup, tmp_path, capsys):
    d, srv, _, _ = setup
    out = tmp_path / "run"
    assert main(["finetune", "--tasks", "demo-ft", "--models", "ftgpt", "--n", "12,50", "-o", str(out),
                 "--include", str(d), "--check"]) == 0
    assert "ftgpt n=50: the same 128 examples as n=12 (every class has fewer images than 50); its model serves, " \
           "no job of its own" in " ".join(capsys.readouterr().out.split())
    res = run(cfg(d, out, ns=[12, 50]), lambda m: None)
    assert len(srv.created) == 1 and len(srv.uploads) == 1
    ft = srv.jobs["ftjob-0001"]["fine_tuned_model"]
    for n in (12, 50):
        assert f"model: {ft}" in (out / "specs" / f"ftgpt-ft-demo-ft-n{n}.yaml").read_text()
    assert sorted(res["finetuned"]["ftgpt"]) == [12, 50]


def test_validation_file_is_uploaded_once_and_sent_with_every_job(setup, tmp_path):
    d, srv, _, _ = setup
    (d / "taskv.yaml").write_text(TASK.replace("name: demo-ft", "name: demo-ftv").replace("val_per_class: 0",
                                                                                        "val_per_class: 1"))
    (d / "modelv.yaml").write_text(model_spec(srv.base_url, "ftgptv").replace("max_poll_interval: 0.02}",
                                                                              "max_poll_interval: 0.02, validation: true}"))
    kind = TASK_KINDS.get("probe")(Catalog.load([str(d)]).task("demo-ftv"))
    val = kind.training_split().val
    run(cfg(d, tmp_path / "run", task="demo-ftv", models=["ftgptv"], ns=[1, 2]), lambda m: None)
    assert len(srv.uploads) == 3 and len(srv.created) == 2
    [vid] = {c["validation_file"] for c in srv.created}
    assert vid not in {c["training_file"] for c in srv.created}
    lines = srv.file_lines(vid)
    assert len(lines) == len(val) == 9  # Metamyelocyte and Promyelocyte have none left
    assert sorted(x["messages"][-1]["content"] for x in lines) == sorted(s.label for s in val)
