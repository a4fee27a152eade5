"""Console rendering for ``qplan demo``: a rich :class:`~qplan.demo.Reporter`, the result table, the outcome.

On a terminal, long steps get rich progress bars; when the output is piped, each step is one
plain line when it ends, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qplan.demo.progress import ignore_progress
from qplan.demo.results import DemoResult

__all__ = ["ConsoleReporter", "results_table", "print_outcome", "size"]


def size(n: float) -> str:
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
            yield ignore_progress
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

            def advance(n: int = 1) -> None:
                progress.advance(task, n)

            yield advance

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
    for column in ("accuracy", "vs float", "target", "exported", "file", "weights", "time"):
        table.add_column(column, justify="right")
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


def print_outcome(console: Console, result: DemoResult, seconds: float) -> None:
    """The result table, where the outputs are, and one line per missed accuracy target."""
    console.print(results_table(result))
    console.print(
        f"done in {seconds:.1f} s; programs (load with `qplan.runtime.load_program`) and plans"
        f" (`qplan explain {result.out}/qat.plan.json fc.weight`) are in {result.out}/",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for message in result.missed_targets():
        console.print(f"target missed: {message}", highlight=False, markup=False, style="red", soft_wrap=True)
