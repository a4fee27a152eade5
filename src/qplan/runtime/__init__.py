"""The qplan runtime: apply a plan to a model (see docs/runtime.md).

``Quantizer(model, plan_or_config)`` prepares a model for calibration and QAT and finalizes it to
a ``torch.export.ExportedProgram``; ``load_plan`` reads a plan file, ``load_program`` a saved
finalized program. Names resolve lazily so that importing a submodule stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Quantizer",
    "ScheduleError",
    "ModeError",
    "UncalibratedError",
    "PlanMismatchError",
    "QplanUnknownOpWarning",
    "load_plan",
    "load_program",
    "save_program",
]

_WHERE = {
    "Quantizer": "qplan.runtime.quantizer",
    "ScheduleError": "qplan.runtime.quantizer",
    "ModeError": "qplan.runtime.quantizer",
    "UncalibratedError": "qplan.runtime.fake_quant",
    "PlanMismatchError": "qplan.runtime.match",
    "QplanUnknownOpWarning": "qplan.runtime.interceptor",
    "load_plan": "qplan.compiler.plan",
    "load_program": "qplan.runtime.program",
    "save_program": "qplan.runtime.program",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'qplan.runtime' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(where), name)


def __dir__() -> list[str]:
    return __all__
