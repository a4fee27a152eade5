"""Read YAML (or JSON) text safely into plain Python values, with a source span for every node.

This module composes the text into a node graph and turns YAML syntax errors into diagnostics;
:mod:`qplan.schema.yamlvalues` builds the values from the nodes (no tag ever builds an object,
aliases are expanded under a budget by expansion ratio, ``<<:`` merge keys work, duplicate keys are errors, an
empty value is told apart from an explicit ``null``).

Composing: when ruamel.yaml.clib is installed, libyaml's compiled parser supplies the events and
:mod:`qplan.schema.yamlevents` turns them into ruamel nodes (about ten times faster than ruamel's
pure-Python composer). Anything out of the ordinary there (a syntax error, a directive, a reused or
undefined anchor, deep nesting, an empty value whose position the two parsers place differently)
is left to ruamel's pure-Python composer, so errors, warnings and spans are the same either way.
"""

from __future__ import annotations

import json
import re
import warnings

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.nodes import Node
from ruamel.yaml.scanner import Scanner, ScannerError

try:  # ruamel.yaml.clib: libyaml's scanner and parser, compiled (optional)
    from _ruamel_yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on the platform
    _CParser = None

from qplan.diagnostics import ConfigError, Diagnostic, Span
from qplan.schema.yamlevents import YAML11_ONLY, Decline, compose_events
from qplan.schema.yamlvalues import (
    EXPANSION_FLOOR,
    INVALID,
    MAX_EXPANSION_RATIO,
    ParsedDocument,
    ValueBuilder,
    check_size,
    norm_path,
    span_of,
)

__all__ = ["MAX_EXPANSION_RATIO", "EXPANSION_FLOOR", "ParsedDocument", "parse_document", "norm_path", "INVALID"]


def parse_document(text: str, name: str) -> ParsedDocument:
    """Parse one YAML/JSON document; raise ConfigError for syntax errors and unsafe content."""
    if "\t" in text:
        text = _detab_json(text)
    _refuse_json_comments(text, name)
    caught: list[warnings.WarningMessage] = []
    root = _compose_fast(text)
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
    builder = ValueBuilder(name)
    builder.warnings += [_reused_anchor(w.message, name) for w in caught if issubclass(w.category, ReusedAnchorWarning)]
    try:
        check_size(root, name)
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
    yaml.Scanner = _LongKeyScanner
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ReusedAnchorWarning)
            root = yaml.compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        span = span_of(name, mark) if mark is not None else Span(file=name, line=1, col=1)
        context = e.context
        if context and e.context_mark is not None and mark is not e.context_mark:
            context += f" (started at {e.context_mark.line + 1}:{e.context_mark.column + 1})"
        problem = ": ".join(p for p in (context, e.problem) if p)
        help = None
        if mark is not None and "alias" in problem and _char_at(text, mark.line, mark.column) == "*":
            help = 'a bare `*` starts a YAML alias; quote the wildcard key: `"*"`'
        elif _json_comments(text):
            help = (
                "JSON has no comments (`//`, `/* */`); remove them, or write the config as YAML, which has `#` comments"
            )
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


class _LongKeyScanner(Scanner):
    """ruamel's scanner without YAML's 1,024-character limit on an implicit key: module and op
    name regexes can be longer (in JSON too, where every key is one), and a key still ends on its line."""

    def stale_possible_simple_keys(self) -> None:
        for level in list(self.possible_simple_keys):
            key = self.possible_simple_keys[level]
            if key.line != self.reader.line:
                if key.required:
                    raise ScannerError(
                        "while scanning a simple key", key.mark, "could not find expected ':'", self.reader.get_mark()
                    )
                del self.possible_simple_keys[level]


def _compose_fast(text: str) -> Node | None:
    """Compose with libyaml's events, or None where the pure composer must decide."""
    if _CParser is None or not text.endswith("\n") or YAML11_ONLY.search(text):
        return None
    try:
        parser = _CParser(text)
    except ValueError:  # text libyaml cannot take (lone surrogates): the pure composer reports it
        return None
    try:
        return compose_events(parser.get_event, text)
    except (YAMLError, ValueError, Decline):
        return None
    finally:
        parser.dispose()


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


_JSON_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|//[^\n]*|/\*.*?(?:\*/|\Z)', re.S)
"""A JSON string (skipped, so `//` inside one is text) or a `//` or `/* */` comment."""


def _json_comments(text: str) -> list[tuple[int, int]]:
    """Where the `//` and `/* */` comments are, when `text` looks like JSON (starts with `{` or `[`)."""
    if "/" not in text or text.lstrip()[:1] not in ("{", "["):
        return []
    return [m.span() for m in _JSON_TOKENS.finditer(text) if m[0].startswith("/")]


def _refuse_json_comments(text: str, name: str) -> None:
    """A JSON document that would be valid without its `//` or `/* */` comments is an error that
    says so (YAML would otherwise read a comment as text, or fail somewhere after it)."""
    comments = _json_comments(text)
    if not comments:
        return
    stripped = list(text)
    for start, end in comments:
        stripped[start:end] = (c if c == "\n" else " " for c in text[start:end])
    try:
        json.loads("".join(stripped))
    except (ValueError, RecursionError):
        return  # not JSON with comments: YAML decides
    start = comments[0][0]
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    raise ConfigError(
        Diagnostic(
            code="yaml-syntax",
            level="error",
            message=f"JSON has no comments, but this JSON document has `{text[start : start + 2]}` comments",
            span=Span(file=name, line=line, col=col),
            help="remove the comments, or write the config as YAML, which has `#` comments",
        )
    )


def _detab_json(text: str) -> str:
    """Valid JSON may indent with tabs, which YAML refuses; a space keeps every column in place."""
    try:
        json.loads(text)
    except ValueError:
        return text
    return text.replace("\t", " ")
