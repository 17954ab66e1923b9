"""Every field of the task and model JSON Schemas is honoured or gone: no accepted-and-ignored keys.

``EVIDENCE`` maps each field path of ``registry/schemas/*.schema.json`` to what shows its effect:
``DOC`` (documentation: printed by ``cytoreg show``, recorded where noted, in no cache key — proven
below), ``DIRECT`` (a variant of a spec with only that field changed behaves differently, checked
in this file), or an existing test (``file::test``) that exercises it. A new schema field without
an entry fails ``test_every_schema_field_has_evidence``; so does an entry for a removed field."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

from cytoreg.registry.builtins import ADAPTERS, TASK_KINDS
from cytoreg.registry.catalog import Catalog

TESTS = Path(__file__).parent
SCHEMAS = TESTS.parent / "src/cytoreg/registry/schemas"
DOC, DIRECT = "DOC", "DIRECT"

MODEL = {
    "spec": "test_specs_broken.py::test_broken_spec_reports_file_path_and_fix",
    "name": "test_plugins_cli.py::test_unknown_names_suggest",
    "extends": DIRECT, "adapter": DIRECT, "params": DIRECT, "trust_remote_code": DIRECT, "cache_key": DIRECT,
    "description": DOC, "license": DOC, "homepage": DOC, "notes": DOC, "tags": DOC,
    "generation": DIRECT, "generation.temperature": DIRECT, "generation.max_tokens": DIRECT,
    "generation.top_p": DIRECT, "generation.top_k": DIRECT, "generation.seed": DIRECT, "generation.tries": DIRECT,
    "execution": DIRECT, "execution.batch_size": DIRECT, "execution.workers": DIRECT,
    "execution.concurrency": "test_engine.py::test_concurrency_cap_is_respected",
    "execution.max_retries": DIRECT, "execution.initial_backoff": DIRECT, "execution.max_backoff": DIRECT,
    "execution.timeout": DIRECT,
    "execution.circuit_breaker": "test_trust.py::test_circuit_breaker_stops_after_k_consecutive_failures_of_one_kind",
    # leaderboard metadata: recorded in results.json (models.<m>.meta) and shown in the model table
    "parameters": DIRECT, "open_weights": DIRECT, "release": DIRECT, "price": DIRECT,
    "price.input_per_mtok": DIRECT, "price.output_per_mtok": DIRECT, "price.currency": DIRECT, "price.as_of": DIRECT,
    "gated": "test_models_check.py::test_gated_and_missing_say_where_to_accept_the_licence",
    "memory": DOC,  # documentation of the weights' size, printed by `cytoreg show`
    # cytoreg finetune (merged from main)
    "finetune": "test_finetune.py::test_openai_route_files_jobs_eval_and_resume", "finetune.base": "test_finetune.py::test_openai_route_files_jobs_eval_and_resume", "finetune.epochs": "test_finetune.py::test_openai_route_files_jobs_eval_and_resume",
    "finetune.seed": "test_finetune.py::test_openai_route_files_jobs_eval_and_resume", "finetune.poll_interval": "test_finetune.py::test_openai_route_files_jobs_eval_and_resume",
    "finetune.max_poll_interval": "test_finetune.py::test_openai_route_files_jobs_eval_and_resume",
    "finetune.validation": "test_finetune.py::test_validation_file_is_uploaded_once_and_sent_with_every_job",
    "finetune.batch_size": DIRECT, "finetune.learning_rate_multiplier": DIRECT, "finetune.suffix": DIRECT,
    "finetune.price_per_million_tokens": DIRECT,
    "finetune.lora": "test_finetune_lora.py::test_lora_trains_saves_and_evaluates_with_the_adapter", "finetune.lora.r": "test_finetune_lora.py::test_lora_trains_saves_and_evaluates_with_the_adapter", "finetune.lora.alpha": "test_finetune_lora.py::test_lora_trains_saves_and_evaluates_with_the_adapter",
    "finetune.lora.learning_rate": "test_finetune_lora.py::test_lora_trains_saves_and_evaluates_with_the_adapter", "finetune.lora.max_steps": "test_finetune_lora.py::test_lora_trains_saves_and_evaluates_with_the_adapter",
    "finetune.lora.dropout": DIRECT, "finetune.lora.target_modules": DIRECT,
    "finetune.lora.gradient_accumulation_steps": DIRECT,
}

TASK = {
    "spec": "test_specs_broken.py::test_broken_spec_reports_file_path_and_fix",
    "name": "test_plugins_cli.py::test_unknown_names_suggest",
    "extends": DIRECT,
    "kind": "test_suite.py::test_list_tasks_shows_the_suite_with_kinds",
    "description": DOC, "citation": DOC, "license": DOC, "homepage": DOC, "download_url": DOC, "layout": DOC,
    "tags": DOC,
    "data": "test_data.py::test_manifest_source_keeps_metadata_and_maps_labels",
    "data.source": "test_data.py::test_npz_source_on_bloodmnist",
    "data.root": "test_data.py::test_missing_dataset_error_says_where_and_how",
    "labels": "test_data.py::test_demo_labels_counts_and_exclusions",
    "aliases": DIRECT,
    "sampling": DIRECT, "sampling.seed": DIRECT, "sampling.test_per_class": DIRECT,
    "sampling.fewshot_per_class": DIRECT, "sampling.train_per_class": DIRECT, "sampling.val_per_class": DIRECT,
    "sampling.order": DIRECT,
    "settings": DIRECT,
    "prompts": DIRECT, "prompts.zero_shot": DIRECT, "prompts.system": DIRECT, "prompts.few_shot": DIRECT,
    "prompts.few_shot.example": DIRECT, "prompts.few_shot.rewrites": DIRECT, "prompts.few_shot.text_position": DIRECT,
    "prompts.clip": DIRECT, "prompts.clip.templates": DIRECT, "prompts.clip.classnames": DIRECT,
    "prompts.source": DOC,
    "prompts.mcq": "test_suite.py::test_nejm_prompt_and_answer_extraction",
    "prompts.mcq.case": "test_suite.py::test_nejm_prompt_and_answer_extraction",
    "prompts.mcq.option": "test_suite.py::test_nejm_prompt_and_answer_extraction",
    "prompts.mcq.example_answer": "test_suite.py::test_nejm_prompt_and_answer_extraction",
    "prompts.mcq.system": "test_suite.py::test_nejm_prompt_and_answer_extraction",
    "prompts.mcq.shots": "test_suite.py::test_nejm_loader_orders_by_date_and_fixes_the_two_oldest_shots",
    "prompts.mcq.n_options": "test_suite.py::test_nejm_loader_orders_by_date_and_fixes_the_two_oldest_shots",
    "prompts.mcq.difficulty_bins": "test_suite.py::test_nejm_prompt_and_answer_extraction",
    "prompts.judge": "test_judge.py::test_judge_maps_only_unparsed_replies_and_is_cached",
    "prompts.explain_features": "test_explain.py::test_explain_run_end_to_end",
    "prompts.explain_text": "test_explain.py::test_explain_run_end_to_end",
    "prompts.confidence_judge": DIRECT,
    "metrics": DIRECT,
    "primary_metric": DIRECT,
    "statistics": DIRECT, "statistics.seed": DIRECT, "statistics.bootstrap": DIRECT,
    "statistics.confidence": DIRECT, "statistics.folds": DIRECT, "statistics.paired_bootstrap": DIRECT,
    # reference: copied into results.json; values / metric / random_f1_weighted are leaderboard columns
    "reference": "test_leaderboard.py::test_markdown_and_csv_equal_results_json",
    "reference.source": DOC, "reference.notes": DOC,
    "reference.metric": "test_leaderboard.py::test_markdown_and_csv_equal_results_json",
    "reference.values": "test_leaderboard.py::test_markdown_and_csv_equal_results_json",
    "reference.random_f1_weighted": "test_suite.py::test_random_baseline_matches_the_paper",
    "reference.published_counts": "test_suite.py::test_random_baseline_matches_the_paper",
    "attributes": "test_suite.py::test_wbcatt_views_share_images_and_score_their_column",
    "attributes.*.labels": "test_suite.py::test_wbcatt_views_share_images_and_score_their_column",
    "attributes.*.zero_shot": "test_suite.py::test_prompts_are_byte_exact_seed_strings",
    "attributes.*.clip_prefix": DIRECT, "attributes.*.aliases": DIRECT, "attributes.*.judge": DIRECT,
    "hierarchy": "test_suite.py::test_hierarchy_metrics_by_hand",
    "hierarchy.levels": "test_suite.py::test_hierarchy_metrics_by_hand",
    "hierarchy.parents": "test_suite.py::test_hierarchy_metrics_by_hand",
    "probe": "test_probes.py::test_probe_metrics_equal_an_independent_sklearn_probe",
    "probe.method": "test_probes.py::test_curves_mlp_head_and_layers",
    "probe.C": DIRECT, "probe.max_iter": DIRECT, "probe.standardize": DIRECT, "probe.seed": DIRECT,
    "probe.n_per_class": "test_probes.py::test_curves_mlp_head_and_layers",
    "probe.fractions": "test_probes.py::test_curves_mlp_head_and_layers",
    "probe.repeats": "test_probes.py::test_curves_mlp_head_and_layers",
    "probe.curve_metrics": DIRECT,
    "probe.mlp": "test_probes.py::test_curves_mlp_head_and_layers",
    "probe.mlp.hidden": DIRECT, "probe.mlp.epochs": DIRECT, "probe.mlp.lr": DIRECT, "probe.mlp.weight_decay": DIRECT,
    "probe.mlp.batch_size": DIRECT, "probe.mlp.patience": "test_probes.py::test_curves_mlp_head_and_layers",
    "probe.mlp.dropout": DIRECT,
    "test_sets": "test_probes.py::test_external_test_set_view_trains_on_the_task_data",
    "test_sets.*.description": DOC,
    "test_sets.*.data": "test_probes.py::test_external_test_set_view_trains_on_the_task_data",
    "test_sets.*.data.source": "test_probes.py::test_external_test_set_view_trains_on_the_task_data",
    "test_sets.*.sampling": "test_probes.py::test_external_test_set_view_trains_on_the_task_data",
    # a test set's sampling is drawn by the same sampling.draw as the task's (proven DIRECT above)
    "test_sets.*.sampling.seed": "test_probes.py::test_external_test_set_view_trains_on_the_task_data",
    "test_sets.*.sampling.test_per_class": "test_probes.py::test_external_test_set_view_trains_on_the_task_data",
    "test_sets.*.sampling.fewshot_per_class": DIRECT, "test_sets.*.sampling.train_per_class": DIRECT,
    "test_sets.*.sampling.val_per_class": DIRECT, "test_sets.*.sampling.order": DIRECT,
    "explain": "test_explain.py::test_explain_run_end_to_end",
    "explain.features": "test_explain.py::test_explain_run_end_to_end",
    "findings": "test_probes.py::test_padchest_findings_become_binary_views_with_a_mean_auc",
    "redistributable": "test_report_browser.py::test_task_that_may_not_be_redistributed_gets_no_image_copies",
    "on_unknown_label": "test_broken_data.py::test_every_row_has_one_fate_and_bad_images_are_error_records",
    "domain": DIRECT,
    # cytoreg data fetch / verify (merged from main)
    "download": "test_datahub.py::test_fetch_resumes_after_a_dropped_connection_and_installs_the_layout",
    "download.dest": "test_datahub.py::test_fetch_resumes_after_a_dropped_connection_and_installs_the_layout",
    "download.files": "test_datahub.py::test_fetch_resumes_after_a_dropped_connection_and_installs_the_layout",
    "download.manual": "test_datahub.py::test_manual_sources_print_the_steps",
    "download.note": DOC,  # printed by `cytoreg data fetch` (cli/data_cmd.py)
    "download.splits": "test_datahub.py::test_verify_counts_every_published_split_of_a_manifest_task",
    # cytoreg data fetch --from hf
    "download.hf_mirror": "test_hf_mirror.py::test_a_mirrored_published_file_is_fetched_verified_and_evaluated",
    "download.hf_mirror.repo": "test_hf_mirror.py::test_a_mirrored_published_file_is_fetched_verified_and_evaluated",
    "download.hf_mirror.revision": "test_hf_mirror.py::test_a_mirrored_published_file_is_fetched_verified_and_evaluated",
    "download.hf_mirror.source": DOC,  # where the mirror's layout was confirmed (the spec's own record)
    "download.hf_mirror.files": "test_hf_mirror.py::test_a_mirror_file_with_the_wrong_md5_is_refused",
    "download.hf_mirror.parquet": "test_hf_mirror.py::test_parquet_mirror_is_laid_out_by_classlabel_names_then_verified_and_evaluated",
    "download.hf_mirror.parquet.splits": "test_hf_mirror.py::test_a_count_that_differs_from_the_published_one_installs_nothing",
    "download.hf_mirror.parquet.image_column": "test_hf_mirror.py::test_parquet_mirror_is_laid_out_by_classlabel_names_then_verified_and_evaluated",
    "download.hf_mirror.parquet.label_column": "test_hf_mirror.py::test_parquet_mirror_is_laid_out_by_classlabel_names_then_verified_and_evaluated",
    "download.hf_mirror.parquet.label_names": "test_hf_mirror.py::test_label_map_null_leaves_a_class_out_and_names_without_classlabel_are_asked_for",
    "download.hf_mirror.parquet.label_map": "test_hf_mirror.py::test_an_unmapped_label_name_installs_nothing",
    "download.hf_mirror.parquet.creates": "test_hf_mirror.py::test_parquet_mirror_is_laid_out_by_classlabel_names_then_verified_and_evaluated",
    "reference.published_split_sizes": "test_datahub.py::test_verify_counts_every_published_split_of_a_manifest_task",
    "statistics.ci": "test_metrics.py::test_task_spec_chooses_bca_intervals",
}


def schema_fields(schema: dict) -> list[str]:
    out: list[str] = []

    def walk(node: dict, path: str) -> None:
        for key, sub in (node.get("properties") or {}).items():
            p = f"{path}.{key}" if path else key
            out.append(p)
            walk(sub, p)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("properties"):
            walk(extra, f"{path}.*")

    walk(schema, "")
    return out


def test_every_schema_field_has_evidence():
    for name, table in (("model", MODEL), ("task", TASK)):
        fields = schema_fields(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))
        assert sorted(set(fields) - set(table)) == [], f"{name} schema fields without evidence"
        assert sorted(set(table) - set(fields)) == [], f"{name} evidence for fields the schema no longer has"
    defined = {}
    for f in TESTS.glob("test_*.py"):
        defined[f.name] = {n.name for n in ast.parse(f.read_text()).body if isinstance(n, ast.FunctionDef)}
    for where in list(MODEL.values()) + list(TASK.values()):
        if where in (DOC, DIRECT):
            continue
        file, test = where.split("::")
        assert test in defined.get(file, set()), f"{where} does not exist"


def test_removed_fields_are_refused(tmp_path):
    """sampling.split (ignored by every source; the split a source reads is data.split) and the
    explain review sizes (the review command's --per-class/--seed) were accepted and ignored."""
    from cytoreg.errors import SpecError

    for text, key in (("sampling: {split: train}", "sampling.split"),
                      ("test_sets: {x: {data: {source: npz}, sampling: {split: val}}}", "split"),
                      ("explain: {features: [a], review_seed: 3}", "explain.review_seed")):
        d = tmp_path / key
        d.mkdir()
        (d / "t.yaml").write_text(f"spec: task/v1\nname: t\nextends: demo\n{text}\n")
        with pytest.raises(SpecError, match=f"unknown key '{key.split('.')[-1]}'"):
            Catalog.load([d])


# -- models ------------------------------------------------------------------------------------------

def _model(tmp_path: Path, text: str, name: str = "m"):
    d = tmp_path / f"specs-{abs(hash(text))}"
    d.mkdir(exist_ok=True)
    (d / f"{name}.yaml").write_text(f"spec: model/v1\nname: {name}\n{text}")
    spec = Catalog.load([d]).model(name)
    return ADAPTERS.get(spec.get("adapter"))(spec)


BASE = "adapter: openai\nparams: {model: gpt-x, base_url: 'http://127.0.0.1:9/v1'}\n"


def _request(adapter):
    from cytoreg.engine.runner import generator_items

    cat = Catalog.load()
    spec = cat.task("demo")
    kind = TASK_KINDS.get("classification")(spec)
    prep = kind.prepare(limit=1)
    items, tries = generator_items(kind, prep, adapter, "zero_shot")
    return [k for *_, k in items], tries, items[0][2]


def test_documentation_fields_change_no_cache_identity_and_are_shown(tmp_path, capsys):
    from cytoreg.cli import main

    plain = _model(tmp_path, BASE).fingerprint()
    doc = _model(tmp_path, BASE + "description: d\nlicense: MIT\nhomepage: https://x\nnotes: n\ntags: [a]\n")
    assert doc.fingerprint() == plain
    d = tmp_path / "shown"
    d.mkdir()
    (d / "m.yaml").write_text("spec: model/v1\nname: m\n" + BASE + "description: DESC-1\nlicense: LIC-2\n"
                              "homepage: https://home-3\nnotes: NOTE-4\ntags: [TAG-5]\n")
    assert main(["show", "m", "--include", str(d)]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("DESC-1", "LIC-2", "https://home-3", "NOTE-4", "TAG-5"))
    t = tmp_path / "task-shown"
    t.mkdir()
    (t / "t.yaml").write_text("spec: task/v1\nname: t\nextends: demo\ndescription: TD-1\ncitation: TC-2\n"
                              "license: TL-3\nhomepage: https://th-4\ndownload_url: https://tu-5\nlayout: TY-6\n"
                              "tags: [TT-7]\nprompts: {source: TS-8}\nreference: {source: RS-9, notes: RN-10}\n")
    assert main(["show", "t", "--include", str(t)]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("TD-1", "TC-2", "TL-3", "https://th-4", "https://tu-5", "TY-6", "TT-7", "TS-8",
                                  "RS-9", "RN-10"))


def test_model_identity_fields_change_the_cache_key(tmp_path):
    base = _model(tmp_path, BASE)
    keys, _, _ = _request(base)
    for text in ("cache_key: v2\n", "params: {model: gpt-y, base_url: 'http://127.0.0.1:9/v1'}\n"):
        other = _model(tmp_path, BASE.replace("params: {model: gpt-x, base_url: 'http://127.0.0.1:9/v1'}\n", "")
                       + text if text.startswith("params") else BASE + text)
        assert _request(other)[0] != keys, text
    # trust_remote_code: part of the identity where an adapter can run remote code; refused elsewhere
    hf = "adapter: hf\nparams: {model: org/some-vlm}\n"
    assert _model(tmp_path, hf).fingerprint() != _model(tmp_path, hf + "trust_remote_code: true\n").fingerprint()
    from cytoreg.errors import SpecError

    with pytest.raises(SpecError, match="never runs remote code"):
        _model(tmp_path, BASE + "trust_remote_code: true\n")
    # adapter: the same params under another adapter are another model
    gem = _model(tmp_path, "adapter: gemini\nparams: {model: gpt-x, base_url: 'http://127.0.0.1:9/v1'}\n")
    assert gem.fingerprint() != base.fingerprint()
    # extends: a child inherits what it does not override
    d = tmp_path / "ext"
    d.mkdir()
    (d / "p.yaml").write_text("spec: model/v1\nname: parent\n" + BASE + "generation: {temperature: 0.3}\n")
    (d / "c.yaml").write_text("spec: model/v1\nname: child\nextends: parent\nexecution: {concurrency: 3}\n")
    child = Catalog.load([d]).model("child")
    assert child.get("generation") == {"temperature": 0.3} and child.get("params")["model"] == "gpt-x"


@pytest.mark.parametrize("gen", ["temperature: 0.7", "max_tokens: 9", "top_p: 0.5", "top_k: 4", "seed: 11",
                                 "tries: 3"])
def test_generation_fields_change_the_request_and_its_key(tmp_path, gen):
    base_keys, base_tries, base_req = _request(_model(tmp_path, BASE))
    adapter = _model(tmp_path, BASE + f"generation: {{{gen}}}\n")
    keys, tries, req = _request(adapter)
    field, value = gen.split(": ")
    if field == "tries":
        assert tries == 3 and len(keys) == 3 * len(base_keys) and base_tries == 1
        return
    assert keys != base_keys and req.generation == {field: type(req.generation[field])(value)}
    sent = {}

    class Completions:
        def create(self, **kw):
            sent.update(kw)
            raise LookupError("recorded")

    adapter._client = type("Client", (), {"chat": type("Chat", (), {"completions": Completions()})()})()
    with pytest.raises(LookupError):
        adapter.generate(req)
    if field == "top_k":  # not an OpenAI parameter: sent in extra_body to servers that take it
        assert sent["extra_body"] == {"top_k": 4}
    else:
        assert sent[field] == req.generation[field]


def test_execution_fields_reach_the_executor_and_the_client(tmp_path):
    a = _model(tmp_path, BASE + "execution: {batch_size: 5, workers: 2, concurrency: 3, max_retries: 1, "
                                "initial_backoff: 0.25, max_backoff: 7, timeout: 12, circuit_breaker: 4}\n")
    assert (a.batch_size, a.workers, a.concurrency, a.max_retries, a.initial_backoff, a.max_backoff) == \
        (5, 2, 3, 1, 0.25, 7.0)
    a.load()
    assert a._client.timeout == 12.0
    from cytoreg.engine.breaker import breaker_for

    assert breaker_for(a).threshold == 4
    # the retry loop uses max_retries / backoffs: one retry, delays from initial_backoff capped at max_backoff
    from cytoreg.engine.execute import CallStats, call_with_retries
    from cytoreg.models.base import TransientError

    delays = []

    def fail():
        raise TransientError("HTTP 500: x", None, 500)

    r = call_with_retries(fail, max_retries=a.max_retries, initial=a.initial_backoff, maximum=a.max_backoff,
                          stats=CallStats(), sleep=delays.append)
    assert r.attempts == 2 and len(delays) == 1 and 0.125 <= delays[0] <= 0.25
    call_with_retries(fail, max_retries=6, initial=4.0, maximum=a.max_backoff, stats=CallStats(), sleep=delays.append)
    assert max(delays) <= 7.0
    # batch_size and workers drive the image loader of local models (the DataLoader it builds)
    from cytoreg.engine.embed import image_loader

    clip = _model(tmp_path, "extends: clip-vit-b32\nexecution: {batch_size: 5, workers: 2}\n", name="c")
    loader = image_loader(clip, [], [])
    assert loader.batch_size == 5 and loader.num_workers == 2


# -- tasks -------------------------------------------------------------------------------------------

PROBE_REPLIES = ["Lymphocyte", "a lympho cell", "Answer: Monocyte", "cellule X"]


def _task(tmp_path: Path, text: str, base: str = "demo"):
    d = tmp_path / f"t-{abs(hash(text))}"
    d.mkdir(exist_ok=True)
    (d / "t.yaml").write_text(f"spec: task/v1\nname: t\nextends: {base}\n{text}\n")
    spec = Catalog.load([d]).task("t")
    return TASK_KINDS.get(spec.get("kind"))(spec)


def observe(kind) -> dict:
    """What a classification task does with its spec: the draw, the requests, CLIP prompts,
    settings, metrics, answer extraction."""
    prep = kind.prepare()
    fewshot = kind.fewshot_examples(prep)
    out = {"ids": prep.split.ids(), "settings": kind.settings_for("generator"), "metrics": kind.metric_names(),
           "extract": [kind.extractor().extract(t).label for t in PROBE_REPLIES],
           "clip": kind.class_prompts() if "clip" in kind.prompts else None}
    for setting in out["settings"]:
        if setting == "few_shot" and not fewshot:
            continue
        req = kind.chat_request(prep.test[0], setting, fewshot, {}, 0)
        out[setting] = [(m.role, [getattr(p, "text", None) or p.sha for p in m.parts]) for m in req.messages]
    return out


TASK_VARIANTS = {
    "sampling.seed": "sampling: {seed: 7}",
    "sampling.test_per_class": "sampling: {test_per_class: 3}",
    "sampling.fewshot_per_class": "sampling: {fewshot_per_class: 2}",
    "sampling.train_per_class": "sampling: {train_per_class: 2}",
    "sampling.val_per_class": "sampling: {val_per_class: 2}",
    "sampling.order": "sampling: {order: [test, fewshot], test_per_class: 5}",
    "settings": "settings: [zero_shot]",
    "aliases": "aliases: {Lymphocyte: [lympho cell]}",
    "prompts.zero_shot": "prompts: {zero_shot: 'Which cell?'}",
    "prompts.system": "prompts: {system: 'You are a haematologist.'}",
    "prompts.few_shot.example": "prompts: {few_shot: {example: 'Here: {label}'}}",
    "prompts.few_shot.rewrites": "prompts: {few_shot: {example: 'This is {label}', rewrites: [[Consider, Look at]]}}",
    "prompts.few_shot.text_position": "prompts: {few_shot: {example: 'This is {label}', text_position: after_image}}",
    "prompts.clip.templates": "prompts: {clip: {templates: ['a {label}']}}",
    "prompts.clip.classnames": "prompts: {clip: {templates: ['a {label}'], classnames: {Lymphocyte: [lympho]}}}",
    "metrics": "metrics: [accuracy, f1_weighted]",
}


def test_task_fields_change_what_the_task_does(tmp_path):
    base = observe(_task(tmp_path, "prompts: {clip: {templates: ['a {label}']}}"))
    plain = observe(_task(tmp_path, ""))
    for field, text in TASK_VARIANTS.items():
        ref = base if field == "prompts.clip.classnames" else plain
        assert observe(_task(tmp_path, text)) != ref, f"{field} changed nothing"
    # extends: a child that overrides nothing behaves as its parent
    assert observe(TASK_KINDS.get("classification")(Catalog.load().task("demo"))) == plain


def test_test_set_sampling_uses_the_same_draw(tmp_path):
    """A probe test set's sampling block goes through the same sampling.draw as the task's."""
    from cytoreg.tasks import sampling
    from cytoreg.tasks.samples import Sample

    rows = [Sample(id=f"{c}{i}", label=c, image=None) for c in "ab" for i in range(10)]
    base = sampling.draw(rows, ["a", "b"], {"test_per_class": 3})
    for extra in ({"fewshot_per_class": 1}, {"train_per_class": 2}, {"val_per_class": 2},
                  {"order": ["train", "test"], "train_per_class": 8}):
        assert sampling.draw(rows, ["a", "b"], {"test_per_class": 3, **extra}).ids() != base.ids(), extra


def test_attribute_fields_reach_their_views(tmp_path):
    base = TASK_KINDS.get("attributes")(Catalog.load().task("wbcatt"))
    views = {s.name: k for s, k in base.expand()}
    attr = next(iter(base.spec.get("attributes")))
    v = views[f"wbcatt.{attr}"]
    assert v.class_prompts()[0][0].startswith(base.spec.get("attributes")[attr].get("clip_prefix", "")[:5])
    d = tmp_path / "w"
    d.mkdir()
    labels = base.spec.get("attributes")[attr]["labels"]
    (d / "w.yaml").write_text(
        "spec: task/v1\nname: w\nextends: wbcatt\nattributes:\n"
        f"  {attr}: {{labels: {json.dumps(labels)}, zero_shot: 'Q?', clip_prefix: 'PREFIX ', "
        f"aliases: {{{json.dumps(labels[0])}: [zzz-alias]}}, judge: 'JUDGE {{answer}}'}}\n")
    w = TASK_KINDS.get("attributes")(Catalog.load([d]).task("w"))
    wv = {s.name.split(".", 1)[1]: k for s, k in w.expand()}[attr]
    assert wv.class_prompts()[0][0] == f"PREFIX {labels[0]}"
    assert wv.extractor().extract("zzz-alias").label == labels[0]
    assert wv.judge_prompt(None) == "JUDGE {answer}"


def test_confidence_judge_prompt_is_the_one_sent(tmp_path, monkeypatch):
    from cytoreg.engine import judge as judge_mod
    from cytoreg.models.base import Response

    sent = []

    def fake_ask(judge, texts, cache, task, ids, concurrency=None):
        sent.extend(texts)
        return [Response(text="3") for _ in texts]

    monkeypatch.setattr(judge_mod, "ask_judge", fake_ask)
    k = _task(tmp_path, "prompts: {confidence_judge: 'RATE {answer}'}", base="acevedo-explain")
    prep = type("P", (), {"spec": k.spec})()
    records = [{"id": "x", "response": "Lymphocyte. Round nucleus.", "error": None, "parsed": "Lymphocyte"}]
    k.annotate(prep, records, "free_text", object(), None, None)
    assert sent == ["RATE Lymphocyte. Round nucleus."] and records[0]["confidence"] == 3


def test_statistics_and_primary_metric_change_the_numbers(tmp_path):
    from cytoreg.metrics.classification import Predictions
    from cytoreg.report.results import comparisons
    from cytoreg.scoring import EvalConfig, Evaluation, score

    rng = np.random.RandomState(0)
    labels = ["a", "b", "c"]
    y = list(rng.choice(labels, 90))
    pa = [v if rng.rand() < 0.7 else "a" for v in y]
    pb = [v if rng.rand() < 0.5 else "b" for v in y]
    ids = [str(i) for i in range(90)]

    def ev(model, p):
        return Evaluation("t", model, "zero_shot", [{"id": i, "correct": True} for i in ids],
                          Predictions(y, p, labels), None, 0, {}, ids=ids)

    cfg = EvalConfig(["t"], ["a", "b"])
    base = score(ev("a", pa), ["accuracy", "f1_weighted"], {}, cfg)
    for st in ({"seed": 5}, {"bootstrap": 50}, {"confidence": 0.5}, {"folds": 3}):
        assert score(ev("a", pa), ["accuracy", "f1_weighted"], st, cfg) != base, st

    class Prep:
        def __init__(self, data):
            self.spec = type("S", (), {"get": staticmethod(lambda k, d=None: data.get(k, d))})()

    def comp(data):
        return comparisons(cfg, {"t": Prep(data)}, [ev("a", pa), ev("b", pb)])[0]

    base = comp({"statistics": {"paired_bootstrap": 100}})
    assert comp({"statistics": {"paired_bootstrap": 200}})["resamples"] == 200 != base["resamples"]
    assert comp({"statistics": {"paired_bootstrap": 100}, "primary_metric": "accuracy"})["metric"] == "accuracy"
    assert base["metric"] == "f1_weighted"


@pytest.mark.torch
def test_probe_head_fields_change_the_fit():
    pytest.importorskip("torch")
    from cytoreg.tasks import probe_heads

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 5)) * [1, 10, 100, 1, 1]
    y = ["a" if v > 0 else "b" for v in X[:, 0] + rng.normal(scale=0.8, size=60)]
    Xt = rng.normal(size=(20, 5)) * [1, 10, 100, 1, 1]
    labels = ["a", "b"]

    def fit(cfg, seed=0):
        return probe_heads.fit_predict(cfg, X, y, Xt, labels, seed=seed).proba

    base = fit({})
    for cfg in ({"C": 0.01}, {"max_iter": 1}, {"standardize": False}):
        assert not np.allclose(fit(cfg), base), cfg
    mlp = {"method": "mlp", "mlp": {"hidden": 8, "epochs": 3, "batch_size": 16, "lr": 0.01}}
    mbase = fit(mlp)
    assert not np.allclose(fit(mlp, seed=1), mbase)  # probe.seed is the seed the run passes
    for key, value in (("hidden", 0), ("epochs", 6), ("lr", 0.1), ("weight_decay", 5.0), ("batch_size", 4),
                       ("dropout", 0.9)):
        assert not np.allclose(fit({**mlp, "mlp": {**mlp["mlp"], key: value}}), mbase), key
    curves = probe_heads.curve({"curve_metrics": ["accuracy"], "repeats": 2}, X, y, Xt, y[:20], labels, [5],
                               probe_heads.subsample_per_class, lambda yt, yp, pr: {"accuracy": 1.0, "f1": 0.0})
    assert list(curves) == ["accuracy"]


def test_leaderboard_metadata_fields_reach_results_and_the_cost(tmp_path):
    from fake_openai import FakeOpenAI
    from cytoreg.engine.runner import EvalConfig, evaluate
    from cytoreg.report.board import load_runs
    from cytoreg.report.summaries import domain_of, efficiency, model_rows

    with FakeOpenAI() as srv:
        d = tmp_path / "specs"
        d.mkdir()
        (d / "m.yaml").write_text(
            "spec: model/v1\nname: m\nadapter: openai\n"
            f"params: {{model: x, base_url: '{srv.base_url}'}}\nparameters: 7B\nopen_weights: true\n"
            "release: 2024-05\nprice: {input_per_mtok: 2.5, output_per_mtok: 10, currency: EUR, as_of: 2025-01}\n")
        (d / "t.yaml").write_text("spec: task/v1\nname: t\nextends: demo\nsettings: [zero_shot]\n"
                                  "domain: blood-smears\n")
        evaluate(EvalConfig(["t"], ["m"], output=tmp_path / "run", include=[str(d)], progress=False, bootstrap=0,
                            limit=4))
    board = load_runs([tmp_path / "run"])
    row = next(r for r in model_rows(board) if r["model"] == "m")
    assert (row["parameters"], row["open_weights"], row["release"]) == ("7B", True, "2024-05")
    assert row["price"]["as_of"] == "2025-01"
    eff = next(e for e in efficiency(board, {}) if e.model == "m")
    assert (eff.tokens_in, eff.tokens_out) == (40, 12)  # the fake server's usage: 10 in, 3 out per request
    assert eff.cost == pytest.approx((40 * 2.5 + 12 * 10) / 1e6) and eff.currency == "EUR"
    assert domain_of(board, "t") == "blood-smears"


def test_finetune_fields_reach_the_job_and_the_trainer(tmp_path):
    from cytoreg.finetune import lora
    from cytoreg.finetune.data import subsets, training_data
    from cytoreg.finetune.openai_route import plan

    d = tmp_path / "ft"
    d.mkdir()
    (d / "t.yaml").write_text("spec: task/v1\nname: t\nextends: demo\nsettings: [zero_shot]\n"
                              "sampling: {test_per_class: 1, fewshot_per_class: 0, train_per_class: 2, "
                              "order: [test, train]}\n")
    base = "spec: model/v1\nname: {name}\nadapter: openai\nparams: {{model: gpt-4o-2024-08-06}}\n"
    (d / "a.yaml").write_text(base.format(name="a") + "finetune: {epochs: 2}\n")
    (d / "b.yaml").write_text(base.format(name="b") + "finetune: {epochs: 2, batch_size: 3, learning_rate_multiplier: "
                              "0.5, suffix: my-run, price_per_million_tokens: 100}\n")
    (d / "c.yaml").write_text("spec: model/v1\nname: c\nadapter: hf\nparams: {model: org/x}\nfinetune: {batch_size: 2, "
                              "lora: {dropout: 0.2, target_modules: [q_proj], gradient_accumulation_steps: 8}}\n")
    cat = Catalog.load([d])
    task = cat.task("t")
    data = training_data(task, TASK_KINDS.get("classification")(task))
    subs = subsets(data, [1])
    pa, pb = plan(cat.model("a"), data, subs, tmp_path / "a")[0], plan(cat.model("b"), data, subs, tmp_path / "b")[0]
    assert pa.plan.method["supervised"]["hyperparameters"] == {"n_epochs": 2}
    assert pb.plan.method["supervised"]["hyperparameters"] == {"n_epochs": 2, "batch_size": 3,
                                                               "learning_rate_multiplier": 0.5}
    assert pb.plan.suffix == "my-run" and pa.plan.suffix == "t-n1"
    assert pb.cost == pytest.approx(2 * pb.report.tokens * 100 / 1e6) and pb.cost != pa.cost
    cfg = lora.settings(cat.model("c"))
    assert (cfg["dropout"], cfg["target_modules"], cfg["gradient_accumulation_steps"], cfg["batch_size"]) == \
        (0.2, ["q_proj"], 8, 2)
    assert lora.settings(cat.model("a"))["dropout"] == lora.DEFAULTS["dropout"] != 0.2
