"""Build plain Python values from a composed YAML node graph, with a source span for every node.

No tag ever builds an object (only plain mappings, lists and scalars), aliases are expanded under
a budget by expansion ratio (:data:`MAX_EXPANSION_RATIO`: an alias bomb is an error, not a hang; a
large document without aliases is not), ``<<:`` merge keys work,
duplicate keys are errors, and an empty value is told apart from an explicit ``null``.
"""

from __future__ import annotations

import math
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from qplan.diagnostics import ConfigError, Diagnostic, Span

__all__ = [
    "INVALID",
    "MAX_EXPANSION_RATIO",
    "EXPANSION_FLOOR",
    "expansion_limit",
    "count_nodes",
    "ParsedDocument",
    "ValueBuilder",
    "check_size",
    "norm_path",
    "span_of",
]

MAX_EXPANSION_RATIO = 10
"""Aliases may expand a document to at most this many times its own number of nodes ..."""
EXPANSION_FLOOR = 100_000
"""... or to this many nodes, whichever is more (so small documents may reuse anchors freely)."""

_YAML = "tag:yaml.org,2002:"
_SAFE_SCALARS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}


class _Invalid:
    """Placeholder for a value already reported as an error (the validator skips it)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()

Path = tuple[Any, ...]


def norm_path(path: tuple) -> tuple:
    """Paths are stored with integer keys as strings (`0` and `"0"` are one tensor key)."""
    return tuple(str(p) if isinstance(p, int) and not isinstance(p, bool) else p for p in path)


class ParsedDocument:
    """Plain values plus, per path (a tuple of keys, see `norm_path`), the span of its key, the
    span of its value and whether the value was left empty."""

    def __init__(self, value: Any, name: str):
        self.value = value
        self.name = name
        self.key_spans: dict[Path, Span] = {}
        self.value_spans: dict[Path, Span] = {}
        self.empty: set[Path] = set()
        self.warnings: list[Diagnostic] = []


def span_of(name: str, start: Any, end: Any = None) -> Span:
    if end is None:
        return Span(file=name, line=start.line + 1, col=start.column + 1)
    return Span(file=name, line=start.line + 1, col=start.column + 1, end_line=end.line + 1, end_col=end.column + 1)


def count_nodes(root: Node) -> int:
    """The number of nodes as written: each node once, each alias as one more (not its expansion)."""
    seen: set[int] = set()
    todo = [root]
    count = 1
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        count += len(children)
        todo += children
    return count


def expansion_limit(parsed_nodes: int) -> int:
    """The most nodes a document of `parsed_nodes` distinct nodes may expand to through aliases."""
    return max(EXPANSION_FLOOR, MAX_EXPANSION_RATIO * parsed_nodes)


def check_size(root: Node, name: str) -> None:
    """Refuse documents whose aliases expand them more than :data:`MAX_EXPANSION_RATIO` times
    (beyond :data:`EXPANSION_FLOOR` nodes), or that contain themselves, before expanding anything
    (sizes are memoized per node, so this is linear in the text)."""
    parsed = count_nodes(root)
    limit = expansion_limit(parsed)
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(
                Diagnostic(
                    code="recursive-alias",
                    level="error",
                    message="recursive alias: a node contains itself",
                    span=span_of(name, node.start_mark, node.end_mark),
                )
            )
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        if total > limit:
            raise ConfigError(
                Diagnostic(
                    code="alias-bomb",
                    level="error",
                    message=f"aliases expand the document's {parsed:,} nodes to more than {limit:,}, over"
                    f" {MAX_EXPANSION_RATIO} times its size (an alias bomb?)",
                    span=span_of(name, node.start_mark, node.end_mark),
                    help="write the repeated parts out, or nest aliases less",
                )
            )
        return total

    size(root)


class ValueBuilder:
    """Turns nodes into values, recording spans in ``doc`` and problems in ``errors``."""

    def __init__(self, name: str):
        self.name = name
        self.doc = ParsedDocument(None, name)
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def fail(self, node: Node, message: str, code: str, fatal: bool = True) -> None:
        d = Diagnostic(
            code=code, level="error", message=message, span=span_of(self.name, node.start_mark, node.end_mark)
        )
        if fatal:
            raise ConfigError([*self.errors, d])
        self.errors.append(d)

    def build(self, node: Node, path: Path) -> Any:
        self.doc.value_spans[norm_path(path)] = span_of(self.name, node.start_mark, node.end_mark)
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            self.check_tag(node, f"{_YAML}seq")
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            self.check_tag(node, f"{_YAML}map")
            return self.mapping(node, path)
        self.fail(node, f"unsupported YAML node `{type(node).__name__}`", "yaml-syntax")

    def check_tag(self, node: Node, expected: str) -> bool:
        tag = str(node.tag)
        if tag == expected or (isinstance(node, ScalarNode) and tag in _SAFE_SCALARS):
            return True
        self.fail(
            node,
            f"tag `{_short(tag)}` is not allowed; configs hold only plain mappings, lists and scalars",
            "unsafe-tag",
            fatal=False,
        )
        return False

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        tag = str(node.tag)
        if not self.check_tag(node, f"{_YAML}str"):
            return INVALID
        text = node.value
        try:
            if tag == f"{_YAML}null":
                if text == "" and node.style is None:
                    self.doc.empty.add(norm_path(path))
                return None
            if tag == f"{_YAML}bool":
                return text.lower() == "true"
            if tag == f"{_YAML}int":
                return _parse_int(text)
            if tag == f"{_YAML}float":
                return _parse_float(text)
        except ValueError:
            self.fail(node, f"`{text}` is not a valid {_short(tag)}", "invalid-value", fatal=False)
            return INVALID
        return text

    def mapping(self, node: MappingNode, path: Path) -> dict:
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if str(key_node.tag) == f"{_YAML}merge":
                self.merge(value_node, path, merged)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if str(key_node.tag) == f"{_YAML}merge":
                continue
            key = self.key(key_node)
            if key is INVALID:
                continue
            if key in out:
                self.fail(key_node, f"duplicate key `{key}`", "duplicate-key", fatal=False)
                continue
            key_path = norm_path((*path, key))
            self.doc.key_spans[key_path] = span_of(self.name, key_node.start_mark, key_node.end_mark)
            out[key] = self.build(value_node, (*path, key))
            if key_path in self.doc.empty:  # an empty value has no text: place it right after the key
                self.doc.value_spans[key_path] = span_of(self.name, key_node.end_mark, key_node.end_mark)
        if not merged:
            return out
        result = {k: v for k, v in merged.items() if k not in out}
        result.update(out)
        return result

    def merge(self, node: Node, path: Path, merged: dict) -> None:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        own_span = self.doc.value_spans[norm_path(path)]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.fail(source, "a `<<` merge key needs a mapping or a list of mappings", "invalid-type", fatal=False)
                continue
            for key, value in self.build(source, path).items():
                merged.setdefault(key, value)
        self.doc.value_spans[norm_path(path)] = own_span

    def key(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            tag = str(node.tag)
            if tag == f"{_YAML}str":
                return node.value
            if tag == f"{_YAML}int":
                try:
                    return _parse_int(node.value)
                except ValueError:
                    pass
        what = node.value if isinstance(node, ScalarNode) else type(node).__name__.removesuffix("Node").lower()
        self.fail(
            node,
            f'key `{what}` is not allowed; keys are strings or integers (quote `"*"` and other special keys)',
            "invalid-key",
            fatal=False,
        )
        return INVALID


def _short(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _parse_int(text: str) -> int:
    t = text.replace("_", "")
    try:
        return int(t, 0)
    except ValueError:
        return int(t, 10)


def _parse_float(text: str) -> float:
    t = text.replace("_", "").lower()
    if t in (".inf", "+.inf"):
        return math.inf
    if t == "-.inf":
        return -math.inf
    if t == ".nan":
        return math.nan
    return float(t)
