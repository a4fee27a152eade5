"""Where a value sits in JSON text: ``line, col`` of a JSON path, and JSON paths parsed from text.

Used only when a plan is rejected, to point at the offending value; a plan that loads never
pays for it. The scanner assumes the text is valid JSON (decoding already succeeded).
"""

from __future__ import annotations

import json
import re

__all__ = ["locate", "parse_path", "line_col"]

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.S)
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]|\[\.\.\.\]")


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character `offset` in `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def parse_path(path: str) -> tuple[str | int, ...] | None:
    """``("quantizers", 3, "spec")`` from ``$.quantizers[3].spec``; None for a path with ``[...]``
    (msgspec's placeholder for a dict key) or one that does not parse."""
    if not path.startswith("$"):
        return None
    parts: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _PATH_PART.match(path, pos)
        if m is None or m.group(0) == "[...]":
            return None
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            try:
                parts.append(json.loads(m.group(3)))
            except ValueError:
                return None
        pos = m.end()
    return tuple(parts)


def locate(text: str, parts: tuple[str | int, ...]) -> tuple[int, int] | None:
    """``line, col`` of the value at `parts` in JSON `text`, or of its nearest enclosing value
    that exists; None when `text` is not a JSON container."""
    tokens = [(m.start(), m.group(0)) for m in _TOKEN.finditer(text)]
    if not tokens:
        return None
    i = 0
    for part in parts:
        found = _child(tokens, i, part)
        if found is None:
            break
        i = found
    return line_col(text, tokens[i][0])


def _child(tokens: list[tuple[int, str]], i: int, part: str | int) -> int | None:
    """Index of the token starting member `part` of the container at token `i`, if any."""
    opener = tokens[i][1]
    i += 1
    if opener == "{" and isinstance(part, str):
        while i + 2 < len(tokens) and tokens[i][1] != "}":
            try:
                key = json.loads(tokens[i][1])
            except ValueError:
                return None
            if key == part:
                return i + 2
            i = _skip(tokens, i + 2)
            if i >= len(tokens) or tokens[i][1] != ",":
                return None
            i += 1
    elif opener == "[" and isinstance(part, int):
        for _ in range(part):
            i = _skip(tokens, i)
            if i >= len(tokens) or tokens[i][1] != ",":
                return None
            i += 1
        return i if i < len(tokens) and tokens[i][1] != "]" else None
    return None


def _skip(tokens: list[tuple[int, str]], i: int) -> int:
    """Index just past the value starting at token `i`."""
    if i >= len(tokens) or tokens[i][1] not in "{[":
        return i + 1
    depth = 0
    while i < len(tokens):
        t = tokens[i][1]
        if t in ("{", "["):
            depth += 1
        elif t in ("}", "]"):
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i
