"""Pass: the edge rule (see docs/config-language.md#placement-rules): each consumer decides what it reads.

Pass-through ops (view, permute, ...) are transparent: every value is seen through them as its
*root* (the value before them), and the rule applies between the root's producer and the readers
after them. For each op input reading a float root:

* a consumer input spec wins (``edge-override`` when the producer's output spec differs);
* a consumer decline reads float;
* a consumer without an opinion reads the producer's output spec, or float.

A model output carries its producer's output spec. A producer output spec on a value nobody
reads (not even a model output) still gets an output-only fake-quant (``state.dangling``).
The readers are grouped into fake-quants later (``place_quantizers``), after boundaries and
schedules, so that readers with equal spec and schedule share one.
"""

from __future__ import annotations

from qplan.compiler.inventory import Op
from qplan.compiler.ops import op_class
from qplan.compiler.plan import Decision
from qplan.compiler.state import FLOAT_DTYPES, Opinion, Read, State, describe_spec

__all__ = ["resolve_edges"]


def resolve_edges(state: State) -> State:
    """Decide what every op input and model output reads (``state.reads``); returns the new state."""
    state = state.evolve(root={}, readers_of_root={}, reads={}, dangling=[])
    overrides: dict[tuple, list[str]] = {}
    for k, op in enumerate(state.inventory.ops):
        if op_class(op.op_type) == "pass_through":
            _see_through(state.root, op)
        else:
            _op_reads(state, k, op, overrides)
    _model_output_reads(state)
    _find_dangling(state)
    for (cparts, pparts), readers in overrides.items():
        state.report(
            "edge-override",
            f"`{state.path(cparts)}` overrides the producer's output spec `{state.path(pparts)}` at {len(readers)} "
            f"edge{'s' if len(readers) != 1 else ''} (first: `{readers[0]}`)",
            cparts,
        )
    return state


def _see_through(root: dict[str, str], op: Op) -> None:
    """A pass-through op's outputs (of its input's dtype) have its input's root."""
    src = op.inputs[0].source if op.inputs else None
    if src is None:
        return
    r = root.get(src, src)
    in_dtype = op.inputs[0].dtype
    for j, t in enumerate(op.outputs):
        if t.dtype == in_dtype:
            root[op.output_address(j)] = r


def _op_reads(state: State, k: int, op: Op, overrides: dict[tuple, list[str]]) -> None:
    """The edge rule on every float input of op `k` that is not one of its states."""
    state_fqns = set(op.states.values())
    for i, t in enumerate(op.inputs):
        src = t.source
        if src is None or t.dtype not in FLOAT_DTYPES or src in state_fqns:
            continue
        r = state.root.get(src, src)
        reader = op.input_address(i)
        state.readers_of_root.setdefault(r, []).append((reader, op.module))
        consumer = state.in_opinion.get(reader)
        producer = state.out_opinion.get(r)
        if consumer is not None:
            if producer is not None and producer.spec != consumer.spec:
                _override(state, overrides, r, reader, producer, consumer)
            if consumer.spec is None:
                continue
            extra = (producer.parts,) if producer is not None and producer.parts != consumer.parts else ()
            state.reads[reader] = Read(
                reader=reader,
                root=r,
                opinion=consumer,
                order=(k, i),
                extra_beaten=extra,
                sched_module=op.module,
                fallback_module=producer.module if producer else op.module,
            )
        elif producer is not None and producer.spec is not None:
            state.reads[reader] = Read(
                reader=reader,
                root=r,
                opinion=producer,
                order=(k, i),
                sched_module=op.module,
                fallback_module=producer.module,
            )


def _model_output_reads(state: State) -> None:
    """A model output reads its producer's output spec (model outputs sort after every op)."""
    n = len(state.inventory.ops)
    for j, src in enumerate(state.inventory.outputs):
        if src is None:
            continue
        r = state.root.get(src, src)
        reader = f":out{j}"
        state.readers_of_root.setdefault(r, []).append((reader, None))
        producer = state.out_opinion.get(r)
        if producer is not None and producer.spec is not None and state.is_float(r):
            state.reads[reader] = Read(
                reader=reader,
                root=r,
                opinion=producer,
                order=(n, j),
                sched_module=producer.module,
                fallback_module=producer.module,
            )


def _find_dangling(state: State) -> None:
    """Quantized op outputs that nothing reads, not even a model output."""
    for op in state.inventory.ops:
        for j in range(len(op.outputs)):
            addr = op.output_address(j)
            o = state.out_opinion.get(addr)
            if o is None or o.spec is None:
                continue
            if addr not in state.direct_readers and addr not in state.model_outputs:
                state.dangling.append(addr)


def _override(
    state: State,
    overrides: dict,
    root: str,
    reader: str,
    producer: Opinion,
    consumer: Opinion,
) -> None:
    overrides.setdefault((consumer.parts, producer.parts), []).append(reader)
    state.decisions.append(
        Decision(
            kind="edge-override",
            subjects=(root, reader),
            reason=(
                f"`{reader}` reads `{root}` as {describe_spec(consumer.spec)} (`{state.path(consumer.parts)}`) "
                f"instead of the producer's {describe_spec(producer.spec)} (`{state.path(producer.parts)}`)"
            ),
        )
    )
