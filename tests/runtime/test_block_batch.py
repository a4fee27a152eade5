"""Per-block activation qparams never block the batch dimension (issue 9): a model prepared at one
batch size calibrates, runs and finalizes at others."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qplan.runtime.quantizer import Quantizer
from qplan.schema.types import QuantizerConfig


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(32, 16)
        self.fc2 = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _config(mode: str) -> QuantizerConfig:
    act = {"dtype": "int8", "granularity": {"type": "per_block", "block_size": 8, "axis": -1}}
    doc = {"global_config": {"op_input_spec": {"*": act}, "op_output_spec": {"*": act}}}
    return QuantizerConfig.from_dict({"quantization_config": doc}).set_execution_mode(mode)


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_per_block_activations_run_at_other_batch_sizes(mode: str) -> None:
    torch.manual_seed(0)
    model = _Net().eval()
    g = torch.Generator().manual_seed(1)
    q = Quantizer(model, _config(mode))
    p = q.prepare((torch.randn(4, 32, generator=g),))
    blocks = [m for m in q.fake_quants.values() if m.granularity == "per_block" and not m.is_weight]
    assert blocks and all(m.qparams_shape[0] == 1 for m in blocks)  # one block spans the batch
    q.calibration_mode()
    with torch.no_grad():
        for b in (8, 3, 4):  # the old layout failed here with "does not fit"
            p(torch.randn(b, 32, generator=g))
        q.inference_mode()
        x = torch.randn(6, 32, generator=g)
        out = p(x)
        assert out.shape == (6, 8)
        # every example shares its position's qparams: a row quantizes the same alone or in a batch
        assert torch.equal(p(x[2:3]), out[2:3])
        ref = p(x[:4])
        assert torch.equal(q.finalize().module()(x[:4]), ref)
