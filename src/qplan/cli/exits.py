"""Exit codes and error reporting shared by every subcommand.

Exit codes: 0 clean (or equal), 1 errors (or differences), 2 bad usage (unreadable input, a
``--model`` whose code fails or returns the wrong thing, ...) or an internal error (a bug in qplan). Deliberate errors (:class:`~qplan.diagnostics.QplanError`) print to stderr as
their diagnostics or one line; nothing here decides what a subcommand does.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from qplan.diagnostics import Diagnostic, QplanError

__all__ = [
    "EXIT_OK",
    "EXIT_FAIL",
    "EXIT_USAGE",
    "UNREADABLE_CODES",
    "UsageError",
    "emit_diagnostics",
    "report_error",
    "errors_in_default_format",
]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
UNREADABLE_CODES = frozenset({"unreadable-file"})


class UsageError(QplanError):
    """Bad command-line input (exit 2)."""

    exit_code = EXIT_USAGE


def _is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def emit_diagnostics(diagnostics: Sequence[Diagnostic], format: str | None, stream: TextIO | None = None) -> None:
    """Print diagnostics in `format` (default: `full` on a terminal, `concise` when piped)."""
    from qplan.cli.render.diagnostics import render

    stream = stream or sys.stdout
    tty = _is_terminal(stream)
    fmt = format or ("full" if tty else "concise")
    stream.write(render(diagnostics, fmt, color=tty and fmt in ("full", "concise")))


def report_error(error: QplanError, format: str | None = None) -> int:
    """Print a deliberate error (its diagnostics in `format`, or one line) to stderr; return the
    exit code: the error's ``exit_code`` (2 for usage errors), 2 when a file was unreadable, else 1."""
    from qplan.cli.render.diagnostics import FORMATS

    diagnostics = getattr(error, "diagnostics", None)
    if not diagnostics:
        print(f"qplan: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_FAIL)
    emit_diagnostics(diagnostics, format if format in FORMATS else None, sys.stderr)
    return (
        EXIT_USAGE if any(d.code in UNREADABLE_CODES for d in diagnostics) else getattr(error, "exit_code", EXIT_FAIL)
    )


def errors_in_default_format(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand's ``run`` so its errors print as :func:`report_error` does with diagnostics
    in the default format: for commands whose ``--format`` is for their own output, not diagnostics."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except QplanError as e:
            return report_error(e)

    return wrapper
