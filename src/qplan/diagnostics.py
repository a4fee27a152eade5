"""Diagnostics: the one record every stage reports problems with, and the errors that carry them.

A :class:`Diagnostic` is data (code, level, message, config path, source span, help);
rendering lives in :mod:`qplan.cli.render.diagnostics`. Library code never prints.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "Level",
    "Span",
    "Diagnostic",
    "CodeInfo",
    "code_table_markdown",
    "QplanError",
    "ConfigError",
    "CompileError",
    "sort_key",
    "strictify",
]

Level = Literal["error", "warning", "info"]


class Span(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A place in a config file; lines and columns are 1-based."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Diagnostic(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One problem found in a config or a plan, with where it is and what to do about it."""

    code: str
    level: Level
    message: str
    path: str | None = None
    span: Span | None = None
    help: str | None = None

    def concise(self) -> str:
        """``file:line:col: level[code] message`` (the form editors and CI parse)."""
        where = f"{self.span}: " if self.span else ""
        at = f" (at `{self.path}`)" if self.path else ""
        hint = f"; help: {self.help}" if self.help else ""
        return f"{where}{self.level}[{self.code}] {self.message}{at}{hint}"


_LEVEL_ORDER = {"error": 0, "warning": 1, "info": 2}


def sort_key(d: Diagnostic) -> tuple:
    """Deterministic order: file, line, column, level, code, config path, message."""
    s = d.span
    return (
        s.file if s else "",
        s.line if s else 0,
        s.col if s else 0,
        _LEVEL_ORDER[d.level],
        d.code,
        d.path or "",
        d.message,
    )


def strictify(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics with every warning made an error (``--strict``); others unchanged."""
    return [msgspec.structs.replace(d, level="error") if d.level == "warning" else d for d in diagnostics]


class CodeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a diagnostic code means: its level, what it reports, why that matters, an example that
    triggers it (optional) and how to fix it. Each stage keeps one table of code -> CodeInfo."""

    level: Level
    what: str
    why: str
    fix: str
    example: str | None = None
    """A config fragment (YAML) that triggers the code."""


def code_table_markdown(codes: dict[str, CodeInfo], heading: str = "##") -> str:
    """Markdown for a code table: one section per code, headed `heading` (What, Why, Example, Fix)."""
    lines: list[str] = []
    for code, info in codes.items():
        lines += [f"{heading} `{code}` ({info.level})", "", f"**What.** {info.what}", "", f"**Why.** {info.why}", ""]
        if info.example is not None:
            lines += ["**Example.**", "", "```yaml", info.example.rstrip("\n"), "```", ""]
        lines += [f"**Fix.** {info.fix}", ""]
    return "\n".join(lines)


class QplanError(Exception):
    """Base of every error qplan raises on purpose."""


class ConfigError(QplanError, ValueError):
    """A config is invalid; ``diagnostics`` lists every problem found."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(code="invalid-config", level="error", message=diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = sorted(diagnostics, key=sort_key)
        errors = [d for d in self.diagnostics if d.level == "error"] or self.diagnostics
        text = "\n".join(d.concise() for d in errors[:20])
        if len(errors) > 20:
            text += f"\n... and {len(errors) - 20} more"
        super().__init__(text)


class CompileError(QplanError):
    """Compiling a config against a model failed; ``diagnostics`` says why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=sort_key)
        super().__init__("\n".join(d.concise() for d in self.diagnostics if d.level == "error"))
