"""Cases of fixtures/resolve_edges.yaml (SPEC §2.5), checked fact by fact."""

from __future__ import annotations

import pytest
from plan_cases import check_case, load_cases


@pytest.mark.parametrize("case", load_cases("resolve_edges"))
def test_fixture(case):
    check_case(case)
