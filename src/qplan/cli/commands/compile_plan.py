"""``qplan compile-plan``: compile a config against a model into a plan, write it, summarise it.

Exit 0 when the plan has no errors, 1 when it has (an existing PLAN is then left as it was), 2 for bad
usage or unreadable input. ``-o -`` writes the JSON plan to standard output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from qplan.cli.exits import EXIT_FAIL, EXIT_OK, UsageError, emit_diagnostics, errors_in_default_format
from qplan.cli.inputs import load_factory
from qplan.cli.outputs import STDOUT, check_not_input, is_stdout, write_output

__all__ = ["register", "run", "add_cache_argument", "inventory_cache", "located"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compile-plan", help="compile a config against a model into a plan")
    p.add_argument("config", metavar="CONFIG", help="YAML or JSON config file")
    p.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="factory returning (model, example_inputs), e.g. qplan.models:mlp",
    )
    p.add_argument(
        "--mode", choices=("graph", "eager"), default=None, help="capture mode (default: the config's execution_mode)"
    )
    p.add_argument("-o", "--output", metavar="PLAN", help="write the JSON plan to PLAN (`-`: standard output)")
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default=None,
        help="stdout format (default: table on a terminal or with -o PLAN, json otherwise or with -o -)",
    )
    p.add_argument("--strict", action="store_true", help="turn warnings into errors")
    add_cache_argument(p)
    p.set_defaults(run=run)


def add_cache_argument(p: argparse.ArgumentParser) -> None:
    """``--no-cache``: the commands that capture a model read and write the inventory cache."""
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="capture the model even when the inventory cache has it, and store nothing "
        "(cache: $QPLAN_CACHE_DIR, else $XDG_CACHE_HOME/qplan or ~/.cache/qplan)",
    )


def inventory_cache(args: argparse.Namespace) -> Any:
    """The inventory cache for `args` (keyed also by the ``--model`` factory's module), or None."""
    if args.no_cache:
        return None
    from qplan.compiler.inventory_cache import InventoryCache

    return InventoryCache(extra_modules=(args.model.partition(":")[0],))


@errors_in_default_format
def run(args: argparse.Namespace) -> int:
    from qplan.cli.render.diagnostics import summary
    from qplan.cli.render.plan import render_plan_summary
    from qplan.compiler import compile_plan
    from qplan.compiler.plan import encode_plan
    from qplan.schema.loader import load_config

    to_stdout = is_stdout(args.output)
    if to_stdout and args.format == "table":
        raise UsageError("-o - writes the plan to standard output; it cannot also take the --format table summary")
    check_not_input(args.output, args.config)
    loaded = load_config(Path(args.config))  # always a path, never YAML text (a directory is unreadable)
    model, example_inputs = load_factory(args.model)
    plan = compile_plan(model, loaded, example_inputs, args.mode, strict=args.strict, cache=inventory_cache(args))
    data = encode_plan(plan)
    failed = any(d.level == "error" for d in plan.diagnostics)
    output = None if to_stdout else args.output
    if output and not failed:  # a failed compile leaves an existing PLAN as it was
        write_output(output, data)
    fmt = "json" if to_stdout else args.format or ("table" if output or sys.stdout.isatty() else "json")
    if fmt == "json" and not output:
        write_output(STDOUT, data)
    elif fmt == "table":
        render_plan_summary(plan, sys.stdout)
        if plan.diagnostics:  # shown under the config path as given, so `full` can quote its lines
            emit_diagnostics([located(d, plan.config.source, args.config) for d in plan.diagnostics], None, sys.stdout)
        print(
            f"{len(plan.quantizers)} fake-quants; {summary(plan.diagnostics)}"
            + (f"; plan written to {output}" if output and not failed else "")
        )
    return EXIT_FAIL if any(d.level == "error" for d in plan.diagnostics) else EXIT_OK


def located(d: Any, name: str, path: str) -> Any:
    """`d` with a span in the config named `name` (as the plan names it) moved to `path`."""
    if d.span is None or d.span.file != name or name == path:
        return d
    return msgspec.structs.replace(d, span=msgspec.structs.replace(d.span, file=path))
