"""Compose ruamel.yaml nodes from libyaml's events (ruamel.yaml.clib), about ten times faster than
ruamel's pure-Python composer.

Only ordinary documents are composed here: anything the two parsers could read differently (a
directive, a tag, a block scalar, a reused or undefined anchor, deep nesting, an empty value
placed elsewhere) raises :class:`Decline`, and :mod:`qplan.schema.yamldoc` leaves the document to
ruamel's pure composer, so values, errors, warnings and spans are the same either way.
"""

from __future__ import annotations

import re
from typing import Any, cast

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

__all__ = ["Decline", "YAML11_ONLY", "compose_events"]

_YAML = "tag:yaml.org,2002:"


class Decline(Exception):
    """The fast composer leaves this document to the pure-Python one."""


_FAST_MAX_DEPTH = 100
"""Deeper documents go to the pure composer (which reports "nested too deeply" past its limit)."""
YAML11_ONLY = re.compile("[\t\x85\u2028\u2029\ufeff]")
"""Characters libyaml (YAML 1.1) reads differently from ruamel (YAML 1.2): tabs, extra line breaks, BOM.
(libyaml also ends a text without a final newline at the start of a line that is not there.)"""
_STR = f"{_YAML}str"


def _implicit_rules() -> dict[str, list[tuple[str, re.Pattern]]]:
    """ruamel's YAML 1.2 rules for plain scalars (`1` is an int, `~` a null), by first character."""
    rules: dict[str, list[tuple[str, re.Pattern]]] = {}
    for versions, tag, regexp, first in implicit_resolvers:  # regexp: a compiled pattern (typed lazily)
        if (1, 2) in versions:
            for ch in first:
                rules.setdefault(ch, []).append((tag, cast(re.Pattern, regexp)))
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


def compose_events(get: Any, text: str) -> Node:
    """Events of one YAML 1.2 document without directives -> nodes, as ruamel's composer builds them."""
    if type(get()) is not StreamStartEvent:
        raise Decline
    start = get()
    if type(start) is not DocumentStartEvent or start.version or start.tags:
        raise Decline
    anchors: dict[str, Node] = {}
    stack: list[list[Any]] = []  # [collection node, pending mapping key or None]
    while True:
        event = get()
        kind = type(event)
        node: Node
        if getattr(event, "tag", None) is not None:
            raise Decline  # libyaml accepts tags that ruamel refuses; configs hold no tags anyway
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            _check_anchor(text, event)
            if kind is not AliasEvent and anchor in anchors:
                raise Decline  # a reused anchor: the pure composer warns about it
        if kind is ScalarEvent:
            style = event.style or None
            if style == "|" or style == ">":
                raise Decline  # block scalar headers: libyaml accepts some that ruamel refuses
            tag = _resolve_plain(event.value) if event.implicit[0] else _TAGS[_STR]
            node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=style)
            if (
                event.value == ""
                and style is None
                and (anchor is not None or not stack or stack[-1][1] is None or stack[-1][1].value == "<<")
            ):
                raise Decline  # libyaml places an empty value elsewhere than ruamel; the builder re-places only a mapping value
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
                raise Decline
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            node = stack.pop()[0]
            node.end_mark = event.end_mark
            if not stack:
                break
            continue
        elif kind is AliasEvent:
            aliased = anchors.get(event.anchor)
            if aliased is None:
                raise Decline  # an undefined alias: the pure composer reports it
            node = aliased
        else:
            raise Decline
        if kind is ScalarEvent and anchor is not None:
            anchors[anchor] = node
        if not stack:
            break
        _attach(stack, node)
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise Decline  # a second document: the pure composer reports it
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
        raise Decline


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
