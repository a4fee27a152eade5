"""Parts of capture shared by both modes: tensor refs, call arguments, the inventory builder.

A torch-level call's tensor arguments (:class:`CallArg`) are ordered into op inputs and states by
:func:`classify_args`; :class:`InventoryBuilder` holds what both modes collect (module paths,
parameter names, name counters, op records, module boundaries) and assembles the :class:`Inventory`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.utils._pytree as pytree
from torch import nn

from qplan.compiler.inventory import Inventory, ModuleInfo, Op, TensorRef
from qplan.compiler.ops import ARG_ALIASES, OP_TABLE, OpInfo
from qplan.diagnostics import QplanError

Mode = Literal["graph", "eager"]
UNLISTED = ("pass_through", "ignore")


class CaptureError(QplanError, ValueError):
    """The model cannot be captured in the requested mode (the message says why)."""


def dtype_name(t: Any) -> str:
    """``float32`` for a ``torch.float32`` tensor (or FakeTensor)."""
    return str(t.dtype).removeprefix("torch.")


def static_shape(t: Any) -> tuple[int, ...]:
    """The tensor's shape as ints: a symbolic size as the example's (its hint, read without adding a
    guard that would specialize it), -1 for an unbacked one."""
    shape = tuple(t.shape)
    if all(type(s) is int for s in shape):
        return shape
    out = []
    for s in shape:
        hint = s if type(s) is int else getattr(getattr(s, "node", None), "hint", None)
        out.append(int(hint) if hint is not None else -1)
    return tuple(out)


def tensor_leaves(out: Any) -> list[torch.Tensor]:
    """The tensors of a call's result, flattened (fast paths for the common shapes)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if out is None:
        return []
    if type(out) in (tuple, list) and all(isinstance(t, torch.Tensor) for t in out):
        return list(out)
    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def tensor_ref(source: str | None, t: Any) -> TensorRef:
    """The inventory's record of value `t` at address `source`."""
    return TensorRef(source=source, shape=static_shape(t), dtype=dtype_name(t))


def class_path(cls: type) -> str:
    """``module.QualName`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _import_paths(cls: type) -> tuple[str, ...]:
    """Other public import paths of `cls`: ``torch.nn.modules.linear.Linear`` → ``torch.nn.Linear``."""
    parts = cls.__module__.split(".")
    found = []
    for k in range(len(parts) - 1, 0, -1):
        mod = sys.modules.get(".".join(parts[:k]))
        if mod is not None and getattr(mod, cls.__qualname__, None) is cls:
            found.append(f"{'.'.join(parts[:k])}.{cls.__qualname__}")
    return tuple(found)


def first_line(e: BaseException) -> str:
    """``ErrorType: first line of the message`` for an error report."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _attr_name(fqn: str) -> str:
    return fqn.rsplit(".", 1)[-1]


@dataclass
class CallArg:
    """One tensor argument of a call: its signature name, source, value and where it sits."""

    name: str | None
    source: str | None
    value: Any  # a tensor (eager) or a FakeTensor (graph)
    loc: Any  # eager: ("args", i[, k]) / ("kwargs", key[, k]); graph: (consumer node, input node)


def classify_args(
    op_type: str, args: Sequence[CallArg], params: Callable[[str | None], bool], order: Mapping[str, int]
) -> tuple[list[CallArg], dict[str, CallArg]]:
    """Order a call's tensor arguments into (inputs, states) by the op table (package docstring).

    `params` says whether a source is a parameter/buffer fqn; `order` is ``named_parameters()`` order.
    """
    info = OP_TABLE.get(op_type)
    states: dict[str, CallArg] = {}
    if info is not None and any(a.name is not None for a in args):
        inputs = _slotted_inputs(info, args, params, states)
    else:
        inputs = list(args)
    if info is None:
        inputs = _distinct_inputs(inputs, params, order)
    for a in inputs:
        fqn = a.source
        if fqn is not None and params(fqn) and a.value.is_floating_point():
            key = _attr_name(fqn)
            if key in states and states[key].source != fqn:
                key = fqn
            states.setdefault(key, a)
    return inputs, states


def _slotted_inputs(
    info: OpInfo, args: Sequence[CallArg], params: Callable[[str | None], bool], states: dict[str, CallArg]
) -> list[CallArg]:
    """A table op's inputs in slot order, then the unslotted ones; parameters in state slots go to `states`."""
    slotted: dict[str, list[CallArg]] = {}
    extras: list[CallArg] = []
    for a in args:
        name = _slot_name(info, a.name)
        if name is not None and name in info.states and params(a.source):
            states[name] = a
        elif (
            name is not None
            and info.param_state is not None
            and info.param_state not in states
            and name == info.inputs[0]
            and params(a.source)
            and a.value.is_floating_point()
        ):
            states[info.param_state] = a  # einsum: the parameter operand is the op's weight
        elif name is not None and name in info.inputs:
            slotted.setdefault(name, []).append(a)
        else:
            extras.append(a)
    return [a for slot in info.inputs for a in slotted.get(slot, [])] + extras


def _slot_name(info: OpInfo, arg: str | None) -> str | None:
    """The table's slot name of a signature argument: the op's own renames, then :data:`ARG_ALIASES`."""
    if not arg:
        return None
    return info.slot_of(arg) or ARG_ALIASES.get(arg, arg)


def _distinct_inputs(
    args: Sequence[CallArg], params: Callable[[str | None], bool], order: Mapping[str, int]
) -> list[CallArg]:
    """An unknown op's inputs: each tracked value once, activations in first-use order, then parameters."""
    seen: set[str] = set()
    acts: list[CallArg] = []
    ranked: list[tuple[int, CallArg]] = []
    for a in args:
        if a.source is not None:
            if a.source in seen:
                continue
            seen.add(a.source)
        if a.source is not None and params(a.source):
            ranked.append((order[a.source], a))
        else:
            acts.append(a)
    return acts + [a for _, a in sorted(ranked, key=lambda r: r[0])]


def is_candidate(op_type: str, args: Sequence[CallArg]) -> bool:
    """Whether a call may be listed: not pass-through/ignore, and reads a tracked float tensor."""
    info = OP_TABLE.get(op_type)
    if info is not None and info.cls in UNLISTED:
        return False
    return any(a.source is not None and a.value.is_floating_point() for a in args)


def through_source(data: CallArg | None, out: Any) -> str | None:
    """Source of a pass-through output: its data input's, except for integer → float conversions."""
    if data is None or (not data.value.is_floating_point() and out.is_floating_point()):
        return None
    return data.source


class InventoryBuilder:
    """The mode-independent part: module paths, parameter names, counters, op records."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.module_path: dict[int, str] = {}
        for path, mod in model.named_modules():
            self.module_path.setdefault(id(mod), path)
        self.alias_path: dict[str, str] = {}
        for path, mod in model.named_modules(remove_duplicate=False):
            self.alias_path[path] = self.module_path[id(mod)]
        self.param_fqn: dict[int, str] = {}
        self.parameters: dict[str, TensorRef] = {}
        for fqn, t in [*model.named_parameters(), *model.named_buffers()]:
            if id(t) not in self.param_fqn:
                self.param_fqn[id(t)] = fqn
                self.parameters[fqn] = TensorRef(source=fqn, shape=static_shape(t), dtype=dtype_name(t))
        self.param_order = {fqn: k for k, fqn in enumerate(self.parameters)}
        self.all_param_names: dict[str, str] = {}  # any (aliased) name -> canonical fqn
        for fqn, t in [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]:
            self.all_param_names[fqn] = self.param_fqn[id(t)]
        self.counters: dict[tuple[str, str], int] = {}
        self.ops: list[Op] = []
        self.first_call: dict[str, tuple[tuple[str | None, ...], tuple[str | None, ...]]] = {}

    def is_param(self, source: str | None) -> bool:
        """Whether `source` is the fqn of a parameter or buffer."""
        return source is not None and source in self.parameters

    def peek_name(self, module: str, op_type: str) -> str:
        """The name the next `op_type` call in `module` gets: ``<module>.<op type>[_k]``."""
        k = self.counters.get((module, op_type), 0)
        base = f"{module}.{op_type}" if module else op_type
        return base if k == 0 else f"{base}_{k}"

    def commit_name(self, module: str, op_type: str) -> None:
        """Advance the (module, op type) counter past the name :meth:`peek_name` gave."""
        key = (module, op_type)
        self.counters[key] = self.counters.get(key, 0) + 1

    def module_infos(self) -> tuple[ModuleInfo, ...]:
        """One :class:`ModuleInfo` per module: class, states and its first call's boundaries."""
        infos = []
        for path, mod in self.model.named_modules():
            cls = type(mod)
            states = {}
            for name, t in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
                if t is not None and id(t) in self.param_fqn:
                    states[name] = self.param_fqn[id(t)]
            ins, outs = self.first_call.get(path, ((), ()))
            infos.append(
                ModuleInfo(
                    path=path,
                    cls=class_path(cls),
                    qualname=cls.__qualname__,
                    import_paths=_import_paths(cls),
                    states=states,
                    inputs=ins,
                    outputs=outs,
                    called=path in self.first_call,
                )
            )
        return tuple(infos)

    def inventory(self, mode: str, inputs: tuple[TensorRef, ...], outputs: tuple[str | None, ...]) -> Inventory:
        """The finished inventory of this capture."""
        return Inventory(
            model_class=class_path(type(self.model)),
            mode=mode,
            modules=self.module_infos(),
            parameters=dict(self.parameters),
            ops=tuple(self.ops),
            inputs=inputs,
            outputs=outputs,
        )
