"""Pass: one fake-quant per parameter (see docs/config-language.md#placement-rules, shared weights).

Every state an op reads (``op.states``) is a parameter or buffer; a parameter read by several
ops (tied weights) still gets exactly one fake-quant, read by all of them. Its spec and schedule
are those of the first consumer in ``named_modules()`` order (ties: execution order) that has an
opinion on it: a spec, or a decline (a null op config, a null state spec, or a module governed
by an explicit null ``module_name_configs``/``module_type_configs`` rule, which leaves the weight
float). A consumer under a null *global* config has no opinion, so with ``only_for(nn.Linear)``
a tied embedding/head weight follows the head. Another consumer asking for a different spec or
schedule is a ``shared-weight-conflict`` warning. A ``module_state_spec`` of the owning module (``state_override``) decides instead.
The weight-axis defaults come from the deciding consumer's op type (``resolve_axes``).
"""

from __future__ import annotations

import msgspec

from qplan.compiler.assign_schedules import schedule_for
from qplan.compiler.ops import weight_axis
from qplan.compiler.plan import Decision
from qplan.compiler.state import Entry, Opinion, State, describe_spec
from qplan.schema.types import PerBlockGranularity, PerChannelGranularity, QATSchedule, QuantizationSpec

__all__ = ["share_weights"]

_STATE_SLOT = 100  # entry order: an op's weights sort after its inputs, before its outputs


def share_weights(state: State) -> State:
    """One state fake-quant per parameter, decided by its first consumer module; returns the new state."""
    state = state.evolve(entries=[])
    uses: dict[str, list[tuple]] = {}
    for k, op in enumerate(state.inventory.ops):
        for s, (name, fqn) in enumerate(op.states.items()):
            if not state.is_float(fqn):
                continue
            mod_rank = state.module_order.get(op.module, len(state.module_order))
            opinion = state.state_opinion.get((op.name, name)) or _explicit_null(state, op.module)
            uses.setdefault(fqn, []).append((mod_rank, k, s, op, name, opinion))

    for fqn, reads in uses.items():
        readers = [f"{op.name}:{name}" for _, _, _, op, name, _ in reads]
        first_k, first_s = reads[0][1], reads[0][2]
        decided = _decide(state, fqn, reads)
        if decided is None:
            continue
        chosen, deciding, schedule = decided
        if len(reads) > 1:
            by = f"`{state.path(chosen.parts)}`"
            state.decisions.append(
                Decision(
                    kind="shared-weight",
                    subjects=(fqn, *readers),
                    reason=(
                        f"`{fqn}` is read by {len(reads)} ops; one fake-quant serves all, "
                        f"decided by its first consumer `{deciding[3].name}` ({by})"
                    ),
                )
            )
        if chosen.spec is None:
            continue
        shape, dtype = state.tensor[fqn]
        state.entries.append(
            Entry(
                address=fqn,
                role="state",
                source=fqn,
                spec=chosen.spec,
                schedule=schedule,
                readers=readers,
                opinion=chosen,
                order=(first_k, _STATE_SLOT + first_s),
                shape=shape,
                dtype=dtype,
                axis_op=deciding[3].op_type,
            )
        )
    return state


def _decide(state: State, fqn: str, reads: list[tuple]) -> tuple[Opinion, tuple, QATSchedule | None] | None:
    """(deciding opinion, deciding use, schedule) of one parameter, or None when no consumer has
    an opinion; a ``module_state_spec`` override decides first. Reports conflicting consumers."""
    override = state.state_override.get(fqn)
    if override is not None:
        return (
            override,
            min(reads, key=lambda u: u[:2]),
            schedule_for(state, override.module),
        )
    voters = [u for u in reads if u[5] is not None]
    if not voters:
        return None
    deciding = min(voters, key=lambda u: u[:2])
    chosen = deciding[5]
    schedule = schedule_for(state, chosen.module)
    for u in voters:
        other = u[5]
        if u is deciding:
            continue
        other_sched = schedule_for(state, other.module)
        same = _effective(other.spec, u[3].op_type) == _effective(chosen.spec, deciding[3].op_type)
        if not same or (chosen.spec is not None and other_sched != schedule):
            _conflict(state, fqn, deciding, u, chosen, other, schedule, other_sched)
    return chosen, deciding, schedule


def _explicit_null(state: State, module: str) -> Opinion | None:
    """A module governed by an explicit null rule (`module_*_configs: {key: null}`) declines its
    weights; under a null *global* config a module has no opinion (the next consumer decides)."""
    choice = state.module_choice.get(module)
    rule = choice.rule if choice is not None else None
    if rule is None or rule.config is not None or rule.level == "global":
        return None
    return Opinion(spec=None, parts=rule.parts, module=module)


def _effective(spec: QuantizationSpec | None, op_type: str) -> QuantizationSpec | None:
    """The spec with an omitted weight axis filled from `op_type`'s default (for comparisons)."""
    g = spec.granularity if spec is not None else None
    if spec is not None and isinstance(g, (PerChannelGranularity, PerBlockGranularity)) and g.axis is None:
        kind = "per_channel" if isinstance(g, PerChannelGranularity) else "per_block"
        axis = weight_axis(op_type, kind)
        if axis is not None and not (isinstance(g, PerBlockGranularity) and isinstance(g.block_size, tuple)):
            return msgspec.structs.replace(spec, granularity=msgspec.structs.replace(g, axis=axis))
    return spec


def _conflict(state, fqn, deciding, use, chosen, other, schedule, other_sched) -> None:
    what = (
        f"{describe_spec(other.spec)} instead of {describe_spec(chosen.spec)}"
        if other.spec != chosen.spec
        else f"schedule {other_sched} instead of {schedule}"
    )
    by = f"`{state.path(chosen.parts)}`"
    state.report(
        "shared-weight-conflict",
        f"shared weight `{fqn}`: `{use[3].name}` asks for {what}; the first consumer `{deciding[3].name}` ({by}) decides",
        other.parts,
        help=f"give every consumer of `{fqn}` the same state spec and schedule",
    )
