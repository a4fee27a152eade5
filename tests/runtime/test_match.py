"""Address parsing and fake-quant naming used by both runtime modes."""

from __future__ import annotations

import pytest

from qplan.runtime.match import PlanMismatchError, Reader, Source, module_name, parse_reader, parse_source


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("blocks.0.fc1.linear:in0", "fq__blocks_0_fc1_linear__in0"),
        ("fc1.weight", "fq__fc1_weight"),
        ("add:out0", "fq__add__out0"),
        (":in1", "fq____in1"),
        ("enc.layers.3.attn:out0", "fq__enc_layers_3_attn__out0"),
    ],
)
def test_module_names_are_sanitised_addresses(address: str, name: str) -> None:
    assert module_name(address) == name
    assert name.isidentifier()


def test_sources() -> None:
    assert parse_source("fc1.linear:out2") == Source("op", op="fc1.linear", index=2)
    assert parse_source("blocks.0.fc1.weight") == Source("param", fqn="blocks.0.fc1.weight")
    assert parse_source(":in3") == Source("input", index=3)
    for bad in ("fc1.linear:in0", ":out0", "x:weird"):
        with pytest.raises(PlanMismatchError, match="source address"):
            parse_source(bad)


def test_readers() -> None:
    assert parse_reader("fc2.linear:in1") == Reader("input", op="fc2.linear", index=1)
    assert parse_reader("fc1.linear:weight") == Reader("state", op="fc1.linear", state="weight")
    assert parse_reader(":out0") == Reader("output", index=0)
    for bad in ("fc1.weight", ":in0", "fc1.linear:out0"):
        with pytest.raises(PlanMismatchError):
            parse_reader(bad)
