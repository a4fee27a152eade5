"""Why a tensor got its spec (``qplan explain``), as data.

An address can name a fake-quant (``fc1.weight``, ``fc1.linear:out0``, ``blk:in0``), a reader
(``fc2.linear:in0``, ``fc1.linear:weight``), a source value, or an op (``fc1.linear``: every
fake-quant it reads or writes). The explanation lists the matching fake-quants with their specs
and provenance (winning rule, its ``file:line``, the rules it beat) and every decision whose
subjects touch the address or those fake-quants. An unknown address is an
:class:`ExplainError` with a did-you-mean.
"""

from __future__ import annotations

import msgspec

from qplan.compiler.plan import Decision, Plan, QuantizerEntry, ResolvedSpec
from qplan.diagnostics import QplanError
from qplan.suggest import did_you_mean

__all__ = ["Explanation", "ExplainError", "explain", "known_addresses"]


class ExplainError(QplanError, KeyError):
    """The address is not in the plan."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """The fake-quants touching an address, their specs and provenance, and the decisions naming it."""

    address: str
    quantized: bool  # at least one fake-quant touches the address
    entries: tuple[QuantizerEntry, ...]
    specs: dict[str, ResolvedSpec]  # the entries' specs by id
    decisions: tuple[Decision, ...]


def _op_of(address: str) -> str:
    return address.rpartition(":")[0]


def known_addresses(plan: Plan) -> list[str]:
    """Every address the plan mentions (entries, readers, sources, decision subjects)."""
    out: dict[str, None] = {}
    for q in plan.quantizers:
        out[q.address] = None
        out[q.source] = None
        for r in q.readers:
            out[r] = None
    for d in plan.decisions:
        for s in d.subjects:
            out[s] = None
    return list(out)


def explain(plan: Plan, address: str) -> Explanation:
    """The fake-quants and decisions that concern `address` in `plan`."""
    entries = tuple(
        q
        for q in plan.quantizers
        if address in (q.address, q.source)
        or address in q.readers
        or address in map(_op_of, q.readers)
        or address == _op_of(q.address)
    )
    touched = {address}
    for q in entries:
        touched.update((q.address, q.source, *q.readers))
    decisions = tuple(
        d for d in plan.decisions if touched.intersection(d.subjects) or address in map(_op_of, d.subjects)
    )
    if not entries and not decisions:
        known = known_addresses(plan)
        if address not in known:
            hint = did_you_mean(address, known)
            raise ExplainError(f"address `{address}` is not in the plan" + (f"; {hint}" if hint else ""))
    return Explanation(
        address=address,
        quantized=bool(entries),
        entries=entries,
        specs={q.spec: plan.specs[q.spec] for q in entries if q.spec in plan.specs},
        decisions=decisions,
    )
