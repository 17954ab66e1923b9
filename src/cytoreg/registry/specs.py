"""Spec files: reading, ``extends`` inheritance, ``${VAR}`` expansion and schema validation.

A spec file holds one mapping whose ``spec`` key says what it is and which schema version it
follows (``task/v1``, ``model/v1``). Problems are collected, not raised one at a time, so
``cytoreg validate`` can list every error of every file; each message names the file, the
JSON path inside it and what would be valid.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from cytoreg.errors import SpecError
from cytoreg.registry.core import suggest
from cytoreg.registry.yamlio import read_structured

SPEC_TYPES = {"task/v1": "task", "model/v1": "model"}
SPEC_SUFFIXES = (".yaml", ".yml", ".json")

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class RawSpec:
    """A parsed file before inheritance and validation."""

    path: Path
    origin: str
    data: dict
    type: str  # "task" | "model"
    name: str


@dataclass
class Spec:
    """A resolved, validated spec."""

    type: str
    name: str
    data: dict
    path: Path
    origin: str
    chain: list[str] = field(default_factory=list)  # files merged through `extends`

    @property
    def hash(self) -> str:
        return spec_hash(self.data)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def spec_hash(data: dict) -> str:
    canon = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def json_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


@lru_cache(maxsize=None)
def load_schema(kind: str) -> dict:
    text = resources.files("cytoreg.registry").joinpath("schemas", f"{kind}.schema.json").read_text()
    return json.loads(text)


def read_raw(path: Path, origin: str) -> RawSpec:
    data = read_structured(path)
    if not isinstance(data, dict):
        raise SpecError([f"{path}: a spec file must contain one mapping (key: value pairs), "
                         f"found {type(data).__name__}"])
    tag = data.get("spec")
    if not isinstance(tag, str) or tag not in SPEC_TYPES:
        hint = suggest(str(tag), list(SPEC_TYPES)) if isinstance(tag, str) and tag else ""
        raise SpecError([f"{path}: spec: {tag!r} is not a known spec type{hint}; "
                         f"use one of {', '.join(SPEC_TYPES)}"])
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError([f"{path}: name: missing or not a string; every spec needs a unique name"])
    return RawSpec(path, origin, data, SPEC_TYPES[tag], name)


def iter_spec_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in SPEC_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


#: where ``null`` is a value, not a deletion (``label_map``: null excludes a raw label)
NULL_IS_VALUE = (("data", "label_map"), ("download", "hf_mirror", "parquet", "label_map"))


def deep_merge(base: Any, override: Any, path: tuple = ()) -> Any:
    """Mappings merge key by key; anything else (lists included) is replaced. ``key: null`` in
    the child deletes the inherited key (except under ``data.label_map``, where null keeps its
    meaning: exclude that raw label)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for k, v in override.items():
            if v is None and path not in NULL_IS_VALUE:
                out.pop(k, None)
            else:
                out[k] = deep_merge(out[k], v, path + (k,)) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


#: characters ``${VAR}`` expansion may add to one spec (values are paths, URLs, ids: short)
MAX_EXPANSION_CHARS = 1024 * 1024


def expand_env(value: Any, where: str, problems: list[str], path: tuple = (),
               _budget: list[int] | None = None) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string. Each expanded variable's value
    is registered as a secret (see :mod:`cytoreg.secrets`); the expansion may add at most
    :data:`MAX_EXPANSION_CHARS` characters to a spec."""
    budget = [MAX_EXPANSION_CHARS] if _budget is None else _budget
    if isinstance(value, dict):
        return {k: expand_env(v, where, problems, path + (k,), budget) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, where, problems, path + (i,), budget) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    from cytoreg import secrets

    def repl(m: re.Match) -> str:
        var, default = m.group(1), m.group(2)
        if var in os.environ and os.environ[var] != "":
            secrets.register_env(var, from_expansion=True)
            out = os.environ[var]
        elif default is not None:
            out = default
        else:
            problems.append(f"{where}: {json_path(path)}: environment variable {var} is not set; "
                            f"set it, or write ${{{var}:-default}} to give a default")
            return m.group(0)
        if budget[0] < 0:  # already reported
            return m.group(0)
        budget[0] -= len(out)
        if budget[0] < 0:
            problems.append(f"{where}: {json_path(path)}: ${{{var}}} expansion makes the spec longer than "
                            f"{MAX_EXPANSION_CHARS:,} characters; an environment variable should hold a short "
                            "value (a path, a URL, an id)")
            return m.group(0)
        return out

    return _ENV.sub(repl, value)


def schema_problems(kind: str, data: dict, where: str) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema(kind))
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        loc = json_path(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(allowed))
            for key in extra:
                out.append(f"{where}: {json_path(list(err.absolute_path) + [key])}: unknown key "
                           f"'{key}'{suggest(key, allowed)} (valid keys here: {', '.join(allowed)})")
            continue
        if err.validator == "required":
            out.append(f"{where}: {loc}: {err.message.replace('is a required property', 'is required but missing')}")
            continue
        if err.validator == "minItems":
            out.append(f"{where}: {loc}: needs at least {err.validator_value} item(s), got {len(err.instance)}")
            continue
        if err.validator == "oneOf":
            msgs = "; or ".join(e.message for e in err.context) if err.context else err.message
            out.append(f"{where}: {loc}: {err.instance!r} is not valid: {msgs}")
            continue
        out.append(f"{where}: {loc}: {err.message}")
    return out


class SpecResolver:
    """Resolves ``extends`` chains among a set of raw specs of the same type."""

    def __init__(self, raws: dict[tuple[str, str], RawSpec]):
        self.raws = raws

    def merged(self, raw: RawSpec, problems: list[str], stack: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
        here = str(raw.path)
        if here in stack:
            cycle = " -> ".join(list(stack[stack.index(here):]) + [here])
            problems.append(f"{raw.path}: extends: cycle in spec inheritance: {cycle}")
            return {}, []
        parent_ref = raw.data.get("extends")
        if parent_ref is None:
            return copy.deepcopy(raw.data), [here]
        if not isinstance(parent_ref, str):
            problems.append(f"{raw.path}: extends: must be a spec name or a relative file path")
            return copy.deepcopy(raw.data), [here]
        parent = self._find_parent(raw, parent_ref, problems)
        if parent is None:
            return copy.deepcopy(raw.data), [here]
        base, chain = self.merged(parent, problems, stack + (here,))
        child = {k: v for k, v in raw.data.items() if k != "extends"}
        base.pop("extends", None)
        return deep_merge(base, child), chain + [here]

    def _find_parent(self, raw: RawSpec, ref: str, problems: list[str]) -> RawSpec | None:
        if ref.endswith(SPEC_SUFFIXES):
            target = (raw.path.parent / ref).resolve()
            for cand in self.raws.values():
                if cand.path.resolve() == target:
                    return cand
            if target.is_file():
                try:
                    return read_raw(target, f"file {target}")
                except SpecError as exc:
                    problems.extend(exc.problems)
                    return None
            problems.append(f"{raw.path}: extends: file '{ref}' not found (looked for {target})")
            return None
        cand = self.raws.get((raw.type, ref))
        if cand is None:
            names = sorted(n for (t, n) in self.raws if t == raw.type)
            problems.append(f"{raw.path}: extends: unknown {raw.type} spec '{ref}'{suggest(ref, names)}")
            return None
        return cand
