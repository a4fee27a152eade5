"""The loader: sources, positions of every node, safe YAML (tags, aliases, merge keys, bombs)."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import warnings
from pathlib import Path

import pytest

from qplan import ConfigError, ModuleQuantizerConfig, QuantizationSpec, QuantizerConfig, load_config
from qplan.schema.loader import config_from_document
from qplan.schema.paths import config_path
from qplan.schema.types import PerBlockGranularity
from qplan.schema.yamldoc import EXPANSION_FLOOR

pytestmark = pytest.mark.usefixtures("composer")  # every test under both YAML composers (conftest.py)

YAML = """\
quantization_config:
  module_name_configs:
    "enc.*":
      op_state_spec:
        weight:
          dtype: int4
          granularity: {type: per_block, block_size: 32}
      op_input_spec:
        0: null
"""


def _codes(error: ConfigError) -> list[str]:
    return [d.code for d in error.diagnostics]


def test_config_path_format() -> None:
    assert config_path(["quantization_config", "module_name_configs", "enc.*", "op_state_spec", "weight", "dtype"]) == (
        'quantization_config.module_name_configs["enc.*"].op_state_spec.weight.dtype'
    )
    assert config_path(["a", 0, "0", "*", 'x"y']) == 'a[0][0]["*"]["x\\"y"]'
    assert config_path([]) == ""


def test_spans_of_every_node(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(YAML)
    loaded = load_config(path)
    spans = loaded.spans
    enc = 'quantization_config.module_name_configs["enc.*"]'
    # Key spans start at the key and end after the value (1-based lines and columns).
    assert (spans[enc].line, spans[enc].col) == (3, 5)
    dtype = spans[f"{enc}.op_state_spec.weight.dtype"]
    assert (dtype.line, dtype.col, dtype.end_line, dtype.end_col) == (6, 11, 6, 22)
    assert (
        spans[f"{enc}.op_state_spec.weight.granularity.block_size"].line,
        spans[f"{enc}.op_state_spec.weight.granularity.block_size"].col,
    ) == (7, 42)
    assert (spans[f"{enc}.op_input_spec[0]"].line, spans[f"{enc}.op_input_spec[0]"].col) == (9, 9)
    assert spans[""].line == 1 and spans["quantization_config"].line == 1
    # Every node has a span (paths with list items included).
    assert len(spans) == 12
    assert loaded.span_for(["quantization_config", "module_name_configs", "enc.*", "op_output_spec", "*"]) == spans[enc]


def test_name_and_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.yaml").write_text(YAML)
    monkeypatch.chdir(tmp_path)
    loaded = load_config("c.yaml")
    assert loaded.name == "c.yaml"  # as given, never made absolute
    assert loaded.sha256 == hashlib.sha256(YAML.encode()).hexdigest()
    assert load_config(YAML).name == "<string>"
    assert load_config(Path("c.yaml")).name == "c.yaml"
    assert load_config(io.StringIO(YAML)).name == "<stream>"
    with open("c.yaml", "rb") as f:
        assert load_config(f).name == "c.yaml"
    assert load_config(YAML, name="mine.yaml").spans[""].file == "mine.yaml"
    assert load_config(YAML).config == loaded.config


def test_text_path_and_json_give_the_same_config(tmp_path: Path) -> None:
    config = load_config(YAML).config
    doc = {
        "quantization_config": {
            "module_name_configs": {
                "enc.*": {
                    "op_state_spec": {
                        "weight": {"dtype": "int4", "granularity": {"type": "per_block", "block_size": 32}}
                    },
                    "op_input_spec": {"0": None},
                }
            }
        }
    }
    assert config_from_document(doc) == config
    (tmp_path / "c.json").write_text(json.dumps(doc, indent="\t"))  # tab-indented JSON: fine, columns intact
    loaded = load_config(tmp_path / "c.json")
    assert loaded.config == config
    span = loaded.spans['quantization_config.module_name_configs["enc.*"].op_state_spec.weight.dtype']
    assert (span.line, span.col) == (7, 7)
    enc = config.module_name_configs["enc.*"]
    assert enc.op_state_spec["weight"] == QuantizationSpec(dtype="int4", granularity=PerBlockGranularity(block_size=32))
    assert enc.op_output_spec == ModuleQuantizerConfig().op_output_spec


def test_schema_key_is_ignored_and_quantization_spec_validated() -> None:
    text = "$schema: ../schema/schema.json\nquantization_spec:\n  a: &a {dtype: int4}\nquantization_config:\n  global_config: {op_state_spec: {weight: *a}}\n"
    config = load_config(text).config
    assert config.global_config.op_state_spec["weight"].dtype == "int4"
    with pytest.raises(ConfigError) as info:
        load_config("quantization_spec:\n  unused: {dtype: int5}\nquantization_config: {}\n")
    assert (
        _codes(info.value) == ["invalid-value"] and info.value.diagnostics[0].path == "quantization_spec.unused.dtype"
    )


def test_merge_keys_explicit_keys_win() -> None:
    text = """\
quantization_spec:
  base: &base {dtype: int4, qscheme: asymmetric}
  other: &other {dtype: uint8, qformulation: minval}
quantization_config:
  global_config:
    op_state_spec:
      weight:
        <<: [*base, *other]
        dtype: int2
"""
    loaded = load_config(text)
    w = loaded.config.global_config.op_state_spec["weight"]
    assert (w.dtype, str(w.qscheme), w.qformulation) == ("int2", "asymmetric", "minval")
    # The explicit key's span is its own line; merged keys point at their anchor.
    assert loaded.spans["quantization_config.global_config.op_state_spec.weight.dtype"].line == 9
    assert loaded.spans["quantization_config.global_config.op_state_spec.weight.qscheme"].line == 2


def test_errors_inside_an_aliased_node_are_reported_once_at_the_anchor() -> None:
    text = "quantization_spec:\n  a: &a {dtyp: int4}\nquantization_config:\n  global_config: {op_state_spec: {weight: *a, bias: *a}}\n"
    with pytest.raises(ConfigError) as info:
        load_config(text)
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line, d.span.col, d.help) == ("unknown-key", 2, 10, "did you mean `dtype`?")


@pytest.fixture
def hang_guard():
    """Fail instead of hanging if something loops (not a speed check)."""

    def _alarm(*_):
        raise TimeoutError("hung")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_alias_bomb_refused(hang_guard) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    lines.append("quantization_config: {preserved_attributes: *a9}")
    with pytest.raises(ConfigError) as info:
        load_config("\n".join(lines))
    (d,) = info.value.diagnostics
    assert d.code == "alias-bomb" and f"{EXPANSION_FLOOR:,}" in d.message and "alias bomb" in d.message


def test_recursive_alias_and_deep_nesting_are_errors(hang_guard) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("quantization_config: &r {global_config: *r}\n")
    assert _codes(info.value) == ["recursive-alias"]
    with pytest.raises(ConfigError) as info:
        load_config("quantization_config: " + "[" * 400 + "]" * 400 + "\n")
    assert info.value.diagnostics[0].code in ("yaml-syntax", "invalid-type")


@pytest.mark.parametrize(
    "text",
    [
        "quantization_config: !!python/object/apply:os.system [echo]\n",
        "quantization_config: !!python/name:os.system ''\n",
        "quantization_config: !custom {}\n",
        "quantization_config: {global_config: !!binary aGVsbG8=}\n",
    ],
)
def test_object_building_tags_refused(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    assert _codes(info.value) == ["unsafe-tag"]


def test_standard_tags_allowed() -> None:
    c = load_config("quantization_config: !!map {preserved_attributes: !!seq [!!str a]}\n").config
    assert c.preserved_attributes == ["a"]


def test_encoding_empty_and_top_level_errors(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes("quantization_config: {}\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    (d,) = info.value.diagnostics
    assert (d.code, d.span.file, d.span.line, d.span.col) == ("invalid-encoding", str(p), 2, 6)
    for text, code in [
        ("", "empty-document"),
        ("# nothing\n", "empty-document"),
        ("[1, 2]\n", "invalid-type"),
        ("7\n", "invalid-type"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(text)
        assert _codes(info.value) == [code]
    assert load_config("\ufeffquantization_config: {}\n").config == QuantizerConfig()  # a UTF-8 BOM is fine


def test_long_one_line_document_is_text_not_a_path() -> None:
    """One-line JSON longer than a file name may be (255 bytes) is read as text, not stat'ed."""
    doc = {"quantization_config": {"module_name_configs": {f"layer{i}": None for i in range(40)}}}
    text = json.dumps(doc)
    assert "\n" not in text and len(text) > 300
    assert load_config(text).config == QuantizerConfig.from_dict(doc)


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("does/not/exist.yaml")
    assert _codes(info.value) == ["unreadable-file"]
    with pytest.raises(ConfigError) as info:  # a directory is a path that cannot be read, not YAML text
        QuantizerConfig.from_yaml(str(tmp_path))
    assert _codes(info.value) == ["unreadable-file"] and "Is a directory" in str(info.value)


def test_empty_values_warn_but_explicit_nulls_do_not() -> None:
    text = "quantization_config:\n  global_config:\n    op_input_spec:\n    op_output_spec: ~\n    op_state_spec: {weight: null, bias: }\n"
    loaded = load_config(text)
    assert [(w.code, w.path) for w in loaded.warnings] == [
        ("empty-value", "quantization_config.global_config.op_input_spec"),
        ("empty-value", "quantization_config.global_config.op_state_spec.bias"),
    ]
    g = loaded.config.global_config
    assert g.op_input_spec == {"*": None} and g.op_output_spec == {"*": None}
    assert g.op_state_spec == {"weight": None, "bias": None}


def test_all_errors_reported_at_once_and_duplicate_tensor_keys() -> None:
    text = "quantization_config:\n  global_config:\n    op_input_spec: {0: null, '0': null}\n  execution_mode: grph\n  bogus: 1\n"
    with pytest.raises(ConfigError) as info:
        load_config(text)
    assert sorted(_codes(info.value)) == ["duplicate-key", "invalid-value", "unknown-key"]
    assert [d.span.line for d in info.value.diagnostics] == [3, 4, 5]  # sorted by position


def test_from_dict_errors_have_paths_but_no_spans() -> None:
    with pytest.raises(ConfigError) as info:
        QuantizerConfig.from_dict(
            {"quantization_config": {"global_config": {"op_state_spec": {"weight": {"dtype": "int3"}}}}}
        )
    (d,) = info.value.diagnostics
    assert d.span is None and d.path == "quantization_config.global_config.op_state_spec.weight.dtype"
    assert d.help == "did you mean `int2`?" or d.help == "did you mean `int8`?"
    with pytest.raises(ConfigError):
        QuantizerConfig.from_dict([])  # type: ignore[arg-type]


def test_python_warnings_become_diagnostics() -> None:
    text = (
        "quantization_spec:\n  a: &a {dtype: int4}\n  b: &a {dtype: int2}\nquantization_config:\n"
        '  module_name_configs: {"x[[a]": null}\n  global_config: {op_state_spec: {weight: *a}}\n'
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_config(text)
    assert [(w.code, w.span.line, w.span.col) for w in loaded.warnings] == [
        ("duplicate-anchor", 3, 6),
        ("regex-warning", 5, 25),
    ]
    assert "possible nested set" in loaded.warnings[1].message
    assert loaded.config.global_config.op_state_spec["weight"].dtype == "int2"  # the later anchor wins


def test_an_empty_value_is_placed_right_after_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("quantization_config:\n  execution_mode:\n  preserved_attributes: []\n")
    (d,) = info.value.diagnostics
    assert (d.span.line, d.span.col, d.message) == (2, 17, "expected one of `graph`, `eager`, got an empty value")
    span = load_config("quantization_config:\n  global_config:\n  execution_mode: eager\n").spans[
        "quantization_config.global_config"
    ]
    assert (span.line, span.col, span.end_line, span.end_col) == (2, 3, 2, 16)
