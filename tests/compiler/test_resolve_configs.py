"""Module-level resolution (SPEC §2.4 step 1): fixtures/resolve_configs.yaml, plus Python-only cases."""

from __future__ import annotations

import pytest
from inventories import nested
from plan_cases import check_case, load_cases

from qplan.compiler import compile_inventory
from qplan.schema.types import ModuleQuantizerConfig, QuantizationSpec, QuantizerConfig


@pytest.mark.parametrize("case", load_cases("resolve_configs"))
def test_fixture(case):
    check_case(case)


def test_python_config_has_no_spans_but_paths():
    cfg = QuantizerConfig().set_module_name(
        "enc", ModuleQuantizerConfig(op_state_spec={"weight": QuantizationSpec(dtype="int4")})
    )
    plan = compile_inventory(nested(), cfg)
    q = plan.by_address()["enc.l0.weight"]
    assert q.provenance.rule == "quantization_config.module_name_configs.enc.op_state_spec.weight"
    assert q.provenance.source is None
    assert plan.config.source == "<python>" and len(plan.config.sha256) == 64


def test_class_keys_given_as_types_match_exact_class():
    import torch

    cfg = QuantizerConfig().set_module_type(torch.nn.Linear, None)
    plan = compile_inventory(nested(), cfg)
    assert not any(q.role == "state" for q in plan.quantizers)
