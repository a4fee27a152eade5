"""Where the demo's progress goes: the :class:`Reporter` protocol, a silent one, and a step clock.

Nothing in :mod:`qplan.demo` prints; the CLI renders a :class:`Reporter` with rich, tests pass
:class:`NullReporter`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

__all__ = ["Reporter", "NullReporter", "ignore_progress", "Clock"]


class Reporter(Protocol):
    """Where the demo sends progress; the CLI implements it with rich, tests with :class:`NullReporter`."""

    def stage(self, title: str) -> None:
        """A new stage starts."""

    def track(self, description: str, total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A long step of ``total`` units; the context yields ``advance(n)``."""
        ...

    def plan(self, title: str, plan: Any) -> None:
        """Show a compiled plan's summary."""

    def info(self, text: str) -> None:
        """One line of information."""


class NullReporter:
    """A reporter that shows nothing."""

    def stage(self, title: str) -> None:
        pass

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        yield ignore_progress

    def plan(self, title: str, plan: Any) -> None:
        pass

    def info(self, text: str) -> None:
        pass


def ignore_progress(n: int = 1) -> None:
    """An ``advance(n)`` that shows nothing."""


class Clock:
    """Accumulates named step timings: ``with clock("ptq.calibrate"): ...``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
