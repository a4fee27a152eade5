"""Cases of fixtures/apply_boundaries.yaml (SPEC §2.5), checked fact by fact."""

from __future__ import annotations

import pytest
from plan_cases import check_case, load_cases


@pytest.mark.parametrize("case", load_cases("apply_boundaries"))
def test_fixture(case):
    check_case(case)
