"""Reading a plan against a captured model: address parsing, module names, fingerprint check.

Both runtime modes need the same facts about a plan entry: what kind of value it fake-quantizes
(an op output, a parameter, a model input), which edges read it, and which pass-through ops lie
between the value and each reader. This module computes them once, from the plan and the
inventory of a fresh capture, so the mode-specific code only wires modules in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qplan.compiler.inventory import Inventory, Op
from qplan.compiler.plan import Plan, QuantizerEntry
from qplan.diagnostics import QplanError

__all__ = [
    "PlanMismatchError",
    "Source",
    "Reader",
    "EntryPlacement",
    "parse_source",
    "parse_reader",
    "module_name",
    "check_fingerprint",
    "place_entries",
]


class PlanMismatchError(QplanError):
    """The model does not match the plan (fingerprint or addresses)."""


_IN = re.compile(r"in(\d+)")
_OUT = re.compile(r"out(\d+)")


@dataclass(frozen=True, slots=True)
class Source:
    kind: str  # "op" | "param" | "input"
    op: str = ""  # op name for kind == "op"
    index: int = 0  # output index (op) or model input index (input)
    fqn: str = ""  # parameter fqn for kind == "param"


@dataclass(frozen=True, slots=True)
class Reader:
    kind: str  # "input" (op input) | "state" | "output" (model output)
    op: str = ""
    index: int = 0  # op input index, or model output index
    state: str = ""  # state name for kind == "state"


def parse_source(address: str) -> Source:
    if ":" not in address:
        return Source("param", fqn=address)
    op, _, tail = address.rpartition(":")
    if op == "":
        m = _IN.fullmatch(tail)
        if m:
            return Source("input", index=int(m.group(1)))
    else:
        m = _OUT.fullmatch(tail)
        if m:
            return Source("op", op=op, index=int(m.group(1)))
    raise PlanMismatchError(f"plan source address `{address}` is not an op output, a parameter or a model input")


def parse_reader(address: str) -> Reader:
    op, sep, tail = address.rpartition(":")
    if not sep:
        raise PlanMismatchError(f"plan reader address `{address}` has no `:`")
    if op == "":
        m = _OUT.fullmatch(tail)
        if m:
            return Reader("output", index=int(m.group(1)))
        raise PlanMismatchError(f"plan reader address `{address}` is not a model output (`:out<j>`)")
    m = _IN.fullmatch(tail)
    if m:
        return Reader("input", op=op, index=int(m.group(1)))
    if _OUT.fullmatch(tail) or tail.startswith("in."):
        raise PlanMismatchError(f"plan reader address `{address}` is not an op input or state")
    return Reader("state", op=op, state=tail)


_BAD = re.compile(r"[^0-9A-Za-z_]")


def module_name(address: str) -> str:
    """Submodule name for the fake-quant of ``address``: `blocks.0.fc1.linear:in0` -> `fq__blocks_0_fc1_linear__in0`."""
    return "fq__" + _BAD.sub("_", address.replace(":", "__"))


def check_fingerprint(plan: Plan, inventory: Inventory) -> None:
    """Raise :class:`PlanMismatchError` naming the first op that differs when the model does not match.

    The plan stores only the inventory's fingerprint, so the first differing op is located from
    what the plan does hold: the op names, output counts, input counts, states and parameter
    shapes its quantizer entries name, in plan (execution) order. Any mismatch is an error, even
    when no single op can be blamed (an op the plan does not quantize changed).
    """
    got = inventory.fingerprint()
    if got == plan.model.fingerprint:
        return
    ops = {op.name: op for op in inventory.ops}
    problem = next((p for e in plan.quantizers if (p := _entry_problem(e, inventory, ops))), None)
    msg = (
        f"model `{inventory.model_class}` does not match the plan "
        f"(plan fingerprint {plan.model.fingerprint}, model {got})"
    )
    if problem:
        msg += f": {problem}"
    else:
        msg += "; every address the plan quantizes still exists, but other ops changed"
    raise PlanMismatchError(msg + "; help: recompile the plan for this model (`qplan compile-plan`)")


def _entry_problem(e: QuantizerEntry, inv: Inventory, ops: dict[str, Op]) -> str | None:
    s = parse_source(e.source)
    if s.kind == "op":
        op = ops.get(s.op)
        if op is None:
            return f"op `{s.op}` (source of quantizer `{e.id}`) does not exist in the model"
        if s.index >= len(op.outputs):
            return f"op `{s.op}` has {len(op.outputs)} output(s), the plan reads output {s.index}"
    elif s.kind == "param":
        p = inv.parameters.get(s.fqn)
        reader = next((r for r in e.readers if ":" in r and not r.startswith(":")), None)
        where = f"op `{reader.rpartition(':')[0]}`: " if reader else ""
        if p is None:
            return f"{where}parameter `{s.fqn}` does not exist in the model"
        if tuple(p.shape) != tuple(e.shape):
            return f"{where}parameter `{s.fqn}` has shape {list(p.shape)}, the plan expects {list(e.shape)}"
    elif s.index >= len(inv.inputs):
        return f"the model has {len(inv.inputs)} input(s), the plan quantizes input {s.index}"
    for r in e.readers:
        rr = parse_reader(r)
        if rr.kind == "output":
            if rr.index >= len(inv.outputs):
                return f"the model has {len(inv.outputs)} output(s), the plan reads output {rr.index}"
            continue
        op = ops.get(rr.op)
        if op is None:
            return f"op `{rr.op}` (reader of quantizer `{e.id}`) does not exist in the model"
        if rr.kind == "input" and rr.index >= len(op.inputs):
            return f"op `{rr.op}` has {len(op.inputs)} input(s), the plan reads input {rr.index}"
        if rr.kind == "state" and rr.state not in op.states:
            return f"op `{rr.op}` has no state `{rr.state}`"
    return None


@dataclass(slots=True)
class EntryPlacement:
    """Where one plan entry's fake-quant goes, resolved against an inventory."""

    entry: QuantizerEntry
    name: str  # submodule name
    source: Source
    readers: list[Reader] = field(default_factory=list)


def place_entries(plan: Plan, inv: Inventory) -> list[EntryPlacement]:
    """Resolve every plan entry against ``inv`` (which must match the plan's fingerprint).

    Pass-through ops are not in the inventory (their outputs carry their input's source), so a
    reader's input source is the entry's source itself; anything else is a mismatch.
    """
    ops = {op.name: op for op in inv.ops}
    out: list[EntryPlacement] = []
    used: set[str] = set()
    for e in plan.quantizers:
        problem = _entry_problem(e, inv, ops)
        if problem:
            raise PlanMismatchError(f"quantizer `{e.id}` (`{e.address}`): {problem}")
        name = module_name(e.address)
        k = 1
        while name in used:
            k += 1
            name = f"{module_name(e.address)}_{k}"
        used.add(name)
        p = EntryPlacement(e, name, parse_source(e.source), [parse_reader(r) for r in e.readers])
        for r in p.readers:
            if r.kind == "input":
                got = ops[r.op].inputs[r.index].source
            elif r.kind == "output":
                got = inv.outputs[r.index]
            else:
                got = ops[r.op].states[r.state]
            if got != e.source:
                where = f":out{r.index}" if r.kind == "output" else f"{r.op}:{r.state or f'in{r.index}'}"
                raise PlanMismatchError(
                    f"quantizer `{e.id}`: `{where}` reads `{got}` in the model, not the plan's source `{e.source}`"
                )
        out.append(p)
    return out
