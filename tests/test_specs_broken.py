"""A corpus of broken specs: each must produce an error naming the file, the JSON path and the fix."""
import pytest

from cytoreg.registry.catalog import Catalog

GOOD_TASK = """\
spec: task/v1
name: {name}
kind: classification
data:
  source: imagefolder
  root: /tmp
labels: [Alpha, Beta]
"""

GOOD_MODEL = """\
spec: model/v1
name: {name}
adapter: random
"""


CASES = [
    # (id, files {name: text}, file that must be named, fragments expected in that message)
    ("wrong-type-labels", {"a.yaml": GOOD_TASK.format(name="a").replace("labels: [Alpha, Beta]", "labels: Alpha")},
     "a.yaml", ["labels", "is not of type 'array'"]),
    ("missing-kind", {"a.yaml": GOOD_TASK.format(name="a").replace("kind: classification\n", "")},
     "a.yaml", ["'kind' is required"]),
    ("missing-data-source", {"a.yaml": GOOD_TASK.format(name="a").replace("  source: imagefolder\n", "")},
     "a.yaml", ["data", "'source' is required"]),
    ("unknown-top-key", {"a.yaml": GOOD_TASK.format(name="a") + "lables: [x]\n"},
     "a.yaml", ["lables", "unknown key", "did you mean 'labels'"]),
    ("unknown-nested-key", {"a.yaml": GOOD_TASK.format(name="a") + "sampling:\n  test_per_clas: 5\n"},
     "a.yaml", ["sampling.test_per_clas", "did you mean 'test_per_class'"]),
    ("duplicate-yaml-key", {"a.yaml": GOOD_TASK.format(name="a") + "labels: [Gamma, Delta]\n"},
     "a.yaml", ["duplicate key 'labels'", "first defined on line"]),
    ("duplicate-json-key", {"a.json": '{"spec": "model/v1", "name": "m", "adapter": "random", "adapter": "prior"}'},
     "a.json", ["duplicate key 'adapter'"]),
    ("negative-sample-size", {"a.yaml": GOOD_TASK.format(name="a") + "sampling:\n  test_per_class: -1\n"},
     "a.yaml", ["sampling.test_per_class", "-1"]),
    ("bad-extends-name", {"a.yaml": GOOD_TASK.format(name="a") + "extends: acevdo\n"},
     "a.yaml", ["extends", "unknown task spec 'acevdo'", "did you mean 'acevedo'"]),
    ("bad-extends-file", {"a.yaml": GOOD_TASK.format(name="a") + "extends: ./nope.yaml\n"},
     "a.yaml", ["extends", "nope.yaml", "not found"]),
    ("extends-cycle", {"a.yaml": GOOD_TASK.format(name="a") + "extends: b\n",
                       "b.yaml": GOOD_TASK.format(name="b") + "extends: a\n"},
     "a.yaml", ["cycle"]),
    ("unknown-metric", {"a.yaml": GOOD_TASK.format(name="a") + "metrics: [acuracy]\n"},
     "a.yaml", ["metrics[0]", "unknown metric 'acuracy'", "did you mean 'accuracy'"]),
    ("unknown-model-adapter", {"m.yaml": GOOD_MODEL.format(name="m").replace("adapter: random", "adapter: opnai")},
     "m.yaml", ["adapter", "unknown model adapter 'opnai'", "did you mean 'openai'"]),
    ("unknown-task-kind", {"a.yaml": GOOD_TASK.format(name="a").replace("kind: classification", "kind: clasification")},
     "a.yaml", ["kind", "unknown task kind 'clasification'", "did you mean 'classification'"]),
    ("unknown-source", {"a.yaml": GOOD_TASK.format(name="a").replace("source: imagefolder", "source: imagefoldr")},
     "a.yaml", ["data.source", "unknown data source 'imagefoldr'"]),
    ("label-map-to-unknown-label", {"a.yaml": GOOD_TASK.format(name="a").replace(
        "  root: /tmp\n", "  root: /tmp\n  label_map: {A: Alpha, B: Betta}\n")},
     "a.yaml", ["data.label_map.B", "'Betta' is not one of the task's labels", "did you mean 'Beta'"]),
    ("empty-label-set", {"a.yaml": GOOD_TASK.format(name="a").replace("labels: [Alpha, Beta]", "labels: []")},
     "a.yaml", ["labels", "needs at least 2 item(s), got 0"]),
    ("duplicate-labels", {"a.yaml": GOOD_TASK.format(name="a").replace("[Alpha, Beta]", "[Alpha, Beta, Alpha]")},
     "a.yaml", ["labels[2]", "duplicate label 'Alpha'"]),
    ("alias-of-unknown-label", {"a.yaml": GOOD_TASK.format(name="a") + "aliases: {Gamma: [g]}\n"},
     "a.yaml", ["aliases.Gamma", "not one of the task's labels"]),
    ("alias-equal-to-other-label", {"a.yaml": GOOD_TASK.format(name="a") + "aliases: {Alpha: [Beta]}\n"},
     "a.yaml", ["aliases.Alpha[0]", "is itself another label"]),
    ("clip-template-without-placeholder", {"a.yaml": GOOD_TASK.format(name="a") +
                                          "prompts:\n  clip:\n    templates: ['an image of a cell']\n"},
     "a.yaml", ["prompts.clip.templates[0]", "{label}"]),
    ("few-shot-without-prompt", {"a.yaml": GOOD_TASK.format(name="a") + "settings: [few_shot]\n"},
     "a.yaml", ["settings", "needs prompts.few_shot"]),
    ("unknown-spec-version", {"a.yaml": GOOD_TASK.format(name="a").replace("task/v1", "task/v9")},
     "a.yaml", ["spec", "not a known spec type"]),
    ("not-a-mapping", {"a.yaml": "- just\n- a list\n"}, "a.yaml", ["must contain one mapping"]),
    ("yaml-syntax", {"a.yaml": "spec: task/v1\nname: [unclosed\n"}, "a.yaml", ["invalid YAML"]),
    ("duplicate-name-across-files", {"a.yaml": GOOD_TASK.format(name="same"), "b.yaml": GOOD_TASK.format(name="same")},
     "b.yaml", ["task 'same' is already defined in", "a.yaml"]),
    ("duplicate-builtin-name", {"a.yaml": GOOD_TASK.format(name="demo")},
     "a.yaml", ["task 'demo' is already defined in", "demo.yaml", "built-in"]),
    ("unset-env-var", {"a.yaml": GOOD_TASK.format(name="a").replace("root: /tmp", "root: ${CYTOREG_TEST_UNSET_VAR}/x")},
     "a.yaml", ["data.root", "CYTOREG_TEST_UNSET_VAR is not set"]),
    ("bad-model-params", {"m.yaml": "spec: model/v1\nname: m\nadapter: openai\nparams: {modell: gpt}\n"},
     "m.yaml", ["params", "'model' is a required property"]),
    ("bad-source-option", {"a.yaml": GOOD_TASK.format(name="a").replace("  root: /tmp\n", "  root: /tmp\n  label_fro: folder\n")},
     "a.yaml", ["data.label_fro", "did you mean 'label_from'"]),
    ("bad-generation-type", {"m.yaml": GOOD_MODEL.format(name="m") + "generation: {temperature: hot}\n"},
     "m.yaml", ["generation.temperature", "is not of type 'number'"]),
    ("primary-metric-not-listed", {"a.yaml": GOOD_TASK.format(name="a") + "metrics: [accuracy]\nprimary_metric: f1_weighted\n"},
     "a.yaml", ["primary_metric", "not listed in metrics"]),
]


@pytest.mark.parametrize("case_id,files,named,fragments", CASES, ids=[c[0] for c in CASES])
def test_broken_spec_reports_file_path_and_fix(tmp_path, monkeypatch, case_id, files, named, fragments):
    monkeypatch.delenv("CYTOREG_TEST_UNSET_VAR", raising=False)
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
    cat = Catalog.load([tmp_path], strict=False)
    matching = [p for p in cat.problems if named in p and all(f in p for f in fragments)]
    assert matching, f"no problem names {named} with {fragments}; got:\n" + "\n".join(cat.problems)


def test_corpus_is_large_enough():
    assert len(CASES) >= 20


def test_validate_lists_every_error_and_exits_1(tmp_path, capsys):
    from cytoreg.cli import main

    (tmp_path / "a.yaml").write_text(GOOD_TASK.format(name="a") + "lables: [x]\n")
    (tmp_path / "m.yaml").write_text(GOOD_MODEL.format(name="m").replace("random", "rando"))
    (tmp_path / "ok.yaml").write_text(GOOD_MODEL.format(name="fine"))
    code = main(["validate", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "a.yaml" in out and "lables" in out
    assert "m.yaml" in out and "rando" in out
    assert "2 problem(s)" in out


def test_validate_ok(tmp_path, capsys):
    from cytoreg.cli import main

    (tmp_path / "t.yaml").write_text(GOOD_TASK.format(name="okay"))
    assert main(["validate", str(tmp_path / "t.yaml")]) == 0
    assert "1 spec file(s) valid" in capsys.readouterr().out
