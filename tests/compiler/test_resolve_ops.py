"""Op-level resolution and tensor keys (SPEC §2.4 steps 2-3): fixtures/resolve_ops.yaml."""

from __future__ import annotations

import pytest
from plan_cases import check_case, load_cases


@pytest.mark.parametrize("case", load_cases("resolve_ops"))
def test_fixture(case):
    check_case(case)
