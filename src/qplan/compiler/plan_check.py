"""The rules a plan obeys beyond its types, and :class:`PlanError`, the error for a plan that breaks them.

:func:`plan_problems` checks a decoded plan: every spec obeys the spec rules of the config
language (:mod:`qplan.schema.rules`, so a hand-edited ``float_range: [5.0, 1.0]`` is refused with
the message ``qplan validate`` gives for the same mistake in a config), fields hold known values,
granularities fit the tensors that use them, quantizer ids, addresses and readers are unique, and
references resolve (spec ids, qparams groups). Each problem is a ``(JSON path, message)`` pair,
with paths like ``$.quantizers[3].spec`` and ``$.specs.s0.float_range``.

The checks read only attributes, so this module imports no plan type at run time and
:mod:`qplan.compiler.plan` (which decodes plans) can call it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qplan.compiler.codes import diagnostic
from qplan.diagnostics import Diagnostic, QplanError, Span, sort_key
from qplan.schema.rules import DTYPES, check_block, check_schedule, check_spec

if TYPE_CHECKING:
    from qplan.compiler.plan import Plan, ResolvedSpec

__all__ = [
    "PlanError",
    "PLAN_VALUES",
    "plan_diagnostic",
    "plan_problems",
    "json_path",
]

PLAN_VALUES: dict[str, tuple[str, ...]] = {
    "mode": ("graph", "eager"),
    "dtype": DTYPES,
    "qscheme": ("symmetric", "asymmetric", "symmetric_with_clipping"),
    "qformulation": ("zp", "minval"),
    "granularity": ("per_tensor", "per_channel", "per_block"),
    "qparam_calculator": ("static", "moving_average", "global_minmax", "dynamic"),
    "range_calculator": ("minmax",),
    "fake_quantize": ("default",),
    "scale_dtype": ("float8_e8m0fnu",),  # or null
}
"""The values each enumerated plan field may hold (the spec fields as the compiler resolves them:
canonical dtype names, never `default` calculators)."""


class PlanError(QplanError, ValueError):
    """A plan file cannot be used: not JSON, not a qplan plan of this version, or breaks a plan rule.

    ``diagnostics`` lists the problems (codes ``plan-syntax``, ``unsupported-plan``,
    ``invalid-plan``), each naming the file, the JSON path and what was expected. The CLI prints
    the same lines as ``str(error)``.
    """

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        found = [diagnostics] if isinstance(diagnostics, Diagnostic) else diagnostics
        self.diagnostics = sorted(found, key=sort_key)
        text = "\n".join(d.concise() for d in self.diagnostics[:20])
        if len(self.diagnostics) > 20:
            text += f"\n... and {len(self.diagnostics) - 20} more"
        super().__init__(text)


def plan_diagnostic(
    code: str, message: str, name: str, path: str | None = None, at: tuple[int, int] | None = None
) -> Diagnostic:
    """An error diagnostic about plan file `name` at JSON `path` (and `line, col` when known)."""
    line, col = at or (1, 1)
    return diagnostic(code, message, path=path, span=Span(file=name, line=line, col=col))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_READER = re.compile(r"[^:\s]+:[^:\s]+|:out\d+")


def json_path(*parts: str | int) -> str:
    """``$.quantizers[3].spec`` from ``("quantizers", 3, "spec")``; odd keys are quoted (``$["a b"]``)."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.fullmatch(p):
            out += f".{p}"
        else:
            out += "[" + _quote(p) + "]"
    return out


def _quote(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


class _SpecView:
    """A resolved spec under the config language's field names, for the rules of qplan.schema.rules."""

    def __init__(self, s: ResolvedSpec):
        self.dtype = s.dtype
        self.qscheme = s.qscheme
        self.qformulation = s.qformulation
        self.qparam_calculator_cls = s.qparam_calculator
        self.float_range = s.float_range
        self.scale_dtype = s.scale_dtype


class _BlockView:
    def __init__(self, s: ResolvedSpec):
        self.block_size = s.block_size
        self.axis = s.axis


_RENAMED = {"qparam_calculator_cls": "qparam_calculator"}


def _renamed(message: str) -> str:
    for old, new in _RENAMED.items():
        message = message.replace(old, new)
    return message


def plan_problems(plan: Plan) -> list[tuple[str, str]]:
    """Every rule `plan` breaks, as ``(JSON path, message)`` pairs in document order."""
    problems: list[tuple[str, str]] = []
    if plan.mode not in PLAN_VALUES["mode"]:
        problems.append((json_path("mode"), f"unknown mode `{plan.mode}`; expected `graph` or `eager`"))
    for sid, spec in plan.specs.items():
        problems += ((json_path("specs", sid, *f), m) for f, m in _spec_problems(spec))
    problems += _quantizer_problems(plan)
    return problems


def _spec_problems(s: ResolvedSpec) -> Iterator[tuple[tuple[str, ...], str]]:
    bad_enum = False
    for name, allowed in PLAN_VALUES.items():
        if name == "mode":
            continue
        value = getattr(s, name)
        if name == "scale_dtype" and value is None:
            continue
        if value not in allowed:
            bad_enum = True
            expected = ", ".join(f"`{v}`" for v in allowed)
            yield (
                (name,),
                f"unknown {name} `{value}`; expected one of {expected}" + (" or null" if name == "scale_dtype" else ""),
            )
    if bad_enum:
        return
    yield from (((f,) if f else (), _renamed(m)) for f, m in check_spec(_SpecView(s)))  # type: ignore[arg-type]
    if s.schedule is not None:
        yield from ((("schedule", f), m) for f, m in check_schedule(s.schedule))
    yield from _granularity_problems(s)


def _granularity_problems(s: ResolvedSpec) -> Iterator[tuple[tuple[str, ...], str]]:
    g = s.granularity
    if g == "per_block":
        if s.block_size is None:
            yield ("block_size",), "granularity `per_block` needs a block_size"
            return
        yield from (((f,), m) for f, m in check_block(_BlockView(s)))  # type: ignore[arg-type]
        if isinstance(s.block_size, int) and s.axis is None:
            yield ("axis",), "granularity `per_block` with an integer block_size needs a resolved axis"
    elif s.block_size is not None:
        yield ("block_size",), f"granularity `{g}` takes no block_size (got `{s.block_size}`)"
    if g == "per_tensor" and s.axis is not None:
        yield ("axis",), f"granularity `per_tensor` takes no axis (got `{s.axis}`)"
    if g == "per_channel" and s.axis is None:
        yield ("axis",), "granularity `per_channel` needs a resolved axis"
    if s.axis is not None and s.axis < 0:
        yield ("axis",), f"axis ({s.axis}) must be resolved to a non-negative dimension"


def _quantizer_problems(plan: Plan) -> Iterator[tuple[str, str]]:
    first_id: dict[str, int] = {}
    first_address: dict[str, int] = {}
    first_reader: dict[str, int] = {}
    groups = {d.group for d in plan.decisions if d.group is not None}
    for i, q in enumerate(plan.quantizers):
        for key, field, seen in ((q.id, "id", first_id), (q.address, "address", first_address)):
            if key in seen:
                yield (
                    json_path("quantizers", i, field),
                    (
                        f"duplicate quantizer {field} `{key}`: `{json_path('quantizers', seen[key])}` has it too; "
                        f"each {field} appears once in a plan"
                    ),
                )
            else:
                seen[key] = i
        for j, r in enumerate(q.readers):
            if not _READER.fullmatch(r):
                yield (
                    json_path("quantizers", i, "readers", j),
                    (f"reader `{r}` is not an op tensor (`<op>:in<i>`, `<op>:<state>`) or a model output (`:out<j>`)"),
                )
            elif r in first_reader:
                yield (
                    json_path("quantizers", i, "readers", j),
                    (
                        f"reader `{r}` is also read through `{json_path('quantizers', first_reader[r])}`; "
                        "a reader appears in at most one entry"
                    ),
                )
            else:
                first_reader[r] = i
        spec = plan.specs.get(q.spec)
        if spec is None:
            known = ", ".join(f"`{s}`" for s in sorted(plan.specs)[:10]) or "none"
            yield json_path("quantizers", i, "spec"), f"spec id `{q.spec}` is not in `specs` (defined: {known})"
        else:
            yield from _fits_shape(spec, q.shape, q.spec, i)
        if q.group is not None and q.group not in groups:
            yield json_path("quantizers", i, "group"), f"qparams group `{q.group}` is defined by no decision"
        yield from _role_problems(q, i)


def _fits_shape(spec: ResolvedSpec, shape: tuple[int, ...], sid: str, i: int) -> Iterator[tuple[str, str]]:
    if spec.axis is not None and spec.axis >= len(shape):
        yield (
            json_path("quantizers", i, "shape"),
            f"spec `{sid}` has axis {spec.axis}, out of range for shape {list(shape)}",
        )
    if isinstance(spec.block_size, tuple) and len(spec.block_size) != len(shape):
        yield (
            json_path("quantizers", i, "shape"),
            f"spec `{sid}` has block_size {list(spec.block_size)}, not one entry per dim of {list(shape)}",
        )


def _role_problems(q: Any, i: int) -> Iterator[tuple[str, str]]:
    if q.role in ("output", "state") and q.address != q.source:
        yield (
            json_path("quantizers", i, "source"),
            (f"a `{q.role}` entry quantizes its own address: source `{q.source}` should be `{q.address}`"),
        )
    if q.role == "input" and q.address not in q.readers:
        yield (
            json_path("quantizers", i, "readers"),
            f"an `input` entry's address `{q.address}` must be one of its readers",
        )
