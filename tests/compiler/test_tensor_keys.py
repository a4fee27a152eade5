"""Tensor keys accounted for (unknown-tensor-key, dead-rule): fixtures/tensor_keys.yaml."""

from __future__ import annotations

import pytest
from plan_cases import check_case, load_cases


@pytest.mark.parametrize("case", load_cases("tensor_keys"))
def test_fixture(case):
    check_case(case)
