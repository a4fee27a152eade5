"""Reading command-line inputs: ``MODULE:FACTORY`` model factories and plan files.

Bad input raises :class:`~qplan.cli.exits.UsageError` (exit 2) with one clear line.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from qplan.cli.exits import UsageError

__all__ = ["load_factory", "read_bytes", "is_plan", "decode_plan", "PlanInputError"]


def load_factory(spec: str) -> tuple[Any, Any]:
    """Call ``MODULE:FACTORY`` and return its ``(model, example_inputs)``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--model must be MODULE:FACTORY (e.g. `qplan.models:mlp`), got `{spec}`")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"cannot import `{module_name}`: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        from qplan.suggest import did_you_mean

        hint = did_you_mean(attr, names)
        raise UsageError(f"`{module_name}` has no factory `{attr}`" + (f"; {hint}" if hint else ""))
    try:
        result = factory()
    except Exception as e:  # the user's code failed, not qplan: one line, exit 2
        raise UsageError(f"`{spec}` raised {type(e).__name__}: {e}") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise UsageError(f"`{spec}` must return `(model, example_inputs)`, got `{type(result).__name__}`")
    return result


def read_bytes(path: str) -> bytes:
    """The bytes of `path`; a usage error when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read `{path}`: {e.strerror or e}") from None


def is_plan(data: bytes) -> bool:
    """Whether `data` should be read as a plan rather than a config.

    A JSON object with plan keys (``format``, ``quantizers``, ``specs``) and no
    ``quantization_config`` is a plan, whatever its ``format`` says, so an edited or foreign
    format is reported as such (``unsupported-plan``), not as a config with unknown keys. Text
    that starts like a JSON object but does not parse is read as a plan too, so a truncated plan
    gets the plan's syntax error with its line and column.
    """
    from qplan.plan_format import looks_like_plan

    try:
        head = json.loads(data)
    except (ValueError, RecursionError):
        start = data.lstrip()[:1]
        return start == b"{" and b'"quantization_config"' not in data
    return looks_like_plan(head)


class PlanInputError(UsageError):
    """A file given as a plan is not a valid plan (exit 2); ``diagnostics`` say why, as the library's
    :class:`~qplan.compiler.plan.PlanError` does."""

    def __init__(self, diagnostics: list[Any], text: str):
        self.diagnostics = diagnostics
        super().__init__(text)


def decode_plan(path: str, data: bytes) -> Any:
    """The plan in `data` (read from `path`); a usage error with the plan's diagnostics when it is not
    a valid plan (the same lines ``load_plan`` raises)."""
    from qplan.compiler.plan import PlanError
    from qplan.compiler.plan import decode_plan as decode

    try:
        return decode(data, path)
    except PlanError as e:
        raise PlanInputError(e.diagnostics, str(e)) from None
