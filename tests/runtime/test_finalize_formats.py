"""finalize() for models export cannot trace, `finalize(format="module")`, and transformers models
with their default outputs (a `DynamicCache` inside `CausalLMOutputWithPast`)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from qplan import QuantizerConfig
from qplan.diagnostics import QplanError
from qplan.models import mlp
from qplan.runtime import Quantizer
from qplan.runtime.export_errors import ExportFailedError


class DataDependent(nn.Module):
    """Branches on a tensor's value: eager capture works, `torch.export` cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if h.sum() > 0:  # the line the error must point at
            return self.b(h)
        return -self.b(h)


def _calibrated(model: nn.Module, args: tuple, mode: str, seed: int = 0) -> Quantizer:
    q = Quantizer(model, QuantizerConfig().set_execution_mode(mode))
    prepared = q.prepare(args)
    q.calibration_mode()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(3):
            prepared(*(torch.randn(a.shape, generator=g) if a.is_floating_point() else a for a in args))
    q.inference_mode()
    return q


@pytest.mark.filterwarnings("ignore::qplan.runtime.eager.QplanUnknownOpWarning")
def test_an_untraceable_model_is_one_clear_error_without_torch_output(capfd: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    q = _calibrated(DataDependent(), (torch.randn(4, 8),), "eager")
    with pytest.raises(ExportFailedError) as info:
        q.finalize()
    message = str(info.value)
    assert isinstance(info.value, QplanError)
    assert "data-dependent control flow" in message
    assert f"{__file__}:" in message and "if h.sum() > 0" in message  # the user's line, not torch's
    assert 'finalize(format="module")' in message
    err = capfd.readouterr().err
    assert "def forward" not in err and "Traceback" not in err, err[:500]


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_module_format_stores_integer_weights_and_round_trips_its_state_dict(mode: str) -> None:
    model, args = mlp()
    q = _calibrated(model, args, mode, seed=0)
    with torch.no_grad():
        expected = q.prepared(*args)
    module = q.finalize(format="module")
    assert isinstance(module, nn.Module) and not isinstance(module, torch.export.ExportedProgram)
    state = module.state_dict()
    int_weights = [k for k, v in state.items() if v.dtype == torch.int8 and v.dim() == 2]
    assert len(int_weights) == sum(isinstance(m, nn.Linear) for m in model.modules())
    assert not [k for k, v in state.items() if v.is_floating_point() and v.dim() == 2], "a float weight is left"
    with torch.no_grad():
        torch.testing.assert_close(module(*args), expected, rtol=0, atol=1e-6)

    buffer = io.BytesIO()
    torch.save(state, buffer)
    other = _calibrated(mlp()[0], args, mode, seed=1).finalize(format="module")
    with torch.no_grad():
        assert not torch.allclose(other(*args), expected, atol=1e-6)  # different calibration, different output
        buffer.seek(0)
        other.load_state_dict(torch.load(buffer))
        torch.testing.assert_close(other(*args), expected, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::qplan.runtime.eager.QplanUnknownOpWarning")  # `-self.b(h)` was not captured
def test_module_format_serves_a_model_export_cannot_trace() -> None:
    torch.manual_seed(0)
    args = (torch.randn(4, 8),)
    q = _calibrated(DataDependent(), args, "eager")
    with torch.no_grad():
        torch.testing.assert_close(q.finalize(format="module")(*args), q.prepared(*args), rtol=0, atol=1e-6)


def test_unknown_format_is_an_error() -> None:
    model, args = mlp()
    with pytest.raises(QplanError, match="unknown finalize format `onnx`"):
        _calibrated(model, args, "eager").finalize(format="onnx")  # type: ignore[call-overload]


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_llama_with_default_attention_and_cache_finalizes(mode: str) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(0))
    q = _calibrated(model, (ids,), mode)
    with torch.no_grad():
        expected = q.prepared(ids)
        out = q.finalize().module()(ids)
    assert out.past_key_values is not None  # the cache is part of the program's output
    torch.testing.assert_close(out.logits, expected.logits, rtol=1e-4, atol=1e-4)
