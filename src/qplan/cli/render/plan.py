"""Rendering of plans for ``compile-plan``, ``diff`` and ``explain``: summary tables, diffs, explanations."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import IO, Any

import msgspec

__all__ = ["console_for", "describe_spec", "render_plan_summary", "render_diff", "render_explanation"]


def describe_spec(spec: Any) -> str:
    """A spec in a few words: ``int8 per_channel axis=0``."""
    if spec is None:
        return "?"
    text = f"{spec.dtype} {spec.granularity}"
    if spec.axis is not None:
        text += f" axis={spec.axis}"
    if spec.block_size is not None:
        text += f" block={spec.block_size}"
    if spec.qscheme != "symmetric":
        text += f" {spec.qscheme}"
    return text


def console_for(stream: IO[str], width: int | None = None) -> Any:
    """A rich console on `stream`: colour on a terminal, plain and 160 wide when piped."""
    from rich.console import Console

    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(
        file=stream, force_terminal=tty, no_color=not tty, width=width or (None if tty else 160), highlight=False
    )


def render_plan_summary(plan: Any, stream: IO[str]) -> None:
    """Counts by dtype and role, then a table of the fake-quants (the diagnostics are the caller's)."""
    from rich.table import Table

    console = console_for(stream)
    console.print(
        f"plan for [bold]{plan.model.class_name}[/] ({plan.mode} mode) from `{plan.config.source}`: "
        f"{len(plan.quantizers)} fake-quants, {len(plan.specs)} specs, {len(plan.decisions)} decisions"
    )
    counts = Counter((plan.specs[q.spec].dtype, q.role) for q in plan.quantizers)
    roles = sorted({r for _, r in counts})
    t = Table(title="fake-quants by dtype and role", title_justify="left")
    t.add_column("dtype")
    for r in roles:
        t.add_column(r, justify="right")
    for dtype in sorted({d for d, _ in counts}):
        t.add_row(dtype, *(str(counts.get((dtype, r), 0)) for r in roles))
    console.print(t)
    t = Table(title="quantized tensors", title_justify="left")
    for col in ("id", "address", "role", "spec", "shape", "readers", "rule"):
        t.add_column(col, overflow="fold")
    for q in plan.quantizers:
        spec = plan.specs.get(q.spec)
        rule = q.provenance.source or q.provenance.rule
        t.add_row(
            q.id,
            q.address,
            q.role,
            f"{q.spec}: {describe_spec(spec)}",
            "x".join(map(str, q.shape)),
            str(len(q.readers)),
            rule,
        )
    console.print(t)


def render_diff(d: Any, fmt: str, a_name: str, b_name: str, plans: tuple[Any, Any] | None = None) -> str:
    """`text`, `markdown`, `json` or `github` rendering of a :class:`~qplan.compiler.diff.PlanDiff`
    (`github` reads the rules' locations from `plans`, the two plans compared)."""
    if fmt == "github":
        return _github_diff(d, a_name, b_name, plans)
    if fmt == "json":
        out = msgspec.to_builtins(d)
        out["equal"] = d.equal
        out["summary"] = d.summary()
        return json.dumps(out, indent=2, sort_keys=True) + "\n"
    md = fmt == "markdown"
    lines: list[str] = [f"### qplan diff `{a_name}` → `{b_name}`" if md else f"--- {a_name}\n+++ {b_name}"]
    for c in (*d.plan, *d.config):
        lines.append(f"{'- ' if md else '  '}{c.field}: {c.a} -> {c.b}")
    for kind, mark in (("added", "+"), ("removed", "-"), ("changed", "~")):
        items = [e for e in d.entries if e.kind == kind]
        if items:
            lines.append(f"\n#### {kind} ({len(items)})" if md else f"{kind} ({len(items)}):")
            lines += _diff_entries(items, kind, mark, md)
    for title, names, mark in (
        ("decisions added", d.decisions_added, "+"),
        ("decisions removed", d.decisions_removed, "-"),
    ):
        if names:
            lines.append(f"\n#### {title} ({len(names)})" if md else f"{title} ({len(names)}):")
            lines += [f"- {x}" if md else f"  {mark} {x}" for x in names]
    lines.append(("\n**" + d.summary() + "**") if md else d.summary())
    return "\n".join(lines) + "\n"


def _diff_entries(items: list[Any], kind: str, mark: str, md: bool) -> list[str]:
    """The lines of the diff's `kind` (added, removed, changed) section, in markdown when `md`."""
    lines: list[str] = []
    if md and kind != "changed":
        lines += ["", "| address | role | spec |", "|---|---|---|"]
    for e in items:
        if kind == "changed":
            lines.append(f"- `{e.address}`" if md else f"  {mark} {e.address}")
            for c in e.changes:
                lines.append(f"  - {c.field}: `{c.a}` → `{c.b}`" if md else f"      {c.field}: {c.a} -> {c.b}")
        else:
            spec = e.entry or {}
            desc = f"{spec.get('spec.dtype')} {spec.get('spec.granularity')}"
            if md:
                lines.append(f"| `{e.address}` | {spec.get('role')} | {desc} |")
            else:
                lines.append(f"  {mark} {e.address}  ({spec.get('role')}, {desc})")
    return lines


def _github_diff(d: Any, a_name: str, b_name: str, plans: tuple[Any, Any] | None) -> str:
    """GitHub workflow commands: one ``::warning`` per entry that differs, at the config line of
    the rule that decides it (for a removed entry, the rule in plan A's config), then a notice."""
    from qplan.cli.render.diagnostics import _escape_data, _escape_property

    where_a = {q.address: q.provenance.source for q in reversed(plans[0].quantizers)} if plans else {}
    where_b = {q.address: q.provenance.source for q in reversed(plans[1].quantizers)} if plans else {}
    lines: list[str] = []

    def annotate(title: str, message: str, source: str | None) -> None:
        props = [f"title={_escape_property(title)}", *_github_location(source)]
        lines.append(f"::warning {','.join(props)}::{_escape_data(message)}")

    for c in (*d.plan, *d.config):
        if c.field.startswith("config."):
            continue  # informative only: differing config files are what a diff of configs compares
        annotate(f"qplan diff: {c.field}", f"{c.field}: {c.a} -> {c.b}", None)
    for e in d.entries:
        if e.kind == "changed":
            message = f"{e.address} changed:\n" + "\n".join(f"{c.field}: {c.a} -> {c.b}" for c in e.changes)
            annotate(f"qplan diff: {e.address} changed", message, where_b.get(e.address))
        else:
            entry = e.entry or {}
            desc = f"{entry.get('role')}, {entry.get('spec.dtype')} {entry.get('spec.granularity')}"
            rule = f"\nrule: {entry['rule']}" if entry.get("rule") else ""
            where = where_b if e.kind == "added" else where_a
            annotate(f"qplan diff: {e.address} {e.kind}", f"{e.address} {e.kind} ({desc}){rule}", where.get(e.address))
    for title, names in (("decision added", d.decisions_added), ("decision removed", d.decisions_removed)):
        lines += [f"::notice title={_escape_property(f'qplan diff: {title}')}::{_escape_data(x)}" for x in names]
    lines.append(
        f"::notice title={_escape_property('qplan diff')}::{_escape_data(f'{a_name} -> {b_name}: {d.summary()}')}"
    )
    return "\n".join(lines) + "\n"


def _github_location(source: str | None) -> list[str]:
    """``file=,line=,col=`` properties for a provenance ``file:line`` (col: the line's first
    non-blank character when the file is readable); none without a source."""
    from qplan.cli.render.diagnostics import _escape_property

    if not source:
        return []
    file, _, line = source.rpartition(":")
    if not file or not line.isdigit():
        return []
    props = [f"file={_escape_property(file)}", f"line={line}"]
    try:
        with open(file, encoding="utf-8-sig") as f:
            text = f.read().splitlines()[int(line) - 1]
        props.append(f"col={len(text) - len(text.lstrip()) + 1}")
    except (OSError, ValueError, IndexError):
        pass
    return props


def _source_line(source: str | None, sha256: str | None) -> str | None:
    """The text at `source` (``file:line``), read from the file only when its sha256 is `sha256`
    (the config the plan was compiled from, not one edited since); None otherwise."""
    if not source:
        return None
    file, _, line = source.rpartition(":")
    try:
        with open(file, "rb") as f:
            data = f.read()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            return None
        n = int(line)
        return data.decode("utf-8-sig").splitlines()[n - 1].strip() if n > 0 else None
    except (OSError, ValueError, IndexError):
        return None


def render_explanation(x: Any, config_sha256: str | None = None) -> str:
    """Text form of an :class:`~qplan.compiler.explain.Explanation`; a rule's source line is
    shown when its file is readable and, given `config_sha256` (the plan's), unchanged."""
    lines: list[str] = []
    if not x.quantized:
        lines.append(f"{x.address}: not quantized")
    for q in x.entries:
        spec = x.specs.get(q.spec)
        lines.append(
            f"{q.address}  [{q.id}, {q.role}]  {q.spec}: {describe_spec(spec)}"
            + (f", {spec.qparam_calculator}" if spec else "")
        )
        if spec is not None and spec.schedule is not None:
            lines.append(f"  schedule: {msgspec.to_builtins(spec.schedule)}")
        p = q.provenance
        where = f"  ({p.source})" if p.source else ""
        lines.append(f"  rule:    {p.rule}{where}" + ("  [library default]" if p.defaulted else ""))
        text = _source_line(p.source, config_sha256)
        if text:
            lines.append(f"           | {text}")
        for b in p.beaten:
            lines.append(f"  beat:    {b}")
        lines.append(f"  source:  {q.source}")
        lines.append(f"  readers: {', '.join(q.readers) if q.readers else '(none)'}")
        if q.group:
            lines.append(f"  shares qparams: group {q.group}")
    if x.decisions:
        lines.append("decisions:")
        for d in x.decisions:
            lines.append(f"  - {d.kind}{f' [{d.group}]' if d.group else ''}: {d.reason}")
    return "\n".join(lines) + "\n"
