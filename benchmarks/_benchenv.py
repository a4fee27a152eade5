"""Shared helpers for the peer benchmarks: timing (wall + CPU), medians, environment header.

Both clocks are read around every measured call: wall time (``time.perf_counter``) and CPU
time of this process (``time.process_time``). With ``torch.set_num_threads(1)`` the CPU time
is close to what the call would take on an idle core, even when the shared machine is busy.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sample", "timed", "measure", "quiet", "environment", "load_average", "fmt_s", "fmt_ms"]


@dataclass
class Sample:
    """Repeated measurements of one thing: wall and CPU seconds per repeat."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def w(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.wall)

    @property
    def c(self) -> float:
        """Median CPU seconds."""
        return statistics.median(self.cpu)

    def __len__(self) -> int:
        return len(self.wall)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def measure(
    fn: Callable[[], Any], repeat: int, warmup: int = 0, setup: Callable[[], Any] | None = None
) -> tuple[Sample, Any]:
    """Call `fn` (or ``fn(setup())`` when `setup` is given, setup untimed) `warmup` + `repeat` times."""
    s, out = Sample(), None
    for k in range(warmup + repeat):
        if setup is not None:
            arg = setup()
            out, w, c = timed(lambda: fn(arg))
        else:
            out, w, c = timed(fn)
        if k >= warmup:
            s.add(w, c)
    return s, out


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Python warnings, logging and stderr noise of imports (torchao's missing .so files)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(threads: int) -> list[str]:
    """Markdown bullet lines describing the machine and the software versions."""
    import torch

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- date: {now}",
        f"- machine: `{_cpu_model()}` (lscpu Model name), {os.cpu_count()} cores, shared with other jobs;"
        f" load average (1, 5, 15 min) at start: {load_average()}",
        f"- torch.set_num_threads({threads}); every time is the median of repeats, given as wall / CPU"
        " (`time.perf_counter` / `time.process_time` of this process)",
        f"- Python {platform.python_version()}, torch {torch.__version__}, torchao {_version('torchao')},"
        f" coreai-opt {_version('coreai-opt')}, qplan {_version('qplan')}",
    ]


def fmt_s(s: Sample) -> str:
    return f"{s.w:.3f} / {s.c:.3f}"


def fmt_ms(s: Sample) -> str:
    return f"{1e3 * s.w:.1f} / {1e3 * s.c:.1f}"


def silence_stderr_fd() -> contextlib.AbstractContextManager:
    """Redirect Python-level stderr (not the fd) while importing noisy libraries."""
    return contextlib.redirect_stderr(io.StringIO())


def write_report(text: str, output: str | os.PathLike | None) -> None:
    """Print a results document, and write it to `output` (parents created) when given."""
    if output is not None:
        path = os.fspath(output)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.write(text)
