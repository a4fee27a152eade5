"""Eager mode: apply a plan by intercepting op calls with a ``TorchFunctionMode``.

The prepared model is a deep copy of the user's model whose ``forward`` runs under an
:class:`Interceptor`. The interceptor names each op call with the capture's eager op namer (so
names are exactly the plan's) and looks the name up in a table built once at prepare time:

* **outputs**: an op output that is a plan source is fake-quantized right after the op. When every
  consumer of that value (through pass-through ops) is one of the entry's readers, the op's result
  is simply replaced ("replace"); otherwise the fake-quantized value is kept aside, keyed by the
  float tensor, and only the entry's readers get it ("side"); pass-through ops on the way are run
  a second time on the fake-quantized value ("mirror").
* **states**: a parameter argument (found by identity) is replaced by its fake-quantized value.
* **model inputs / outputs**: handled in the same two ways around the root ``forward``.

Op calls the plan does not know (e.g. a branch not taken during capture) run in float and are
reported once per op name with a :class:`QplanUnknownOpWarning`. The fake-quant modules live in a
``ModuleDict`` under the model (``qplan_fake_quants``), so they follow ``.to()``, ``state_dict()``
and ``parameters()``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from torch import nn

from qplan.compiler.inventory import Inventory
from qplan.runtime.eager_modules import FAKE_QUANTS, track_modules
from qplan.runtime.interceptor import Action, Interceptor, QplanUnknownOpWarning
from qplan.runtime.match import EntryPlacement

__all__ = ["Interceptor", "QplanUnknownOpWarning", "attach", "build_interceptor", "consumers", "rebuild", "FAKE_QUANTS"]


def consumers(inv: Inventory, address: str) -> set[str]:
    """Op-input, state and model-output addresses that read ``address`` (pass-through ops are
    transparent in the inventory: their readers read the source itself)."""
    out: set[str] = set()
    for op in inv.ops:
        out.update(f"{op.name}:in{i}" for i, t in enumerate(op.inputs) if t.source == address)
        out.update(f"{op.name}:{s}" for s, fqn in op.states.items() if fqn == address)
    out.update(f":out{j}" for j, s in enumerate(inv.outputs) if s == address)
    return out


def _forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    ic = self.__dict__.get("_qplan_interceptor")
    if ic is None or ic.root is not self:
        ic = rebuild(self)
    return ic.run(type(self).forward.__get__(self), args, kwargs)


def rebuild(model: nn.Module) -> Interceptor:
    placements, inv = model.__dict__["_qplan_placements"]
    ic = build_interceptor(model, placements, getattr(model, FAKE_QUANTS), inv)
    object.__setattr__(model, "_qplan_interceptor", ic)
    return ic


def build_interceptor(
    model: nn.Module, placements: list[EntryPlacement], modules: Mapping[str, nn.Module], inv: Inventory
) -> Interceptor:
    """The dispatch table of ``placements`` on ``model`` (fake-quants taken from ``modules``)."""
    actions: dict[str, Action] = {}

    def act(name: str) -> Action:
        a = actions.get(name)
        if a is None:
            a = actions[name] = Action()
        return a

    by_source: dict[str, int] = {}
    for p in placements:
        by_source[p.entry.source] = by_source.get(p.entry.source, 0) + 1
    in_actions: list[tuple[int, nn.Module, int]] = []
    out_subs: list[tuple[int, int]] = []
    subs: dict[str, dict[int, list[int]]] = {}
    for e, p in enumerate(placements):
        fq = modules[p.name]
        src = p.source
        if src.kind == "param":
            owner_path, _, attr = src.fqn.rpartition(".")
            owner = model.get_submodule(owner_path) if owner_path else model
            for r in p.readers:
                if r.kind == "state":
                    a = act(r.op)
                    if not any(o is owner and at == attr for o, at, _ in a.states):
                        a.states = (*a.states, (owner, attr, fq))
                else:  # a parameter read in an input slot is also a state of that op (capture)
                    subs.setdefault(r.op, {}).setdefault(r.index, []).append(e)
            continue
        readers = set(p.entry.readers)
        replace = by_source[p.entry.source] == 1 and bool(readers) and consumers(inv, p.entry.source) == readers
        side = -1 if replace else e
        if src.kind == "op":
            a = act(src.op)
            a.outs = (*a.outs, (src.index, fq, side))
        else:
            in_actions.append((src.index, fq, side))
        if replace:
            continue
        for r in p.readers:
            if r.kind == "output":
                out_subs.append((r.index, e))
            elif r.kind == "input":
                subs.setdefault(r.op, {}).setdefault(r.index, []).append(e)
    for name, by_index in subs.items():
        act(name).subs = {i: tuple(dict.fromkeys(es)) for i, es in by_index.items()}
    ic = Interceptor(model, actions, frozenset(op.name for op in inv.ops))
    ic.in_actions = tuple(in_actions)
    ic.out_subs = tuple(out_subs)
    return ic


def attach(
    model: nn.Module, placements: list[EntryPlacement], modules: Mapping[str, nn.Module], inv: Inventory
) -> nn.Module:
    """Register the fake-quants under ``model`` and route its forward through an interceptor."""
    holder = nn.ModuleDict()
    for p in placements:
        holder[p.name] = modules[p.name]
    model.add_module(FAKE_QUANTS, holder)
    object.__setattr__(model, "_qplan_placements", (placements, inv))
    model.forward = types.MethodType(_forward, model)
    object.__setattr__(model, "_qplan_modules_tracked", track_modules(model))
    rebuild(model)
    return model
