"""Pass: shared qparams on value-preserving ops (see docs/config-language.md#placement-rules).

The quantized inputs and the quantized output of a value-preserving op (cat, pools, flatten,
mean) share one qparams set; declined slots stay float. Sharing is transitive (cat -> max_pool
-> ...), so groups are built with union-find over the fake-quants, in one pass over the ops.
The op's output takes part only through its own output fake-quant (role ``output``): a reader
that re-quantizes a declined output with its own spec does not join. Only fake-quants with the
same resolved spec and schedule share qparams; the others keep their own. Group ids (``g0``, ``g1``, ...) follow the entry order.
"""

from __future__ import annotations

from copy import copy

from qplan.compiler.ops import op_class
from qplan.compiler.plan import Decision
from qplan.compiler.state import Entry, State

__all__ = ["share_qparams"]


def share_qparams(state: State) -> State:
    """Put the quantized slots of each value-preserving op in one qparams group; returns the new state."""
    state = state.evolve(entries=list(state.entries))  # an entry that joins a group is replaced by a copy
    live = [k for k, e in enumerate(state.entries) if not e.dropped]
    entries = [state.entries[k] for k in live]
    by_reader, by_source = _index(entries)

    parent = list(range(len(entries)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ops_of: dict[int, list[str]] = {}
    for op in state.inventory.ops:
        if op_class(op.op_type) != "value_preserving" or op.name in state.fused:
            continue
        members = [by_reader[addr] for i in range(len(op.inputs)) if (addr := op.input_address(i)) in by_reader]
        for j in range(len(op.outputs)):
            members += by_source.get(op.output_address(j), ())
        parts: dict[tuple, list[int]] = {}
        for n in members:
            e = entries[n]
            parts.setdefault((e.spec, e.axis, e.block_size, e.schedule), []).append(n)
        for same in parts.values():
            if len(same) < 2:
                continue
            for n in same[1:]:
                a, b = find(same[0]), find(n)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            ops_of.setdefault(same[0], []).append(op.name)

    groups: dict[int, list[int]] = {}
    for n in range(len(entries)):
        groups.setdefault(find(n), []).append(n)
    gops: dict[int, list[str]] = {}
    for n, op_names in ops_of.items():
        gops.setdefault(find(n), []).extend(op_names)
    for n, gid in _name_groups(state, entries, groups, gops).items():
        grouped = copy(entries[n])
        grouped.group = gid
        state.entries[live[n]] = grouped
    return state


def _index(entries: list[Entry]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """(reader -> its entry, source -> its output entries), by position in `entries`."""
    by_reader: dict[str, int] = {}
    by_source: dict[str, list[int]] = {}
    for n, e in enumerate(entries):
        for r in e.readers:
            by_reader[r] = n
        if e.role == "output":
            by_source.setdefault(e.source, []).append(n)
    return by_reader, by_source


def _name_groups(
    state: State,
    entries: list[Entry],
    groups: dict[int, list[int]],
    gops: dict[int, list[str]],
) -> dict[int, str]:
    """The group id of every entry in a group of two or more (``g0``, ``g1``, ... in entry order)."""
    group_of: dict[int, str] = {}
    count = 0
    for root in sorted(groups):
        members = groups[root]
        if len(members) < 2:
            continue
        gid = f"g{count}"
        count += 1
        for n in members:
            group_of[n] = gid
        names = ", ".join(f"`{x}`" for x in dict.fromkeys(gops.get(root, [])))
        state.decisions.append(
            Decision(
                kind="shared-qparams",
                subjects=tuple(entries[n].address for n in members),
                reason=f"quantized inputs and output of value-preserving {names} share one qparams set",
                group=gid,
            )
        )
    return group_of
