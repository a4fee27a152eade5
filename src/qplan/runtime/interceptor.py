"""The per-call dispatcher of a prepared eager model: a ``TorchFunctionMode`` (the capture's eager op
namer) that fake-quantizes op outputs, substitutes side values and parameters, following the dispatch
table :func:`qplan.runtime.eager.build_interceptor` builds (see :mod:`qplan.runtime.eager`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils import _pytree as pytree

from qplan.compiler.capture.eager import EagerOpNamer, OpCall, has_tracked_float, op_type_of
from qplan.compiler.ops import OP_TABLE
from qplan.runtime.eager_modules import FAKE_QUANTS, running

__all__ = ["Interceptor", "Action", "QplanUnknownOpWarning"]

_PASS_THROUGH = frozenset(t for t, info in OP_TABLE.items() if info.cls == "pass_through")
_UNLISTED = frozenset(t for t, info in OP_TABLE.items() if info.cls in ("pass_through", "ignore"))


class QplanUnknownOpWarning(UserWarning):
    """An op call that the plan does not know ran in float."""


class Action:
    """What to do around one named op call."""

    __slots__ = ("subs", "states", "outs")

    def __init__(self) -> None:
        self.subs: dict[int, tuple[int, ...]] = {}  # op input index -> entries whose side value it reads
        self.states: tuple[tuple[nn.Module, str, nn.Module], ...] = ()  # (owner, attr, fake-quant)
        self.outs: tuple[tuple[int, nn.Module, int], ...] = ()  # (output j, fake-quant, side entry or -1)


class Interceptor(EagerOpNamer):
    """The per-call dispatcher of a prepared eager model (see the module docstring)."""

    def __init__(self, model: nn.Module, actions: dict[str, Action], known: frozenset[str]):
        super().__init__(model)
        self.root = model
        self.actions = actions
        self.known = known
        self.reported: set[str] = set()
        # side values: id(float tensor) -> (float tensor, {entry index: fake-quantized tensor})
        self.side: dict[int, tuple[torch.Tensor, dict[int, torch.Tensor]]] = {}
        self.in_actions: tuple[tuple[int, nn.Module, int], ...] = ()  # (model input i, fake-quant, side)
        self.out_subs: tuple[tuple[int, int], ...] = ()  # (model output j, side entry)
        self._names: dict[tuple[str, str, int], tuple[str, str]] = {}  # (module, op type, k) -> names
        # (table, attribute, canonical fqn) of every model parameter/buffer the namer knows; the
        # fake-quants' own buffers are not tracked (no op of the model reads them)
        fqn_of = self.parameter_fqns()
        skip = {id(m) for m in getattr(model, FAKE_QUANTS).modules()} if hasattr(model, FAKE_QUANTS) else set()
        self._slots = [
            (table, attr, fqn_of[id(t)])
            for mod in model.modules()
            if id(mod) not in skip
            for table in (mod._parameters, mod._buffers)
            for attr, t in table.items()
            if t is not None and id(t) in fqn_of
        ]
        self._held = [table.get(attr) for table, attr, _ in self._slots]
        self._refresh_params(force=True)

    def _refresh_params(self, force: bool = False) -> None:
        """Re-key the namer's parameter table by the tensors the modules hold now.

        ``.to()`` replaces buffers and ``torch.export`` swaps every parameter and buffer for a fake
        tensor; the namer recognises parameters by identity, so it must see the current objects.
        """
        held = self._held
        if not force:
            for k, (table, attr, _) in enumerate(self._slots):
                if table.get(attr) is not held[k]:
                    break
            else:
                return
        pairs = []
        for k, (table, attr, fqn) in enumerate(self._slots):
            t = held[k] = table.get(attr)
            if t is not None:
                pairs.append((t, fqn))
        self.rebind_parameters(pairs)

    # ---------------------------------------------------------------- lighter namer bookkeeping
    # The capture's namer also records an inventory (Op records, module boundaries) on every
    # forward; the runtime needs only names and sources, so these two methods skip the records.
    @contextlib.contextmanager
    def session(self, args: Any) -> Iterator[Interceptor]:
        """One forward: fresh counters and sources, module boundaries tracked (by the wrapped
        forwards, else two global hooks), this mode on."""
        self._builder.counters.clear()
        self._sources.clear()
        self._stack.clear()
        for i, t in enumerate(t for t in pytree.tree_leaves(tuple(args)) if isinstance(t, torch.Tensor)):
            self.set_source(t, f":in{i}")
        tracked = self.root.__dict__.get("_qplan_modules_tracked", False) and not torch.compiler.is_compiling()
        if tracked:
            running().append(self)
        else:
            pre = register_module_forward_pre_hook(self._pre_hook)
            post = register_module_forward_hook(self._post_hook, always_call=True)
        try:
            with self:
                yield self
        finally:
            if tracked:
                running().remove(self)
            else:
                pre.remove()
                post.remove()
            self._stack.clear()
            self._sources.clear()

    def _finish(self, call: OpCall, out: Any) -> None:
        if call.name is None:  # pass-through and untracked values: the namer's own rules
            super()._finish(call, out)
            return
        if isinstance(out, torch.Tensor):
            leaves = [out]
        else:
            leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
            if not leaves:
                return
        self.name_outputs(call, leaves)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        """Named calls that need no side value are named and run here without the namer's
        per-argument records (:meth:`describe`); every other call takes the namer's general path."""
        if self._internal:
            return func(*args, **(kwargs or {}))
        op_type = op_type_of(func)
        if op_type not in _UNLISTED:
            if kwargs is None:
                kwargs = {}
            if has_tracked_float(self.source_of, args, kwargs):
                module = self._stack[-1] if self._stack else ""
                key = (module, op_type, self._builder.counters.get((module, op_type), 0))
                names = self._names.get(key)
                if names is None:  # the name and its first output's address, formatted once
                    name = self._builder.peek_name(module, op_type)
                    names = self._names[key] = (name, f"{name}:out0")
                name = names[0]
                act = self.actions.get(name)
                if act is None:
                    out = func(*args, **kwargs)
                    if name not in self.known and name not in self.reported and _is_float_result(out):
                        self._report(name)
                    self._finish_named(module, op_type, names, out)
                    return out
                if not (act.subs and self.side):
                    if act.states:
                        args, kwargs = _states(args, kwargs, act.states)
                    out = func(*args, **kwargs)
                    if act.outs:
                        out = self._outputs(out, act.outs)
                    self._finish_named(module, op_type, names, out)
                    return out
        return super().__torch_function__(func, types, args, kwargs)

    def _finish_named(self, module: str, op_type: str, names: tuple[str, str], out: Any) -> None:
        """The sources a named call's outputs get (as :meth:`_finish` gives them)."""
        if isinstance(out, torch.Tensor):
            self._builder.commit_name(module, op_type)
            self.set_source(out, names[1] if out.is_floating_point() else None)
            return
        name = names[0]
        leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        if not leaves:
            return
        self._builder.commit_name(module, op_type)
        if not any(t.is_floating_point() for t in leaves):
            for t in leaves:
                self.set_source(t, None)
            return
        for j, t in enumerate(leaves):
            self.set_source(t, f"{name}:out{j}")

    def __deepcopy__(self, memo: dict) -> None:
        return None  # rebuilt for the copy on its first forward (see `_forward`)

    def intercept(self, call: OpCall, func: Any, args: tuple, kwargs: dict) -> Any:
        name = call.name
        if name is None:
            out = func(*args, **kwargs)
            if self.side and call.inputs and call.op_type in _PASS_THROUGH:
                self._mirror(call, func, args, kwargs, out)
            return out
        act = self.actions.get(name)
        if act is None:
            out = func(*args, **kwargs)
            if name not in self.known and name not in self.reported and _is_float_result(out):
                self._report(name)
            return out
        if act.subs and self.side:
            args, kwargs = self._substitute(call, args, kwargs, act.subs)
        if act.states:
            args, kwargs = _states(args, kwargs, act.states)
        out = func(*args, **kwargs)
        if act.outs:
            out = self._outputs(out, act.outs)
        return out

    # ------------------------------------------------------------------------------------ helpers
    def _report(self, name: str) -> None:
        self.reported.add(name)
        warnings.warn(
            f"op `{name}` is not in the plan (not run during capture?); it runs in float",
            QplanUnknownOpWarning,
            stacklevel=2,
        )

    def _side_of(self, t: Any) -> dict[int, torch.Tensor] | None:
        hit = self.side.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else None

    def _substitute(
        self, call: OpCall, args: tuple, kwargs: dict, subs: dict[int, tuple[int, ...]]
    ) -> tuple[tuple, dict]:
        new: dict[int, torch.Tensor] = {}
        for slot in call.inputs:
            entries = subs.get(slot.index)
            if entries:
                vals = self._side_of(slot.tensor)
                if vals:
                    for e in entries:
                        if e in vals:
                            new[slot.index] = vals[e]
                            break
        return call.replace_inputs(args, kwargs, new) if new else (args, kwargs)

    def _mirror(self, call: OpCall, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        """A pass-through op applied to a side value: run it on the fake-quantized value too."""
        vals = self._side_of(call.inputs[0].tensor)
        if not vals:
            return
        leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        for e, v in vals.items():
            a, k = call.replace_inputs(args, kwargs, {0: v})
            fq_leaves = [t for t in pytree.tree_leaves(func(*a, **k)) if isinstance(t, torch.Tensor)]
            for o, fo in zip(leaves, fq_leaves, strict=False):
                self.side.setdefault(id(o), (o, {}))[1][e] = fo

    def _outputs(self, out: Any, outs: tuple) -> Any:
        if isinstance(out, torch.Tensor):
            for _, fq, e in outs:  # a single output: j == 0
                q = fq.forward(out)
                if e < 0:
                    return q
                self.side.setdefault(id(out), (out, {}))[1][e] = q
            return out
        flat, spec = pytree.tree_flatten(out)
        tensors = [k for k, a in enumerate(flat) if isinstance(a, torch.Tensor)]
        for j, fq, e in outs:
            v = flat[tensors[j]]
            q = fq.forward(v)
            if e < 0:
                flat[tensors[j]] = q
            else:
                self.side.setdefault(id(v), (v, {}))[1][e] = q
        return pytree.tree_unflatten(flat, spec)

    # --------------------------------------------------------------------------------- model call
    def run(self, forward: Callable, args: tuple, kwargs: dict) -> Any:
        self.side.clear()
        self._refresh_params()
        try:
            if self.in_actions:
                flat, spec = pytree.tree_flatten((args, kwargs))
                tensors = [k for k, a in enumerate(flat) if isinstance(a, torch.Tensor)]
                for i, fq, e in self.in_actions:
                    v = flat[tensors[i]]
                    q = fq.forward(v)
                    if e < 0:
                        flat[tensors[i]] = q
                    else:
                        self.side.setdefault(id(v), (v, {}))[1][e] = q
                args, kwargs = pytree.tree_unflatten(flat, spec)
            with self.session(pytree.tree_leaves((args, kwargs))):
                out = forward(*args, **kwargs)
            if self.out_subs and self.side:
                flat, spec = pytree.tree_flatten(out)
                tensors = [k for k, a in enumerate(flat) if isinstance(a, torch.Tensor)]
                for j, e in self.out_subs:
                    vals = self._side_of(flat[tensors[j]])
                    if vals and e in vals:
                        flat[tensors[j]] = vals[e]
                out = pytree.tree_unflatten(flat, spec)
        finally:
            self.side.clear()
        return out


def _is_float_result(out: Any) -> bool:
    if isinstance(out, torch.Tensor):
        return out.is_floating_point()
    return any(isinstance(t, torch.Tensor) and t.is_floating_point() for t in pytree.tree_leaves(out))


def _states(args: tuple, kwargs: dict, states: tuple) -> tuple[tuple, dict]:
    """Replace parameter arguments (found by identity) by their fake-quantized values."""
    new = list(args)
    for owner, attr, fq in states:
        p = getattr(owner, attr)
        for k, a in enumerate(new):
            if a is p:
                new[k] = fq.forward(p)
                break
        else:
            for key, v in kwargs.items():
                if v is p:
                    kwargs = {**kwargs, key: fq.forward(p)}
                    break
    return tuple(new), kwargs
