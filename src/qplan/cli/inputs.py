"""Reading command-line inputs: ``MODULE:FACTORY`` model factories and plan files.

Bad input raises :class:`~qplan.cli.exits.UsageError` (exit 2) with one clear line.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from qplan.cli.exits import UsageError

__all__ = ["load_factory", "read_bytes", "is_plan", "decode_plan", "PlanInputError"]


def load_factory(spec: str) -> tuple[Any, Any]:
    """Call ``MODULE:FACTORY`` and return its ``(model, example_inputs)``.

    Anything the user's code does wrong (an exception or ``sys.exit`` while importing the module
    or calling the factory, a result of the wrong type) is a usage error (exit 2) that shows the
    user's own frames, never qplan's or importlib's."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--model must be MODULE:FACTORY (e.g. `qplan.models:mlp`), got `{spec}`")
    module = _call_user_code(f"importing `{module_name}` (from --model {spec})", importlib.import_module, module_name)
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        from qplan.suggest import did_you_mean

        hint = did_you_mean(attr, names)
        raise UsageError(f"`{module_name}` has no factory `{attr}`" + (f"; {hint}" if hint else ""))
    result = _call_user_code(f"`{spec}`", factory)
    _check_factory_result(spec, result)
    return result


def _check_factory_result(spec: str, result: Any) -> None:
    import torch

    if not (isinstance(result, tuple) and len(result) == 2):
        raise UsageError(f"`{spec}` must return `(model, example_inputs)`, got `{type(result).__name__}`")
    model, example_inputs = result
    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            f"`{spec}` must return `(model, example_inputs)` with a `torch.nn.Module` model, got `{type(model).__name__}`"
        )
    if not isinstance(example_inputs, (tuple, list, torch.Tensor)):
        raise UsageError(
            f"`{spec}` must return `(model, example_inputs)` with example inputs as a tuple of positional"
            f" arguments, got `{type(example_inputs).__name__}`"
        )


def _call_user_code(what: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)``; an exception or ``sys.exit`` in it becomes a :class:`UsageError` that names
    `what` and shows the traceback trimmed to the user's frames."""
    try:
        return fn(*args)
    except SystemExit as e:
        raise UsageError(f"{what} called sys.exit({e.code!r}){_user_frames(e)}") from None
    except ModuleNotFoundError as e:
        frames = _user_frames(e)
        hint = "" if frames else "; is it on PYTHONPATH (or in the current directory)?"
        raise UsageError(f"{what} failed: ModuleNotFoundError: {e}{hint}{frames}") from None
    except Exception as e:
        raise UsageError(f"{what} raised {type(e).__name__}: {e}{_user_frames(e)}") from None


def _user_frames(error: BaseException) -> str:
    """The traceback of `error` without qplan's and importlib's frames (empty when none is left)."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith(("<frozen ", _QPLAN_DIR)) and "importlib" not in Path(f.filename).parts
    ]
    if not frames:
        return ""
    return "\n" + "".join(traceback.format_list(frames)).rstrip("\n")


_QPLAN_DIR = str(Path(__file__).resolve().parents[1]) + os.sep


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
