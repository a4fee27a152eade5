"""No weight left behind in silence: `unquantized-weight` (issue 9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qplan import QuantizerConfig, compile_plan
from qplan.diagnostics import CompileError


class Hidden(nn.Module):
    """Weights read through an op outside the table (LSTM), and through an input slot (matmul)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.weight = nn.Parameter(torch.randn(8, 8))
        self.fc = nn.Linear(8, 4)
        self.ln = nn.LayerNorm(8)  # 1-D weight of a known op: not a weight of that kind

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(self.ln(y @ self.weight.T))


def args():
    return (torch.randn(2, 5, 8),)


def unquantized(plan):
    return {d.message.split("`")[1]: d for d in plan.diagnostics if d.code == "unquantized-weight"}


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_weights_left_float_are_named_with_module_op_and_reason(mode):
    plan = compile_plan(Hidden().eval(), QuantizerConfig.presets.w8a8(), args(), mode)
    found = unquantized(plan)
    assert set(found) == {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "weight"}
    lstm = found["lstm.weight_ih_l0"]
    assert lstm.level == "warning" and "module `lstm`" in lstm.message and "op `lstm.lstm`" in lstm.message
    assert "not in the op table" in lstm.message
    assert "op `matmul`" in found["weight"].message and "not through a weight slot" in found["weight"].message
    assert lstm.path == "quantization_config.global_config.op_state_spec.weight"
    assert "fc.weight" in {q.address for q in plan.quantizers}


def test_strict_makes_it_an_error():
    with pytest.raises(CompileError, match="unquantized-weight"):
        compile_plan(Hidden().eval(), QuantizerConfig.presets.w8a8(), args(), "eager", strict=True)


def test_declined_or_not_asked_for_is_silent():
    declined = QuantizerConfig.from_dict(
        {"quantization_config": {"global_config": {}, "module_name_configs": {"lstm": None}}}
    )
    found = unquantized(compile_plan(Hidden().eval(), declined, args(), "eager"))
    assert set(found) == {"weight"}  # the null rule declines the LSTM's weights
    no_weights = QuantizerConfig.from_dict(
        {"quantization_config": {"global_config": {"op_state_spec": {"weight": None}}}}
    )
    assert not unquantized(compile_plan(Hidden().eval(), no_weights, args(), "eager"))


def test_a_weight_the_op_table_reaches_is_not_reported():
    class Conv1DLike(nn.Module):  # transformers' Conv1D: addmm with the weight stored [in, out]
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(8, 6))
            self.bias = nn.Parameter(torch.zeros(6))

        def forward(self, x):
            return torch.addmm(self.bias, x, self.weight)

    plan = compile_plan(Conv1DLike(), QuantizerConfig.presets.w8a8(), (torch.randn(3, 8),), "graph")
    assert not unquantized(plan)
    (w,) = [q for q in plan.quantizers if q.address == "weight"]
    assert plan.specs[w.spec].axis == 1  # per output channel: [in, out] -> axis 1


class EinsumProjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Parameter(torch.randn(6, 8))

    def forward(self, x):
        return torch.einsum("bi,oi->bo", x, self.proj)


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_einsum_weight_needs_an_explicit_axis(mode):
    with pytest.raises(CompileError, match="missing-axis") as info:
        compile_plan(EinsumProjection(), QuantizerConfig.presets.w8a8(), (torch.randn(3, 8),), mode)
    assert "`proj`" in str(info.value) and "einsum" in str(info.value)
    axis0 = {"dtype": "int8", "qscheme": "symmetric", "granularity": {"type": "per_channel", "axis": 0}}
    cfg = QuantizerConfig.from_dict(
        {"quantization_config": {"global_config": {"op_type_config": {"einsum": {"op_state_spec": {"weight": axis0}}}}}}
    )
    plan = compile_plan(EinsumProjection(), cfg, (torch.randn(3, 8),), mode)
    (w,) = [q for q in plan.quantizers if q.address == "proj"]
    assert plan.specs[w.spec].axis == 0
