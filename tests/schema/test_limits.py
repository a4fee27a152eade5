"""The loader's limits are ratios, not sizes: big alias-free configs and long keys load, alias
bombs do not; JSON comments and lone surrogates get errors that say what they are."""

from __future__ import annotations

import json

import pytest

from qplan import ConfigError, load_config
from qplan.schema.loader import config_from_document
from qplan.schema.yamldoc import EXPANSION_FLOOR, MAX_EXPANSION_RATIO

pytestmark = pytest.mark.usefixtures("composer")  # every test under both YAML composers (conftest.py)


def _codes(error: ConfigError) -> list[str]:
    return [d.code for d in error.diagnostics]


def test_large_alias_free_config_loads() -> None:
    """0.9 MB, 26k rules, no aliases: once refused as an "alias bomb?" by a fixed node budget."""
    rules = "".join(f'    "m{i}": {{op_state_spec: {{}}}}\n' for i in range(26_000))
    text = "quantization_config:\n  module_name_configs:\n" + rules
    assert 0.8e6 < len(text) < 1.0e6
    config = load_config(text).config
    assert len(config.module_name_configs) == 26_000


def test_anchors_reused_within_the_ratio_load_past_the_floor() -> None:
    """12k aliases of one 12-node spec expand 24k parsed nodes to ~156k: more than the floor, less
    than the ratio."""
    spec = "{dtype: int4, qscheme: symmetric, granularity: {type: per_channel}, qparam_calculator_cls: moving_average}"
    aliases = "".join(f"  s{i}: *w\n" for i in range(1, 12_000))
    text = f"quantization_spec:\n  s0: &w {spec}\n{aliases}quantization_config: {{}}\n"
    assert load_config(text).config is not None


def test_alias_bomb_refused_by_ratio() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 6):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    lines.append("quantization_config: {preserved_attributes: *a5}")
    with pytest.raises(ConfigError) as info:
        load_config("\n".join(lines) + "\n")
    (d,) = info.value.diagnostics
    assert d.code == "alias-bomb" and f"over {MAX_EXPANSION_RATIO} times" in d.message
    assert f"{EXPANSION_FLOOR:,}" in d.message


LONG_KEY = "(" + "|".join(f"blocks\\.{i}\\.mlp" for i in range(120)) + ")\\.fc"


@pytest.mark.parametrize("form", ["json", "yaml-quoted", "yaml-plain"])
def test_regex_keys_longer_than_1024_characters_load(form: str) -> None:
    assert len(LONG_KEY) > 1024
    rule = {"op_state_spec": {"weight": {"dtype": "int4"}}}
    if form == "json":
        text = json.dumps({"quantization_config": {"module_name_configs": {LONG_KEY: rule}}})
    elif form == "yaml-quoted":
        text = f"quantization_config:\n  module_name_configs:\n    {json.dumps(LONG_KEY)}: {json.dumps(rule)}\n"
    else:
        text = f"quantization_config:\n  module_name_configs:\n    {LONG_KEY}: {json.dumps(rule)}\n"
    config = load_config(text).config
    assert list(config.module_name_configs) == [LONG_KEY]


@pytest.mark.parametrize(
    ("text", "line", "col", "marker"),
    [
        ('{\n  // the config\n  "quantization_config": {"module_name_configs": {"a//b": {}}}\n}\n', 2, 3, "//"),
        ('{"quantization_config": {} /* none\n yet */}\n', 1, 28, "/*"),
    ],
)
def test_json_comments_are_named(text: str, line: int, col: int, marker: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    (d,) = info.value.diagnostics
    assert d.code == "yaml-syntax" and "JSON has no comments" in d.message and f"`{marker}`" in d.message
    assert (d.span.line, d.span.col) == (line, col)
    assert d.help is not None and "YAML" in d.help and "#" in d.help


def test_json_comments_with_another_syntax_error_get_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        load_config('{\n  // the config\n  "quantization_config": {"a": 1,}\n}\n')
    (d,) = info.value.diagnostics
    assert d.code == "yaml-syntax" and d.help is not None and "JSON has no comments" in d.help


def test_slashes_in_yaml_flow_plain_scalars_are_not_comments() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("{quantization_config: {}, x: http://example.com}\n")
    assert _codes(info.value) == ["unknown-key"]


@pytest.mark.parametrize(
    ("text", "line", "col", "at"),
    [
        ('quantization_config:\n  module_name_configs:\n    "a\\udc80b": {}\n', 3, 5, "key"),
        ('{"quantization_config": {"module_name_configs": {"a\\udc80b": {}}}}\n', 1, 50, "key"),
        ('quantization_config:\n  execution_mode: "gr\\ud800aph"\n', 2, 19, "value"),
    ],
)
def test_lone_surrogates_are_invalid_values_with_a_position(text: str, line: int, col: int, at: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    (d,) = info.value.diagnostics
    assert d.code == "invalid-value" and f"the {at} `" in d.message and "lone surrogate `\\u" in d.message
    assert (d.span.line, d.span.col) == (line, col)
    str(d).encode("utf-8")  # printable: the surrogate is escaped everywhere, path included


def test_lone_surrogates_in_python_documents() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_document({"quantization_config": {"preserved_attributes": ["ok", "\udfff"]}})
    (d,) = info.value.diagnostics
    assert d.code == "invalid-value" and d.path == "quantization_config.preserved_attributes[1]"
