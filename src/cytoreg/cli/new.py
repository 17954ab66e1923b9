"""``cytoreg new``: starting points written from templates.

- ``new plugin NAME -o DIR``: an installable plugin package (pyproject.toml with the entry
  points, an ``Embedder`` whose weights are read in ``load()``, a numpy ``preprocess``, a metric,
  a task that extends ``demo`` and removes labels, data and weights shipped in the package).
- ``new task [NAME] --from-folder DIR|CSV``: the task spec ``eval --tasks DIR|CSV`` runs (folder of
  class sub-folders, or CSV of path,label), as YAML to edit, validated before it is written.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from cytoreg.cli.common import _console
from cytoreg.errors import CytoregError

PLUGIN_CLASSES = {"basophil": "Basophil", "eosinophil": "Eosinophil", "lymphocyte": "Lymphocyte"}
IMAGES_PER_CLASS = 5

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A cytoreg plugin: a tiny embedder, a metric and a task"
requires-python = ">=3.10"
dependencies = ["cytoreg", "numpy", "pillow"]

# cytoreg finds plugins through these entry-point groups (docs/plugins.md)
[project.entry-points."cytoreg.models"]
{pkg}_embedder = "{pkg}.adapter:TinyEmbedder"

[project.entry-points."cytoreg.metrics"]
{pkg}_error_rate = "{pkg}.metrics:error_rate"

[project.entry-points."cytoreg.specs"]
{pkg} = "{pkg}.specs"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{pkg} = ["specs/*.yaml", "weights.npz", "data/**/*"]
'''

INIT = '''"""{dist}: a cytoreg plugin (adapter, metric, specs and data). See README.md."""
__version__ = "0.1.0"
'''

ADAPTER = '''"""A tiny image-text embedder. Its weights ship in the package (weights.npz) and are read in
``load()``, which cytoreg calls once, in the main process, before the first image is encoded."""
from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np

from cytoreg.models.base import Embedder

SIZE = 16


class TinyEmbedder(Embedder):
    """Random-projection embedder of 16x16 thumbnails (a template: replace with a real model)."""

    params_schema = {{
        "type": "object",
        "additionalProperties": False,
        "properties": {{"logit_scale": {{"type": "number", "exclusiveMinimum": 0}}}},
    }}

    def weights_identity(self) -> str:
        """Part of the cache fingerprint: new weights, new cache keys."""
        data = resources.files("{pkg}").joinpath("weights.npz").read_bytes()
        return hashlib.sha256(data).hexdigest()[:16]

    def load(self) -> None:
        with resources.files("{pkg}").joinpath("weights.npz").open("rb") as fh:
            with np.load(fh, allow_pickle=False) as npz:
                self._w = np.array(npz["image"], dtype=np.float32)  # (dim, 3 * SIZE * SIZE)

    def preprocess(self, image) -> np.ndarray:
        """One RGB PIL image -> float32 array (3, SIZE, SIZE); runs in DataLoader workers.
        numpy is fine: cytoreg stacks the arrays into the batch."""
        arr = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32) / 255.0
        return arr.transpose(2, 0, 1).copy()

    def encode_batch(self, batch) -> np.ndarray:
        x = np.asarray(batch.numpy() if hasattr(batch, "numpy") else batch, dtype=np.float32)
        emb = x.reshape(len(x), -1) @ self._w.T
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        dim = self._w.shape[0]
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            v = np.random.RandomState(seed).standard_normal(dim)
            out.append(v / np.linalg.norm(v))
        return np.stack(out).astype(np.float32)

    def logit_scale(self) -> float:
        return float(self.params.get("logit_scale", 100.0))
'''

METRICS = '''"""Metrics take a cytoreg Predictions (y_true, y_pred with None for invalid answers, labels,
scores) and return a number; numbers get a bootstrap CI and a fold spread unless the function
sets ``ci = False``."""
from __future__ import annotations


def error_rate(p) -> float:
    """Share of samples whose answer is not the label (invalid answers count as errors)."""
    wrong = sum(1 for t, y in zip(p.y_true, p.y_pred) if y != t)
    return wrong / len(p.y_true) if p.y_true else float("nan")
'''

MODEL_SPEC = '''spec: model/v1
name: {name}-tiny
adapter: {pkg}_embedder
description: the plugin's tiny random-projection embedder (a template)
params:
  logit_scale: 100.0
execution:
  batch_size: 8
  workers: 0
'''

TASK_SPEC = '''spec: task/v1
name: {name}-demo
extends: demo
description: three of demo's cell types, from images shipped inside the plugin
data:
  root: package:{pkg}:data/pbc          # importlib.resources: the folder inside the installed package
  label_map:                             # under label_map, null keeps its meaning: exclude that raw label
    BNE: null
    SNE: null
    MY: null
    MMY: null
    PMY: null
    ERB: null
    MO: null
    PLATELET: null
labels: [Basophil, Eosinophil, Lymphocyte]
aliases: null                            # null deletes the inherited key (its entries name dropped labels)
settings: [zero_shot]
prompts:
  few_shot: null
  zero_shot: "Which of these white blood cell types is shown: Basophil, Eosinophil, Lymphocyte? Answer with the name only."
sampling:
  test_per_class: 4
  fewshot_per_class: 1
  train_per_class: 0
  val_per_class: 0
  order: [fewshot, test]
reference: null
metrics: [accuracy, f1_weighted, {pkg}_error_rate, per_class, confusion_matrix]
'''

README = '''# {dist}

A cytoreg plugin written by `cytoreg new plugin`. Install it next to cytoreg and run its task:

    pip install -e .
    cytoreg list adapters            # {pkg}_embedder, from package {dist}
    cytoreg eval --tasks {name}-demo --models {name}-tiny,random -o runs/{name}

What is here (the API is described in cytoreg's docs/plugins.md):

- `src/{pkg}/adapter.py`: an `Embedder`; `load()` reads `weights.npz` shipped in the package,
  `preprocess` returns numpy, `encode_batch` / `encode_texts` return L2-normalised rows.
- `src/{pkg}/metrics.py`: a metric (`{pkg}_error_rate`); it gets a bootstrap CI and fold spread.
- `src/{pkg}/specs/`: a model spec and a task that `extends: demo`, keeps three labels and
  deletes the inherited `aliases` with `null`; its images are in `src/{pkg}/data/`
  (`root: package:{pkg}:data/pbc`).
'''


def _pkg_name(name: str) -> str:
    pkg = re.sub(r"[^0-9a-zA-Z_]", "_", name).lower()
    if not re.match(r"^[a-z_][a-z0-9_]*$", pkg):
        raise CytoregError(f"plugin name '{name}' does not give a Python package name; start it with a letter")
    return pkg


def new_plugin(name: str, out: Path, force: bool = False) -> Path:
    import numpy as np

    if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", name):
        raise CytoregError(f"plugin name '{name}': use lower-case letters, digits, '-', '_' or '.' (spec names "
                           "are derived from it)")
    pkg = _pkg_name(name)
    if out.exists() and any(out.iterdir()) and not force:
        raise CytoregError(f"{out} exists and is not empty; pick another -o folder")
    src = out / "src" / pkg
    (src / "specs").mkdir(parents=True, exist_ok=True)
    fmt = {"dist": name, "pkg": pkg, "name": name}
    files = {out / "pyproject.toml": PYPROJECT, out / "README.md": README, src / "__init__.py": INIT,
             src / "adapter.py": ADAPTER, src / "metrics.py": METRICS, src / "specs" / "__init__.py": "",
             src / "specs" / f"{name}-tiny.yaml": MODEL_SPEC, src / "specs" / f"{name}-demo.yaml": TASK_SPEC}
    for path, text in files.items():
        path.write_text(text.format(**fmt) if text else "")
    rng = np.random.RandomState(0)
    with open(src / "weights.npz", "wb") as fh:
        np.savez(fh, image=rng.standard_normal((32, 3 * 16 * 16)).astype(np.float32))
    from importlib import resources

    pbc = Path(str(resources.files("cytoreg"))) / "demo_data/pbc/PBC_dataset_normal_DIB"
    for folder in PLUGIN_CLASSES:
        dest = src / "data" / "pbc" / folder
        dest.mkdir(parents=True, exist_ok=True)
        for img in sorted((pbc / folder).glob("*.jpg"))[:IMAGES_PER_CLASS]:
            shutil.copy(img, dest / img.name)
    shutil.copy(pbc.parent / "SOURCE.md", src / "data" / "pbc" / "SOURCE.md")
    return out


def new_task(name: str | None, source: Path, out: Path | None) -> Path:
    """Write :func:`~cytoreg.tasks.folder_task.spec_from_folder`'s spec for ``source`` (a folder of
    class sub-folders, or a CSV/TSV of path,label) as YAML, validated: exactly the task that
    ``cytoreg eval --tasks SOURCE`` runs, to edit and keep."""
    from cytoreg.registry.catalog import Catalog
    from cytoreg.tasks.folder_task import spec_from_folder, spec_yaml

    if name is not None and not re.match(r"^[a-z0-9][a-z0-9_.-]*$", name):
        raise CytoregError(f"task name '{name}': use lower-case letters, digits, '-', '_' or '.'")
    src = source.expanduser()
    if not src.exists():
        raise CytoregError(f"--from-folder {source}: no such folder or CSV (looked at {src.resolve()})")
    spec = spec_from_folder(src, name=name)
    name = spec["name"]
    target = out or Path(f"{name}.yaml")
    if target.is_dir() or target.suffix.lower() not in (".yaml", ".yml"):
        target = target / f"{name}.yaml"  # -o a folder (existing or not)
    if target.exists():
        raise CytoregError(f"{target} exists; remove it or pass -o another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(spec_yaml(spec, src.resolve()), encoding="utf-8")
    try:
        Catalog.load([str(target)])
    except CytoregError:
        target.unlink()
        raise
    return target


def cmd_new(args) -> int:
    console = _console()
    if args.what == "plugin":
        if not args.name:
            raise CytoregError("new plugin needs a NAME (lower case), e.g. cytoreg new plugin my-plugin")
        out = Path(args.output or args.name)
        new_plugin(args.name, out)
        console.print(f"plugin written to {out}; install it with: pip install -e {out}  (then: cytoreg list)")
        return 0
    if not args.from_folder:
        raise CytoregError("new task needs --from-folder DIR (one sub-folder per class) or --from-folder FILE.csv "
                           "(columns path,label)")
    target = new_task(args.name, Path(args.from_folder), Path(args.output) if args.output else None)
    console.print(f"task spec written to {target} (validated; the task `cytoreg eval --tasks {args.from_folder}` "
                  f"runs); run it: cytoreg eval --tasks {target} --models random --check")
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("new", help="write a plugin package or a task spec from a template")
    p.add_argument("what", choices=["plugin", "task"])
    p.add_argument("name", nargs="?", help="plugin (distribution) name, or task name (lower case; a task's "
                   "defaults to the folder's or CSV's name)")
    p.add_argument("--output", "-o", help="plugin: folder to create (default ./NAME); task: file or folder "
                   "(default ./NAME.yaml)")
    p.add_argument("--from-folder", metavar="DIR|CSV", help="task: a folder with one sub-folder of images per class, "
                   "or a CSV/TSV with columns path,label (paths relative to the CSV's folder); writes the spec "
                   "`cytoreg eval --tasks DIR|CSV` runs")
    p.set_defaults(fn=cmd_new)
