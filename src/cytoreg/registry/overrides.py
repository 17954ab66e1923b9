"""Command-line overrides of resolved specs, in the conventions of lm-eval and inspect:

- ``-M/--model-args key=value``: the models of the run. A bare key goes where the adapter or the
  model schema declares it (``params``, then ``generation``, then ``execution``) of every model
  that has it (``-M base_url=...`` with ``conch,gpt4o`` changes gpt4o only; a key no model of the
  run has is an error); a dotted key is a path from the top of every model spec
  (``generation.tries=3``).
- ``-T/--task-args key=value``: every task of the run; a dotted path from the top of the task spec
  (``sampling.test_per_class=10``), or a bare key that names exactly one field of ``sampling`` /
  ``statistics`` / the top level.
- ``--set model.NAME.path=value`` / ``--set task.NAME.path=value``: one spec.

Values are YAML scalars or flow collections (``0.2``, ``true``, ``[a, b]``, ``null`` deletes the
key). The patched spec is validated again by the same JSON Schema and checks as a spec file, so an
unknown key or a wrong type is an error that names the flag and the path. Nothing here imports
anything heavy.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from cytoreg.errors import SpecError
from cytoreg.registry.core import suggest

DELETE = object()


@dataclass
class Override:
    flag: str          # "-M", "-T", "--set"
    text: str          # the argument as given
    target: str        # "model" | "task"
    name: str | None   # a spec name, or None for every spec of the run
    path: list[str | int]
    value: Any

    def label(self) -> str:
        return f"{self.flag} {self.text}"


@dataclass
class Overrides:
    model_args: list[str] = field(default_factory=list)
    task_args: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, d: dict | None) -> "Overrides":
        d = d or {}
        return cls(list(d.get("model_args") or []), list(d.get("task_args") or []), list(d.get("set") or []))

    def to_json(self) -> dict:
        return {"model_args": list(self.model_args), "task_args": list(self.task_args), "set": list(self.sets)}

    def empty(self) -> bool:
        return not (self.model_args or self.task_args or self.sets)


def overrides_hash(record: dict) -> str:
    """Hash of everything a run changed from the command line (settings included)."""
    canon = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def parse_value(text: str) -> Any:
    """``0.2`` → float, ``true`` → bool, ``[a, b]`` → list, ``null`` → delete, else the string."""
    import yaml

    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if value is None:
        return DELETE
    if isinstance(value, (dict, list, str, int, float, bool)):
        return value
    return text  # dates and other YAML types: keep what was typed


def _split_assign(flag: str, text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([f"{flag} {text!r}: expected key=value (e.g. {flag} temperature=0.2)"])
    return key.strip(), parse_value(raw)


def _path(key: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def parse(ov: Overrides) -> list[Override]:
    out: list[Override] = []
    problems: list[str] = []
    for flag, items, target in (("-M", ov.model_args, "model"), ("-T", ov.task_args, "task")):
        for text in items:
            for piece in _pieces(text):
                try:
                    key, value = _split_assign(flag, piece)
                except SpecError as exc:
                    problems += exc.problems
                    continue
                out.append(Override(flag, piece, target, None, _path(key), value))
    for text in ov.sets:
        try:
            key, value = _split_assign("--set", text)
        except SpecError as exc:
            problems += exc.problems
            continue
        parts = key.split(".")
        if len(parts) < 3 or parts[0] not in ("model", "task"):
            problems.append(f"--set {text!r}: expected model.NAME.path=value or task.NAME.path=value "
                            "(e.g. --set task.demo.sampling.test_per_class=10)")
            continue
        out.append(Override("--set", text, parts[0], parts[1], _path(".".join(parts[2:])), value))
    if problems:
        raise SpecError(problems)
    return out


def _pieces(text: str) -> list[str]:
    """``a=1,b=2`` is two assignments (lm-eval's --model_args); a comma inside a value that is not
    followed by ``key=`` stays (``[a, b]``)."""
    import re

    return [p for p in re.split(r",(?=\s*[A-Za-z_][\w.]*=)", text) if p.strip()]


def _schema_keys(schema: dict, section: str) -> list[str]:
    return sorted(((schema.get("properties") or {}).get(section) or {}).get("properties") or {})


def resolve_model_key(ov: Override, adapter_cls: type | None, model_name: str) -> list[str | int] | None:
    """Where a bare ``-M key`` goes: params (adapter's schema), generation, execution; else None."""
    from cytoreg.registry.specs import load_schema

    if len(ov.path) > 1:
        return ov.path
    key = ov.path[0]
    schema = load_schema("model")
    params = sorted(((getattr(adapter_cls, "params_schema", None) or {}).get("properties") or {}))
    for section, keys in (("params", params), ("generation", _schema_keys(schema, "generation")),
                          ("execution", _schema_keys(schema, "execution"))):
        if key in keys:
            return [section, key]
    return None


def resolve_task_key(ov: Override) -> list[str | int] | None:
    from cytoreg.registry.specs import load_schema

    if len(ov.path) > 1:
        return ov.path
    key = ov.path[0]
    schema = load_schema("task")
    if key in (schema.get("properties") or {}):
        return [key]
    hits = [[sec, key] for sec in ("sampling", "statistics", "data") if key in _schema_keys(schema, sec)]
    return hits[0] if len(hits) == 1 else None


def set_path(data: dict, path: list[str | int], value: Any) -> None:
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise KeyError(".".join(map(str, path[:i])))
        if not isinstance(node.get(part), (dict, list)):
            node[part] = {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return
    if not isinstance(node, dict):
        raise KeyError(".".join(map(str, path[:-1])))
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value


def apply(catalog: Any, tasks: Iterable[str], models: Iterable[str], ov: Overrides,
          extra_models: Iterable[str] = ()) -> list[str]:
    """Patch the run's specs in ``catalog`` (new :class:`Spec` objects, so hashes change) and
    validate them; raise one :class:`SpecError` listing every problem. Returns the names of the
    specs that changed."""
    from cytoreg.registry.builtins import ADAPTERS
    from cytoreg.registry.catalog import check_model, check_task
    from cytoreg.registry.specs import Spec, json_path, schema_problems

    items = parse(ov)
    if not items:
        return []
    tasks, models = list(dict.fromkeys(tasks)), list(dict.fromkeys(list(models) + list(extra_models)))
    problems: list[str] = []
    patched: dict[tuple[str, str], dict] = {}
    by_spec: dict[tuple[str, str], list[Override]] = {}
    unresolved: dict[int, list[str]] = {}  # bare -M keys: the models that lack them
    for o in items:
        names = tasks if o.target == "task" else models
        if o.name is not None and o.name not in names:
            problems.append(f"{o.label()}: {o.target} '{o.name}' is not part of this run"
                            f"{suggest(o.name, names)} (the run's {o.target}s: {', '.join(names) or 'none'})")
            continue
        for name in ([o.name] if o.name is not None else (tasks if o.target == "task" else
                                                           [m for m in models if m not in extra_models])):
            key = (o.target, name)
            try:
                spec = catalog.task(name) if o.target == "task" else catalog.model(name)
            except Exception:  # an unknown name: the plan reports it with a suggestion
                continue
            data = patched.setdefault(key, copy.deepcopy(spec.data))
            if o.target == "model":
                adapter_cls = None
                try:
                    adapter_cls = ADAPTERS.get(data.get("adapter"))
                except Exception:  # noqa: BLE001 - reported by the spec's own check
                    pass
                path = resolve_model_key(o, adapter_cls, name)
                if path is None:
                    params = sorted(((getattr(adapter_cls, "params_schema", None) or {}).get("properties") or {}))
                    gen = _schema_keys(_model_schema(), "generation")
                    msg = (f"{o.label()}: model '{name}' ({data.get('adapter')}) has no setting "
                           f"'{o.path[0]}'{suggest(str(o.path[0]), params + gen)}; params: "
                           f"{', '.join(params) or 'none'}; generation: {', '.join(gen)} (or give a "
                           "path such as execution.concurrency)")
                    if o.name is not None:
                        problems.append(msg)
                    else:
                        unresolved.setdefault(id(o), []).append(msg)
                    continue
            else:
                path = resolve_task_key(o)
                if path is None:
                    problems.append(f"{o.label()}: '{o.path[0]}' is not a task field; give a path such as "
                                    "sampling.test_per_class or statistics.bootstrap")
                    continue
            if path[0] in ("spec", "name", "extends"):
                problems.append(f"{o.label()}: {json_path(path)} cannot be overridden")
                continue
            try:
                set_path(data, path, o.value)
            except KeyError as exc:
                problems.append(f"{o.label()}: {json_path(path)}: '{exc.args[0]}' is not a mapping")
                continue
            by_spec.setdefault(key, []).append(o)
    for o in items:  # a bare -M key that no model of the run has
        if id(o) in unresolved and not any(o in v for v in by_spec.values()):
            problems += unresolved[id(o)]
    for (target, name), data in patched.items():
        labels = "; ".join(o.label() for o in by_spec.get((target, name), []))
        if not labels:
            continue
        where = f"{labels} ({target} '{name}')"
        local = schema_problems(target, data, where)
        if not local:
            local = (check_task if target == "task" else check_model)(data, where)
        if local:
            problems += local
            continue
        old = catalog.task(name) if target == "task" else catalog.model(name)
        reg = catalog.tasks if target == "task" else catalog.models
        entry = reg.entry(name)
        reg.add(name, Spec(old.type, old.name, data, old.path, old.origin, list(old.chain)), origin=entry.origin,
                description=entry.description, kind=entry.kind, replace=True, **entry.meta)
    if problems:
        raise SpecError(problems)
    return sorted(f"{t}.{n}" for (t, n) in by_spec)


def _model_schema() -> dict:
    from cytoreg.registry.specs import load_schema

    return load_schema("model")
