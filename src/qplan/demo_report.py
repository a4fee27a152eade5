"""Console rendering for ``qplan demo``: a rich :class:`~qplan.demo.Reporter` and the result table.

On a terminal, long steps get rich progress bars; when the output is piped, each step is one
plain line when it ends, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qplan.demo import DemoResult

__all__ = ["ConsoleReporter", "results_table", "size", "run", "add_demo"]


def __dir__() -> list[str]:
    return __all__


def size(n: int) -> str:
    """Bytes as a short human string (``12.3 KB``; 1 KB = 1000 B)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class ConsoleReporter:
    """A :class:`~qplan.demo.Reporter` on a rich console.

    ``plan_renderer(plan)`` prints a plan summary (the one ``qplan compile-plan`` shows);
    without one, the reporter prints a one-line count.
    """

    def __init__(self, console: Console, plan_renderer: Callable[[Any], Any] | None = None) -> None:
        self.console = console
        self.plan_renderer = plan_renderer

    def stage(self, title: str) -> None:
        if self.console.is_terminal:
            self.console.rule(f"[bold]{title}")
        else:
            self.console.print(f"== {title}")

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        start = time.perf_counter()
        if not self.console.is_terminal:
            yield lambda n=1: None
            self.console.print(f"{description}: {total} steps in {time.perf_counter() - start:.1f} s")
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task, n)

    def plan(self, title: str, plan: Any) -> None:
        if self.plan_renderer is not None:
            self.plan_renderer(plan)
        else:
            self.console.print(f"{title} plan: {len(plan.quantizers)} fake-quants, {len(plan.specs)} distinct specs")

    def info(self, text: str) -> None:
        self.console.print(text)


def results_table(result: DemoResult) -> Table:
    """The demo's final table: per stage, accuracy (and drop from float), sizes and time."""
    base = result.float_accuracy
    table = Table(title=f"qplan demo ({result.mode} mode, seed {result.seed})")
    table.add_column("stage")
    table.add_column("accuracy", justify="right")
    table.add_column("vs float", justify="right")
    table.add_column("target", justify="right")
    table.add_column("exported", justify="right")
    table.add_column("file", justify="right")
    table.add_column("weights", justify="right")
    table.add_column("time", justify="right")
    for s in result.stages:
        if s.max_drop is None:
            delta, target = "", ""
        else:
            ok = s.drop(base) <= s.max_drop
            delta = f"{s.accuracy - base:+.2f}"
            target = f"[green]≥ -{s.max_drop:g} ✓[/]" if ok else f"[red]≥ -{s.max_drop:g} ✗[/]"
        table.add_row(
            s.name,
            f"{s.accuracy:.2f}%",
            delta,
            target,
            f"{s.exported_accuracy:.2f}%",
            size(s.file_bytes),
            size(s.weight_bytes),
            f"{s.seconds:.1f} s",
        )
    table.caption = (
        f"test set: {result.test_images} images; accuracy = the model as trained or prepared (fake-quant);"
        f" exported = the saved program loaded back; files in {result.out}/"
    )
    return table


def run(options: Any, console: Console, plan_renderer: Callable[[Any], Any] | None = None) -> int:
    """Run the demo on ``console``; returns the exit code.

    0: every stage ran and met its accuracy target; 1: a target was missed; 2: bad options or an
    unusable output folder. Errors of qplan's own stages (``QplanError``) propagate to the caller.
    """
    from qplan.demo import DemoError, run_demo

    start = time.perf_counter()
    try:
        result = run_demo(options, ConsoleReporter(console, plan_renderer))
    except DemoError as exc:
        print(f"qplan: error: {exc}", file=sys.stderr)
        return 2
    console.print(results_table(result))
    console.print(
        f"done in {time.perf_counter() - start:.1f} s; programs (load with `qplan.runtime.load_program`) and plans"
        f" (`qplan explain {result.out}/qat.plan.json fc.weight`) are in {result.out}/",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    missed = result.missed_targets()
    for message in missed:
        console.print(f"target missed: {message}", highlight=False, markup=False, style="red", soft_wrap=True)
    return 1 if missed else 0


def _cmd_demo(args: Any) -> int:
    from pathlib import Path

    from qplan.commands_compile import render_plan_summary
    from qplan.demo import DemoOptions

    tty = sys.stdout.isatty()
    console = Console(force_terminal=tty, no_color=not tty, width=None if tty else 120, highlight=False)
    options = DemoOptions(
        mode=args.mode, out=Path(args.out), epochs=args.epochs, qat_epochs=args.qat_epochs, seed=args.seed
    )
    return run(options, console, lambda plan: render_plan_summary(plan, console.file))


def add_demo(sub: Any) -> Any:
    """Register ``qplan demo`` on an argparse subparsers object."""
    from qplan.demo import DEFAULT_OUT, DemoOptions

    d = DemoOptions()
    p = sub.add_parser(
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
    p.set_defaults(run=_cmd_demo)
    return p
