"""The compiler's diagnostic codes: one table of code -> level and What / Why / Fix text (see docs/diagnostics.md).

Every compiler diagnostic is made with :func:`diagnostic`, so a code's level lives here and
nowhere else. ``strict`` compilation turns warnings into errors (:func:`strictify`).
:class:`CodeInfo` is the shared record of :mod:`qplan.diagnostics` (re-exported here).
"""

from __future__ import annotations

from qplan.diagnostics import CodeInfo, Diagnostic, Span, code_table_markdown, strictify

__all__ = ["CodeInfo", "CODES", "diagnostic", "strictify", "codes_markdown"]


CODES: dict[str, CodeInfo] = {
    "unmatched-selector": CodeInfo(
        level="warning",
        what="A module name regex, module type, op type or op name regex matched nothing in the model.",
        why="A selector that matches nothing is usually a typo or a stale name; its config never applies.",
        fix="Correct the selector (op and module names are matched in full, like `re.fullmatch`) or remove it.",
    ),
    "shadowed-rule": CodeInfo(
        level="warning",
        what="A rule matches some modules or ops but never wins: a later or more specific rule always beats it.",
        why="Within one level the last declared matching key wins, and name rules beat type rules beat global.",
        fix="Remove the rule, or declare it after the rule that shadows it.",
    ),
    "unknown-tensor-key": CodeInfo(
        level="warning",
        what="An op_input_spec / op_output_spec / op_state_spec key names no tensor of the ops its config reaches.",
        why="Inputs and outputs are keyed by index (below the op's count) or the op table's input name; states "
        "by the name the op reads them under. Any other key never applies, so its tensors keep another spec.",
        fix="Correct the key (see the did-you-mean suggestion and the ops named in the message) or remove it.",
    ),
    "dead-rule": CodeInfo(
        level="warning",
        what="A module rule, op config or tensor key wins somewhere but decides no tensor at all.",
        why="Its modules or ops have no tensor it could quantize or decline (no such input, output or state, "
        "integer tensors only, or explicit keys beat its `*`), so removing it would change nothing.",
        fix="Remove it, or point it at the modules, ops or tensors that were meant.",
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
    "unquantized-weight": CodeInfo(
        level="warning",
        what=(
            "A weight-like parameter (2+ dims, named `weight`, `*_weight`, `weight_*`) stays float although the "
            "config asks for weights where it is read: the reading op is outside the op table, a known op no "
            "op config names, or reads it through an input slot instead of a weight slot."
        ),
        why="A weight the plan cannot quantize would otherwise be left behind in silence.",
        fix=(
            "Name the op in op_type_config/op_name_config with an op_state_spec for the parameter, use a module "
            "qplan knows, or decline the weight explicitly with null."
        ),
    ),
    "unsupported-spec": CodeInfo(
        level="error",
        what="A spec cannot apply to this tensor (for example `dynamic` qparams on a weight).",
        why="`dynamic` computes qparams per forward and is for activations only.",
        fix="Use `static` or `default` for weights.",
    ),
    "plan-syntax": CodeInfo(
        level="error",
        what="A plan file is not valid JSON (for example a truncated file); reported at its line and column.",
        why="A plan is read whole before anything runs; a broken file cannot be trusted in part.",
        fix="Regenerate the plan with `qplan compile-plan CONFIG --model M:F -o PLAN`.",
    ),
    "unsupported-plan": CodeInfo(
        level="error",
        what="A JSON file given as a plan is not a qplan plan: its `format` is not `qplan.plan`, or its "
        "`version` is one this qplan does not read.",
        why="Plans of another format or version may mean something else; qplan reads only the format it writes.",
        fix="Pass a plan written by this qplan version (`format: qplan.plan`), or recompile it from its config.",
    ),
    "invalid-plan": CodeInfo(
        level="error",
        what="A plan breaks a rule of the plan format: a field of the wrong type or value, a spec the config "
        "language refuses (such as `float_range: [5.0, 1.0]`), a duplicate quantizer id, address or reader, "
        "or a reference (spec id, qparams group) that does not resolve. The JSON path says where.",
        why="Plans are applied as written; a hand-edited plan with a broken spec or a duplicated entry would "
        "quantize wrongly without a word.",
        fix="Change the config and recompile instead of editing plans by hand; `qplan schema --plan` prints "
        "the plan's JSON Schema.",
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
    """The compiler's section of the diagnostics docs page (``docs/diagnostics.md``, generated by
    ``scripts/gen_diagnostics_doc.py`` from this table and the schema's)."""
    return code_table_markdown(CODES, heading="###")
