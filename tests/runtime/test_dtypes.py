"""fp16 and bf16 models prepare, train, finalize and run in their own dtype."""

from __future__ import annotations

import pytest
import torch
from tiny_llama import Logits, ids, tiny_llama

from qplan import models
from qplan.runtime.quantizer import Quantizer
from qplan.schema.types import QuantizerConfig

DTYPES = (torch.float16, torch.bfloat16)


def _run(model: torch.nn.Module, args: tuple, other: tuple, mode: str, config: QuantizerConfig) -> None:
    """Prepare, calibrate, one QAT step, finalize; the program keeps the dtype and follows the prepared model."""
    dtype = next(model.parameters()).dtype
    q = Quantizer(model, config.set_execution_mode(mode))
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        prepared(*args)
        prepared(*other)
    q.training_mode()
    prepared(*args).float().square().mean().backward()
    q.inference_mode()
    program = q.finalize().module()
    for inputs in (args, other):  # its own example inputs, then another batch
        with torch.no_grad():
            got, ref = program(*inputs), prepared(*inputs)
        assert got.dtype == ref.dtype == dtype
        tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
        torch.testing.assert_close(got.float(), ref.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_bundled_models_in_half_precision(name: str, dtype: torch.dtype) -> None:
    model, args = getattr(models, name)()
    model = model.to(dtype)
    args = tuple(a.to(dtype) for a in args)
    other = tuple(torch.cat([a, a, a]) for a in args)
    _run(model, args, other, "graph", QuantizerConfig.presets.w8a8())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_eager_mlp_in_half_precision(dtype: torch.dtype) -> None:
    model, args = models.mlp()
    model = model.to(dtype)
    args = tuple(a.to(dtype) for a in args)
    _run(model, args, tuple(a[:3] for a in args), "eager", QuantizerConfig.presets.w8a8())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_llama_in_half_precision(dtype: torch.dtype) -> None:
    _run(Logits(tiny_llama(dtype)), (ids(2, 8),), (ids(3, 5, seed=1),), "graph", QuantizerConfig.presets.w8())
