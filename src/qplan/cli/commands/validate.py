"""``qplan validate``: check config files; exit 1 when any has errors, 2 when one is unreadable.

Besides the schema's checks, the model-free compiler checks of
:func:`qplan.compiler.tensor_keys.static_tensor_key_diagnostics` run on every valid config:
``op_type_config`` keys outside the op table, tensor keys no op could have.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qplan.cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UNREADABLE_CODES, emit_diagnostics
from qplan.diagnostics import ConfigError, Diagnostic, strictify

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from qplan.cli.render.diagnostics import FORMATS

    p = subparsers.add_parser("validate", help="check config files; exit 1 when any has errors")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML or JSON config files (`-` reads stdin)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="diagnostic format (default: full on a terminal, concise otherwise)",
    )
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qplan.cli.render.diagnostics import summary
    from qplan.compiler.tensor_keys import static_tensor_key_diagnostics
    from qplan.schema.loader import load_config

    diagnostics: list[Diagnostic] = []
    unreadable = False
    for path in args.configs:
        source = sys.stdin if path == "-" else Path(path)
        try:
            loaded = load_config(source, name="<stdin>" if path == "-" else path)
        except ConfigError as e:
            diagnostics += e.diagnostics
            unreadable |= any(d.code in UNREADABLE_CODES for d in e.diagnostics)
            continue
        diagnostics += loaded.warnings
        diagnostics += static_tensor_key_diagnostics(loaded.config, loaded.span_for)
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
