"""``qplan demo``: parse the options, run :func:`qplan.demo.run_demo`, render its progress and result with rich.

Exit 0 when every stage ran and met its accuracy target, 1 when a target was missed, 2 for bad
options or an unusable output folder. Errors of qplan's own stages (``QplanError``) propagate to
:func:`qplan.cli.main`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from qplan.cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from qplan.demo import DEFAULT_OUT, DemoOptions

    d = DemoOptions()
    p = subparsers.add_parser(
        "demo",
        help="train a CNN on the bundled digits data, then W8A8 PTQ, W4A8 QAT and export, and report",
        description="Train a small CNN on the bundled digits data set, compile a W8A8 plan and calibrate it"
        " (PTQ), run W4A8 QAT with its schedule, save the exported programs, and print float vs PTQ vs QAT"
        " accuracy, size and time. Exit 1 when PTQ loses more than 1 point or QAT more than 2.",
    )
    p.add_argument("--mode", choices=("graph", "eager"), default=d.mode, help="execution mode (default: graph)")
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        metavar="DIR",
        help=f"output folder; only the demo's own files there are replaced (default: {DEFAULT_OUT})",
    )
    p.add_argument(
        "--epochs", type=int, default=d.epochs, metavar="N", help=f"float training epochs (default: {d.epochs})"
    )
    p.add_argument(
        "--qat-epochs", type=int, default=d.qat_epochs, metavar="N", help=f"QAT epochs (default: {d.qat_epochs})"
    )
    p.add_argument("--seed", type=int, default=d.seed, metavar="S", help=f"random seed (default: {d.seed})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    import qplan.demo
    from qplan.cli.render.demo import ConsoleReporter, print_outcome
    from qplan.cli.render.plan import render_plan_summary

    tty = sys.stdout.isatty()
    console = Console(force_terminal=tty, no_color=not tty, width=None if tty else 120, highlight=False)
    options = qplan.demo.DemoOptions(
        mode=args.mode, out=Path(args.out), epochs=args.epochs, qat_epochs=args.qat_epochs, seed=args.seed
    )
    reporter = ConsoleReporter(console, lambda plan: render_plan_summary(plan, console.file))
    start = time.perf_counter()
    try:
        result = qplan.demo.run_demo(options, reporter)
    except qplan.demo.DemoError as exc:
        print(f"qplan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_outcome(console, result, time.perf_counter() - start)
    return EXIT_FAIL if result.missed_targets() else EXIT_OK
