"""``qplan schema``: print (or write) the JSON Schema of config files (``--plan``: of plan files)."""

from __future__ import annotations

import argparse

from qplan.cli.exits import EXIT_OK
from qplan.cli.outputs import STDOUT, write_output

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("schema", help="print the JSON Schema (draft 2020-12) of config files")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write the schema to FILE (`-`: standard output, the default)"
    )
    p.add_argument(
        "--plan", action="store_true", help="the schema of plan files (written by compile-plan) instead of configs"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.plan:
        from qplan.compiler.plan_schema import plan_schema_text

        text = plan_schema_text()
    else:
        from qplan.schema.jsonschema import schema_text

        text = schema_text()
    write_output(args.output or STDOUT, text)
    return EXIT_OK
