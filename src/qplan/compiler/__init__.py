"""The qplan compiler: op inventory + config -> plan (see docs/config-language.md#how-a-config-is-resolved-against-a-model, docs/compiler.md).

``compile_plan(model, config, example_inputs, mode=None, *, strict=False)`` captures the model and
compiles; ``compile_inventory(inventory, config, *, strict=False)`` compiles an inventory that is
already captured (or hand-built). Both return a :class:`~qplan.compiler.plan.Plan` and raise
:class:`~qplan.diagnostics.CompileError` on errors.

The names are loaded from :mod:`qplan.compiler.pipeline` on first use, so importing one
compiler module (``qplan.compiler.ops``, ``qplan.compiler.plan``) does not import every pass,
and the passes never import this package's namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qplan.compiler.pipeline import PASSES, compile_inventory, compile_plan

__all__ = ["compile_plan", "compile_inventory", "PASSES"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from qplan.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module `qplan.compiler` has no attribute `{name}`")


def __dir__() -> list[str]:
    return list(__all__)
