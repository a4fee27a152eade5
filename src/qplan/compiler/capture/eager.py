"""Eager capture: one real forward under :class:`EagerOpNamer`, a ``TorchFunctionMode``.

The namer sees the outermost torch-level calls; forward (pre-)hooks keep the module stack. This
module does not import the graph-mode (``torch.export``) code: the runtime imports it directly.

**Contract for the runtime (eager).** :class:`EagerOpNamer` is the single implementation of
eager naming. ``with namer.session(args): out = model(*args)`` runs one forward; for every
torch-level call it builds an :class:`OpCall` (tentative name, op type, module, inputs with
their sources and locations in ``(args, kwargs)``, states with their locations) and calls
:meth:`EagerOpNamer.intercept`, which a subclass may override to rewrite arguments
(:meth:`OpCall.replace_inputs`, :meth:`OpCall.replace_states`) and wrap the result; the
returned tensors get the call's output addresses. Tensors created elsewhere (e.g. a module
pre-hook) take a source with :meth:`EagerOpNamer.set_source`. Names and sources are exactly
those :func:`capture` writes into the inventory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.overrides import TorchFunctionMode

from qplan.compiler.capture.calls import (
    InputSlot,
    OpCall,
    first_tensor,
    has_tracked_float,
    op_type_of,
    positional_names,
    target_of,
)
from qplan.compiler.capture.common import (
    UNLISTED,
    CallArg,
    CaptureError,
    InventoryBuilder,
    class_path,
    classify_args,
    first_line,
    is_candidate,
    tensor_leaves,
    tensor_ref,
    through_source,
)
from qplan.compiler.capture.result import Capture
from qplan.compiler.inventory import Op
from qplan.compiler.ops import OP_TABLE

__all__ = ["EagerOpNamer", "InputSlot", "OpCall", "capture_eager", "has_tracked_float", "op_type_of"]


class EagerOpNamer(TorchFunctionMode):
    """Names every torch-level call of one forward exactly as :func:`capture` does (eager mode).

    Use ``with namer.session(args): model(*args)``. Subclasses override :meth:`intercept` (and
    may call :meth:`set_source` for tensors they create). One namer serves many forwards; each
    session starts from fresh counters. With ``record=True`` the namer also builds the
    inventory's op records (what :func:`capture` uses); the runtime does not need them.
    """

    def __init__(self, model: nn.Module, *, record: bool = False) -> None:
        super().__init__()
        self.model = model
        self.record = record  # build the inventory's Op records (capture does; the runtime need not)
        self._builder = InventoryBuilder(model)
        self._stack: list[str] = []
        self._sources: dict[int, tuple[Any, str | None]] = {}
        self._internal = 0
        self._pending_out: set[str] = set()

    # -- sources
    def source_of(self, t: Any) -> str | None:
        """The address of the value `t` holds, or None when it is not tracked."""
        if not isinstance(t, torch.Tensor):
            return None
        hit = self._sources.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        return self._builder.param_fqn.get(id(t))

    def set_source(self, t: Any, source: str | None) -> None:
        """Record that tensor `t` holds the value at address `source`."""
        if isinstance(t, torch.Tensor):
            self._sources[id(t)] = (t, source)

    def parameter_fqns(self) -> dict[int, str]:
        """``id(tensor) -> canonical fqn`` of the parameters and buffers the namer recognises (a copy)."""
        return dict(self._builder.param_fqn)

    def rebind_parameters(self, pairs: Iterable[tuple[torch.Tensor, str]]) -> None:
        """Recognise exactly these tensors as the parameters/buffers of these fqns (the first fqn of a
        tensor wins): for a model whose modules now hold other tensor objects (``.to()``, export)."""
        table = self._builder.param_fqn
        table.clear()
        for t, fqn in pairs:
            table.setdefault(id(t), fqn)

    @property
    def module(self) -> str:
        """Path of the innermost module running now ("" = root)."""
        return self._stack[-1] if self._stack else ""

    # -- session
    @contextlib.contextmanager
    def session(self, args: Sequence[Any]) -> Iterator[EagerOpNamer]:
        """One forward: fresh counters, model inputs named ``:in<i>``, hooks on, mode on."""
        b = self._builder
        b.counters.clear()
        b.ops.clear()
        b.first_call.clear()
        self._sources.clear()
        self._stack.clear()
        self._pending_out.clear()
        for i, t in enumerate(t for t in pytree.tree_leaves(tuple(args)) if isinstance(t, torch.Tensor)):
            self.set_source(t, f":in{i}")
        handles = []
        try:
            for mod in self.model.modules():
                handles.append(mod.register_forward_pre_hook(self._pre_hook))
                handles.append(mod.register_forward_hook(self._post_hook, always_call=True))
            with self:
                yield self
        finally:
            for h in handles:
                h.remove()
            self._stack.clear()

    def _pre_hook(self, mod: nn.Module, args: tuple) -> None:
        path = self._builder.module_path.get(id(mod))
        if path is None:
            return
        self._stack.append(path)
        if path not in self._builder.first_call:
            ins = tuple(self.source_of(t) for t in pytree.tree_leaves(args) if isinstance(t, torch.Tensor))
            self._builder.first_call[path] = (ins, ())
            self._pending_out.add(path)

    def _post_hook(self, mod: nn.Module, args: tuple, out: Any) -> None:
        path = self._builder.module_path.get(id(mod))
        if path is None:
            return
        if self._stack and self._stack[-1] == path:
            self._stack.pop()
        if path in self._pending_out:
            self._pending_out.discard(path)
            outs = tuple(self.source_of(t) for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor))
            self._builder.first_call[path] = (self._builder.first_call[path][0], outs)

    # -- calls
    def _named_args(self, func: Any, op_type: str, args: tuple, kwargs: dict) -> list[CallArg]:
        names, var = positional_names(func, op_type)
        out: list[CallArg] = []

        def add(name: str | None, value: Any, loc: tuple) -> None:
            if isinstance(value, torch.Tensor):
                out.append(CallArg(name, self.source_of(value), value, loc))
            elif isinstance(value, (list, tuple)):
                for k, v in enumerate(value):
                    if isinstance(v, torch.Tensor):
                        out.append(CallArg(name, self.source_of(v), v, (*loc, k)))

        for i, a in enumerate(args):
            add(names[i] if i < len(names) else var, a, ("args", i))
        for key, a in kwargs.items():
            add(key, a, ("kwargs", key))
        return out

    def describe(self, func: Any, args: tuple, kwargs: dict) -> tuple[OpCall, list[CallArg]]:
        """The :class:`OpCall` for a call about to run (does not advance the counters)."""
        target, op_type = target_of(func)
        module = self.module
        info = OP_TABLE.get(op_type)
        if info is not None and info.cls in UNLISTED:  # fast path: only the first tensor matters
            call = OpCall(func=func, target=target, op_type=op_type, module=module, name=None)
            first = first_tensor(args, kwargs)
            if first is not None:
                loc, t = first
                call.inputs = (InputSlot(0, self.source_of(t), loc, t),)
            return call, []
        named = self._named_args(func, op_type, args, kwargs)
        name = self._builder.peek_name(module, op_type) if is_candidate(op_type, named) else None
        call = OpCall(func=func, target=target, op_type=op_type, module=module, name=name)
        if name is not None:
            inputs, states = classify_args(op_type, named, self._builder.is_param, self._builder.param_order)
            call.inputs = tuple(InputSlot(i, a.source, a.loc, a.value) for i, a in enumerate(inputs))
            call.states = {k: a.source for k, a in states.items()}  # type: ignore[misc]
            call.state_locs = {k: a.loc for k, a in states.items()}
        elif named:
            call.inputs = (InputSlot(0, named[0].source, named[0].loc, named[0].value),)
        return call, named

    def intercept(self, call: OpCall, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run one call; override to insert fake-quants. Default: ``func(*args, **kwargs)``."""
        return func(*args, **kwargs)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self._internal:
            return func(*args, **kwargs)
        self._internal += 1
        try:
            with torch._C.DisableTorchFunction():
                call, _ = self.describe(func, args, kwargs)
        finally:
            self._internal -= 1
        out = self.intercept(call, func, args, kwargs)
        self._internal += 1
        try:
            with torch._C.DisableTorchFunction():
                self._finish(call, out)
        finally:
            self._internal -= 1
        return out

    def name_outputs(self, call: OpCall, leaves: list[torch.Tensor]) -> bool:
        """Commit `call`'s name and track its output tensors as ``<name>:out<j>``; False (and the
        outputs untracked) when none of them is a float tensor."""
        self._builder.commit_name(call.module, call.op_type)
        if not any(t.is_floating_point() for t in leaves):
            for t in leaves:
                self.set_source(t, None)
            return False
        for j, t in enumerate(leaves):
            self.set_source(t, f"{call.name}:out{j}")
        return True

    def _finish(self, call: OpCall, out: Any) -> None:
        leaves = tensor_leaves(out)
        info = OP_TABLE.get(call.op_type)
        if call.name is None:
            if info is not None and info.cls == "pass_through" and call.inputs:
                data = call.inputs[0]
                arg = CallArg(None, data.source, data.tensor, data.loc)
                for t in leaves:
                    self.set_source(t, through_source(arg, t))
            else:
                for t in leaves:
                    if id(t) not in self._builder.param_fqn:
                        self.set_source(t, None)
            return
        if not leaves:
            return
        if not self.name_outputs(call, leaves) or not self.record:
            return
        outputs = [tensor_ref(f"{call.name}:out{j}", t) for j, t in enumerate(leaves)]
        self._builder.ops.append(
            Op(
                name=call.name,
                op_type=call.op_type,
                module=call.module,
                inputs=tuple(tensor_ref(s.source, s.tensor) for s in call.inputs),
                states=dict(call.states),
                outputs=tuple(outputs),
                target=call.target,
            )
        )


def capture_eager(model: nn.Module, args: tuple) -> Capture:
    """Eager capture: one forward under a recording namer; buffers, RNG and `args` are left as they were."""
    namer = EagerOpNamer(model, record=True)
    args = pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, args)
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), namer.session(args):
            out = model(*args)
            outputs = tuple(namer.source_of(t) for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor))
    except Exception as e:
        raise CaptureError(f"the forward of `{class_path(type(model))}` failed: {first_line(e)}") from e
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                if k in buffers:
                    v.copy_(buffers[k])
    b = namer._builder
    inputs = tuple(
        tensor_ref(f":in{i}", t)
        for i, t in enumerate(t for t in pytree.tree_leaves(args) if isinstance(t, torch.Tensor))
    )
    return Capture(inventory=b.inventory("eager", inputs, outputs), mode="eager")
