"""Read YAML (or JSON) text safely into plain Python values, with a source span for every node.

A composer gives a node graph with 0-based marks; this module builds values from it itself, so
that no tag ever builds an object, aliases are expanded under a node budget (an alias bomb is an
error, not a hang), ``<<:`` merge keys work, duplicate keys are errors, and an empty value can be
told apart from an explicit ``null``.

Composing: when ruamel.yaml.clib is installed, libyaml's compiled parser supplies the events and
a small loop here turns them into ruamel nodes (about ten times faster than ruamel's pure-Python
composer). Anything out of the ordinary there (a syntax error, a directive, a reused or undefined
anchor, deep nesting, an empty value whose position the two parsers place differently) is left
to ruamel's pure-Python composer, so errors, warnings and spans are the same either way.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import implicit_resolvers
from ruamel.yaml.tag import Tag

try:  # ruamel.yaml.clib: libyaml's scanner and parser, compiled (optional)
    from _ruamel_yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on the platform
    _CParser = None

from qplan.diagnostics import ConfigError, Diagnostic, Span

__all__ = ["MAX_NODES", "ParsedDocument", "parse_document", "norm_path", "INVALID"]

MAX_NODES = 100_000
"""Upper bound on the number of nodes after alias expansion."""

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


def _span(name: str, start: Any, end: Any = None) -> Span:
    if end is None:
        return Span(file=name, line=start.line + 1, col=start.column + 1)
    return Span(file=name, line=start.line + 1, col=start.column + 1, end_line=end.line + 1, end_col=end.column + 1)


def parse_document(text: str, name: str) -> ParsedDocument:
    """Parse one YAML/JSON document; raise ConfigError for syntax errors and unsafe content."""
    if "\t" in text:
        text = _detab_json(text)
    root, caught = _compose_fast(text), []
    if root is None:
        root, caught = _compose_pure(text, name)
    if root is None:
        raise ConfigError(
            Diagnostic(
                code="empty-document",
                level="error",
                message="the config is empty; expected a mapping with `quantization_config`",
                span=Span(file=name, line=1, col=1),
            )
        )
    builder = _Builder(name)
    builder.warnings += [_reused_anchor(w.message, name) for w in caught if issubclass(w.category, ReusedAnchorWarning)]
    try:
        _check_size(root, name)
        value = builder.build(root, ())
    except RecursionError:
        builder.fail(root, "document is nested too deeply", "yaml-syntax")
    if builder.errors:
        raise ConfigError([*builder.errors, *builder.warnings])
    doc = builder.doc
    doc.value = value
    doc.warnings = builder.warnings
    return doc


def _compose_pure(text: str, name: str) -> tuple[Node | None, list[warnings.WarningMessage]]:
    """ruamel.yaml's pure-Python composer (YAML 1.2); syntax errors become ConfigError."""
    yaml = YAML(typ="safe", pure=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ReusedAnchorWarning)
            root = yaml.compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        span = _span(name, mark) if mark is not None else Span(file=name, line=1, col=1)
        context = e.context
        if context and e.context_mark is not None and mark is not e.context_mark:
            context += f" (started at {e.context_mark.line + 1}:{e.context_mark.column + 1})"
        problem = ": ".join(p for p in (context, e.problem) if p)
        help = None
        if mark is not None and "alias" in problem and _char_at(text, mark.line, mark.column) == "*":
            help = 'a bare `*` starts a YAML alias; quote the wildcard key: `"*"`'
        raise ConfigError(
            Diagnostic(
                code="yaml-syntax",
                level="error",
                message=f"invalid YAML: {problem}",
                span=span,
                help=help,
            )
        ) from None
    except (YAMLError, RecursionError) as e:
        msg = "document is nested too deeply" if isinstance(e, RecursionError) else f"invalid YAML: {e}"
        raise ConfigError(
            Diagnostic(code="yaml-syntax", level="error", message=msg, span=Span(file=name, line=1, col=1))
        ) from None
    return root, caught


class _Decline(Exception):
    """The fast composer leaves this document to the pure-Python one."""


_FAST_MAX_DEPTH = 100
"""Deeper documents go to the pure composer (which reports "nested too deeply" past its limit)."""
_YAML11_ONLY = re.compile("[\t\x85\u2028\u2029\ufeff]")
"""Characters libyaml (YAML 1.1) reads differently from ruamel (YAML 1.2): tabs, extra line breaks, BOM.
(libyaml also ends a text without a final newline at the start of a line that is not there.)"""
_STR = f"{_YAML}str"


def _implicit_rules() -> dict[str, list[tuple[str, re.Pattern]]]:
    """ruamel's YAML 1.2 rules for plain scalars (`1` is an int, `~` a null), by first character."""
    rules: dict[str, list[tuple[str, re.Pattern]]] = {}
    for versions, tag, regexp, first in implicit_resolvers:
        if (1, 2) in versions:
            for ch in first:
                rules.setdefault(ch, []).append((tag, regexp))
    return rules


_IMPLICIT = _implicit_rules()
_TAGS = {
    tag: Tag(suffix=tag)
    for tag in {_STR, f"{_YAML}seq", f"{_YAML}map", *(t for rules in _IMPLICIT.values() for t, _ in rules)}
}
"""One shared Tag per tag (a Tag decodes its text on first use, character by character)."""


def _resolve_plain(value: str) -> Tag:
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            return _TAGS[tag]
    return _TAGS[_STR]


def _compose_fast(text: str) -> Node | None:
    """Compose with libyaml's events, or None where the pure composer must decide."""
    if _CParser is None or not text.endswith("\n") or _YAML11_ONLY.search(text):
        return None
    try:
        parser = _CParser(text)
    except ValueError:  # text libyaml cannot take (lone surrogates): the pure composer reports it
        return None
    try:
        return _compose_events(parser.get_event, text)
    except (YAMLError, ValueError, _Decline):
        return None
    finally:
        parser.dispose()


def _compose_events(get: Any, text: str) -> Node:
    """Events of one YAML 1.2 document without directives -> nodes, as ruamel's composer builds them."""
    if type(get()) is not StreamStartEvent:
        raise _Decline
    start = get()
    if type(start) is not DocumentStartEvent or start.version or start.tags:
        raise _Decline
    anchors: dict[str, Node] = {}
    stack: list[list[Any]] = []  # [collection node, pending mapping key or None]
    while True:
        event = get()
        kind = type(event)
        if getattr(event, "tag", None) is not None:
            raise _Decline  # libyaml accepts tags that ruamel refuses; configs hold no tags anyway
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            _check_anchor(text, event)
            if kind is not AliasEvent and anchor in anchors:
                raise _Decline  # a reused anchor: the pure composer warns about it
        if kind is ScalarEvent:
            style = event.style or None
            if style == "|" or style == ">":
                raise _Decline  # block scalar headers: libyaml accepts some that ruamel refuses
            tag = _resolve_plain(event.value) if event.implicit[0] else _TAGS[_STR]
            node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=style)
            if (
                event.value == ""
                and style is None
                and (anchor is not None or not stack or stack[-1][1] is None or stack[-1][1].value == "<<")
            ):
                raise _Decline  # libyaml places an empty value elsewhere than ruamel; the builder re-places only a mapping value
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if kind is MappingStartEvent:
                node = MappingNode(_TAGS[f"{_YAML}map"], [], event.start_mark, None, flow_style=event.flow_style)
            else:
                node = SequenceNode(_TAGS[f"{_YAML}seq"], [], event.start_mark, None, flow_style=event.flow_style)
            if anchor is not None:
                anchors[anchor] = node
            _attach(stack, node)
            stack.append([node, None])
            if len(stack) > _FAST_MAX_DEPTH:
                raise _Decline
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            node = stack.pop()[0]
            node.end_mark = event.end_mark
            if not stack:
                break
            continue
        elif kind is AliasEvent:
            node = anchors.get(anchor)
            if node is None:
                raise _Decline  # an undefined alias: the pure composer reports it
        else:
            raise _Decline
        if kind is ScalarEvent and anchor is not None:
            anchors[anchor] = node
        if not stack:
            break
        _attach(stack, node)
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise _Decline  # a second document: the pure composer reports it
    return node


def _check_anchor(text: str, event: Any) -> None:
    """libyaml ends an anchor or alias name at the first character outside `[A-Za-z0-9_-]`,
    ruamel at whitespace or a flow indicator; the names agree only when both end at the same place."""
    start = event.start_mark.index
    end = start + 1 + len(event.anchor)
    if (
        text[start : start + 1] not in ("&", "*")
        or text[start + 1 : end] != event.anchor
        or text[end : end + 1] not in _NAME_ENDS
    ):
        raise _Decline


_NAME_ENDS = frozenset((" ", "\r", "\n", ",", "[", "]", "{", "}"))


def _attach(stack: list[list[Any]], node: Node) -> None:
    if not stack:
        return
    top = stack[-1]
    parent = top[0]
    if type(parent) is SequenceNode:
        parent.value.append(node)
    elif top[1] is None:
        top[1] = node
    else:
        parent.value.append((top[1], node))
        top[1] = None


def _reused_anchor(message: Warning | str, name: str) -> Diagnostic:
    text = str(message)
    anchor = re.search(r"duplicate anchor '([^']*)'", text)
    where = re.findall(r"line (\d+), column (\d+)", text)
    line, col = map(int, where[-1]) if where else (1, 1)
    return Diagnostic(
        code="duplicate-anchor",
        level="warning",
        message=f"anchor `&{anchor[1] if anchor else '?'}` is defined again; later aliases refer to this definition",
        span=Span(file=name, line=line, col=col),
        help="give each anchor its own name",
    )


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    return lines[line][column] if line < len(lines) and column < len(lines[line]) else ""


def _detab_json(text: str) -> str:
    """Valid JSON may indent with tabs, which YAML refuses; a space keeps every column in place."""
    try:
        json.loads(text)
    except ValueError:
        return text
    return text.replace("\t", " ")


def _check_size(root: Node, name: str) -> None:
    """Refuse documents whose alias expansion exceeds MAX_NODES, or that contain themselves,
    before expanding anything (sizes are memoized per node, so this is linear in the text)."""
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
                    span=_span(name, node.start_mark, node.end_mark),
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
        if total > MAX_NODES:
            raise ConfigError(
                Diagnostic(
                    code="alias-bomb",
                    level="error",
                    message=f"the document expands to more than {MAX_NODES} nodes through aliases (alias bomb?)",
                    span=_span(name, node.start_mark, node.end_mark),
                )
            )
        return total

    size(root)


class _Builder:
    def __init__(self, name: str):
        self.name = name
        self.doc = ParsedDocument(None, name)
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def fail(self, node: Node, message: str, code: str, fatal: bool = True) -> None:
        d = Diagnostic(code=code, level="error", message=message, span=_span(self.name, node.start_mark, node.end_mark))
        if fatal:
            raise ConfigError([*self.errors, d])
        self.errors.append(d)

    def build(self, node: Node, path: Path) -> Any:
        self.doc.value_spans[norm_path(path)] = _span(self.name, node.start_mark, node.end_mark)
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
            self.doc.key_spans[key_path] = _span(self.name, key_node.start_mark, key_node.end_mark)
            out[key] = self.build(value_node, (*path, key))
            if key_path in self.doc.empty:  # an empty value has no text: place it right after the key
                self.doc.value_spans[key_path] = _span(self.name, key_node.end_mark, key_node.end_mark)
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
