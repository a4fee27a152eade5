"""The ``qplan`` command line: parse, call the library, render, exit.

Exit codes: 0 clean (or equal), 1 errors (or differences), 2 bad usage, unreadable input or an
internal error. Each subcommand is one ``_cmd_*`` function plus one entry in ``SUBCOMMANDS``;
to add one, write ``_add_<name>(subparsers)`` returning its parser with ``set_defaults(run=...)``.
Only the subcommand being run is registered (``qplan demo``'s options import torch; ``qplan
validate`` should not pay for that); ``qplan --help`` and unknown commands register them all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from qplan.diagnostics import ConfigError, Diagnostic, QplanError, strictify

__all__ = ["main", "SUBCOMMANDS", "emit_diagnostics", "report_error"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
UNREADABLE_CODES = frozenset({"unreadable-file"})


def _is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def emit_diagnostics(diagnostics: Sequence[Diagnostic], format: str | None, stream: TextIO | None = None) -> None:
    """Print diagnostics in `format` (default: `full` on a terminal, `concise` when piped)."""
    from qplan.render import render

    stream = stream or sys.stdout
    tty = _is_terminal(stream)
    fmt = format or ("full" if tty else "concise")
    stream.write(render(diagnostics, fmt, color=tty and fmt in ("full", "concise")))


def report_error(error: QplanError, format: str | None = None) -> int:
    """Print a deliberate error (its diagnostics in `format`, or one line) to stderr; return the
    exit code: the error's ``exit_code`` (2 for usage errors), 2 when a file was unreadable, else 1."""
    from qplan.render import FORMATS

    diagnostics = getattr(error, "diagnostics", None)
    if not diagnostics:
        print(f"qplan: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_FAIL)
    emit_diagnostics(diagnostics, format if format in FORMATS else None, sys.stderr)
    return (
        EXIT_USAGE if any(d.code in UNREADABLE_CODES for d in diagnostics) else getattr(error, "exit_code", EXIT_FAIL)
    )


# -- qplan schema -----------------------------------------------------------------------------
def _cmd_schema(args: argparse.Namespace) -> int:
    from qplan.schema.jsonschema import schema_text

    text = schema_text()
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            print(f"qplan: cannot write `{args.output}`: {e.strerror or e}", file=sys.stderr)
            return EXIT_USAGE
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _add_schema(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("schema", help="print the JSON Schema (draft 2020-12) of config files")
    p.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE instead of stdout")
    p.set_defaults(run=_cmd_schema)
    return p


# -- qplan validate ---------------------------------------------------------------------------
def _cmd_validate(args: argparse.Namespace) -> int:
    from qplan.render import summary
    from qplan.schema.loader import load_config

    diagnostics: list[Diagnostic] = []
    unreadable = False
    for path in args.configs:
        source = sys.stdin if path == "-" else Path(path)
        try:
            diagnostics += load_config(source, name="<stdin>" if path == "-" else path).warnings
        except ConfigError as e:
            diagnostics += e.diagnostics
            unreadable |= any(d.code in UNREADABLE_CODES for d in e.diagnostics)
    if args.strict:
        diagnostics = strictify(diagnostics)
    emit_diagnostics(diagnostics, args.format)
    errors = sum(d.level == "error" for d in diagnostics)
    if args.format in (None, "concise", "full"):
        n = len(args.configs)
        verdict = "valid" if not errors else "invalid"
        print(f"{n} config{'s' if n != 1 else ''} checked, {verdict}: {summary(diagnostics)}", file=sys.stderr)
    if unreadable:
        return EXIT_USAGE
    return EXIT_FAIL if errors else EXIT_OK


def _add_validate(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qplan.render import FORMATS

    p = sub.add_parser("validate", help="check config files; exit 1 when any has errors")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML or JSON config files (`-` reads stdin)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="diagnostic format (default: full on a terminal, concise otherwise)",
    )
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(run=_cmd_validate)
    return p


# -- qplan presets ----------------------------------------------------------------------------
def _cmd_presets(args: argparse.Namespace) -> int:
    from qplan.schema.presets import PRESETS

    for i, preset in enumerate(PRESETS.values()):
        if i:
            print()
        print(f"# {preset.name}{preset.signature}: {preset.summary}")
        print(preset.yaml(), end="")
    return EXIT_OK


def _add_presets(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("presets", help="list the config presets with their YAML")
    p.set_defaults(run=_cmd_presets)
    return p


# -- qplan compile-plan / diff / explain (implemented in qplan.commands_compile) --------------
def _add_compile_plan(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qplan.commands_compile import add_compile_plan

    return add_compile_plan(sub)


def _add_diff(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qplan.commands_compile import add_diff

    return add_diff(sub)


def _add_explain(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qplan.commands_compile import add_explain

    return add_explain(sub)


def _add_demo(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qplan.demo_report import add_demo

    return add_demo(sub)


# -- entry point ------------------------------------------------------------------------------
SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = {
    "schema": _add_schema,
    "validate": _add_validate,
    "presets": _add_presets,
    "compile-plan": _add_compile_plan,
    "diff": _add_diff,
    "explain": _add_explain,
    "demo": _add_demo,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``qplan`` argument parser: the subparser of `command` alone when it is a known
    subcommand (parsing its arguments never shows the others), else one per :data:`SUBCOMMANDS` entry."""
    parser = argparse.ArgumentParser(prog="qplan", description="Quantization config compiler for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add in SUBCOMMANDS.items():
        if command not in SUBCOMMANDS or name == command:
            add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console script)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    try:
        return args.run(args)
    except QplanError as e:
        return report_error(e, getattr(args, "format", None))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug: say so in one line; QPLAN_DEBUG=1 shows the traceback
        if os.environ.get("QPLAN_DEBUG"):
            raise
        print(f"qplan: internal error: {type(e).__name__}: {e} (set QPLAN_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
