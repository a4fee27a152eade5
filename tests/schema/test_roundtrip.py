"""Lossless round trips: ``from_dict(c.to_dict()) == c`` and ``from_yaml(c.to_yaml()) == c``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from schema_strategies import document

from qplan import ConfigError, ModuleQuantizerConfig, OpQuantizerConfig, QATSchedule, QuantizationSpec, QuantizerConfig
from qplan.schema.loader import config_from_document
from qplan.schema.presets import PRESETS
from qplan.schema.types import PerBlockGranularity, PerChannelGranularity


def _roundtrip(c: QuantizerConfig) -> None:
    d = c.to_dict()
    assert QuantizerConfig.from_dict(d) == c
    assert QuantizerConfig.from_dict(d).to_dict() == d  # to_dict is canonical
    assert QuantizerConfig.from_yaml(c.to_yaml()) == c


@settings(max_examples=120, deadline=None)
@given(document)
def test_roundtrip_of_generated_configs(doc: dict) -> None:
    try:
        c = config_from_document(doc)
    except ConfigError:
        assume(False)
    _roundtrip(c)


# Keys and strings that YAML would read as something else unless the dumper quotes them.
_TRICKY = st.sampled_from(["null", "true", "~", "1", "1.5", "0x10", "a: b", "#x", "- x", "enc.*", "'q'", "é", ""])


@settings(max_examples=60, deadline=None)
@given(st.lists(_TRICKY.filter(bool), max_size=3), st.lists(_TRICKY, max_size=3))
def test_roundtrip_quotes_yaml_lookalikes(names: list[str], attributes: list[str]) -> None:
    c = QuantizerConfig(preserved_attributes=attributes)
    for name in names:
        c.set_module_name(name, None)
    _roundtrip(c)


def test_roundtrip_of_hand_built_configs() -> None:
    spec = QuantizationSpec(
        dtype=torch.float8_e4m3fn, float_range=(-6.0, None), granularity=PerChannelGranularity(axis=-1)
    )
    block = QuantizationSpec(dtype="int4", granularity=PerBlockGranularity(block_size=[1, -1]))
    m = ModuleQuantizerConfig(
        op_input_spec={0: spec, "1": None},
        op_state_spec=None,
        op_type_config={"matmul": None, "linear": OpQuantizerConfig(op_state_spec={"weight": block})},
        module_output_spec={"0": block},
        qat_schedule=QATSchedule(enable_observer=1, enable_fake_quant=3, disable_observer=10),
    )
    c = QuantizerConfig(global_config=None).set_module_type(torch.nn.Linear, m).set_execution_mode("eager")
    c.set_module_name(r"blocks\.[0-3]\..*", ModuleQuantizerConfig(op_input_spec={}))
    _roundtrip(c)
    assert QuantizerConfig().to_dict() == {"quantization_config": {}}


@pytest.mark.parametrize("name", list(PRESETS))
def test_roundtrip_of_presets(name: str) -> None:
    _roundtrip(getattr(QuantizerConfig.presets, name)())
