"""Dynamic batch and sequence dimensions: graph-mode prepare, calibration, training, finalize."""

from __future__ import annotations

import warnings

import pytest
import torch
from tiny_llama import Logits, ids, tiny_llama
from torch import nn
from torch.export import Dim

from qplan.compiler import compile_plan
from qplan.runtime.quantizer import Quantizer
from qplan.runtime.shapes import QplanShapeWarning
from qplan.schema.types import QuantizerConfig


def _w8a8() -> QuantizerConfig:
    return QuantizerConfig.presets.w8a8().set_execution_mode("graph")


class PlainCNN(nn.Module):
    """Conv, ReLU, global average pooling, Linear: nothing in it fixes the batch or the image size."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def _calibrate(q: Quantizer, batches: list[tuple]) -> None:
    q.calibration_mode()
    with torch.no_grad():
        for b in batches:
            q.prepared(*b)


def test_cnn_example_batch_of_one_runs_at_any_batch() -> None:
    model = PlainCNN().eval()
    q = Quantizer(model, _w8a8())
    with warnings.catch_warnings():
        warnings.simplefilter("error", QplanShapeWarning)  # nothing gets fixed
        prepared = q.prepare((torch.randn(1, 3, 8, 8),))
    _calibrate(q, [(torch.randn(3, 3, 8, 8),), (torch.randn(5, 3, 8, 8),)])
    q.training_mode()
    prepared(torch.randn(6, 3, 8, 8)).square().mean().backward()
    q.inference_mode()
    program = q.finalize().module()
    for shape in [(1, 3, 8, 8), (7, 3, 8, 8), (2, 3, 12, 12)]:  # other batch, other image size
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(program(x), prepared(x), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def llama_w8a8() -> tuple[Quantizer, nn.Module]:
    model = Logits(tiny_llama())
    q = Quantizer(model, _w8a8())
    q.prepare((ids(1, 8),))  # the example of text generation: one sequence
    _calibrate(q, [(ids(3, 8, seed=1),), (ids(2, 5, seed=2),)])
    q.training_mode()
    q.prepared(ids(4, 6, seed=3)).float().square().mean().backward()
    q.inference_mode()
    return q, q.finalize().module()


def test_llama_logits_calibrates_and_finalizes_at_any_batch_and_length(llama_w8a8) -> None:
    q, program = llama_w8a8
    for b, t in [(1, 8), (3, 8), (2, 5), (1, 1)]:
        x = ids(b, t, seed=b * 10 + t)
        with torch.no_grad():
            torch.testing.assert_close(program(x), q.prepared(x), atol=1e-4, rtol=1e-4)


def test_finalized_llama_generates_text(llama_w8a8) -> None:
    q, program = llama_w8a8
    seq = ids(2, 3, seed=5)
    with torch.no_grad():
        for _ in range(4):  # greedy decoding: the sequence grows by one token per step
            nxt = program(seq)[:, -1].argmax(-1, keepdim=True)
            assert torch.equal(nxt, q.prepared(seq)[:, -1].argmax(-1, keepdim=True))
            seq = torch.cat([seq, nxt], dim=1)
    assert seq.shape == (2, 7)


class FixedBatch(nn.Module):
    """Adds a buffer of batch 4: the batch dimension cannot vary."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.register_buffer("bias", torch.ones(4, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.bias


def test_a_fixed_batch_dimension_is_reported() -> None:
    q = Quantizer(FixedBatch().eval(), _w8a8())
    with pytest.warns(QplanShapeWarning, match=r"batch dimension of input `x` \(dim 0\) is fixed to 4") as rec:
        q.prepare((torch.randn(4, 16),))
    assert "model's code needs size 4" in str(rec[0].message)
    assert 0 not in {d for _, d in q.dynamic_dims}


def test_an_example_of_size_one_fixed_by_the_user_spec_is_explained() -> None:
    q = Quantizer(PlainCNN().eval(), _w8a8())
    batch = Dim("batch", min=1, max=64)
    q.prepare((torch.randn(2, 3, 8, 8),), dynamic_shapes=({0: batch},))  # torch's own convention
    assert q.dynamic_dims == {(0, 0)}  # only what the user asked for
    _calibrate(q, [(torch.randn(9, 3, 8, 8),)])
    q.inference_mode()
    program = q.finalize().module()
    assert program(torch.randn(5, 3, 8, 8)).shape == (5, 4)
    with pytest.raises(Exception, match="size"):  # the image size stays the example's
        program(torch.randn(5, 3, 10, 10))


def test_plan_compiled_at_one_batch_applies_at_another() -> None:
    model = PlainCNN().eval()
    plan = compile_plan(model, _w8a8(), (torch.randn(2, 3, 8, 8),), "graph")
    q = Quantizer(model, plan)
    q.prepare((torch.randn(1, 3, 8, 8),))  # same fingerprint, plan entries unchanged
    assert q.plan is plan
    _calibrate(q, [(torch.randn(6, 3, 8, 8),)])
