"""Pass: group the quantized reads into fake-quants (see docs/config-language.md#placement-rules, edges).

Reads of the same root value with equal spec and schedule share one fake-quant, so there is
never more than one fake-quant between a producer and a consumer. Reads decided by a module
boundary form their own fake-quant at the boundary address. A group whose spec and schedule are
the producer's own output spec is the producer's output fake-quant (role ``output``, address
``<op>:out<j>``); any other group is an input fake-quant at its first reader (role ``input``).
Output-only values (``state.dangling``) get an output fake-quant with no readers.
"""

from __future__ import annotations

from qplan.compiler.assign_schedules import schedule_for
from qplan.compiler.plan import Role
from qplan.compiler.state import Entry, State

__all__ = ["place_quantizers"]

_OUT_SLOT = 1000  # entry order: an op's outputs sort after its inputs and weights


def place_quantizers(state: State) -> State:
    """Group reads with equal spec and schedule into fake-quant entries; returns the new state."""
    state = state.evolve(entries=list(state.entries))
    groups: dict[tuple, Entry] = {}
    producer_sched: dict[str, object] = {}
    for read in sorted(state.reads.values(), key=lambda r: r.order):
        key = (read.root, read.opinion.spec, read.schedule, read.boundary_address)
        entry = groups.get(key)
        if entry is not None:
            entry.readers.append(read.reader)
            continue
        shape, dtype = state.tensor.get(read.root, ((), "float32"))
        producer = state.out_opinion.get(read.root)
        spec = read.opinion.spec
        assert spec is not None, "a decline never becomes a read"
        role: Role = "input"
        address, order, opinion = read.reader, read.order, read.opinion
        if read.boundary_address is not None:
            role, address = "boundary", read.boundary_address
        elif producer is not None and producer.spec == read.opinion.spec:
            if read.root not in producer_sched:
                producer_sched[read.root] = schedule_for(state, producer.module)
            if producer_sched[read.root] == read.schedule:
                role, address, opinion = "output", read.root, producer
                order = _output_order(state, read.root)
        groups[key] = Entry(
            address=address,
            role=role,
            source=read.root,
            spec=spec,
            schedule=read.schedule,
            readers=[read.reader],
            opinion=opinion,
            order=order,
            shape=shape,
            dtype=dtype,
            extra_beaten=() if role == "output" else read.extra_beaten,
        )
    state.entries.extend(groups.values())
    for addr in state.dangling:
        o = state.out_opinion[addr]
        assert o.spec is not None, "only quantized outputs dangle"
        shape, dtype = state.tensor[addr]
        state.entries.append(
            Entry(
                address=addr,
                role="output",
                source=addr,
                spec=o.spec,
                schedule=schedule_for(state, o.module),
                readers=[],
                opinion=o,
                order=_output_order(state, addr),
                shape=shape,
                dtype=dtype,
            )
        )
    state.entries.sort(key=lambda e: (e.order, e.address))
    return state


def _output_order(state: State, address: str) -> tuple[int, int]:
    op = state.producer.get(address)
    if op is None:
        return (-1, 0)
    return (state.op_index[op.name], _OUT_SLOT + int(address.rpartition(":out")[2]))
