"""The ``qplan`` entry point: build the argument parser from the subcommand modules, dispatch, exit.

Only the subcommand being run is registered (``qplan demo``'s options import torch; ``qplan
validate`` should not pay for that); ``qplan --help`` and unknown commands register them all.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from qplan.cli.exits import EXIT_OK, EXIT_USAGE, report_error
from qplan.diagnostics import QplanError

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

SUBCOMMANDS: dict[str, str] = {
    "schema": "qplan.cli.commands.schema",
    "validate": "qplan.cli.commands.validate",
    "presets": "qplan.cli.commands.presets",
    "compile-plan": "qplan.cli.commands.compile_plan",
    "diff": "qplan.cli.commands.diff",
    "explain": "qplan.cli.commands.explain",
    "lint": "qplan.cli.commands.lint",
    "demo": "qplan.cli.commands.demo",
    "export": "qplan.cli.commands.export",
    "import": "qplan.cli.commands.import_ct",
}
"""Subcommand name -> the module that implements it (imported only when registered)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``qplan`` argument parser: the subparser of `command` alone when it is a known
    subcommand (parsing its arguments never shows the others), else one per :data:`SUBCOMMANDS` entry."""
    from qplan import __version__

    parser = argparse.ArgumentParser(prog="qplan", description="Quantization config compiler for PyTorch.")
    parser.add_argument("--version", action="version", version=f"qplan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in SUBCOMMANDS.items():
        if command not in SUBCOMMANDS or name == command:
            importlib.import_module(module).register(sub)
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
