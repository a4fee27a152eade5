"""Pass: intern the resolved specs and build the plan's quantizer entries (see docs/compiler.md).

Every fake-quant's spec is completed (calculator made concrete: weights ``static``, activations
``moving_average``; axis and block size resolved; FP4 scales ``float8_e8m0fnu``; schedule
attached) and interned in a table with ids ``s0``, ``s1``, ... in first-use order, so equal
inputs give equal ids. Quantizer ids are ``q0000``, ``q0001``, ... in entry order (execution
order of the first use, then address).
"""

from __future__ import annotations

from qplan.compiler.plan import Provenance, QuantizerEntry, ResolvedSpec
from qplan.compiler.state import Entry, State

__all__ = ["intern_specs", "resolved_spec"]


def resolved_spec(e: Entry) -> ResolvedSpec:
    """The plan form of an entry's spec: calculator made concrete, axis and block size resolved,
    FP4 scales defaulted to e8m0, schedule attached."""
    s = e.spec
    calc = s.qparam_calculator_cls
    if calc == "default":
        calc = "static" if e.role == "state" else "moving_average"
    gran = str(s.granularity.__struct_config__.tag)
    scale_dtype = s.scale_dtype
    if s.dtype == "float4_e2m1fn_x2" and scale_dtype is None:
        scale_dtype = "float8_e8m0fnu"
    lo, hi = s.float_range
    return ResolvedSpec(
        dtype=s.dtype,
        qscheme=str(s.qscheme),
        qformulation=s.qformulation,
        granularity=gran,
        axis=e.axis,
        block_size=e.block_size,
        qparam_calculator=calc,
        range_calculator=s.range_calculator_cls,
        fake_quantize=s.fake_quantize_cls,
        float_range=(None if lo is None else float(lo), None if hi is None else float(hi)),
        scale_dtype=scale_dtype,
        schedule=e.schedule,
    )


def intern_specs(state: State) -> State:
    """Build the spec table and the plan's quantizer entries; returns the new state."""
    ids: dict[ResolvedSpec, str] = {}
    out: list[QuantizerEntry] = []
    for e in state.entries:
        if e.dropped:
            continue
        rs = resolved_spec(e)
        sid = ids.get(rs)
        if sid is None:
            sid = ids[rs] = f"s{len(ids)}"
        out.append(
            QuantizerEntry(
                id=f"q{len(out):04d}",
                address=e.address,
                role=e.role,
                source=e.source,
                spec=sid,
                shape=tuple(e.shape),
                dtype=e.dtype,
                readers=tuple(e.readers),
                group=e.group,
                provenance=_provenance(state, e),
            )
        )
    return state.evolve(specs={sid: rs for rs, sid in ids.items()}, quantizers=out)


def _provenance(state: State, e: Entry) -> Provenance:
    o = e.opinion
    span = state.span(o.parts)
    rule = state.path(o.parts)
    beaten = [state.path(p) for p in (*o.beaten, *e.extra_beaten)]
    return Provenance(
        rule=rule,
        source=f"{state.source_name}:{span.line}" if span is not None else None,
        beaten=tuple(b for b in dict.fromkeys(beaten) if b != rule),
        defaulted=o.defaulted,
    )
