"""Strict YAML/JSON reading: duplicate keys are errors (PyYAML silently keeps the last)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cytoreg.errors import SpecError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys, naming the line of both."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise SpecError([
                f"{loader.name}:{line}: duplicate key '{key}' (first defined on line {seen[key]}); "
                "YAML keeps only one of them — remove or rename the other"
            ])
        seen[key] = line
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _json_pairs(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise SpecError([f"{path}: duplicate key '{k}' in a JSON object — remove one of them"])
            out[k] = v
        return out

    return hook


def read_structured(path: Path) -> Any:
    """Parse a .yaml/.yml/.json file strictly; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{path}: cannot read file ({exc.strerror})"]) from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_json_pairs(path))
        except json.JSONDecodeError as exc:
            raise SpecError([f"{path}:{exc.lineno}: invalid JSON: {exc.msg}"]) from exc
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError([f"{path}{line}: invalid YAML: {exc.problem}"]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([f"{path}: invalid YAML: {exc}"]) from exc
    finally:
        loader.dispose()
