"""Whole plans as golden files: the canonical JSON is byte-stable.

The golden plans were reviewed by hand against SPEC §2.5/§3 (fusion with bn-fold, shared qparams
over max_pool/flatten, per-channel weight axes, spec interning in first-use order). After an
intended change, regenerate with ``QPLAN_REGEN_GOLDEN=1 pytest tests/compiler/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from inventories import cnn, tied

from qplan.compiler import compile_inventory
from qplan.compiler.plan import decode_plan, encode_plan
from qplan.schema.loader import load_config

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "cnn_w8a8": (cnn, "quantization_config: {}\n"),
    "tied_w4_head": (
        tied,
        "quantization_config:\n  module_name_configs:\n    head:\n      op_state_spec: {weight: {dtype: int4}}\n",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_plan(name):
    make, text = CASES[name]
    data = encode_plan(compile_inventory(make(), load_config(text, name=f"{name}.yaml")))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("QPLAN_REGEN_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes()
    assert encode_plan(decode_plan(data)) == data  # decode/encode round trip is the identity
