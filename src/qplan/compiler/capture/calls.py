"""One torch-level call in eager mode: its description for the runtime (:class:`OpCall`), the
torch function's name and op type, and where its tensor arguments sit in ``(args, kwargs)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import resolve_name

from qplan.compiler.ops import normalize_op_type

__all__ = ["InputSlot", "OpCall", "has_tracked_float", "op_type_of"]


@dataclass(frozen=True)
class InputSlot:
    """Input `index` of an op call: its source address and where the tensor sits in (args, kwargs)."""

    index: int
    source: str | None
    loc: tuple[Any, ...]  # ("args", i) / ("args", i, k) / ("kwargs", key) / ("kwargs", key, k)
    tensor: torch.Tensor


@dataclass
class OpCall:
    """One torch-level call seen by :class:`EagerOpNamer`.

    `name` is the op name the call gets if it is listed (``None`` for pass-through, ignored and
    non-candidate calls); it is final once the call returns a tensor.
    """

    func: Any
    target: str  # resolve_name(func), e.g. "torch.nn.functional.linear"
    op_type: str
    module: str
    name: str | None
    inputs: tuple[InputSlot, ...] = ()
    states: dict[str, str] = field(default_factory=dict)  # state name -> parameter fqn
    state_locs: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # state name -> where it sits

    def replace_states(self, args: tuple, kwargs: dict, new: dict[str, torch.Tensor]) -> tuple[tuple, dict]:
        """Copies of (args, kwargs) with state `name` (``"weight"``) replaced by ``new[name]``."""
        return _replace(args, kwargs, [(self.state_locs[k], v) for k, v in new.items()])

    def replace_inputs(self, args: tuple, kwargs: dict, new: dict[int, torch.Tensor]) -> tuple[tuple, dict]:
        """Copies of (args, kwargs) with input `i` replaced by ``new[i]``."""
        return _replace(args, kwargs, [(s.loc, new[s.index]) for s in self.inputs if s.index in new])


def _replace(args: tuple, kwargs: dict, edits: list[tuple[tuple[Any, ...], Any]]) -> tuple[tuple, dict]:
    """Copies of (args, kwargs) with the value at each location replaced (lists and tuples copied)."""
    out_args, out_kwargs = list(args), dict(kwargs)
    for (where, key, *rest), value in edits:
        box: Any = out_args if where == "args" else out_kwargs
        if rest:
            seq = list(box[key])
            seq[rest[0]] = value
            box[key] = tuple(seq) if isinstance(box[key], tuple) else seq
        else:
            box[key] = value
    return tuple(out_args), out_kwargs


def first_tensor(args: tuple, kwargs: dict) -> tuple[tuple[Any, ...], torch.Tensor] | None:
    """(location, tensor) of the first tensor argument, lists included, args before kwargs."""
    for where, items in (("args", enumerate(args)), ("kwargs", kwargs.items())):
        for key, a in items:
            if isinstance(a, torch.Tensor):
                return (where, key), a
            if isinstance(a, (list, tuple)):
                for k, v in enumerate(a):
                    if isinstance(v, torch.Tensor):
                        return (where, key, k), v
    return None


_SIG_CACHE: dict[Any, tuple[tuple[str, ...], str | None]] = {}
_TARGET_CACHE: dict[Any, tuple[str, str]] = {}


def target_of(func: Any) -> tuple[str, str]:
    """(qualified torch name, op type) of a function seen by the mode, cached."""
    try:
        return _TARGET_CACHE[func]
    except (KeyError, TypeError):
        pass
    try:
        target = resolve_name(func) or getattr(func, "__name__", repr(func))
    except Exception:  # pragma: no cover - exotic callables
        target = getattr(func, "__name__", repr(func))
    hit = (target, normalize_op_type(target) or target)
    try:
        _TARGET_CACHE[func] = hit
    except TypeError:  # unhashable callable
        pass
    return hit


def op_type_of(func: Any) -> str:
    """The op type of a function seen by :class:`EagerOpNamer` (``torch.nn.functional.linear`` → ``linear``)."""
    return target_of(func)[1]


def has_tracked_float(source_of: Callable[[Any], str | None], args: tuple, kwargs: dict) -> bool:
    """Whether a call has a floating-point tensor argument with a source (lists one level deep, as
    :meth:`EagerOpNamer.describe` reads them): the condition for a listed op's call to get a name."""
    for a in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(a, torch.Tensor):
            if source_of(a) is not None and a.is_floating_point():
                return True
        elif isinstance(a, (list, tuple)):
            for v in a:
                if isinstance(v, torch.Tensor) and source_of(v) is not None and v.is_floating_point():
                    return True
    return False


def positional_names(func: Any, op_type: str) -> tuple[tuple[str, ...], str | None]:
    """Positional argument names of a torch function (Python signature, else the aten schema)."""
    key = func
    try:
        hit = _SIG_CACHE.get(key)
    except TypeError:
        hit, key = None, None
    if hit is not None:
        return hit
    names: tuple[str, ...] = ()
    var: str | None = None
    try:
        sig = inspect.signature(func)
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = tuple(p.name for p in sig.parameters.values() if p.kind in kinds)
        var = next((p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    except (TypeError, ValueError):
        packet = None if op_type.startswith("__") else getattr(torch.ops.aten, op_type, None)
        if isinstance(packet, torch._ops.OpOverloadPacket):
            overloads = packet.overloads()
            if overloads:
                ovl = getattr(packet, "default" if "default" in overloads else overloads[0])
                names = tuple(a.name for a in ovl._schema.arguments if not a.kwarg_only)
    if key is not None:
        _SIG_CACHE[key] = (names, var)
    return names, var
