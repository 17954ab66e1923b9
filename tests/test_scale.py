"""Scale-out: torchrun with 2 CPU ranks (gloo) equals a one-process run, API requests are sent
once (by rank 0 only), and --shard I/N + merge equals a one-process run for any N."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from fake_openai import FakeOpenAI  # noqa: E402
from test_engine import oracle  # noqa: E402
from tiny_clip import save_tiny_clip  # noqa: E402
from tiny_features import save_tiny_dinobloom, spec_text  # noqa: E402
from cytoreg.engine.distributed import shard_of  # noqa: E402
from cytoreg.engine.runner import EvalConfig, evaluate  # noqa: E402
from cytoreg.errors import CytoregError  # noqa: E402

PROBE = ("spec: task/v1\nname: demo-probe\nkind: probe\nextends: demo\n"
         "sampling: {seed: 42, test_per_class: 6, train_per_class: 12, val_per_class: 3}\n")


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    save_tiny_clip(root / "clip")
    save_tiny_dinobloom(root / "bloom.pth")
    d = root / "specs"
    d.mkdir()
    (d / "clip.yaml").write_text(f"spec: model/v1\nname: tiny-clip\nadapter: open_clip\n"
                                 f"params: {{model: 'local-dir:{root / 'clip'}'}}\nexecution: {{batch_size: 32}}\n")
    (d / "bloom.yaml").write_text(spec_text("tinybloom", root / "bloom.pth"))
    (d / "probe.yaml").write_text(PROBE)
    (d / "small.yaml").write_text("spec: task/v1\nname: small\nextends: demo\nsampling: {test_per_class: 5}\n"
                                  "settings: [zero_shot]\n")
    return d


SCORE_BASED = ("auc_macro", "auc_per_class", "ece")


def _same(a: dict, b: dict) -> None:
    """Label-based metrics and CIs exactly equal; metrics from probabilities to 1e-6, since a float32
    forward pass can differ in the last bits when the images are batched differently."""
    assert [(e["task"], e["model"], e["setting"]) for e in a["evaluations"]] == \
        [(e["task"], e["model"], e["setting"]) for e in b["evaluations"]]
    for x, y in zip(a["evaluations"], b["evaluations"]):
        assert x["n"] == y["n"] and x["ci"] == y["ci"]
        assert {k: v for k, v in x["metrics"].items() if k not in SCORE_BASED} == \
            {k: v for k, v in y["metrics"].items() if k not in SCORE_BASED}
        for k in SCORE_BASED:
            if isinstance(x["metrics"].get(k), float):
                assert x["metrics"][k] == pytest.approx(y["metrics"][k], abs=1e-6)
            elif isinstance(x["metrics"].get(k), dict):
                assert x["metrics"][k] == pytest.approx(y["metrics"][k], abs=1e-6)
    assert {t: v["sample_ids"] for t, v in a["tasks"].items()} == {t: v["sample_ids"] for t, v in b["tasks"].items()}


def _samples(run: Path) -> list[dict]:
    rows = [json.loads(l) for l in (run / "samples.jsonl").read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k not in ("attempts",)} for r in rows),
                  key=lambda r: (r["task"], r["model"], r["setting"], r["id"], r["try"]))


def test_torchrun_two_ranks_equals_one_process_and_sends_api_requests_once(specs, tmp_path):
    with FakeOpenAI(oracle) as srv:
        (specs / "api.yaml").write_text(f"spec: model/v1\nname: api\nadapter: openai\n"
                                        f"params: {{model: m, base_url: '{srv.base_url}'}}\n")
        args = ["eval", "--tasks", "small", "--models", "tiny-clip,random,api", "--include", str(specs),
                "--no-progress", "--bootstrap", "50"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                            "-m", "cytoreg.cli", *args, "--output", str(tmp_path / "dist")], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        sent_by_ranks = len(srv.requests)
        one = evaluate(EvalConfig(["small"], ["tiny-clip", "random", "api"], output=tmp_path / "one",
                                  include=[str(specs)], progress=False, bootstrap=50))
    dist = json.loads((tmp_path / "dist/results.json").read_text())
    _same(dist, one)
    assert [(r["id"], r["model"], r["parsed"]) for r in _samples(tmp_path / "dist")] == \
        [(r["id"], r["model"], r["parsed"]) for r in _samples(tmp_path / "one")]
    assert sent_by_ranks == one["tasks"]["small"]["n_test"]  # each API request once, not once per rank
    ranks = sorted(p.name for p in (tmp_path / "dist/shards").iterdir())
    assert ranks == ["rank0", "rank1"]
    shards = [json.loads((tmp_path / "dist/shards" / r / "shard.json").read_text()) for r in ranks]
    assert sum(s["samples"]["small"]["test"] for s in shards) == one["tasks"]["small"]["n_test"]
    assert all(s["samples"]["small"]["test"] > 0 for s in shards)


@pytest.mark.parametrize("n", [2, 3])
def test_shards_then_merge_equal_one_process(specs, tmp_path, n):
    def run(tasks, models, out, shard=None):
        return evaluate(EvalConfig(tasks, models, output=out, include=[str(specs)], progress=False, bootstrap=50,
                                   shard=shard))

    for tasks, models in ((["demo-probe"], ["tiny-clip", "tinybloom"]), (["small"], ["tiny-clip", "random"])):
        dirs = [tmp_path / f"{tasks[0]}-{i}" for i in range(n)]
        for i, d in enumerate(dirs):
            manifest = run(tasks, models, d, (i, n))
            assert manifest["shard"] == [i, n] and not (d / "results.json").exists()
        from cytoreg.engine.distributed import merge

        merged = merge(dirs, tmp_path / f"{tasks[0]}-merged")
        _same(merged, run(tasks, models, tmp_path / f"{tasks[0]}-one"))
        with pytest.raises(CytoregError, match=f"shard\\(s\\) {n - 1}/{n} missing"):
            merge(dirs[:-1], tmp_path / "partial")


def test_shard_assignment_depends_on_the_id_only():
    ids = [f"class{i % 7}/img_{i}.jpg" for i in range(2000)]
    for n in (2, 3, 8):
        counts = [sum(1 for x in ids if shard_of(x, n) == k) for k in range(n)]
        assert sum(counts) == len(ids) and min(counts) > 0.8 * len(ids) / n  # balanced
    assert [shard_of(x, 4) for x in ids] == [shard_of(x, 4) for x in ids]  # no process-dependent hashing


def test_mismatched_shards_and_bad_shard_strings_are_refused(specs, tmp_path):
    from cytoreg.engine.distributed import merge, parse_shard

    evaluate(EvalConfig(["small"], ["random"], output=tmp_path / "a", include=[str(specs)], progress=False, shard=(0, 2)))
    evaluate(EvalConfig(["small"], ["random"], output=tmp_path / "b", include=[str(specs)], progress=False, shard=(1, 2),
                        seed=5))
    with pytest.raises(CytoregError, match="different seed"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    with pytest.raises(CytoregError, match="write it as I/N"):
        parse_shard("1-2")
    with pytest.raises(CytoregError, match="between 0 and N-1"):
        parse_shard("2/2")
