"""Shared helpers for the benchmarks: timing (wall + CPU), medians, and the results-file writer.

Both clocks are read around every measured call: wall time (``time.perf_counter``) and CPU
time of this process (``time.process_time``). With ``torch.set_num_threads(1)`` the CPU time
is close to what the call would take on an idle core, even when the shared machine is busy.

Every file in ``benchmarks/results/`` is written whole by its script through `write_report`: a
run header (command, dates, machine, CPU count and affinity, load average before and after,
versions, qplan commit), the script's results, then the analysis section. Everything below
`ANALYSIS_MARKER` in an existing results file is carried over verbatim when the script rewrites
it, so hand-written analysis lives there and only there.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ANALYSIS_MARKER",
    "Run",
    "Sample",
    "timed",
    "measure",
    "quiet",
    "load_average",
    "fmt_s",
    "fmt_ms",
    "write_report",
]

ANALYSIS_MARKER = "<!-- analysis: kept by the script -->"
NO_ANALYSIS = "## Analysis\n\n(none yet: write it below the marker line; the script keeps it on every rerun)\n"
REPO = Path(__file__).resolve().parents[1]
VERSIONED = ("torch", "torchao", "coreai-opt", "qplan")


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
    """The 1, 5 and 15 minute load averages, read now."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_count() -> str:
    """Logical CPUs of the machine and those this process may run on, both measured."""
    total = os.cpu_count()
    try:
        usable: int | str = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = "n/a"
    return f"{total} logical CPUs (os.cpu_count()), {usable} usable by this process (sched_getaffinity)"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    """qplan's commit (short hash, ``+uncommitted changes`` when the tree differs from it)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Run:
    """One benchmark run: what was asked and the machine's state before it started.

    Create it first thing in ``main`` (it reads the load average and the time then); `header`
    reads them again at the end.
    """

    def __init__(self, script: str, argv: Sequence[str] | None, threads: int | None = None) -> None:
        args = list(sys.argv[1:] if argv is None else argv)
        self.command = shlex.join(["python", f"benchmarks/{Path(script).name}", *args])
        self.threads = threads
        self.started = _now()
        self.load_before = load_average()

    def header(self, notes: Sequence[str] = (), extra_versions: Sequence[str] = ()) -> list[str]:
        """Markdown lines of the run record; the load average and end time are read now."""
        load_after, ended = load_average(), _now()
        versions = [f"Python {platform.python_version()}"]
        versions += [f"{d} {_version(d)}" for d in (*VERSIONED, *extra_versions)]
        lines = [
            "## Run",
            "",
            f"- command: `{self.command}`",
            f"- started {self.started}, ended {ended}",
            f"- machine: `{cpu_model()}` (/proc/cpuinfo model name), {cpu_count()}",
            f"- load average (1, 5, 15 min): before the run {self.load_before}; after the run {load_after}",
            f"- versions: {', '.join(versions)}",
            f"- qplan commit: {git_commit()}",
        ]
        if self.threads is not None:
            lines.append(f"- torch.set_num_threads({self.threads})")
        lines += [f"- {n}" for n in notes]
        return lines


def kept_analysis(path: str | os.PathLike | None) -> str:
    """Everything below `ANALYSIS_MARKER` in the file at `path`, or a placeholder section."""
    if path is None or not os.path.exists(path):
        return NO_ANALYSIS
    text = Path(path).read_text(encoding="utf-8")
    _head, sep, tail = text.partition(ANALYSIS_MARKER + "\n")
    return tail if sep else NO_ANALYSIS


def render_report(title: str, run: Run, body: str, analysis: str, notes: Sequence[str] = (), **kw: Any) -> str:
    """The whole results document: title, run record, results body, marker, analysis."""
    parts = [
        f"# {title}",
        "",
        f"<!-- written by {run.command.split()[1]}: everything above the analysis marker is replaced on each run -->",
        "",
        *run.header(notes, **kw),
        "",
        body.strip("\n"),
        "",
        ANALYSIS_MARKER,
    ]
    return "\n".join(parts) + "\n" + analysis


def write_report(
    title: str,
    run: Run,
    body: str,
    output: str | os.PathLike | None,
    notes: Sequence[str] = (),
    extra_versions: Sequence[str] = (),
) -> str:
    """Print the results document, and write it whole to `output` (parents created) when given.

    The analysis below the marker of an existing `output` is kept verbatim.
    """
    text = render_report(title, run, body, kept_analysis(output), notes, extra_versions=extra_versions)
    if output is not None:
        path = os.fspath(output)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.write(text)
    return text


def fmt_s(s: Sample) -> str:
    return f"{s.w:.3f} / {s.c:.3f}"


def fmt_ms(s: Sample) -> str:
    return f"{1e3 * s.w:.1f} / {1e3 * s.c:.1f}"
