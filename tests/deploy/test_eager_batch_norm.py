"""Eager-mode finalized programs fold eval BatchNorms into the preceding quantized conv (for backends)."""

from __future__ import annotations

import torch

from qplan import models
from qplan.runtime import Quantizer
from qplan.schema.types import QuantizerConfig


def test_eager_program_has_quantized_convs_without_batch_norm() -> None:
    model, args = models.cnn()
    with torch.no_grad():  # non-trivial statistics
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    q = Quantizer(model, QuantizerConfig.presets.w8a8(), mode="eager")
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        prepared(*args)
        q.inference_mode()
        expected = prepared(*args)
    program = q.finalize()
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.batch_norm.default not in targets
    convs = [n for n in program.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    assert len(convs) == 2
    assert all(c.args[1].target == torch.ops.quantized_decomposed.dequantize_per_channel.default for c in convs)
    with torch.no_grad():
        out = program.module()(*args)
    # the same stored codes; only float rounding of s·k differs, within one output quantization step
    torch.testing.assert_close(out, expected, rtol=0, atol=0.004)
    assert (out == expected).float().mean() > 0.9
