"""The compiler's diagnostic codes: one table of code -> level and What / Why / Fix text (SPEC §2.6).

Every compiler diagnostic is made with :func:`diagnostic`, so a code's level lives here and
nowhere else. ``strict`` compilation turns warnings into errors (:func:`strictify`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from qplan.diagnostics import Diagnostic, Span, strictify

__all__ = ["CodeInfo", "CODES", "diagnostic", "strictify", "codes_markdown"]


class CodeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a code means: its level, what it reports, why that matters, and how to fix it."""

    level: Literal["error", "warning", "info"]
    what: str
    why: str
    fix: str


CODES: dict[str, CodeInfo] = {
    "unmatched-selector": CodeInfo(
        level="warning",
        what="A module name regex, module type, op type or op name regex matched nothing in the model.",
        why="A selector that matches nothing is usually a typo or a stale name; its config never applies.",
        fix="Correct the selector (op and module names are matched in full with `re.fullmatch`) or remove it.",
    ),
    "shadowed-rule": CodeInfo(
        level="warning",
        what="A rule matches some modules or ops but never wins: a later or more specific rule always beats it.",
        why="Within one level the last declared matching key wins, and name rules beat type rules beat global.",
        fix="Remove the rule, or declare it after the rule that shadows it.",
    ),
    "reset-to-default": CodeInfo(
        level="warning",
        what="A more specific config omits a field that a less specific config changed, restoring the default.",
        why="A more specific config replaces a less specific one entirely; omitted fields take library defaults.",
        fix="Repeat the field in the more specific config if the less specific value was meant to carry over.",
    ),
    "edge-override": CodeInfo(
        level="info",
        what="A consumer reads a tensor with a different spec than its producer's output spec (or reads it float).",
        why="Each consumer decides what it reads; the producer's output spec is only the default for its readers.",
        fix="Nothing to do if intended; otherwise align the consumer's op_input_spec with the producer.",
    ),
    "shared-weight-conflict": CodeInfo(
        level="warning",
        what="A parameter read by several ops (tied weights) gets different specs or schedules at its readers.",
        why="A shared parameter has one fake-quant; the first consumer in named_modules() order decides.",
        fix="Give every consumer of the shared parameter the same state spec and schedule.",
    ),
    "block-not-divisible": CodeInfo(
        level="warning",
        what="A per_block block size does not divide the tensor dimension it blocks; the tensor stays float.",
        why="Blocks must tile the dimension exactly.",
        fix="Choose a block size that divides the dimension, or a different granularity for this tensor.",
    ),
    "unknown-op-type": CodeInfo(
        level="warning",
        what="An op_type_config key is not an op type of the op table.",
        why="An unknown op type never matches an op, so its config never applies.",
        fix="Use an op type from the op table (see the did-you-mean suggestion).",
    ),
    "ambiguous-module-type": CodeInfo(
        level="error",
        what="A bare class name in module_type_configs matches several different classes of the model.",
        why="Bare names must identify exactly one class.",
        fix="Use the fully-qualified class name.",
    ),
    "missing-axis": CodeInfo(
        level="error",
        what="A per_channel or per_block spec has no axis and no default exists for this tensor.",
        why="Weights take a default axis from the op that reads them; activations need an explicit axis.",
        fix="Set `granularity.axis` in the spec.",
    ),
    "axis-out-of-range": CodeInfo(
        level="error",
        what="A granularity axis or block shape does not fit the tensor's rank.",
        why="The axis must name a dimension of the tensor (negative axes count from the end).",
        fix="Use an axis in [-ndim, ndim) or a block_size list with one entry per dimension.",
    ),
    "unsupported-spec": CodeInfo(
        level="error",
        what="A spec cannot apply to this tensor (for example `dynamic` qparams on a weight).",
        why="`dynamic` computes qparams per forward and is for activations only.",
        fix="Use `static` or `default` for weights.",
    ),
}


def diagnostic(
    code: str,
    message: str,
    *,
    path: str | None = None,
    span: Span | None = None,
    help: str | None = None,
) -> Diagnostic:
    """A Diagnostic with the level from :data:`CODES`."""
    return Diagnostic(code=code, level=CODES[code].level, message=message, path=path, span=span, help=help)


def codes_markdown() -> str:
    """The docs page of the compiler's diagnostic codes (``docs/compiler-diagnostics.md``)."""
    lines = [
        "# Compiler diagnostics",
        "",
        "Generated from `qplan.compiler.codes.CODES` (run `python -m qplan.compiler.codes > "
        "docs/compiler-diagnostics.md`). `--strict` turns every warning into an error.",
        "",
    ]
    for code, info in CODES.items():
        lines += [
            f"## `{code}` ({info.level})",
            "",
            f"**What.** {info.what}",
            "",
            f"**Why.** {info.why}",
            "",
            f"**Fix.** {info.fix}",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(codes_markdown())
