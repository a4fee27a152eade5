"""Pass: fusion groups (see docs/config-language.md#placement-rules).

A compute op whose only reader is a BatchNorm and/or a fusable activation (relu, gelu, silu,
...) forms one group with them: compute -> act, compute -> bn, or compute -> bn -> act. Nothing
is quantized inside the group; the anchor's (compute op's) config governs, so the group's exit
output takes the anchor's output opinion and the interior ops' own opinions are dropped. In
graph mode a BatchNorm in the group is folded into the anchor's weight before the weight is
quantized; in eager mode it is not. Both are recorded (``fusion`` decisions, and ``bn-fold``
decisions with subjects ``(batch-norm op, weight fqn)`` when the anchor has a weight).
"""

from __future__ import annotations

from qplan.compiler.inventory import Op
from qplan.compiler.ops import is_batch_norm, is_fusable_activation, op_class
from qplan.compiler.plan import Decision
from qplan.compiler.state import State

__all__ = ["fuse"]


def fuse(state: State) -> State:
    """Group compute ops with their BatchNorm / activation readers (``state.fused``); returns the new state."""
    state = state.evolve(
        fused={},
        in_opinion=dict(state.in_opinion),
        out_opinion=dict(state.out_opinion),
        state_opinion=dict(state.state_opinion),
    )
    ops = state.inventory.ops
    count = 0
    for op in ops:
        if op_class(op.op_type) != "compute" or op.name in state.fused:
            continue
        chain = [op]
        bn = _sole_reader(state, chain[-1], is_batch_norm)
        if bn is not None:
            chain.append(bn)
        act = _sole_reader(state, chain[-1], is_fusable_activation)
        if act is not None:
            chain.append(act)
        if len(chain) == 1:
            continue
        group = f"f{count}"
        count += 1
        _apply(state, chain, group)
        names = tuple(o.name for o in chain)
        exit_addr = chain[-1].output_address(0)
        state.decisions.append(
            Decision(
                kind="fusion",
                subjects=names,
                reason=(
                    f"`{op.name}` is read only by {', '.join(f'`{n}`' for n in names[1:])}: nothing is quantized "
                    f"inside the group; `{op.name}`'s config governs and its output spec applies at `{exit_addr}`"
                ),
                group=group,
            )
        )
        weight = op.states.get("weight")
        if bn is not None and weight is not None:
            if state.inventory.mode == "graph":
                reason = f"graph mode: BatchNorm `{bn.name}` is folded into `{weight}` before it is quantized"
            else:
                reason = f"eager mode: BatchNorm `{bn.name}` is not folded into `{weight}`"
            state.decisions.append(Decision(kind="bn-fold", subjects=(bn.name, weight), reason=reason, group=group))
    return state


def _sole_reader(state: State, op: Op, accept) -> Op | None:
    """The one op reading `op`'s single output at input 0, if it passes `accept`."""
    if len(op.outputs) != 1:
        return None
    out = op.output_address(0)
    readers = state.direct_readers.get(out, ())
    if len(readers) != 1 or out in state.model_outputs:
        return None
    k, i = readers[0]
    reader = state.inventory.ops[k]
    if i != 0 or not accept(reader.op_type) or reader.name in state.fused:
        return None
    return reader


def _apply(state: State, chain: list[Op], group: str) -> None:
    anchor, interior = chain[0], chain[1:]
    exit_op = chain[-1]
    anchor_out = state.out_opinion.pop(anchor.output_address(0), None)
    for o in interior:
        for i in range(len(o.inputs)):
            state.in_opinion.pop(o.input_address(i), None)
        for j in range(len(o.outputs)):
            state.out_opinion.pop(o.output_address(j), None)
        for name in o.states:
            state.state_opinion.pop((o.name, name), None)
    if anchor_out is not None:
        state.out_opinion[exit_op.output_address(0)] = anchor_out
    for o in chain:
        state.fused[o.name] = group
