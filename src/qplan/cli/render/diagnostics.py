"""Render diagnostics for people and tools: ``concise``, ``full``, ``json`` and ``github``; and their ``summary``.

All renderers take the same sorted list (``diagnostics.sort_key``) and return text; printing is
the caller's job. ``full`` shows the offending line with carets and the ``help:`` when the file
can be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from rich.console import Console
from rich.text import Text

from qplan.diagnostics import Diagnostic, sort_key

__all__ = ["FORMATS", "render", "summary"]

_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}


def render(
    diagnostics: Iterable[Diagnostic],
    format: str = "concise",
    *,
    sources: Mapping[str, str] | None = None,
    color: bool = False,
) -> str:
    """Render diagnostics (sorted) in `format`; `sources` maps file names to their text."""
    ordered = sorted(diagnostics, key=sort_key)
    try:
        renderer = _RENDERERS[format]
    except KeyError:
        raise ValueError(f"unknown format `{format}`; expected one of {', '.join(FORMATS)}") from None
    return renderer(ordered, _Sources(sources), color)


def summary(diagnostics: Iterable[Diagnostic]) -> str:
    """``"2 errors, 1 warning"`` (or ``"no problems"``)."""
    diagnostics = list(diagnostics)
    parts = []
    for level in ("error", "warning", "info"):
        n = sum(d.level == level for d in diagnostics)
        if n:
            parts.append(f"{n} {level}{'s' if n != 1 else ''}")
    return ", ".join(parts) or "no problems"


class _Sources:
    """File text by name, read lazily; None when unreadable."""

    def __init__(self, given: Mapping[str, str] | None):
        self.cache: dict[str, list[str] | None] = {k: v.splitlines() for k, v in (given or {}).items()}

    def line(self, file: str, line: int) -> str | None:
        if file not in self.cache:
            try:
                with open(file, encoding="utf-8-sig") as f:
                    self.cache[file] = f.read().splitlines()
            except (OSError, UnicodeDecodeError):
                self.cache[file] = None
        lines = self.cache[file]
        return lines[line - 1] if lines is not None and 0 < line <= len(lines) else None


def _concise(diagnostics: list[Diagnostic], _sources: _Sources, color: bool) -> str:
    if not color:
        return "".join(d.concise() + "\n" for d in diagnostics)
    text = Text()
    for d in diagnostics:
        where = f"{d.span}: " if d.span else ""
        label = f"{d.level}[{d.code}]"
        text.append(where, style="bold")
        text.append(label, style=_STYLE[d.level])
        text.append(d.concise()[len(where) + len(label) :] + "\n")
    return _ansi(text)


def _full(diagnostics: list[Diagnostic], sources: _Sources, color: bool) -> str:
    text = Text()
    for d in diagnostics:
        text.append(f"{d.level}[{d.code}]", style=_STYLE[d.level])
        text.append(f": {d.message}\n", style="bold")
        if d.span:
            text.append("  --> ", style="blue")
            text.append(f"{d.span}\n")
            source = sources.line(d.span.file, d.span.line)
            if source is not None:
                gutter = " " * len(str(d.span.line))
                start = d.span.col - 1
                end = d.span.end_col - 1 if d.span.end_line == d.span.line and d.span.end_col else len(source.rstrip())
                width = max(1, min(end, len(source)) - start)
                text.append(f" {gutter} |\n", style="blue")
                text.append(f" {d.span.line} | ", style="blue")
                text.append(f"{source}\n")
                text.append(f" {gutter} | ", style="blue")
                text.append(" " * start + "^" * width + "\n", style=_STYLE[d.level])
        if d.path:
            text.append("   = at: ", style="blue")
            text.append(f"{d.path}\n")
        if d.help:
            text.append("   = help: ", style="bold cyan")
            text.append(f"{d.help}\n")
        text.append("\n")
    return _ansi(text) if color else text.plain


def _json(diagnostics: list[Diagnostic], _sources: _Sources, _color: bool) -> str:
    records = []
    for d in diagnostics:
        s = d.span
        records.append(
            {
                "code": d.code,
                "level": d.level,
                "message": d.message,
                "path": d.path,
                "help": d.help,
                "filename": s.file if s else None,
                "location": {"row": s.line, "column": s.col} if s else None,
                "end_location": {"row": s.end_line, "column": s.end_col} if s and s.end_line else None,
            }
        )
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def _github(diagnostics: list[Diagnostic], _sources: _Sources, _color: bool) -> str:
    lines = []
    for d in diagnostics:
        props = [f"title={_escape_property(f'qplan {d.code}')}"]
        if d.span:
            props += [f"file={_escape_property(d.span.file)}", f"line={d.span.line}", f"col={d.span.col}"]
            if d.span.end_line:
                props += [f"endLine={d.span.end_line}", f"endColumn={d.span.end_col}"]
        message = d.message + (f" (at `{d.path}`)" if d.path else "") + (f"\nhelp: {d.help}" if d.help else "")
        lines.append(f"::{_GITHUB_LEVEL[d.level]} {','.join(props)}::{_escape_data(message)}\n")
    return "".join(lines)


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def _ansi(text: Text) -> str:
    console = Console(force_terminal=True, color_system="standard", width=10_000, highlight=False)
    with console.capture() as capture:
        console.print(text, end="", soft_wrap=True)
    return capture.get()


_RENDERERS: dict[str, Callable[[list[Diagnostic], _Sources, bool], str]] = {
    "concise": _concise,
    "full": _full,
    "json": _json,
    "github": _github,
}
FORMATS = tuple(_RENDERERS)
