"""The ``compile-plan``, ``diff`` and ``explain`` subcommands: parse, call the library, render.

The logic lives in :mod:`qplan.compiler` (``compile_plan``, ``diff.diff_plans``,
``explain.explain``); this module only loads inputs, renders results and picks exit codes
(0 clean or equal, 1 errors or differences, 2 bad usage or unreadable input).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import msgspec

from qplan.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from qplan.diagnostics import QplanError

__all__ = [
    "add_compile_plan",
    "add_diff",
    "add_explain",
    "load_factory",
    "render_plan_summary",
    "render_diff",
    "render_explanation",
]


class UsageError(QplanError):
    """Bad command-line input (exit 2)."""

    exit_code = EXIT_USAGE


def _guard(run):
    """Errors print as :func:`qplan.cli.report_error` does, with diagnostics in the default
    format (these commands' ``--format`` is for their own output); usage errors exit 2."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except QplanError as e:
            from qplan.cli import report_error

            return report_error(e)

    return wrapper


# -- shared helpers ---------------------------------------------------------------------------
def load_factory(spec: str) -> tuple[Any, Any]:
    """Call ``MODULE:FACTORY`` and return its ``(model, example_inputs)``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--model must be MODULE:FACTORY (e.g. `qplan.models:mlp`), got `{spec}`")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"cannot import `{module_name}`: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        from qplan.suggest import did_you_mean

        hint = did_you_mean(attr, names)
        raise UsageError(f"`{module_name}` has no factory `{attr}`" + (f"; {hint}" if hint else ""))
    try:
        result = factory()
    except Exception as e:  # the user's code failed, not qplan: one line, exit 2
        raise UsageError(f"`{spec}` raised {type(e).__name__}: {e}") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise UsageError(f"`{spec}` must return `(model, example_inputs)`, got `{type(result).__name__}`")
    return result


def _describe(spec: Any) -> str:
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


def _console(stream: TextIO, width: int | None = None):
    from rich.console import Console

    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(
        file=stream, force_terminal=tty, no_color=not tty, width=width or (None if tty else 160), highlight=False
    )


def _located(d: Any, name: str, path: str) -> Any:
    """`d` with a span in the config named `name` (as the plan names it) moved to `path`."""
    if d.span is None or d.span.file != name or name == path:
        return d
    return msgspec.structs.replace(d, span=msgspec.structs.replace(d.span, file=path))


# -- qplan compile-plan -----------------------------------------------------------------------
def render_plan_summary(plan: Any, stream: TextIO) -> None:
    """Counts by dtype and role, a table of the fake-quants, then the diagnostics."""
    from rich.table import Table

    console = _console(stream)
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
            f"{q.spec}: {_describe(spec)}",
            "x".join(map(str, q.shape)),
            str(len(q.readers)),
            rule,
        )
    console.print(t)


@_guard
def _cmd_compile_plan(args: argparse.Namespace) -> int:
    from qplan.cli import emit_diagnostics
    from qplan.compiler import compile_plan
    from qplan.compiler.plan import encode_plan
    from qplan.render import summary
    from qplan.schema.loader import load_config

    if args.output and os.path.exists(args.output) and os.path.samefile(args.output, args.config):
        raise UsageError(f"refusing to overwrite the config `{args.config}` with the plan")
    loaded = load_config(Path(args.config))  # always a path, never YAML text (a directory is unreadable)
    model, example_inputs = load_factory(args.model)
    plan = compile_plan(model, loaded, example_inputs, args.mode, strict=args.strict)
    data = encode_plan(plan)
    if args.output:
        try:
            Path(args.output).write_bytes(data)
        except OSError as e:
            raise UsageError(f"cannot write `{args.output}`: {e.strerror or e}") from None
    fmt = args.format or ("table" if args.output or sys.stdout.isatty() else "json")
    if fmt == "json" and not args.output:
        sys.stdout.write(data.decode())
    elif fmt == "table":
        render_plan_summary(plan, sys.stdout)
        if plan.diagnostics:  # shown under the config path as given, so `full` can quote its lines
            emit_diagnostics([_located(d, plan.config.source, args.config) for d in plan.diagnostics], None, sys.stdout)
        print(
            f"{len(plan.quantizers)} fake-quants; {summary(plan.diagnostics)}"
            + (f"; plan written to {args.output}" if args.output else "")
        )
    return EXIT_FAIL if any(d.level == "error" for d in plan.diagnostics) else EXIT_OK


def add_compile_plan(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``compile-plan`` subparser to `sub` and return it."""
    p = sub.add_parser("compile-plan", help="compile a config against a model into a plan")
    p.add_argument("config", metavar="CONFIG", help="YAML or JSON config file")
    p.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="factory returning (model, example_inputs), e.g. qplan.models:mlp",
    )
    p.add_argument(
        "--mode", choices=("graph", "eager"), default=None, help="capture mode (default: the config's execution_mode)"
    )
    p.add_argument("-o", "--output", metavar="PLAN", help="write the JSON plan to PLAN")
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default=None,
        help="stdout format (default: table on a terminal or with -o, json otherwise)",
    )
    p.add_argument("--strict", action="store_true", help="turn warnings into errors")
    p.set_defaults(run=_cmd_compile_plan)
    return p


# -- reading plans ----------------------------------------------------------------------------
def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read `{path}`: {e.strerror or e}") from None


def _is_plan(data: bytes) -> bool:
    """Whether `data` is JSON that says it is a qplan plan (its `format` field)."""
    from qplan.plan_format import PLAN_FORMAT

    try:
        head = json.loads(data)
    except ValueError:
        return False
    return isinstance(head, dict) and head.get("format") == PLAN_FORMAT


def _decode_plan(path: str, data: bytes) -> Any:
    from qplan.compiler.plan import decode_plan

    try:
        return decode_plan(data)
    except ValueError as e:  # msgspec's DecodeError and ValidationError are ValueErrors
        raise UsageError(f"`{path}` is not a valid plan: {e}") from None


# -- qplan diff -------------------------------------------------------------------------------
def _load_plan_or_compile(path: str, model_spec: str | None, mode: str | None, cache: dict) -> Any:
    data = _read_bytes(path)
    if _is_plan(data):
        return _decode_plan(path, data)
    if model_spec is None:
        raise UsageError(f"`{path}` is not a plan; to compare configs pass --model MODULE:FACTORY")
    from qplan.compiler import compile_plan
    from qplan.schema.loader import load_config

    if "model" not in cache:
        cache["model"] = load_factory(model_spec)
    model, example_inputs = cache["model"]
    return compile_plan(model, load_config(path), example_inputs, mode)


def render_diff(d: Any, fmt: str, a_name: str, b_name: str) -> str:
    """`text`, `markdown` or `json` rendering of a :class:`~qplan.compiler.diff.PlanDiff`."""
    if fmt == "json":
        out = msgspec.to_builtins(d)
        out["equal"] = d.equal
        out["summary"] = d.summary()
        return json.dumps(out, indent=2, sort_keys=True) + "\n"
    lines: list[str] = []
    md = fmt == "markdown"
    lines.append(f"### qplan diff `{a_name}` → `{b_name}`" if md else f"--- {a_name}\n+++ {b_name}")
    for c in (*d.plan, *d.config):
        lines.append(f"{'- ' if md else '  '}{c.field}: {c.a} -> {c.b}")
    for kind, mark in (("added", "+"), ("removed", "-"), ("changed", "~")):
        items = [e for e in d.entries if e.kind == kind]
        if not items:
            continue
        lines.append(f"\n#### {kind} ({len(items)})" if md else f"{kind} ({len(items)}):")
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
    for title, items, mark in (
        ("decisions added", d.decisions_added, "+"),
        ("decisions removed", d.decisions_removed, "-"),
    ):
        if items:
            lines.append(f"\n#### {title} ({len(items)})" if md else f"{title} ({len(items)}):")
            lines += [f"- {x}" if md else f"  {mark} {x}" for x in items]
    lines.append(("\n**" + d.summary() + "**") if md else d.summary())
    return "\n".join(lines) + "\n"


@_guard
def _cmd_diff(args: argparse.Namespace) -> int:
    from qplan.compiler.diff import diff_plans

    cache: dict = {}
    a = _load_plan_or_compile(args.a, args.model, args.mode, cache)
    b = _load_plan_or_compile(args.b, args.model, args.mode, cache)
    d = diff_plans(a, b)
    sys.stdout.write(render_diff(d, args.format, args.a, args.b))
    return EXIT_OK if d.equal else EXIT_FAIL


def add_diff(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``diff`` subparser to `sub` and return it."""
    p = sub.add_parser("diff", help="compare two plans (or two configs with --model); exit 1 when different")
    p.add_argument("a", metavar="A", help="plan JSON, or a config with --model")
    p.add_argument("b", metavar="B", help="plan JSON, or a config with --model")
    p.add_argument("--model", metavar="MODULE:FACTORY", help="compile config arguments against this model")
    p.add_argument("--mode", choices=("graph", "eager"), default=None, help="capture mode for configs")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.set_defaults(run=_cmd_diff)
    return p


# -- qplan explain ----------------------------------------------------------------------------
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
            f"{q.address}  [{q.id}, {q.role}]  {q.spec}: {_describe(spec)}"
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


@_guard
def _cmd_explain(args: argparse.Namespace) -> int:
    from qplan.compiler.explain import explain

    data = _read_bytes(args.plan)
    if not _is_plan(data):
        raise UsageError(
            f"`{args.plan}` is not a plan; explain reads the JSON written by "
            "`qplan compile-plan CONFIG --model MODULE:FACTORY -o PLAN`"
        )
    plan = _decode_plan(args.plan, data)
    sys.stdout.write(render_explanation(explain(plan, args.address), plan.config.sha256))
    return EXIT_OK


def add_explain(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``explain`` subparser to `sub` and return it."""
    p = sub.add_parser("explain", help="why a tensor got its spec: winning rule, rules it beat, decisions")
    p.add_argument("plan", metavar="PLAN", help="plan JSON written by compile-plan")
    p.add_argument("address", metavar="ADDRESS", help="tensor or op address, e.g. fc1.weight or fc1.linear:in0")
    p.set_defaults(run=_cmd_explain)
    return p
