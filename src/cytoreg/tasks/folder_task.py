"""Your own images as a task: a folder of class sub-folders, or a CSV of ``path,label``.

``spec_from_folder(path)`` returns the task spec as a plain dict (what ``cytoreg eval --tasks
./my_cells`` runs, and what a command writing the spec for editing should write); ``seed_prompts``
builds seed A's prompt pattern over any label list (the built-in MedMNIST specs use it too).
"""
from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path
from typing import Any

from cytoreg.errors import DataError
from cytoreg.tasks.sources.base import IMAGE_SUFFIXES, is_junk

# seed A's zero-shot and review prompts (marrlab/vlm_cytomorphology_eval @ 79253f5, prompts/prompts.py);
# byte-equal to the acevedo spec's strings for what="white blood cell types" (tests/test_folder_task.py)
_ASK = ("Consider the input image. Take a moment to think. Consider what features do the cells in the image have. "
        "Which of the {what} listed below is shown? \n    Write just the {noun} and nothing else. Choose one of the "
        "possible labels provided below (exactly as written here):\n    ")
_JUDGE = ("Chatbot answered: {{answer}}\nWhich of the classes listed below does the chatbot's answer regarding the "
          "{noun} belong to? Write just the label (exacly as written below) and nothing else:\n    NA (Chatbot is "
          "unsure/ambiguious/doesn't know/no answer provided/class cannot be determined)\n    ")
FEW_SHOT = {"example": "The cell_type in this image is {label}.",
            "rewrites": [["the input image", "this image"], ["input image", "this image"],
                         ["the this image", "this image"]], "text_position": "before_image"}
CLIP_TEMPLATES = ["an image of {label}"]
METRICS = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "invalid_rate", "per_class",
           "confusion_matrix", "auc_macro", "auc_per_class", "ece"]
STATISTICS = {"seed": 0, "bootstrap": 1000, "confidence": 0.95, "folds": 5, "paired_bootstrap": 20000}
# seed A's 50 test images per class and seed 42; the few-shot example is drawn first (a class of 2
# images keeps one), the probe trains on what the test split leaves (see split_rule)
TEST_MAX = 50
#: the built-in probe tasks' default head (seed B's): standardised, seeded logistic regression
PROBE = {"method": "logistic", "C": 1.0, "max_iter": 1000, "seed": 0}
SPEC_FILES = (".yaml", ".yml", ".json")
DATA_FILES = (".csv", ".tsv")
SOURCE_NOTE = "seed A's prompt pattern (marrlab/vlm_cytomorphology_eval @ 79253f5) over this task's labels"


def seed_prompts(labels: list[str], what: str = "cell types", noun: str = "cell type") -> dict[str, Any]:
    """``prompts:`` block in seed A's pattern: the question, the review (judge) prompt, one-shot
    example and the CLIP template."""
    listing = "\n    ".join(labels)
    return {"source": SOURCE_NOTE, "zero_shot": _ASK.format(what=what, noun=noun) + listing,
            "judge": _JUDGE.format(noun=noun) + listing, "few_shot": dict(FEW_SHOT),
            "clip": {"templates": list(CLIP_TEMPLATES)}}


def task_name(path: Path) -> str:
    """A spec name from the folder or file name (lower case, [a-z0-9_.-])."""
    stem = path.stem if path.is_file() else path.name
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")
    return name or "my-task"


def _images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
               and not is_junk(p.relative_to(folder)))


def split_rule(counts: dict[str, int]) -> dict[str, Any]:
    """Per class, seed 42: one few-shot example, then ``test_per_class`` test images (seed A's 50, but at
    most half of what the smallest class has left, so the probe has training images), then every
    remaining image trains the probe. Stratified by construction (sampling draws per class)."""
    test = max(1, min(TEST_MAX, (min(counts.values()) - 1) // 2))
    return {"seed": 42, "fewshot_per_class": 1, "test_per_class": test, "train_per_class": "all",
            "order": ["fewshot", "test", "train"]}


def _from_dirs(root: Path) -> tuple[dict, dict[str, int]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not is_junk(Path(p.name))
                     and not p.name.startswith("."))
    counts = {c: _images(root / c) for c in classes}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"{root}: class folder(s) {', '.join(empty)} hold no images ({', '.join(IMAGE_SUFFIXES)}); "
                        "remove them or add images")
    return {"source": "imagefolder", "root": str(root), "label_from": "folder"}, counts


def _from_csv(path: Path) -> tuple[dict, dict[str, int]]:
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=delim)
        cols = reader.fieldnames or []
        if "path" not in cols or "label" not in cols:
            raise DataError(f"{path}: needs a header with columns 'path' and 'label' (found: {', '.join(cols) or 'none'}); "
                            "paths are relative to the CSV's folder or absolute")
        labels: dict[str, int] = {}
        blank = []
        for row in reader:
            lab, rel = (row.get("label") or "").strip(), (row.get("path") or "").strip()
            if not lab or not rel:
                blank.append(reader.line_num)
            elif (path.parent / rel).is_file():  # a missing file is dropped and counted by the source
                labels[lab] = labels.get(lab, 0) + 1
    if blank:
        raise DataError(f"{path}: line(s) {', '.join(map(str, blank[:10]))} have an empty path or label; fill them "
                        "in or delete the lines")
    return {"source": "manifest", "root": str(path.parent), "manifest": path.name, "path_column": "path",
            "label_column": "label", "missing_files": "drop"}, {lab: labels[lab] for lab in sorted(labels)}


def spec_from_folder(path: str | Path, *, name: str | None = None, what: str = "cell types",
                     noun: str = "cell type") -> dict[str, Any]:
    """The task spec (a dict, ``spec: task/v1``) for a folder of class sub-folders or a CSV/TSV of
    ``path,label``: labels = folder names (or CSV labels, sorted), seed A's prompts over them, CLIP
    template, the built-in tasks' metrics and statistics, and a linear probe for feature models.

    It is a ``probe`` task whose ``settings`` list ``probe`` (:mod:`cytoreg.tasks.probe`): generators
    are asked zero- and few-shot, CLIP models scored zero-shot and probed, encoders probed, all on
    one seeded stratified split (:func:`split_rule`)."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        data, counts = _from_dirs(p)
    elif p.is_file() and p.suffix.lower() in DATA_FILES:
        data, counts = _from_csv(p)
    else:
        raise DataError(f"{path}: not a folder of class sub-folders nor a .csv/.tsv of path,label")
    labels = list(counts)
    if len(labels) < 2:
        raise DataError(f"{p}: found {len(labels)} class(es) ({', '.join(labels) or 'none'}); a classification task "
                        "needs at least 2 (one sub-folder per class, or a CSV with 2+ distinct labels)")
    sampling = split_rule(counts)
    lo, hi = min(counts.values()), max(counts.values())
    spec = {
        "spec": "task/v1", "name": name or task_name(p), "kind": "probe",
        "description": (f"your own images: {p} ({len(labels)} classes, {lo}-{hi} images each); per class, seed 42: "
                        f"1 few-shot example, {sampling['test_per_class']} test images (seed A's 50, at most half "
                        "the smallest class), the rest train the linear probe"),
        "license": "your own data", "redistributable": False,
        "layout": "<class folder>/**/<image>" if data["source"] == "imagefolder" else "CSV columns path,label",
        "data": data, "labels": labels, "sampling": sampling, "settings": ["zero_shot", "few_shot", "probe"],
        "prompts": seed_prompts(labels, what, noun), "probe": dict(PROBE), "metrics": list(METRICS),
        "primary_metric": "f1_weighted", "statistics": dict(STATISTICS),
    }
    if hi < 3:  # no class keeps a training image: zero-/few-shot only, said in the description
        spec.update(kind="classification", settings=["zero_shot", "few_shot"],
                    sampling={k: v for k, v in sampling.items() if k != "train_per_class"} | {"order": ["fewshot", "test"]},
                    description=f"your own images: {p} ({len(labels)} classes, {lo}-{hi} images each); per class, "
                                "seed 42: 1 few-shot example, 1 test image; no linear probe (it needs 3+ images "
                                "in a class)")
        del spec["probe"]
    return spec




def spec_yaml(spec: dict[str, Any], source: Path) -> str:
    """The spec as YAML for editing (``cytoreg new task --from-folder``), with a header saying
    where it came from; reading it back gives ``spec`` exactly."""
    import yaml

    header = (f"# Written by `cytoreg new task --from-folder {source}`: the task that\n"
              f"# `cytoreg eval --tasks {source}` runs (seed A's prompt pattern over your labels, the judge\n"
              "# prompt, CLIP template, sampling, metrics and statistics of the built-in tasks).\n"
              "# Edit freely (prompt wording, sampling, settings), then: cytoreg eval --tasks THIS_FILE --models ...\n")
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def looks_like_data(name: str) -> bool:
    """True when a ``--tasks`` entry names a folder, a CSV/TSV or a spec file on disk rather than a
    registered task."""
    p = Path(name).expanduser()
    return p.is_dir() or (p.is_file() and p.suffix.lower() in DATA_FILES + SPEC_FILES)


def path_like(name: str) -> bool:
    """A ``--tasks`` entry meant as a path: a separator, a leading ``.`` or ``~``, or a data suffix."""
    return "/" in name or os.sep in name or name.startswith((".", "~")) or name.lower().endswith(DATA_FILES)


def task_or_folder(catalog: Any, name: str):
    """``catalog.task(name)``, or, for a folder / CSV on disk, the task built by :func:`spec_from_folder`
    (validated like any spec), or a self-contained task spec file (``new task`` writes one).
    A registered name wins over a same-named folder (said on stderr); a path that is none of these
    is an error naming where it looked, not an unknown task name."""
    if name in catalog.tasks:
        if not path_like(name) and looks_like_data(name):
            origin = catalog.tasks.entry(name).origin
            print(f"note: --tasks {name}: using the registered task '{name}' ({origin}), not the folder or file "
                  f"./{name}; to run that, pass --tasks ./{name}", file=sys.stderr)
        return catalog.task(name)
    if not looks_like_data(name):
        if path_like(name):
            p = Path(name).expanduser()
            if p.exists():
                raise DataError(f"{name}: not a folder of class sub-folders, a .csv/.tsv of path,label, nor a task "
                                f"spec file (.yaml/.yml/.json) (looked at {p.resolve()})")
            raise DataError(f"{name}: no such folder or CSV (looked at {p.resolve()})")
        return catalog.task(name)
    from cytoreg.errors import SpecError
    from cytoreg.registry.catalog import resolve
    from cytoreg.registry.specs import RawSpec, SpecResolver, read_raw

    p = Path(name).expanduser().resolve()
    if p.suffix.lower() in SPEC_FILES:
        raw = read_raw(p, f"file {p}")
        if raw.type != "task":
            raise SpecError([f"--tasks {name}: {p} is a {raw.type} spec; pass it with --models (or --include)"])
        if raw.data.get("extends"):
            raise SpecError([f"--tasks {name}: {p} extends '{raw.data['extends']}'; load it with "
                             f"--include {name} --tasks {raw.name}"])
    else:
        data = spec_from_folder(name)
        raw = RawSpec(p, f"folder {p}", data, "task", data["name"])
    problems: list[str] = []
    spec = resolve(raw, SpecResolver({}), problems)
    if spec is None:
        raise SpecError(problems)
    return spec
