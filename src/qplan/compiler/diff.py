"""Compare two plans by tensor address (``qplan diff``), as data.

Entries are matched by ``address``; a pair is compared field by field, every field of the entry,
with spec ids resolved to the spec's fields (``spec.dtype``, ``spec.axis``...) and qparams groups
resolved to their member addresses, so ids renumbered between the plans do not show as changes.
Of the provenance, the winning rule's config path (``rule``), the rules it beat, whether it
was a default and the config file it came from are compared; quantizer ids and provenance line
numbers are not (adding a line to a config moves every line after it). Plan-level fields (format,
version, mode, model class and fingerprint) and decisions are compared too; config name and
sha256 and the plans' diagnostics are reported but do not make plans different on their own.

An address or id that appears in more than one entry of either plan is reported in
``duplicates`` and makes the plans different: a loaded plan never has one (``load_plan`` refuses
it), but plans built in Python can.
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
    duplicates: tuple[str, ...] = ()  # "A: address `x` is in 2 entries (q0001, q0009)", one line each
    diagnostics_added: tuple[str, ...] = ()  # informative only
    diagnostics_removed: tuple[str, ...] = ()  # informative only

    @property
    def equal(self) -> bool:
        return not (self.entries or self.plan or self.decisions_added or self.decisions_removed or self.duplicates)

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
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicated addresses or ids: " + "; ".join(self.duplicates))
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
        "provenance.beaten": list(q.provenance.beaten),
        "provenance.defaulted": q.provenance.defaulted,
        "provenance.file": _file_of(q.provenance.source),
    }
    spec = plan.specs.get(q.spec)
    for k, v in msgspec.to_builtins(spec).items() if spec is not None else ():
        out[f"spec.{k}"] = v
    return out


def _file_of(source: str | None) -> str | None:
    """``cfg.yaml`` from ``cfg.yaml:12`` (line numbers move with every edit above them)."""
    if source is None:
        return None
    name, sep, line = source.rpartition(":")
    return name if sep and line.isdigit() else source


def _duplicates(label: str, plan: Plan) -> list[str]:
    out: list[str] = []
    for field in ("address", "id"):
        ids: dict[str, list[str]] = {}
        for q in plan.quantizers:
            ids.setdefault(getattr(q, field), []).append(q.id if field == "address" else q.address)
        for key, others in ids.items():
            if len(others) > 1:
                what = "ids" if field == "address" else "addresses"
                out.append(f"{label}: {field} `{key}` is in {len(others)} entries ({what} {', '.join(others)})")
    return out


def _diagnostic_texts(plan: Plan) -> list[str]:
    return [f"{d.level}[{d.code}] {d.message}" + (f" (at `{d.path}`)" if d.path else "") for d in plan.diagnostics]


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
    ea: dict[str, list[dict[str, Any]]] = {}
    eb: dict[str, list[dict[str, Any]]] = {}
    for plan, groups, out in ((a, ga, ea), (b, gb, eb)):
        for q in plan.quantizers:
            out.setdefault(q.address, []).append(_flatten(plan, q, groups))
    entries: list[EntryDiff] = []
    for address in sorted(ea.keys() | eb.keys()):
        xs, ys = ea.get(address), eb.get(address)
        if xs is None:
            entries += [EntryDiff(address=address, kind="added", entry=y) for y in ys or ()]
        elif ys is None:
            entries += [EntryDiff(address=address, kind="removed", entry=x) for x in xs]
        else:
            changes = [FieldChange(field="entries", a=len(xs), b=len(ys))] if len(xs) != len(ys) else []
            for x, y in zip(xs, ys, strict=False):
                changes += (
                    FieldChange(field=k, a=x.get(k), b=y.get(k))
                    for k in sorted(x.keys() | y.keys())
                    if x.get(k) != y.get(k)
                )
            if changes:
                entries.append(EntryDiff(address=address, kind="changed", changes=tuple(changes)))
    da = [_decision_text(d) for d in a.decisions]
    db = [_decision_text(d) for d in b.decisions]
    sa, sb = set(da), set(db)
    xa, xb = _diagnostic_texts(a), _diagnostic_texts(b)
    ka, kb = set(xa), set(xb)
    return PlanDiff(
        entries=tuple(entries),
        plan=tuple(_changed(a, b, ("format", "version", "mode", "model.class_name", "model.fingerprint"))),
        decisions_added=tuple(d for d in db if d not in sa),
        decisions_removed=tuple(d for d in da if d not in sb),
        config=tuple(_changed(a, b, ("config.source", "config.sha256"))),
        duplicates=tuple(_duplicates("A", a) + _duplicates("B", b)),
        diagnostics_added=tuple(d for d in xb if d not in ka),
        diagnostics_removed=tuple(d for d in xa if d not in kb),
    )


def _changed(a: Plan, b: Plan, fields: tuple[str, ...]) -> list[FieldChange]:
    """A change for each dotted plan field (``model.fingerprint``) whose values differ."""
    out = []
    for f in fields:
        x, y = a, b
        for part in f.split("."):
            x, y = getattr(x, part), getattr(y, part)
        if x != y:
            out.append(FieldChange(field=f, a=x, b=y))
    return out
