"""The end-to-end demo behind ``qplan demo``: float training, W8A8 PTQ, W4A8 QAT, export.

Everything runs on the digits data set bundled with qplan, so no download is needed. The stages
are plain functions over plain values; :func:`run_demo` chains them and returns a
:class:`DemoResult`. Nothing here prints: progress goes through a :class:`Reporter` that the
caller passes in (the CLI renders it with rich; tests pass :class:`NullReporter`).

Modules: ``options`` (what a run takes, the targets), ``data`` (the digits, batching),
``progress`` (reporters, step clock), ``training`` (train / calibrate / evaluate loops),
``outputs`` (the output folder, saved programs), ``results`` (what a run measured),
``pipeline`` (:func:`run_demo`). The demo sits above :mod:`qplan.runtime` and below :mod:`qplan.cli`.
"""

from __future__ import annotations

from qplan.demo.data import Digits, batches, load_digits
from qplan.demo.options import DEFAULT_OUT, DemoError, DemoOptions
from qplan.demo.pipeline import run_demo
from qplan.demo.progress import NullReporter, Reporter
from qplan.demo.results import DemoResult, StageResult
from qplan.demo.training import calibrate, evaluate, train_float, train_qat

__all__ = [
    "DEFAULT_OUT",
    "Digits",
    "DemoOptions",
    "StageResult",
    "DemoResult",
    "Reporter",
    "NullReporter",
    "DemoError",
    "load_digits",
    "batches",
    "evaluate",
    "train_float",
    "calibrate",
    "train_qat",
    "run_demo",
]


def __dir__() -> list[str]:
    return __all__
