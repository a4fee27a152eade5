"""The qplan compiler: op inventory + config -> plan (SPEC §2-3).

``compile_plan(model, config, example_inputs, mode=None, *, strict=False)`` captures the model and
compiles; ``compile_inventory(inventory, config, *, strict=False)`` compiles an inventory that is
already captured (or hand-built). Both return a :class:`~qplan.compiler.plan.Plan` and raise
:class:`~qplan.diagnostics.CompileError` on errors.
"""

from __future__ import annotations

from qplan.compiler.pipeline import PASSES, compile_inventory, compile_plan

__all__ = ["compile_plan", "compile_inventory", "PASSES"]


def __dir__() -> list[str]:
    return list(__all__)
