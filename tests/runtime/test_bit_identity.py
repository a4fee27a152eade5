"""One quantize function (issue 9 item 8): the prepared model in inference mode and its finalized program
compute bit-identical outputs, for every dtype and granularity, in both capture modes, on random inputs
and on inputs placed exactly on rounding boundaries (integers: ``x = (k + 0.5)·s``; floats: midpoints
between neighbouring grid values, times the scale), for activations and for weights.

Finalized programs reach their values along other paths than the fake-quant (torch's
``quantized_decomposed`` ops for integer per-tensor activations and integer per-tensor / per-channel
weights, a baked-in constant scale for fp8 activations, stored weights); this is the check that those
paths round, clamp and divide exactly as the fake-quant does.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qplan.runtime.fake_quant import FakeQuantize
from qplan.runtime.match import module_name
from qplan.runtime.qformats import E2M1_GRID
from qplan.runtime.quantizer import Quantizer
from qplan.schema.types import QuantizerConfig

# name: (dtype, qscheme, qformulation)
FORMATS = {
    "int2": ("int2", "symmetric", "zp"),
    "int4": ("int4", "symmetric", "zp"),
    "int8": ("int8", "symmetric", "zp"),
    "uint2": ("uint2", "symmetric", "zp"),
    "uint4": ("uint4", "symmetric", "zp"),
    "uint8": ("uint8", "symmetric", "zp"),
    "int8_asym": ("int8", "asymmetric", "zp"),
    "uint4_asym": ("uint4", "asymmetric", "zp"),
    "int4_minval": ("int4", "asymmetric", "minval"),
    "fp8_e4m3": ("float8_e4m3fn", "symmetric", "zp"),
    "fp8_e5m2": ("float8_e5m2", "symmetric", "zp"),
    "fp4": ("float4_e2m1fn_x2", "symmetric", "zp"),
}
GRANULARITIES = ("per_tensor", "per_channel", "per_block")
MODES = ("graph", "eager")
BATCH, IN, HID, OUT, BLOCK = 4, 32, 16, 8, 8


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IN, HID)
        self.fc2 = nn.Linear(HID, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _config(fmt: str, gran: str, mode: str) -> QuantizerConfig:
    dtype, qscheme, qform = FORMATS[fmt]
    base = {"dtype": dtype, "qscheme": qscheme, "qformulation": qform}
    act_gran = {
        "per_tensor": {"type": "per_tensor"},
        "per_channel": {"type": "per_channel", "axis": -1},
        "per_block": {"type": "per_block", "block_size": BLOCK, "axis": -1},
    }[gran]
    w_gran = {"type": gran} if gran != "per_block" else {"type": "per_block", "block_size": BLOCK}
    act = {**base, "granularity": act_gran}
    doc = {
        "global_config": {
            "op_input_spec": {"*": act},
            "op_output_spec": {"*": act},
            "op_state_spec": {"weight": {**base, "granularity": w_gran}},
        }
    }
    return QuantizerConfig.from_dict({"quantization_config": doc}).set_execution_mode(mode)


def _midpoints(fq: FakeQuantize) -> torch.Tensor:
    """Sorted midpoints between neighbouring finite values of a float format's grid."""
    if fq.num.cast_dtype is None:
        vals = torch.tensor([s * v for v in E2M1_GRID for s in (1.0, -1.0)])
    else:
        vals = torch.arange(256, dtype=torch.uint8).view(fq.num.cast_dtype).float()
        vals = vals[torch.isfinite(vals)]
    vals = torch.unique(vals)  # sorted
    return (vals[1:] + vals[:-1]) / 2


def _on_boundaries(x: torch.Tensor, fq: FakeQuantize) -> torch.Tensor:
    """``x`` moved onto the rounding boundary of ``fq``'s current qparams nearest below it."""
    v, b = fq.layout.view(x)
    s = fq.scale.view(b) if b else fq.scale
    if fq.is_float:
        mid = _midpoints(fq)
        idx = torch.searchsorted(mid, v / s).clamp_(max=mid.numel() - 1)
        out = mid[idx] * s
    else:
        off = (fq.minval.view(b) if b else fq.minval) if fq.use_minval else 0.0
        out = ((v - off) / s).floor() + 0.5
        out = out * s + off
    return out.reshape(x.shape)


def _fq(q: Quantizer, address: str) -> FakeQuantize:
    return q.fake_quants[module_name(address)]


CASES = [(f, g, m) for f in FORMATS for g in GRANULARITIES for m in MODES]


@pytest.mark.parametrize(("fmt", "gran", "mode"), CASES, ids=["-".join(c) for c in CASES])
def test_prepared_and_finalized_are_bit_identical(fmt: str, gran: str, mode: str) -> None:
    torch.manual_seed(0)
    model = _Net().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, IN, generator=g)
    q = Quantizer(model, _config(fmt, gran, mode))
    p = q.prepare((x,))
    roles = {e.role for e in q.plan.quantizers}
    assert {"state", "input", "output"} <= roles, roles  # weights and activations are all quantized
    q.calibration_mode()
    with torch.no_grad():
        for _ in range(3):
            p(torch.randn(BATCH, IN, generator=g) * 2)
    q.inference_mode()
    entries = {e.address: e for e in q.plan.quantizers}
    # weights on their rounding boundaries (qparams stay those calibrated: the observers are off)
    params = dict(p.named_parameters())
    with torch.no_grad():
        for e in entries.values():
            if e.role == "state":
                w = params[e.source]
                w.copy_(_on_boundaries(w, _fq(q, e.address)))
    first_input = next(a for a, e in entries.items() if e.role != "state" and a.startswith("fc1"))
    inputs = [
        x,
        torch.randn(BATCH, IN, generator=g) * 3,  # clamps at both ends
        _on_boundaries(torch.randn(BATCH, IN, generator=g) * 2, _fq(q, first_input)),
    ]
    ep = q.finalize()
    fin = ep.module()
    with torch.no_grad():
        for k, xi in enumerate(inputs):
            ref, out = p(xi), fin(xi)
            assert torch.equal(ref, out), (
                f"input {k}: {int((ref != out).sum())} of {ref.numel()} outputs differ, "
                f"max {float((ref - out).abs().max()):.3g}"
            )


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e5m2"])
def test_finalized_fp8_activation_divides_by_the_scale(fmt: str) -> None:
    """Regression (issue 9): finalized fp8 activations computed ``x·(1/s)`` where the fake-quant
    computes ``x/s``; the two differ for some ``x`` and one fp8 step can separate the outputs."""
    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.randn(BATCH, IN)
    q = Quantizer(model, _config(fmt, "per_tensor", "graph"))
    p = q.prepare((x,))
    q.calibration_mode()
    with torch.no_grad():
        p(x * 2)
    q.inference_mode()
    fq = _fq(q, next(e.address for e in q.plan.quantizers if e.role == "input" and e.address.startswith("fc1")))
    s = fq.scale
    # inputs where x/s and x·(1/s) land on different sides of an fp8 rounding boundary
    cand = _on_boundaries(torch.linspace(-3, 3, 200_001), fq)
    cand = torch.cat([cand, torch.nextafter(cand, torch.tensor(0.0)), torch.nextafter(cand, torch.tensor(9.0))])
    dt = fq.num.cast_dtype
    split = (cand / s).to(dt).float() != (cand * torch.reciprocal(s)).to(dt).float()
    xs = cand[split]
    assert xs.numel() > 0, "no input separates x/s from x·(1/s): the regression test would be vacuous"
    n = BATCH * IN
    xs = xs.repeat(n // xs.numel() + 1)[: max(n, (xs.numel() // n) * n)].reshape(-1, BATCH, IN)
    fin = q.finalize().module()
    with torch.no_grad():
        for rows in xs[:50]:
            assert torch.equal(p(rows), fin(rows))
