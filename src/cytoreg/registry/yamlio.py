"""The one reader of spec files (YAML and JSON), strict and bounded for any input.

- duplicate mapping keys are errors (PyYAML silently keeps the last);
- aliases (``*name``, ``<<: *name``) may add at most :data:`MAX_ALIAS_EXPANSION` values once
  expanded, and may not be recursive: an alias bomb ("billion laughs") fails in milliseconds;
- nesting deeper than :data:`MAX_DEPTH` is an error, not a ``RecursionError``;
- the file must be UTF-8 (a BOM is accepted); a bad byte is reported with its offset and line;
- files larger than :data:`MAX_BYTES` are refused before parsing;
- values JSON cannot hold (``!!binary``, ``!!set``...) are refused; timestamps stay strings, and
  mapping keys are text as written (``0: normal`` has the key ``"0"``), as in JSON.

libyaml's C loader (``yaml.CSafeLoader``) is used when PyYAML was built with it, the pure-Python
``yaml.SafeLoader`` otherwise; the checks above run on the composed node graph, so both loaders
accept and reject the same files with the same messages.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from cytoreg.errors import SpecError

MAX_BYTES = 8 * 1024 * 1024  # a spec is configuration, not data: put data in a manifest
MAX_DEPTH = 64               # built-in specs nest at most 6 levels
MAX_ALIAS_EXPANSION = 100_000  # values that aliases may add (a 441-byte bomb adds 387 million)

C_LOADER_AVAILABLE = bool(getattr(yaml, "__with_libyaml__", False)) and hasattr(yaml, "CSafeLoader")


class _DepthLimitedComposer:
    """The pure-Python composer recurses once per level: stop at MAX_DEPTH instead of at
    Python's recursion limit. (libyaml stops at its own limit of 1000 levels.)"""

    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecError([_too_deep(self.name, self.peek_event().start_mark.line + 1)])
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_deep(name: str, line: int) -> str:
    return (f"{name}:{line}: nesting deeper than {MAX_DEPTH} levels; a spec never needs that many — flatten "
            "the structure")


def _strict(base: type) -> type:
    extra = (_DepthLimitedComposer,) if base is yaml.SafeLoader else ()
    cls = type(f"Strict{base.__name__}", (*extra, base), {})
    cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    cls.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
    for tag in ("binary", "set", "omap", "pairs"):
        cls.add_constructor(f"tag:yaml.org,2002:{tag}", _refuse)
    return cls


def _construct_mapping(loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)  # merge keys (<<: *base)
    seen: dict[Any, int] = {}
    out: dict = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value (text or number), not a list or mapping",
                key_node.start_mark)
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str):  # JSON keys are text: `0: normal` means "0", `null:` means "null"
            key = key_node.value
        line = key_node.start_mark.line + 1
        if key in seen:
            raise SpecError([
                f"{loader.name}:{line}: duplicate key '{key}' (first defined on line {seen[key]}); "
                "YAML keeps only one of them — remove or rename the other"
            ])
        seen[key] = line
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _construct_timestamp(loader, node: yaml.ScalarNode) -> str:
    """JSON has no dates: ``2024-01-31`` stays the text it is (spec hashes need JSON values)."""
    return loader.construct_scalar(node)


def _refuse(loader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"the YAML type {node.tag} is not allowed in spec files; use plain text, numbers, lists "
        "and mappings", node.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_graph(root: yaml.Node | None, name: str) -> None:
    """Walk the composed nodes (iteratively, in document order): refuse recursive aliases, depth
    beyond MAX_DEPTH, and aliases that would expand to more than MAX_ALIAS_EXPANSION values.
    The expanded size is counted per shared node once (memoised), so a bomb costs a few
    thousand steps to detect."""
    if root is None:
        return
    size: dict[int, int] = {}    # expanded values below and including a finished node
    height: dict[int, int] = {}  # levels below and including a finished node
    open_: set[int] = set()      # nodes whose subtree is being walked (ancestors)
    unique = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, finish = stack.pop()
        nid = id(node)
        if finish:
            kids = _children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            height[nid] = 1 + max((height[id(k)] for k in kids), default=0)
            open_.discard(nid)
            if size[nid] - unique > MAX_ALIAS_EXPANSION:
                raise SpecError([f"{name}:{node.start_mark.line + 1}: YAML aliases (*name) here expand to more "
                                 f"than {MAX_ALIAS_EXPANSION:,} values; repeat fewer values by alias (an alias "
                                 "bomb?)"])
            continue
        if nid in open_:
            raise SpecError([f"{name}:{node.start_mark.line + 1}: a YAML alias refers to a value that contains "
                             "it (a recursive structure); a spec must be a tree — remove the alias"])
        if nid in size:  # an alias of a value already walked
            if depth + height[nid] - 1 > MAX_DEPTH:
                raise SpecError([_too_deep(name, node.start_mark.line + 1)])
            continue
        if depth > MAX_DEPTH:
            raise SpecError([_too_deep(name, node.start_mark.line + 1)])
        unique += 1
        open_.add(nid)
        stack.append((node, depth, True))
        stack.extend((k, depth + 1, False) for k in reversed(_children(node)))
    if size[id(root)] - unique > MAX_ALIAS_EXPANSION:
        raise SpecError([f"{name}: YAML aliases (*name) expand to more than {MAX_ALIAS_EXPANSION:,} values; "
                         "repeat fewer values by alias (an alias bomb?)"])


def _check_depth(root: yaml.Node, name: str) -> None:
    """The depth cap alone, for text without anchors (no node can be shared): the same walk in
    document order as :func:`_check_graph`, without the expansion bookkeeping."""
    stack = [(root, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH:
            raise SpecError([_too_deep(name, node.start_mark.line + 1)])
        value = node.value
        if isinstance(value, list):
            if isinstance(node, yaml.MappingNode):
                for k, v in reversed(value):
                    push((v, depth + 1))
                    push((k, depth + 1))
            else:
                for v in reversed(value):
                    push((v, depth + 1))


_LOADERS: dict[bool, type] = {}


def loader_class(c_loader: bool | None = None) -> type:
    """The strict loader class on libyaml (``c_loader=True``) or pure Python (``False``);
    ``None``: libyaml when available."""
    use_c = C_LOADER_AVAILABLE if c_loader is None else c_loader
    if use_c and not C_LOADER_AVAILABLE:
        raise RuntimeError("PyYAML was built without libyaml")
    if use_c not in _LOADERS:
        _LOADERS[use_c] = _strict(yaml.CSafeLoader if use_c else yaml.SafeLoader)
    return _LOADERS[use_c]


def decode_utf8(data: bytes, name: str) -> str:
    """Strict UTF-8 (a leading BOM is dropped); a bad byte is named by offset and line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.end].hex(" ")
        raise SpecError([f"{name}:{line}: not valid UTF-8 at byte offset {exc.start} (bytes {bad}: {exc.reason}); "
                         "save the file as UTF-8"]) from None


def _json_pairs(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise SpecError([f"{path}: duplicate key '{k}' in a JSON object — remove one of them"])
            out[k] = v
        return out

    return hook


def parse_yaml(text: str, name: str, *, c_loader: bool | None = None) -> Any:
    """Parse YAML text strictly (see the module docstring); errors name ``name`` and the line."""
    loader = None
    try:
        loader = loader_class(c_loader)(text)  # the pure-Python reader checks characters here
        loader.name = name
        node = loader.get_single_node()
        if "&" in text:  # anchors, hence aliases, are possible: count what they expand to
            _check_graph(node, name)
        elif node is not None:
            _check_depth(node, name)
        return loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if "maximum nesting depth" in str(exc):  # libyaml's own limit (1000 levels)
            raise SpecError([_too_deep(name, mark.line + 1 if mark else 1)]) from None
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise SpecError([f"{name}{line}: invalid YAML: {problem}"]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        raise SpecError([f"{name}: invalid YAML: character #x{exc.character:04x} at position {exc.position} is not "
                         "allowed; remove it"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{name}: invalid YAML: {exc}"]) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError([f"{name}: {_value_problem(exc)}"]) from None
    except RecursionError:
        raise SpecError([f"{name}: nesting too deep; a spec never needs more than {MAX_DEPTH} levels"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_pairs(Path(name)))
    except json.JSONDecodeError as exc:
        raise SpecError([f"{name}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})"]) from None
    except RecursionError:
        raise SpecError([f"{name}: nesting too deep for JSON; a spec never needs more than {MAX_DEPTH} "
                         "levels"]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError([f"{name}: {_value_problem(exc)}"]) from None


def _value_problem(exc: Exception) -> str:
    if "digits" in str(exc):
        return "a number has more than 4300 digits; shorten it, or quote it to make it text"
    return f"a value cannot be read ({exc})"


def read_structured(path: Path, *, c_loader: bool | None = None) -> Any:
    """Parse a .yaml/.yml/.json file strictly; errors name the file and line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError([f"{path}: cannot read file ({exc.strerror or exc}); check that it exists and that you "
                         "may read it"]) from None
    if len(data) > MAX_BYTES:
        raise SpecError([f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB; a spec file holds configuration "
                         "— put the data in a manifest (CSV/JSONL) and point data.manifest at it"])
    text = decode_utf8(data, str(path))
    if path.suffix.lower() == ".json":
        return parse_json(text, str(path))
    return parse_yaml(text, str(path), c_loader=c_loader)
