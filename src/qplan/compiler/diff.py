"""Compare two plans by tensor address (``qplan diff``), as data.

Entries are matched by ``address``; a pair is compared field by field with spec ids resolved to
the spec's fields (``spec.dtype``, ``spec.axis``...) and qparams groups resolved to their member
addresses, so ids renumbered between the plans do not show as changes. Quantizer ids and
provenance line numbers are ignored; the winning rule's config path is compared. Plan-level
fields (mode, model fingerprint) and decisions are compared too; config name and sha256 are
reported but do not make plans different on their own.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from qplan.compiler.plan import Decision, Plan, QuantizerEntry

__all__ = ["FieldChange", "EntryDiff", "PlanDiff", "diff_plans"]


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    """One field that differs: its dotted name, the value in plan A and in plan B."""

    field: str  # "spec.dtype", "readers", "role", ...
    a: Any = None
    b: Any = None


class EntryDiff(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to the fake-quant at one address: added, removed or changed (with its fields)."""

    address: str
    kind: Literal["added", "removed", "changed"]
    changes: tuple[FieldChange, ...] = ()  # field by field, for "changed"
    entry: dict[str, Any] | None = None  # the flattened entry, for "added" / "removed"


class PlanDiff(msgspec.Struct, frozen=True, kw_only=True):
    """Two plans compared by address, plus plan-level, config and decision changes."""

    entries: tuple[EntryDiff, ...]  # in address order
    plan: tuple[FieldChange, ...] = ()  # mode, model fingerprint
    decisions_added: tuple[str, ...] = ()
    decisions_removed: tuple[str, ...] = ()
    config: tuple[FieldChange, ...] = ()  # informative only

    @property
    def equal(self) -> bool:
        return not (self.entries or self.plan or self.decisions_added or self.decisions_removed)

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.entries)

    def summary(self) -> str:
        if self.equal:
            return "plans are equal"
        parts = [f"{self.count(k)} {k}" for k in ("added", "removed", "changed")]
        if self.decisions_added or self.decisions_removed:
            parts.append(f"{len(self.decisions_added)} decisions added, {len(self.decisions_removed)} removed")
        if self.plan:
            parts.append(", ".join(f"{c.field} changed" for c in self.plan))
        return ", ".join(parts)


def _flatten(plan: Plan, q: QuantizerEntry, groups: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": q.role,
        "source": q.source,
        "shape": list(q.shape),
        "dtype": q.dtype,
        "readers": list(q.readers),
        "group": list(groups[q.group]) if q.group else None,
        "rule": q.provenance.rule,
    }
    spec = plan.specs.get(q.spec)
    for k, v in msgspec.to_builtins(spec).items() if spec is not None else ():
        out[f"spec.{k}"] = v
    return out


def _groups(plan: Plan) -> dict[str, tuple[str, ...]]:
    members: dict[str, list[str]] = {}
    for q in plan.quantizers:
        if q.group:
            members.setdefault(q.group, []).append(q.address)
    return {g: tuple(sorted(m)) for g, m in members.items()}


def _decision_text(d: Decision) -> str:
    return f"{d.kind}: {', '.join(d.subjects)}: {d.reason}"


def diff_plans(a: Plan, b: Plan) -> PlanDiff:
    """Per-address differences from plan `a` to plan `b`."""
    ga, gb = _groups(a), _groups(b)
    ea = {q.address: _flatten(a, q, ga) for q in a.quantizers}
    eb = {q.address: _flatten(b, q, gb) for q in b.quantizers}
    entries: list[EntryDiff] = []
    for address in sorted(ea.keys() | eb.keys()):
        x, y = ea.get(address), eb.get(address)
        if x is None:
            entries.append(EntryDiff(address=address, kind="added", entry=y))
        elif y is None:
            entries.append(EntryDiff(address=address, kind="removed", entry=x))
        else:
            changes = tuple(
                FieldChange(field=k, a=x.get(k), b=y.get(k))
                for k in sorted(x.keys() | y.keys())
                if x.get(k) != y.get(k)
            )
            if changes:
                entries.append(EntryDiff(address=address, kind="changed", changes=changes))
    plan = []
    if a.mode != b.mode:
        plan.append(FieldChange(field="mode", a=a.mode, b=b.mode))
    if a.model.fingerprint != b.model.fingerprint:
        plan.append(FieldChange(field="model.fingerprint", a=a.model.fingerprint, b=b.model.fingerprint))
    config = []
    for f in ("source", "sha256"):
        if getattr(a.config, f) != getattr(b.config, f):
            config.append(FieldChange(field=f"config.{f}", a=getattr(a.config, f), b=getattr(b.config, f)))
    da = [_decision_text(d) for d in a.decisions]
    db = [_decision_text(d) for d in b.decisions]
    sa, sb = set(da), set(db)
    return PlanDiff(
        entries=tuple(entries),
        plan=tuple(plan),
        decisions_added=tuple(d for d in db if d not in sa),
        decisions_removed=tuple(d for d in da if d not in sb),
        config=tuple(config),
    )
