"""Module boundaries for the eager interceptor, without global module hooks.

Every submodule's ``forward`` of a prepared eager model is wrapped once at prepare and pushes its
path on the running interceptor's module stack, but only when it is entered from nn.Module's call
machinery (where the hooks the capture uses fire), never for a direct ``.forward()`` call. Global
hooks would put every module call on nn.Module's slow path. Torch builds whose call machinery is not
recognised, and traced runs (export, dynamo), keep the hooks.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

from torch import nn

__all__ = ["FAKE_QUANTS", "track_modules", "running"]

FAKE_QUANTS = "qplan_fake_quants"  # name of the ModuleDict holding the fake-quants


def _module_call_codes() -> frozenset:
    impl = getattr(nn.Module, "_call_impl", None)
    code = getattr(impl, "__code__", None)
    if code is None:
        return frozenset()
    inner = [c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == "inner"]
    return frozenset([code, *inner]) if len(inner) == 1 else frozenset()


_CALL_CODES = _module_call_codes()
_LOCAL = threading.local()  # .running: this thread's interceptors whose forward runs (innermost last)


def running() -> list[Any]:
    running = getattr(_LOCAL, "running", None)
    if running is None:
        running = _LOCAL.running = []
    return running


_INNER_FORWARD = "_qplan_inner_forward"  # an instance-level forward the wrapper replaced


def _tracked_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    inner = self.__dict__.get(_INNER_FORWARD)
    fwd = inner if inner is not None else type(self).forward.__get__(self)
    running = getattr(_LOCAL, "running", None)
    if not running or sys._getframe(1).f_code not in _CALL_CODES:
        return fwd(*args, **kwargs)
    for ic in reversed(running):
        path = ic._builder.module_path.get(id(self))
        if path is not None:
            break
    else:
        return fwd(*args, **kwargs)
    stack = ic._stack
    stack.append(path)
    try:
        return fwd(*args, **kwargs)
    finally:
        if stack and stack[-1] == path:
            stack.pop()


def track_modules(model: nn.Module) -> bool:
    """Wrap the forward of every submodule of ``model`` but the fake-quants; False when this torch's
    module call machinery is not recognised (the interceptor then uses global hooks)."""
    if not _CALL_CODES:
        return False
    skip = {id(m) for m in getattr(model, FAKE_QUANTS).modules()}
    for mod in model.modules():
        if mod is model or id(mod) in skip or mod.__dict__.get("_qplan_tracked_forward"):
            continue
        own = mod.__dict__.get("forward")
        if own is not None:
            object.__setattr__(mod, _INNER_FORWARD, own)
        object.__setattr__(mod, "forward", types.MethodType(_tracked_forward, mod))
        object.__setattr__(mod, "_qplan_tracked_forward", True)
    return True
