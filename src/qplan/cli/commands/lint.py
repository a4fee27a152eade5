"""``qplan lint``: compile configs against a model and report only rule hygiene (shadowed and dead
rules); exit 1 when any is found, so it can run as a pre-commit hook (``.pre-commit-hooks.yaml``).

The findings are the compiler's own diagnostics, filtered to :data:`LINT_CODES`; config errors
and compile errors are reported as ``compile-plan`` reports them (exit 1, or 2 when unreadable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qplan.cli.commands.compile_plan import add_cache_argument, inventory_cache, located
from qplan.cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UNREADABLE_CODES, emit_diagnostics
from qplan.diagnostics import CompileError, ConfigError, Diagnostic

__all__ = ["LINT_CODES", "register", "run", "is_lint_code"]

LINT_CODES = frozenset({"shadowed-rule", "unmatched-selector", "unknown-tensor-key", "dead-rule"})
"""Rule-hygiene codes: a rule that never wins, a selector or tensor key that matches nothing, a rule
that decides no tensor."""


def is_lint_code(code: str) -> bool:
    """Whether `code` is one `qplan lint` reports."""
    return code in LINT_CODES


def register(subparsers: argparse._SubParsersAction) -> None:
    from qplan.cli.render.diagnostics import FORMATS

    p = subparsers.add_parser("lint", help="report shadowed and dead rules of configs against a model; exit 1 when any")
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML or JSON config files")
    p.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="factory returning (model, example_inputs), e.g. qplan.models:mlp",
    )
    p.add_argument(
        "--mode", choices=("graph", "eager"), default=None, help="capture mode (default: each config's execution_mode)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="diagnostic format (default: full on a terminal, concise otherwise)",
    )
    add_cache_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qplan.cli.inputs import load_factory
    from qplan.cli.render.diagnostics import summary

    model, example_inputs = load_factory(args.model)
    cache = inventory_cache(args)
    found: list[Diagnostic] = []
    failed = unreadable = False
    for path in args.configs:
        try:
            found += _lint_one(path, model, example_inputs, args.mode, cache)
        except (ConfigError, CompileError) as e:
            found += [located(d, d.span.file if d.span else "", path) for d in e.diagnostics]
            failed = True
            unreadable |= any(d.code in UNREADABLE_CODES for d in e.diagnostics)
    emit_diagnostics(found, args.format)
    if args.format in (None, "concise", "full"):
        n = len(args.configs)
        print(
            f"{n} config{'s' if n != 1 else ''} linted: {summary(found) if found else 'no problems'}", file=sys.stderr
        )
    if unreadable:
        return EXIT_USAGE
    return EXIT_FAIL if failed or found else EXIT_OK


def _lint_one(path: str, model: Any, example_inputs: Any, mode: str | None, cache: Any) -> list[Diagnostic]:
    """The rule-hygiene diagnostics of the config at `path` compiled against the model."""
    from qplan.compiler import compile_plan
    from qplan.schema.loader import load_config

    loaded = load_config(Path(path))
    plan = compile_plan(model, loaded, example_inputs, mode, cache=cache)
    return [located(d, plan.config.source, path) for d in plan.diagnostics if is_lint_code(d.code)]
