"""Tensor keys accounted for (unknown-tensor-key, dead-rule): fixtures/tensor_keys.yaml."""

from __future__ import annotations

import pytest
from plan_cases import check_case, load_cases


@pytest.mark.parametrize("case", load_cases("tensor_keys"))
def test_fixture(case):
    check_case(case)


def test_configs_from_python_are_checked_the_same_and_huge_indices_do_not_crash():
    from inventories import MODELS

    from qplan.compiler import compile_inventory
    from qplan.schema import ModuleQuantizerConfig, QuantizerConfig

    key = "1" + "0" * 5000  # past int()'s default digit limit
    cfg = QuantizerConfig(
        global_config=ModuleQuantizerConfig(op_output_spec={key: None}, op_state_spec={"weigth": None})
    )
    plan = compile_inventory(MODELS["mlp"](), cfg)
    found = sorted((d.code, d.message[:40]) for d in plan.diagnostics if d.code == "unknown-tensor-key")
    assert found == [
        ("unknown-tensor-key", "op_output_spec key `10000000000000000..."),
        ("unknown-tensor-key", "op_state_spec key `weigth` names no stat"),
    ]
    assert all(d.span is None for d in plan.diagnostics)
