"""Pass: schedules (see docs/config-language.md#placement-rules).

A fake-quant takes the ``qat_schedule`` of the module config of the op that reads it. Reads
decided by a module boundary take the boundary module's schedule; model outputs (and output-only
fake-quants) take the producer's; when the reading op's module has no module config (a null
config) the producer's schedule applies. Weights take their first consumer's schedule
(``share_weights``, which uses :func:`schedule_for`).
"""

from __future__ import annotations

from dataclasses import replace

from qplan.compiler.state import State
from qplan.schema.types import QATSchedule

__all__ = ["assign_schedules", "schedule_for"]


def schedule_for(state: State, module: str, fallback: str | None = None) -> QATSchedule | None:
    """The qat_schedule of the module config governing `module` (else `fallback`'s)."""
    has_config, schedule = state.schedule_of(module)
    if not has_config and fallback is not None:
        return state.schedule_of(fallback)[1]
    return schedule


def assign_schedules(state: State) -> State:
    """Attach the governing qat_schedule to every read; returns the new state (new ``reads``)."""
    cache: dict[tuple[str, str], QATSchedule | None] = {}
    reads = {}
    for reader, read in state.reads.items():
        key = (read.sched_module, read.fallback_module)
        if key not in cache:
            cache[key] = schedule_for(state, *key)
        schedule = cache[key]
        reads[reader] = read if read.schedule == schedule else replace(read, schedule=schedule)
    return state.evolve(reads=reads)
