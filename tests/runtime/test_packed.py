"""Packed sub-byte weight storage in finalized programs: exact outputs, real size on disk."""

from __future__ import annotations

import pytest
import torch

from qplan import models
from qplan.runtime import Quantizer
from qplan.runtime.packing import pack_codes, unpack_codes
from qplan.schema.types import (
    ModuleQuantizerConfig,
    PerBlockGranularity,
    PerChannelGranularity,
    PerTensorGranularity,
    QuantizationSpec,
    QuantizerConfig,
)


@pytest.mark.parametrize(
    ("bits", "lo", "hi", "dtype"),
    [(4, -8, 7, torch.int8), (4, 0, 15, torch.uint8), (2, -2, 1, torch.int8), (2, 0, 3, torch.uint8)],
)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 33])
def test_pack_unpack_round_trip(bits, lo, hi, dtype, n) -> None:
    q = torch.randint(lo, hi + 1, (3, 4, n), generator=torch.Generator().manual_seed(n)).to(dtype)
    packed = pack_codes(q, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 4, -(-n // (8 // bits)))
    out = unpack_codes(packed, bits, n, signed=dtype == torch.int8)
    assert out.dtype == dtype and torch.equal(out, q)


def _weight_only(spec: QuantizationSpec) -> QuantizerConfig:
    module = ModuleQuantizerConfig(op_input_spec=None, op_output_spec=None, op_state_spec={"weight": spec})
    return QuantizerConfig(global_config=None, module_type_configs={"torch.nn.Linear": module})


def _stored(program: torch.export.ExportedProgram) -> dict[str, torch.Tensor]:
    return {k: v for k, v in program.state_dict.items() if "weight" in k} | {
        k: v for k, v in program.constants.items() if isinstance(v, torch.Tensor)
    }


@pytest.mark.parametrize("mode", ["graph", "eager"])
@pytest.mark.parametrize(
    ("dtype", "granularity", "qscheme"),
    [
        ("int4", PerChannelGranularity(), "symmetric"),
        ("uint4", PerChannelGranularity(), "asymmetric"),
        ("int4", PerBlockGranularity(block_size=5), "symmetric"),
        ("uint4", PerBlockGranularity(block_size=5), "asymmetric"),
        ("int2", PerTensorGranularity(), "symmetric"),
        ("uint2", PerBlockGranularity(block_size=5), "asymmetric"),
    ],
)
def test_packed_program_reproduces_the_prepared_model(mode, dtype, granularity, qscheme) -> None:
    torch.manual_seed(0)
    model = models.MLP(n_layers=3, width=25, in_features=15).eval()  # odd last dims: padding
    args = (torch.randn(4, 15),)
    config = _weight_only(QuantizationSpec(dtype=dtype, granularity=granularity, qscheme=qscheme))
    q = Quantizer(model, config, mode=mode)
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        prepared(*args)
    q.inference_mode()
    program = q.finalize()
    stored = [t for t in _stored(program).values() if t.dtype == torch.uint8]
    per_byte = 8 // int(dtype[-1])
    assert any(t.shape == (25, -(-15 // per_byte)) for t in stored), [t.shape for t in stored]
    assert not any(t.dtype == torch.int8 for t in _stored(program).values())
    with torch.no_grad():
        for x in (args[0], torch.randn(4, 15) * 3):
            torch.testing.assert_close(program.module()(x), prepared(x), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_w4_weight_only_program_is_packed_on_disk(tmp_path, mode) -> None:
    """int4 stored two per byte: the width-512 W4 MLP's saved program is at most 0.18x the float one
    (0.29x with one code per byte)."""
    torch.manual_seed(0)
    model = models.MLP(n_layers=4, width=512).eval()
    args = (torch.randn(8, 16),)
    sizes = {}
    for name in ("w4", "w8"):
        q = Quantizer(model, getattr(QuantizerConfig.presets, name)(), mode=mode)
        q.prepare(args)
        q.inference_mode()
        torch.export.save(q.finalize(), tmp_path / f"{name}.pt2")
        sizes[name] = (tmp_path / f"{name}.pt2").stat().st_size
    torch.export.save(torch.export.export(model, args), tmp_path / "float.pt2")
    flt = (tmp_path / "float.pt2").stat().st_size
    assert sizes["w4"] / flt <= 0.18, (sizes, flt)
    assert sizes["w4"] < 0.65 * sizes["w8"], (sizes, flt)
