"""The JSON Schema (draft 2020-12) of plan files, generated from the plan types of :mod:`qplan.compiler.plan`.

``msgspec.json.schema`` translates the Structs (class docstrings become descriptions,
``forbid_unknown_fields`` becomes ``additionalProperties: false``); a small post-processing step
adds what the types do not say: the format and its version as constants, field descriptions, the
values each enumerated field may hold (:data:`~qplan.compiler.plan_check.PLAN_VALUES`, the same
table the loader checks) and the ``float_range`` bounds. The rules that compare entries (unique ids
and addresses, references that resolve, axes that fit shapes) are the loader's
(:mod:`qplan.compiler.plan_check`); a schema cannot state them.

Regenerate the shipped copy with ``python -m qplan.compiler.plan_schema > src/qplan/compiler/plan.schema.json``.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

import msgspec

from qplan.compiler.plan import Plan
from qplan.compiler.plan_check import PLAN_VALUES
from qplan.plan_format import PLAN_FORMAT, PLAN_VERSION

__all__ = ["plan_schema", "plan_schema_text", "shipped_plan_schema", "REGENERATE_PLAN_SCHEMA", "FIELD_DOCS"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE_PLAN_SCHEMA = "python -m qplan.compiler.plan_schema > src/qplan/compiler/plan.schema.json"

FIELD_DOCS: dict[str, dict[str, str]] = {
    "Plan": {
        "format": f"Always `{PLAN_FORMAT}`.",
        "version": f"The plan format's version; this qplan reads version {PLAN_VERSION}.",
        "mode": "Capture mode the plan was compiled in: `graph` or `eager`.",
        "model": "The model the plan was compiled for.",
        "config": "The config the plan was compiled from.",
        "specs": "Distinct resolved specs, keyed by short ids (`s0`, `s1`, ...).",
        "quantizers": "One entry per fake-quant to insert, in execution order; ids and addresses are unique.",
        "decisions": "Placement decisions (fusion, shared weights, shared qparams, ...), each with its reason.",
        "diagnostics": "Warnings and notes the compiler reported.",
    },
    "ModelInfo": {
        "class_name": "The model's class name.",
        "fingerprint": "Fingerprint of the op inventory (addresses, op types, parameter shapes and dtypes).",
    },
    "ConfigInfo": {
        "source": "The config's file name as given (never an absolute path), or `<python>`.",
        "sha256": "sha256 of the config's content.",
    },
    "ResolvedSpec": {
        "dtype": "Canonical storage dtype name.",
        "qscheme": "Integer grid placement.",
        "qformulation": "`zp`: scale + zero point; `minval`: scale + min value.",
        "granularity": "Per tensor, per channel or per block.",
        "axis": "Resolved non-negative axis; null for per_tensor and for a per-dim block_size list.",
        "block_size": "per_block only: block length along `axis`, or one entry per dim (-1 = whole dim).",
        "qparam_calculator": "How qparams are computed (never `default` in a plan).",
        "range_calculator": "Range estimator.",
        "fake_quantize": "Fake-quantize implementation.",
        "float_range": "Fixed `[min, max]` of the float range; null bounds are learned.",
        "scale_dtype": "Scale dtype (float dtypes only), or null.",
        "schedule": "QAT schedule of the tensor, or null.",
    },
    "Provenance": {
        "rule": "Config path of the winning tensor spec.",
        "source": "`file:line` of that rule, when loaded from a file.",
        "beaten": "Config paths of matching rules that lost, most specific first.",
        "defaulted": "Whether the winning value is a library default (the field was omitted).",
    },
    "QuantizerEntry": {
        "id": "Stable id (`q0007`), unique in the plan.",
        "address": "Tensor address, unique in the plan (`fc1.linear:in0`, `fc1.linear:out0`, `fc1.weight`, `blk:in0`).",
        "role": "What is quantized: an op's input, its output, a parameter, or a module boundary.",
        "source": "Address of the value being fake-quantized (op output, parameter fqn, or `:in<i>`).",
        "spec": "Id of the spec in `specs`.",
        "shape": "Shape of the quantized tensor at compile time.",
        "dtype": "Float dtype of the tensor.",
        "readers": "Op inputs (`<op>:in<i>`, `<op>:<state>`) or model outputs (`:out<j>`) that read the "
        "fake-quantized value; each reader appears in one entry at most.",
        "group": "Qparams-sharing group id, defined by a decision, if any.",
        "provenance": "Why the tensor got its spec.",
    },
    "Decision": {
        "kind": "What was decided: fusion, bn-fold, edge-override, shared-weight, shared-qparams, skipped, ...",
        "subjects": "Addresses (ops or tensors) the decision is about.",
        "reason": "Why.",
        "group": "The group id the decision defines, if any.",
    },
    "Diagnostic": {
        "code": "Diagnostic code (see docs/diagnostics.md).",
        "level": "error, warning or info.",
        "message": "What is wrong.",
        "path": "Config path of the problem.",
        "span": "Where in the config file.",
        "help": "What to do about it.",
    },
    "Span": {
        "file": "Config file name.",
        "line": "1-based line.",
        "col": "1-based column.",
        "end_line": "Line where the span ends, if known.",
        "end_col": "Column where the span ends, if known.",
    },
}
"""Field descriptions of the plan types (a test checks every field has one)."""


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a plan file."""
    generated = msgspec.json.schema(Plan)
    defs = generated["$defs"]
    for name, docs in FIELD_DOCS.items():
        for field, text in docs.items():
            defs[name]["properties"][field]["description"] = text
    plan = defs.pop("Plan")
    plan["properties"]["format"] = {"const": PLAN_FORMAT, "description": FIELD_DOCS["Plan"]["format"]}
    plan["properties"]["version"] = {"const": PLAN_VERSION, "description": FIELD_DOCS["Plan"]["version"]}
    plan["properties"]["mode"]["enum"] = list(PLAN_VALUES["mode"])
    plan["required"] = sorted({*plan.get("required", ()), "format", "version"})
    spec = defs["ResolvedSpec"]["properties"]
    for field, values in PLAN_VALUES.items():
        if field == "scale_dtype":
            spec[field]["anyOf"] = [{"enum": list(values)}, {"type": "null"}]
        elif field in spec:
            spec[field]["enum"] = list(values)
    spec["float_range"]["prefixItems"] = [
        {"anyOf": [{"type": "number", "maximum": 0}, {"type": "null"}]},
        {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
    ]
    spec["axis"]["anyOf"] = [{"type": "integer", "minimum": 0}, {"type": "null"}]
    return {
        "$schema": DRAFT,
        "title": f"qplan plan (format `{PLAN_FORMAT}`, version {PLAN_VERSION})",
        "description": "A compiled qplan plan, as written by `qplan compile-plan -o` (see docs/compiler.md).",
        **{k: v for k, v in plan.items() if k not in ("title", "description")},
        "$defs": {k: defs[k] for k in sorted(defs)},
    }


def plan_schema_text() -> str:
    """The schema as canonical JSON text (what ``qplan schema --plan`` prints and plan.schema.json holds)."""
    return json.dumps(plan_schema(), indent=2, ensure_ascii=False) + "\n"


def shipped_plan_schema() -> str:
    """The text of the plan.schema.json shipped with the package."""
    return resources.files("qplan.compiler").joinpath("plan.schema.json").read_text(encoding="utf-8")


if __name__ == "__main__":
    sys.stdout.write(plan_schema_text())
