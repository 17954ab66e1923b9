"""The catalog: every task and model spec from built-ins, installed plugins and ``--include``
paths, resolved and validated. A name defined twice is an error naming both files."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from cytoreg.errors import CytoregError, SpecError
from cytoreg.registry.builtins import ADAPTERS, METRICS, SOURCES, TASK_KINDS, load_builtin_metrics
from cytoreg.registry.core import BUILTIN, Registry, suggest
from cytoreg.registry.plugins import load_plugins, plugin_spec_dirs
from cytoreg.registry.specs import (RawSpec, Spec, SpecResolver, expand_env, iter_spec_files, json_path,
                                    read_raw, schema_problems)


def builtin_spec_dirs() -> list[Path]:
    return [Path(str(resources.files("cytoreg.tasks").joinpath("specs"))),
            Path(str(resources.files("cytoreg.models").joinpath("specs")))]


@dataclass
class Catalog:
    tasks: Registry = field(default_factory=lambda: Registry("task"))
    models: Registry = field(default_factory=lambda: Registry("model"))
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, include: Sequence[str | Path] = (), *, strict: bool = True) -> "Catalog":
        cat = cls()
        load_plugins(cat.problems)
        load_builtin_metrics()
        sources: list[tuple[Path, str]] = [(d, BUILTIN) for d in builtin_spec_dirs()]
        sources += plugin_spec_dirs(cat.problems)
        for inc in include:
            p = Path(inc).expanduser()
            if not p.exists():
                cat.problems.append(f"--include {inc}: no such file or folder")
                continue
            sources.append((p, f"file {p}" if p.is_file() else f"folder {p}"))
        cat._collect(sources)
        if strict and cat.problems:
            raise SpecError(cat.problems)
        return cat

    def _collect(self, sources: Iterable[tuple[Path, str]]) -> None:
        files: list[tuple[Path, str]] = []
        included: list[Path] = []  # --include files: cached by content
        for root, origin in sources:
            for path in iter_spec_files(root):
                if origin == BUILTIN:
                    files.append((path, origin))
                elif origin.startswith(("file", "folder")):
                    files.append((path, f"{origin.split(' ')[0]} {path}"))
                    included.append(path)
                else:  # a plugin's spec folder
                    files.append((path, f"{origin} ({path.name})"))
        cached = _Cached(files, [r for r, _ in sources], included)
        raws: dict[tuple[str, str], RawSpec] = {}
        for path, file_origin in files:
            try:
                raw = cached.raw(path, file_origin)
            except SpecError as exc:
                self.problems.extend(exc.problems)
                continue
            key = (raw.type, raw.name)
            if key in raws and Path(raws[key].path).resolve() == Path(path).resolve():
                continue  # the same file reached twice (e.g. validating a built-in spec folder)
            if key in raws:
                prev = raws[key]
                self.problems.append(
                    f"{path}: name: {raw.type} '{raw.name}' is already defined in {prev.path} "
                    f"({prev.origin}); rename one of them")
                continue
            raws[key] = raw
        resolver = SpecResolver(raws)
        problems_before = len(self.problems)
        for raw in raws.values():
            spec = cached.spec(raw)
            if spec is None:
                spec = resolve(raw, resolver, self.problems)
                if spec is not None:
                    cached.remember(raw, spec, resolver)
            if spec is not None:
                target = self.tasks if spec.type == "task" else self.models
                target.add(spec.name, spec, origin=raw.origin, description=spec.get("description", ""),
                           kind=spec.get("kind") or spec.get("adapter", ""), path=str(raw.path))
        if len(self.problems) == problems_before:
            cached.save()

    def task(self, name: str) -> Spec:
        return self.tasks.get(name)

    def model(self, name: str) -> Spec:
        return self.models.get(name)


class _Cached:
    """The catalog cache (registry/catalog_cache.py) as seen from one ``Catalog.load``."""

    def __init__(self, files: list[tuple[Path, str]], roots: list[Path], included: list[Path]):
        from cytoreg.registry import catalog_cache

        self.cc, self.files, self.roots = catalog_cache, files, roots
        try:
            self.key = catalog_cache.fingerprint(files, (ADAPTERS, TASK_KINDS, SOURCES, METRICS), included)
        except OSError:  # a file vanished or cannot be read: parse everything, store nothing
            self.key = ""
        stored = (catalog_cache.read(roots, self.key) if self.key else None) or {"raws": [], "specs": {}}
        self.dirty = False
        self.raws: dict[str, RawSpec] = {}
        try:
            for r in stored["raws"]:
                self.raws[r["path"]] = RawSpec(Path(r["path"]), r["origin"], r["data"], r["type"], r["name"])
        except (KeyError, TypeError):
            self.raws, self.dirty = {}, True
        self.specs: dict[str, dict] = stored["specs"]

    def raw(self, path: Path, origin: str) -> RawSpec:
        """The stored parse of a built-in or plugin file, or a fresh one (kept for ``save``)."""
        raw = self.raws.get(str(path))
        if raw is None:
            raw = self.raws[str(path)] = read_raw(path, origin)
        return raw

    def spec(self, raw: RawSpec) -> Spec | None:
        """The stored spec if its files are the cached ones and its variables have the same values."""
        entry = self.specs.get(str(raw.path))
        if entry is None or self.raws.get(str(raw.path)) is not raw:
            return None
        try:
            if self.cc.env_digest(entry["env"]) != entry["env_digest"]:
                return None
            data = expand_env(entry["merged"], str(raw.path), [])
            return Spec(raw.type, raw.name, data, raw.path, raw.origin, list(entry["chain"]))
        except (KeyError, TypeError):
            return None

    def remember(self, raw: RawSpec, spec: Spec, resolver: SpecResolver) -> None:
        cacheable = {str(p) for p, _ in self.files}
        if not all(link in cacheable for link in spec.chain):
            return  # inherits from a file outside the catalog's folders (extends: ../x.yaml)
        merged, _ = resolver.merged(raw, [])
        names = self.cc.env_vars(merged)
        self.specs[str(raw.path)] = {"merged": merged, "chain": spec.chain, "env": names,
                                     "env_digest": self.cc.env_digest(names)}
        self.dirty = True

    def save(self) -> None:
        if not self.dirty or not self.key:
            return
        raws = []
        for path, _ in self.files:
            raw = self.raws.get(str(path))
            if raw is None:
                return
            raws.append({"path": str(path), "origin": raw.origin, "data": raw.data, "type": raw.type,
                         "name": raw.name})
        self.cc.write(self.roots, self.key, raws, self.specs)


def resolve(raw: RawSpec, resolver: SpecResolver, problems: list[str]) -> Spec | None:
    """Merge ``extends``, expand env vars, validate; append problems, return None if any."""
    local: list[str] = []
    data, chain = resolver.merged(raw, local)
    if local:
        problems.extend(local)
        return None
    data = expand_env(data, str(raw.path), local)
    local += schema_problems(raw.type, data, str(raw.path))
    if not local:
        local += (check_task if raw.type == "task" else check_model)(data, str(raw.path))
    if local:
        problems.extend(local)
        return None
    return Spec(raw.type, raw.name, data, raw.path, raw.origin, chain)


def _lookup(registry: Registry, name: str, where: str, field_path: str, problems: list[str]):
    if name not in registry:
        problems.append(f"{where}: {field_path}: unknown {registry.what} '{name}'"
                        f"{suggest(name, registry.names())} (known: {', '.join(registry.names())})")
        return None
    try:
        return registry.get(name)
    except CytoregError as exc:
        problems.append(f"{where}: {field_path}: {exc}")
        return None


def _check_options(schema: dict | None, options: dict, where: str, prefix: str, problems: list[str]) -> None:
    if not schema:
        return
    from jsonschema import Draft202012Validator

    for err in Draft202012Validator(schema).iter_errors(options):
        loc = json_path([prefix] + list(err.absolute_path))
        if err.validator == "additionalProperties":
            allowed = sorted(schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed)):
                problems.append(f"{where}: {loc}.{key}: unknown key '{key}'{suggest(key, allowed)} "
                                f"(valid keys here: {', '.join(allowed)})")
        else:
            problems.append(f"{where}: {loc}: {err.message}")


def check_task(data: dict, where: str) -> list[str]:
    problems: list[str] = []
    kind_cls = _lookup(TASK_KINDS, data["kind"], where, "kind", problems)
    source = data["data"]["source"]
    source_cls = _lookup(SOURCES, source, where, "data.source", problems)
    if source_cls is not None:
        opts = {k: v for k, v in data["data"].items() if k != "source"}
        _check_options(getattr(source_cls, "options_schema", None), opts, where, "data", problems)
    labels = data.get("labels")
    if kind_cls is not None and getattr(kind_cls, "needs_labels", False) and not labels and not data.get("findings"):
        problems.append(f"{where}: labels: a '{data['kind']}' task needs a non-empty list of at least 2 labels")
    labels = labels or []
    seen: set[str] = set()
    for i, lab in enumerate(labels):
        if lab in seen:
            problems.append(f"{where}: labels[{i}]: duplicate label '{lab}'; each label must appear once")
        seen.add(lab)
    label_set = set(labels)

    def must_be_label(value: str, loc: str) -> None:
        if not isinstance(value, str):
            return  # a wrong type is reported by the schema check of that field
        if value not in label_set:
            problems.append(f"{where}: {loc}: '{value}' is not one of the task's labels"
                            f"{suggest(value, labels)}")

    label_map = data["data"].get("label_map")
    for key, target in (label_map.items() if isinstance(label_map, dict) else ()):
        if target is not None:
            must_be_label(target, f"data.label_map.{key}")
    for lab, alias_list in (data.get("aliases") or {}).items():
        must_be_label(lab, f"aliases.{lab}")
        for j, alias in enumerate(alias_list):
            if alias in label_set and alias != lab:
                problems.append(f"{where}: aliases.{lab}[{j}]: alias '{alias}' is itself another label; "
                                "an alias must point to exactly one label")
    prompts = data.get("prompts") or {}
    clip = prompts.get("clip") or {}
    for i, tmpl in enumerate(clip.get("templates", [])):
        if "{label}" not in tmpl:
            problems.append(f"{where}: prompts.clip.templates[{i}]: template must contain '{{label}}'")
    for lab in clip.get("classnames", {}):
        must_be_label(lab, f"prompts.clip.classnames.{lab}")
    fs = prompts.get("few_shot")
    if fs and "{label}" not in fs["example"]:
        problems.append(f"{where}: prompts.few_shot.example: must contain '{{label}}'")
    if "few_shot" in (data.get("settings") or []) and data["kind"] != "mcq":  # mcq: fixed shots
        if not fs:
            problems.append(f"{where}: settings: 'few_shot' needs prompts.few_shot")
        if (data.get("sampling") or {}).get("fewshot_per_class", 0) < 1:
            problems.append(f"{where}: settings: 'few_shot' needs sampling.fewshot_per_class >= 1")
    hier = data.get("hierarchy")
    if hier:
        for lab in labels:
            if lab not in hier["parents"]:
                problems.append(f"{where}: hierarchy.parents: label '{lab}' has no entry; give its ancestors "
                                f"at {', '.join(hier['levels'])} (null where it has none)")
        for lab, chain in hier["parents"].items():
            must_be_label(lab, f"hierarchy.parents.{lab}")
            if len(chain) != len(hier["levels"]):
                problems.append(f"{where}: hierarchy.parents.{lab}: {len(chain)} entries for "
                                f"{len(hier['levels'])} levels")
    if data["kind"] == "attributes" and not data.get("attributes"):
        problems.append(f"{where}: attributes: an 'attributes' task needs the attribute columns and their labels")
    if data["kind"] == "mcq" and not prompts.get("mcq"):
        problems.append(f"{where}: prompts.mcq: an 'mcq' task needs the case template (prompts.mcq.case)")
    metrics = data.get("metrics") or []
    for i, m in enumerate(metrics):
        if m not in METRICS and not m.startswith("evaluate:"):
            problems.append(f"{where}: metrics[{i}]: unknown metric '{m}'{suggest(m, METRICS.names())}")
    pm = data.get("primary_metric")
    if pm and metrics and pm not in metrics:
        problems.append(f"{where}: primary_metric: '{pm}' is not listed in metrics")
    return problems


def check_model(data: dict, where: str) -> list[str]:
    problems: list[str] = []
    adapter = _lookup(ADAPTERS, data["adapter"], where, "adapter", problems)
    if adapter is not None:
        _check_options(getattr(adapter, "params_schema", None), data.get("params") or {}, where,
                       "params", problems)
        if data.get("trust_remote_code") and not getattr(adapter, "supports_remote_code", False):
            problems.append(f"{where}: trust_remote_code: adapter '{data['adapter']}' never runs remote code; "
                            "remove the key")
    return problems



