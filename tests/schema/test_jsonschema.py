"""The JSON Schema: shipped copy up to date, complete metadata, and the same verdicts as the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_strategies import document, one_spec, schedule_only, tensor_keys_only

from qplan import ConfigError
from qplan.schema.jsonschema import DRAFT, REGENERATE, config_schema, schema_text, shipped_schema
from qplan.schema.loader import config_from_document
from qplan.schema.yamldoc import parse_document

SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_shipped_schema_is_current() -> None:
    assert shipped_schema() == schema_text(), f"src/qplan/schema/schema.json is stale; regenerate it: {REGENERATE}"


def test_schema_is_valid_draft_2020_12() -> None:
    assert SCHEMA["$schema"] == DRAFT
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def _properties(schema: dict) -> list[tuple[str, str, dict]]:
    out = []
    for name, d in schema["$defs"].items():
        for field, prop in d.get("properties", {}).items():
            out.append((name, field, prop))
    return out


def test_every_field_has_a_description_and_every_optional_field_a_default() -> None:
    for name, field, prop in _properties(SCHEMA):
        assert prop.get("description"), f"{name}.{field} has no description"
        required = SCHEMA["$defs"][name].get("required", [])
        if field not in required:
            assert "default" in prop, f"{name}.{field} has no default"
    spec = SCHEMA["$defs"]["QuantizationSpec"]["properties"]
    assert "float8_e4m3fn" in spec["dtype"]["enum"] and spec["dtype"]["default"] == "int8"
    assert spec["granularity"]["default"] == {"type": "per_tensor"}
    assert SCHEMA["$defs"]["QuantizationScheme"]["enum"] == ["asymmetric", "symmetric", "symmetric_with_clipping"]
    op = SCHEMA["$defs"]["OpQuantizerConfig"]["properties"]
    assert op["op_state_spec"]["default"] == {"weight": {"granularity": {"type": "per_channel", "axis": None}}}


def test_closed_objects() -> None:
    for name, d in SCHEMA["$defs"].items():
        if d.get("type") == "object":
            assert d["additionalProperties"] is False, name
    assert SCHEMA["additionalProperties"] is False and SCHEMA["required"] == ["quantization_config"]


def _json_view(value: Any) -> Any:
    """What an editor's JSON Schema validator sees: every mapping key is a string."""
    if isinstance(value, dict):
        return {str(k): _json_view(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_view(v) for v in value]
    return value


def _loader_accepts(doc: Any) -> bool:
    try:
        config_from_document(doc)
    except ConfigError:
        return False
    return True


# The bad fixtures whose problem JSON Schema cannot express (it cannot compare two fields, nor see
# YAML-level problems such as syntax, tags, duplicate keys or encodings), and a regex Python's `re`
# rejects with OverflowError, which python-jsonschema's `format: regex` check does not catch.
_LOADER_ONLY = {
    "qat_order.yaml",
    "qat_disable_observer.yaml",
    "duplicate_key.yaml",
    "yaml_syntax.yaml",
    "unquoted_star.yaml",
    "unsafe_tag.yaml",
    "empty.yaml",
    "not_utf8.yaml",
    "regex_too_large.yaml",
}
_BAD = sorted((Path(__file__).parent / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", [p for p in _BAD if p.name not in _LOADER_ONLY], ids=lambda p: p.name)
def test_schema_rejects_bad_fixtures(path: Path) -> None:
    doc = parse_document(path.read_text(), path.name).value
    assert not VALIDATOR.is_valid(_json_view(doc))


# -- property: the schema accepts exactly what the loader accepts --------------------------------
# The generator (schema_strategies.py) mixes valid and invalid values and keys, but keeps
# QATSchedule ordering valid, because JSON Schema cannot compare two fields; it also avoids NaN
# and keys that collide once stringified (`0` and `"0"`), which only YAML/Python can write.


def _same_verdict(doc: dict, validator: jsonschema.protocols.Validator) -> None:
    assert validator.is_valid(_json_view(doc)) == _loader_accepts(doc), json.dumps(_json_view(doc), indent=1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_schema_accepts_exactly_what_the_loader_accepts(doc: dict) -> None:
    _same_verdict(doc, VALIDATOR)


@settings(max_examples=300, deadline=None)
@given(st.one_of(one_spec, tensor_keys_only, schedule_only))
def test_schema_and_loader_agree_on_specs_tensor_keys_and_schedules(doc: dict) -> None:
    _same_verdict(doc, VALIDATOR)


def test_generator_reaches_both_verdicts() -> None:
    """Guard against a generator that (nearly) only produces invalid, or only valid, documents."""
    seen = {True: 0, False: 0}

    @settings(max_examples=100, deadline=None, database=None)
    @given(document)
    def collect(doc: dict) -> None:
        seen[_loader_accepts(doc)] += 1

    collect()
    assert min(seen.values()) >= 20, seen
