"""SPEC §1 rules on the config types, built from Python (and the same rules through the loader)."""

from __future__ import annotations

import warnings

import msgspec
import pytest
import torch

import qplan
from qplan import (
    ConfigError,
    ExecutionMode,
    ModuleQuantizerConfig,
    OpQuantizerConfig,
    PerBlockGranularity,
    PerChannelGranularity,
    PerTensorGranularity,
    QATSchedule,
    QuantizationScheme,
    QuantizationSpec,
    QuantizerConfig,
)
from qplan.schema.presets import PRESETS
from qplan.schema.types import default_activation_spec, default_weight_spec


def _doc(config: dict) -> dict:
    return {"quantization_config": config}


# -- public surface --------------------------------------------------------------------------
def test_public_names_are_the_spec_names() -> None:
    spec_names = {
        "QuantizationSpec",
        "PerTensorGranularity",
        "PerChannelGranularity",
        "PerBlockGranularity",
        "QuantizationScheme",
        "OpQuantizerConfig",
        "ModuleQuantizerConfig",
        "QuantizerConfig",
        "QATSchedule",
        "ExecutionMode",
    }
    entry_points = {"load_config", "compile_plan", "load_plan", "Quantizer", "load_program"}
    errors = {"QplanError", "ConfigError", "CompileError"}
    assert set(qplan.__all__) == spec_names | entry_points | errors
    for name in qplan.__all__:
        assert getattr(qplan, name) is not None


# -- QuantizationSpec (§1.2) ----------------------------------------------------------------
def test_spec_defaults() -> None:
    s = QuantizationSpec()
    assert (s.dtype, s.qscheme, s.qformulation) == ("int8", QuantizationScheme.symmetric, "zp")
    assert s.granularity == PerTensorGranularity()
    assert (s.qparam_calculator_cls, s.range_calculator_cls, s.fake_quantize_cls) == ("default", "minmax", "default")
    assert s.float_range == (None, None) and s.scale_dtype is None


def test_default_helpers() -> None:
    assert default_activation_spec() == QuantizationSpec(qparam_calculator_cls="moving_average")
    w = default_weight_spec()
    assert w.granularity == PerChannelGranularity() and w.granularity.axis is None and w.dtype == "int8"


def test_spec_is_immutable_and_hashable() -> None:
    s = QuantizationSpec(dtype="int4")
    with pytest.raises(AttributeError):
        s.dtype = "int8"  # type: ignore[misc]
    assert {s: 1}[QuantizationSpec(dtype="int4")] == 1
    assert hash(QuantizationSpec(granularity=PerBlockGranularity(block_size=[1, 32]))) == hash(
        QuantizationSpec(granularity=PerBlockGranularity(block_size=(1, 32)))
    )


@pytest.mark.parametrize(
    ("alias", "canonical"), [("float8_e4m3", "float8_e4m3fn"), ("float4_e2m1fn", "float4_e2m1fn_x2")]
)
def test_dtype_aliases(alias: str, canonical: str) -> None:
    assert QuantizationSpec(dtype=alias).dtype == canonical
    loaded = QuantizerConfig.from_dict(_doc({"global_config": {"op_input_spec": {"*": {"dtype": alias}}}}))
    assert loaded.global_config.op_input_spec["*"].dtype == canonical


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (torch.int8, "int8"),
        (torch.uint8, "uint8"),
        (torch.float8_e4m3fn, "float8_e4m3fn"),
        (torch.float8_e5m2, "float8_e5m2"),
    ],
)
def test_torch_dtype_accepted(dtype: torch.dtype, name: str) -> None:
    assert QuantizationSpec(dtype=dtype).dtype == name
    doc = _doc({"global_config": {"op_state_spec": {"weight": {"dtype": dtype}}}})
    assert QuantizerConfig.from_dict(doc).global_config.op_state_spec["weight"].dtype == name


CROSS_FIELD = [
    (
        dict(dtype="float8_e4m3fn", qscheme="asymmetric"),
        "float dtype `float8_e4m3fn` needs qscheme `symmetric`, got `asymmetric`",
    ),
    (
        dict(dtype="float4_e2m1fn_x2", qformulation="minval"),
        "float dtype `float4_e2m1fn_x2` needs qformulation `zp`, got `minval`",
    ),
    (
        dict(dtype="int8", scale_dtype="float8_e8m0fnu"),
        "scale_dtype `float8_e8m0fnu` is only for float dtypes, not `int8`",
    ),
    (
        dict(qscheme="symmetric_with_clipping", qparam_calculator_cls="dynamic"),
        "qscheme `symmetric_with_clipping` is not allowed with qparam_calculator_cls `dynamic`",
    ),
    (
        dict(qparam_calculator_cls="dynamic", float_range=[None, 1.0]),
        "qparam_calculator_cls `dynamic` needs float_range `[null, null]`",
    ),
    (dict(float_range=[0.5, 1.0]), "float_range min (0.5) must be <= 0"),
    (dict(float_range=[-2.0, -1.0]), "float_range max (-1.0) must be >= 0"),
    (dict(float_range=[0.0, 0.0]), "float_range min (0.0) must be < max (0.0)"),
    (dict(float_range=[float("-inf"), 1.0]), "float_range min (-inf) must be finite; use null for a learned bound"),
    (dict(float_range=[None, float("nan")]), "float_range max (nan) must be finite; use null for a learned bound"),
]


@pytest.mark.parametrize(("kwargs", "message"), CROSS_FIELD, ids=[m[:40] for _, m in CROSS_FIELD])
def test_spec_cross_field_rules_same_message_in_python_and_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        QuantizationSpec(**kwargs)
    assert str(info.value) == message
    with pytest.raises(ConfigError) as info2:
        QuantizerConfig.from_dict(_doc({"global_config": {"op_input_spec": {"*": kwargs}}}))
    assert [d.message for d in info2.value.diagnostics] == [message]
    assert info2.value.diagnostics[0].code == "cross-field"


def test_float_spec_with_e8m0_scales_is_valid() -> None:
    s = QuantizationSpec(
        dtype="float4_e2m1fn", scale_dtype="float8_e8m0fnu", granularity=PerBlockGranularity(block_size=32)
    )
    assert s.is_float and s.dtype == "float4_e2m1fn_x2"


def test_dynamic_with_learned_range_is_valid() -> None:
    assert QuantizationSpec(qparam_calculator_cls="dynamic", qscheme="asymmetric").float_range == (None, None)


def test_granularity_rules() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"type": "per_tensor", "axis": 0}, PerTensorGranularity)  # per_tensor has no axis
    with pytest.raises(ValueError, match="excludes `axis`"):
        PerBlockGranularity(block_size=[1, 32], axis=0)
    with pytest.raises(ValueError, match="must be positive"):
        PerBlockGranularity(block_size=0)
    with pytest.raises(ValueError, match="positive or -1"):
        PerBlockGranularity(block_size=[-2, 4])
    assert PerBlockGranularity(block_size=[-1, 32]).block_size == (-1, 32)
    assert PerChannelGranularity(axis=1).axis == 1


# -- tensor dicts (§1.3) ----------------------------------------------------------------------
def test_op_config_defaults() -> None:
    op = OpQuantizerConfig()
    assert op.op_input_spec == {"*": default_activation_spec()}
    assert op.op_output_spec == {"*": default_activation_spec()}
    assert op.op_state_spec == {"weight": default_weight_spec()}


def test_null_empty_and_omitted_fields() -> None:
    doc = _doc({"global_config": {"op_input_spec": None, "op_output_spec": {}}})
    g = QuantizerConfig.from_dict(doc).global_config
    assert g.op_input_spec == {"*": None}  # null: decline all
    assert g.op_output_spec == {}  # {}: no opinion
    assert g.op_state_spec == {"weight": default_weight_spec()}  # omitted: the default
    assert OpQuantizerConfig(op_input_spec=None).op_input_spec == {"*": None}


def test_from_dict_accepts_built_values_inside_the_document() -> None:
    w4 = ModuleQuantizerConfig.presets.w4_per_block(64)
    doc = _doc(
        {
            "global_config": w4,
            "module_name_configs": {"head": {"op_state_spec": {"weight": QuantizationSpec(dtype="int2")}}},
        }
    )
    doc["quantization_config"]["module_type_configs"] = {torch.nn.Linear: None}
    c = QuantizerConfig.from_dict(doc)
    assert c.global_config == w4
    assert c.module_type_configs == {"torch.nn.modules.linear.Linear": None}
    assert c.module_name_configs["head"].op_state_spec["weight"] == QuantizationSpec(dtype="int2")


def test_int_tensor_keys_become_strings() -> None:
    doc = _doc({"global_config": {"op_input_spec": {0: None, "1": {"dtype": "int4"}}}})
    assert QuantizerConfig.from_dict(doc).global_config.op_input_spec == {
        "0": None,
        "1": QuantizationSpec(dtype="int4"),
    }
    assert OpQuantizerConfig(op_input_spec={0: None}).op_input_spec == {"0": None}


def test_mixed_tensor_keys_rejected() -> None:
    with pytest.raises(ValueError, match="mix indices and names"):
        OpQuantizerConfig(op_input_spec={"0": None, "input": None})
    assert OpQuantizerConfig(op_input_spec={"*": None, "0": None}).op_input_spec == {"*": None, "0": None}
    with pytest.raises(ConfigError) as info:
        QuantizerConfig.from_dict(_doc({"global_config": {"op_state_spec": {"weight": None, 1: None}}}))
    (d,) = info.value.diagnostics
    assert d.code == "mixed-tensor-keys" and d.path == "quantization_config.global_config.op_state_spec"


# -- module and quantizer configs (§1.4) ------------------------------------------------------
def test_module_config_defaults() -> None:
    m = ModuleQuantizerConfig()
    assert m.op_type_config == {} and m.op_name_config == {}
    assert m.module_input_spec == m.module_output_spec == m.module_state_spec == {}
    assert m.qat_schedule is None and not m.has_module_specs


def test_quantizer_config_defaults() -> None:
    c = QuantizerConfig()
    assert c.global_config == ModuleQuantizerConfig()
    assert c.module_type_configs == {} and c.module_name_configs == {}
    assert c.execution_mode is ExecutionMode.graph and c.preserved_attributes is None
    assert QuantizerConfig.from_dict(_doc({})) == c


def test_empty_global_config_is_null_but_empty_mapping_is_w8a8() -> None:
    loaded = qplan.load_config("quantization_config:\n  global_config:\n")
    assert loaded.config.global_config is None
    assert [d.code for d in loaded.warnings] == ["empty-value"]
    explicit = qplan.load_config("quantization_config:\n  global_config: null\n")
    assert explicit.config.global_config is None and explicit.warnings == []
    w8a8 = qplan.load_config("quantization_config:\n  global_config: {}\n")
    assert w8a8.config.global_config == ModuleQuantizerConfig() and w8a8.warnings == []


@pytest.mark.parametrize("cls", [QuantizerConfig, ModuleQuantizerConfig])
def test_final_classes(cls: type) -> None:
    with pytest.raises(TypeError, match="final"):
        type("Sub", (cls,), {})


def test_global_config_must_not_set_module_specs() -> None:
    with_boundary = ModuleQuantizerConfig(module_input_spec={"0": QuantizationSpec()})
    with pytest.raises(ValueError, match="global_config must not set module_input_spec"):
        QuantizerConfig(global_config=with_boundary)
    with pytest.raises(ValueError, match="global_config must not set"):
        QuantizerConfig().set_global(with_boundary)
    assert QuantizerConfig().set_module_name("enc", with_boundary).module_name_configs["enc"] is with_boundary


def test_invalid_regexes_rejected() -> None:
    with pytest.raises(ValueError, match="invalid module_name_configs regex `enc.\\(`"):
        QuantizerConfig(module_name_configs={"enc.(": None})
    with pytest.raises(ValueError, match="invalid op_name_config regex"):
        ModuleQuantizerConfig(op_name_config={"[": None})
    with pytest.raises(ValueError, match="invalid module_name_configs regex"):
        QuantizerConfig().set_module_name("(", None)
    # patterns `re` rejects with OverflowError / RecursionError instead of re.error
    with pytest.raises(ValueError, match="repetition number is too large"):
        QuantizerConfig().set_module_name("a{99999999999}", None)
    with pytest.raises(ValueError, match="invalid op_name_config regex `\\(\\(\\(.*\\.\\.\\.`: maximum recursion"):
        ModuleQuantizerConfig(op_name_config={"(" * 3000 + ")" * 3000: None})


def test_pt2e_is_a_deprecated_alias_of_graph() -> None:
    with pytest.warns(DeprecationWarning, match="pt2e"):
        assert QuantizerConfig(execution_mode="PT2E").execution_mode is ExecutionMode.graph
    with pytest.warns(DeprecationWarning):
        assert QuantizerConfig().set_execution_mode("pt2e").execution_mode is ExecutionMode.graph
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loader reports a diagnostic instead of a Python warning
        loaded = qplan.load_config("quantization_config:\n  execution_mode: Pt2e\n")
    assert loaded.config.execution_mode is ExecutionMode.graph
    (w,) = loaded.warnings
    assert (w.code, w.level, w.span.line, w.span.col) == ("deprecated", "warning", 2, 19)


# -- setters ------------------------------------------------------------------------------------
def test_setters_chain_and_set() -> None:
    c = QuantizerConfig()
    w4 = ModuleQuantizerConfig.presets.w4()
    out = (
        c.set_execution_mode("eager")
        .set_global(None)
        .set_module_type(torch.nn.Linear, w4)
        .set_module_name(r"enc\..*", None)
    )
    assert out is c
    assert c.execution_mode is ExecutionMode.eager and c.global_config is None
    assert c.module_type_configs == {"torch.nn.modules.linear.Linear": w4}
    assert c.module_name_configs == {r"enc\..*": None}
    c.set_module_type("MySelfAttention", None)
    assert "MySelfAttention" in c.module_type_configs
    with pytest.raises(ValueError, match="not a class name or import path"):
        c.set_module_type("torch.nn.Linear()", None)


def test_only_for_moves_global_to_targets() -> None:
    g = ModuleQuantizerConfig.presets.w8()
    c = QuantizerConfig(global_config=g).only_for(torch.nn.Linear, r"blocks\.0\..*")
    assert c.global_config is None
    assert c.module_type_configs == {"torch.nn.modules.linear.Linear": g}
    assert c.module_name_configs == {r"blocks\.0\..*": g}


def test_without_declines_targets() -> None:
    c = QuantizerConfig().without(torch.nn.Conv2d, "head")
    assert c.global_config == ModuleQuantizerConfig()
    assert c.module_type_configs == {"torch.nn.modules.conv.Conv2d": None}
    assert c.module_name_configs == {"head": None}


# -- presets (§1.6) -----------------------------------------------------------------------------
def test_preset_registry() -> None:
    assert list(PRESETS) == ["w8", "w4", "w4_per_block", "w8a8", "fp8", "mxfp4"]
    for name in PRESETS:
        config = getattr(QuantizerConfig.presets, name)()
        assert isinstance(config, QuantizerConfig)
        assert config.global_config == getattr(ModuleQuantizerConfig.presets, name)()
    with pytest.raises(AttributeError, match="no preset `w3`"):
        QuantizerConfig.presets.w3  # noqa: B018


@pytest.mark.parametrize(("name", "dtype"), [("w8", "int8"), ("w4", "int4")])
def test_weight_only_per_channel_presets(name: str, dtype: str) -> None:
    m = getattr(ModuleQuantizerConfig.presets, name)(axis=1)
    assert m.op_input_spec == {"*": None} and m.op_output_spec == {"*": None}
    assert m.op_state_spec == {"weight": QuantizationSpec(dtype=dtype, granularity=PerChannelGranularity(axis=1))}
    assert getattr(ModuleQuantizerConfig.presets, name)().op_state_spec["weight"].granularity.axis is None


def test_w4_per_block_preset() -> None:
    m = ModuleQuantizerConfig.presets.w4_per_block(block_size=64)
    w = m.op_state_spec["weight"]
    assert (w.dtype, w.qscheme, w.granularity) == (
        "int4",
        QuantizationScheme.symmetric,
        PerBlockGranularity(block_size=64),
    )
    assert m.op_input_spec == {"*": None} and m.op_output_spec == {"*": None}
    assert ModuleQuantizerConfig.presets.w4_per_block().op_state_spec["weight"].granularity.block_size == 32


def test_w8a8_fp8_and_mxfp4_presets() -> None:
    assert ModuleQuantizerConfig.presets.w8a8() == ModuleQuantizerConfig()
    fp8 = ModuleQuantizerConfig.presets.fp8()
    assert fp8.op_state_spec["weight"].dtype == "float8_e4m3fn"
    assert isinstance(fp8.op_state_spec["weight"].granularity, PerChannelGranularity)
    assert fp8.op_input_spec["*"].dtype == fp8.op_output_spec["*"].dtype == "float8_e4m3fn"
    assert fp8.op_input_spec["*"].granularity == PerTensorGranularity()
    mx = ModuleQuantizerConfig.presets.mxfp4()
    w = mx.op_state_spec["weight"]
    assert (w.dtype, w.granularity, w.scale_dtype) == (
        "float4_e2m1fn_x2",
        PerBlockGranularity(block_size=32),
        "float8_e8m0fnu",
    )
    assert mx.op_input_spec["*"].dtype == "float8_e4m3fn"


# -- QATSchedule (§1.5) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(enable_observer=10, enable_fake_quant=5), "enable_fake_quant (5) must be >= enable_observer (10)"),
        (
            dict(enable_observer=5, enable_fake_quant=5, disable_observer=5),
            "disable_observer (5) must be > enable_observer (5)",
        ),
        (
            dict(enable_observer=0, enable_fake_quant=8, disable_observer=4),
            "disable_observer (4) must be >= enable_fake_quant (8)",
        ),
        (dict(enable_observer=-1), "enable_observer (-1) must be >= 0"),
    ],
)
def test_schedule_rules(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        QATSchedule(**kwargs)
    assert str(info.value) == message


def test_schedule_defaults_and_immutability() -> None:
    s = QATSchedule()
    assert (s.enable_observer, s.enable_fake_quant, s.disable_observer) == (0, 0, None)
    with pytest.raises(AttributeError):
        s.enable_observer = 3  # type: ignore[misc]


def test_schedule_state_function() -> None:
    s = QATSchedule(enable_observer=2, enable_fake_quant=4, disable_observer=6)
    observer = [s.observer_on(step) for step in range(8)]
    fake = [s.fake_quant_on(step) for step in range(8)]
    assert observer == [False, False, True, True, True, True, False, False]
    assert fake == [False, False, False, False, True, True, True, True]
    never = QATSchedule(enable_observer=1, enable_fake_quant=1)
    assert never.observer_on(10**6) and not never.observer_on(0)
