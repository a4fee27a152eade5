"""The ``qplan`` command line: parse, call the library, render, exit.

Layout:

- :mod:`~qplan.cli.main`: the parser and the dispatch (:func:`main`, the console script);
- :mod:`~qplan.cli.exits`: exit codes (0 clean or equal, 1 errors or differences, 2 bad usage,
  unreadable input or an internal error) and error reporting;
- :mod:`~qplan.cli.inputs`: reading model factories and plan files named on the command line;
- :mod:`~qplan.cli.render`: every renderer (diagnostics, plans, diffs, explanations, the demo);
- :mod:`~qplan.cli.commands`: one module per subcommand.

A subcommand module exposes two functions and nothing else is required of it:

- ``register(subparsers) -> None`` adds its parser to argparse's subparsers object and calls
  ``set_defaults(run=run)``; it imports no more than the parser needs (``qplan validate`` must
  not import torch);
- ``run(args) -> int`` does the work (import heavy modules here) and returns the exit code.
  A :class:`~qplan.diagnostics.QplanError` it raises is reported by :func:`main` with
  :func:`~qplan.cli.exits.report_error`; commands whose ``--format`` is not a diagnostic format
  wrap ``run`` in :func:`~qplan.cli.exits.errors_in_default_format`.

To add a subcommand (``export``, ``lint``, ...), write ``qplan/cli/commands/<name>.py`` with those
two functions and add it to :data:`qplan.cli.main.SUBCOMMANDS`.
"""

from __future__ import annotations

from qplan.cli.main import main

__all__ = ["main"]
