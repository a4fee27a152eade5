"""The JSON Schema (draft 2020-12) of config documents, generated from the config types.

``msgspec.json.schema`` translates the Structs (docstrings and ``Meta`` become descriptions,
``forbid_unknown_fields`` becomes ``additionalProperties: false``); a small post-processing step
adds what the types cannot say: the document wrapper, defaults of factory fields, tensor-key and
regex key rules, the ``pt2e`` alias, and the cross-field rules JSON Schema can express. (QATSchedule
ordering compares fields and stays with the loader.)

Regenerate the shipped copy with ``python -m qplan.schema.jsonschema > src/qplan/schema/schema.json``.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

import msgspec

from qplan.schema import types as T
from qplan.schema.keys import (
    MODULE_SPEC_FIELDS,
    MODULE_TYPE_PATTERN,
    REGEX_KEY_FIELDS,
    TENSOR_DICT_FIELDS,
    TENSOR_INDEX_PATTERN,
    TENSOR_KEY_PATTERN,
    TENSOR_NAME_PATTERN,
)

__all__ = ["DRAFT", "config_schema", "schema_text", "shipped_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "python -m qplan.schema.jsonschema > src/qplan/schema/schema.json"

_FLOAT_DTYPES = [*T.FLOAT_DTYPES, *(a for a, d in T.DTYPE_ALIASES.items() if d in T.FLOAT_DTYPES)]
_STRUCTS = (
    T.QuantizerConfig,
    T.ModuleQuantizerConfig,
    T.OpQuantizerConfig,
    T.QuantizationSpec,
    T.QATSchedule,
    T.PerTensorGranularity,
    T.PerChannelGranularity,
    T.PerBlockGranularity,
)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a whole config document (with `quantization_config`)."""
    generated = msgspec.json.schema(T.QuantizerConfig)
    defs = generated["$defs"]
    for cls in _STRUCTS:
        _add_factory_defaults(cls, defs[cls.__name__])
    for name in ("ModuleQuantizerConfig", "OpQuantizerConfig"):
        for field, prop in defs[name]["properties"].items():
            if field in TENSOR_DICT_FIELDS:
                _restrict_tensor_keys(prop)
            if field in REGEX_KEY_FIELDS:
                prop["propertyNames"] = {"format": "regex"}
    qc = defs["QuantizerConfig"]["properties"]
    qc["module_name_configs"]["propertyNames"] = {"format": "regex"}
    qc["module_type_configs"]["propertyNames"] = {"pattern": MODULE_TYPE_PATTERN}
    qc["global_config"]["anyOf"][0] = {
        "allOf": [
            {"$ref": "#/$defs/ModuleQuantizerConfig"},
            {"properties": {name: {"maxProperties": 0} for name in MODULE_SPEC_FIELDS}},
        ]
    }
    mode = qc["execution_mode"]
    qc["execution_mode"] = {
        "description": mode["description"],
        "anyOf": [
            {"$ref": mode["$ref"]},
            {
                "type": "string",
                "pattern": "^[pP][tT]2[eE]$",
                "deprecated": True,
                "description": "Deprecated alias of `graph`.",
            },
        ],
        "default": mode["default"],
    }
    _spec_rules(defs["QuantizationSpec"])
    _granularity_rules(defs)
    sched = defs["QATSchedule"]["properties"]["disable_observer"]
    sched["anyOf"] = [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}]
    for name, enum_cls in (("ExecutionMode", T.ExecutionMode), ("QuantizationScheme", T.QuantizationScheme)):
        defs[name].setdefault("description", (enum_cls.__doc__ or "").strip())
    return {
        "$schema": DRAFT,
        "title": "qplan config",
        "description": "A qplan quantization config document (see docs/config-language.md#documents).",
        "type": "object",
        "properties": {
            "$schema": {"type": "string", "description": "The schema this file follows (ignored by qplan)."},
            "quantization_config": {
                "$ref": "#/$defs/QuantizerConfig",
                "description": "The quantization config.",
            },
            "quantization_spec": {
                "description": "Named specs, a place for YAML anchors reused below with aliases; each is validated.",
                "anyOf": [
                    {"type": "object", "additionalProperties": {"$ref": "#/$defs/QuantizationSpec"}},
                    {"type": "null"},
                ],
                "default": None,
            },
        },
        "required": ["quantization_config"],
        "additionalProperties": False,
        "$defs": {k: defs[k] for k in sorted(defs)},
    }


def _add_factory_defaults(cls: type[msgspec.Struct], schema: dict) -> None:
    instance = cls(block_size=1) if cls is T.PerBlockGranularity else cls()
    for name in cls.__struct_fields__:
        prop = schema["properties"][name]
        if "default" not in prop and name != "block_size":
            value = getattr(instance, name)
            if isinstance(value, msgspec.Struct) and cls is T.QuantizerConfig:
                value = {}  # `global_config: {}` means the defaults
            prop["default"] = msgspec.to_builtins(value)
    if schema["properties"] and "required" in schema and not schema["required"]:
        del schema["required"]
    tag = getattr(cls.__struct_config__, "tag", None)
    if isinstance(tag, str):
        schema["properties"]["type"]["description"] = "Granularity kind."


def _restrict_tensor_keys(prop: dict) -> None:
    """Keys are `"*"`, indices or names, and one dict holds indices or names, not both.

    The mixing rule is stated positively (all keys index-like, or all keys name-like): a
    negated form (`not allOf [has index, has name]`) misfires in yaml-language-server, which
    skips `pattern` for YAML integer keys (`0: ...`)."""
    obj = next(s for s in prop.get("anyOf", [prop]) if s.get("type") == "object")
    obj["propertyNames"] = {"pattern": TENSOR_KEY_PATTERN}
    obj["anyOf"] = [{"propertyNames": {"pattern": p}} for p in (TENSOR_INDEX_PATTERN, TENSOR_NAME_PATTERN)]


def _when(condition: dict, then: dict) -> dict:
    return {"if": condition, "then": then}


def _spec_rules(spec: dict) -> None:
    props = spec["properties"]
    fr = props["float_range"]
    fr["prefixItems"] = [
        {"anyOf": [{"type": "number", "maximum": 0}, {"type": "null"}]},
        {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
    ]
    fr["not"] = {"const": [0, 0]}  # min < max
    float_dtype = {"properties": {"dtype": {"enum": _FLOAT_DTYPES}}, "required": ["dtype"]}
    spec["allOf"] = [
        _when(float_dtype, {"properties": {"qscheme": {"const": "symmetric"}, "qformulation": {"const": "zp"}}}),
        _when({"properties": {"scale_dtype": {"type": "string"}}, "required": ["scale_dtype"]}, float_dtype),
        _when(
            {"properties": {"qparam_calculator_cls": {"const": "dynamic"}}, "required": ["qparam_calculator_cls"]},
            {
                "properties": {
                    "qscheme": {"not": {"const": "symmetric_with_clipping"}},
                    "float_range": {"prefixItems": [{"type": "null"}, {"type": "null"}]},
                }
            },
        ),
    ]


def _granularity_rules(defs: dict) -> None:
    block = defs["PerBlockGranularity"]
    size = block["properties"]["block_size"]
    size["anyOf"] = [
        {"type": "integer", "minimum": 1},
        {"type": "array", "minItems": 1, "items": {"anyOf": [{"const": -1}, {"type": "integer", "minimum": 1}]}},
    ]
    block["allOf"] = [
        _when(
            {"properties": {"block_size": {"type": "array"}}, "required": ["block_size"]},
            {"properties": {"axis": {"type": "null"}}},
        ),
    ]


def schema_text() -> str:
    """The schema as canonical JSON text (what ``qplan schema`` prints and schema.json holds)."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


def shipped_schema() -> str:
    """The text of the schema.json shipped with the package."""
    return resources.files("qplan.schema").joinpath("schema.json").read_text(encoding="utf-8")


if __name__ == "__main__":
    sys.stdout.write(schema_text())
