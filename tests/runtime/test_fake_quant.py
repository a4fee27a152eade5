"""Numerics of the fake-quantize modules against independent references (torch, torchao, hand-written grids)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchao.quantization.quant_primitives import MappingType, choose_qparams_affine, dequantize_affine, quantize_affine

from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.fake_quant import EMA_CONSTANT, FakeQuantize, make_fake_quantize
from qplan.runtime.qformats import E2M1_GRID
from qplan.schema.types import QATSchedule

INT_DTYPES = ("int8", "int4", "int2", "uint8", "uint4", "uint2")
SCHEMES = ("symmetric", "asymmetric", "symmetric_with_clipping")
EPS = torch.finfo(torch.float32).eps


def spec(**kw) -> ResolvedSpec:
    base = dict(
        dtype="int8", qscheme="symmetric", qformulation="zp", granularity="per_tensor", qparam_calculator="static"
    )
    base.update(kw)
    return ResolvedSpec(**base)


def ref_range(dtype: str, qscheme: str) -> tuple[int, int]:
    """SPEC §1.2 quant ranges, written out independently of the code under test."""
    bits = int(dtype.removeprefix("u").removeprefix("int"))
    if dtype.startswith("u"):
        return 0, 2**bits - 1
    if qscheme == "symmetric_with_clipping":
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def ref_qparams(x: torch.Tensor, dtype: str, qscheme: str, block: tuple[int, ...]):
    """torchao's choose_qparams_affine, reshaped to blocks-per-dim."""
    qmin, qmax = ref_range(dtype, qscheme)
    mapping = MappingType.ASYMMETRIC if qscheme == "asymmetric" else MappingType.SYMMETRIC
    target = torch.uint8 if dtype.startswith("u") else torch.int8
    scale, zp = choose_qparams_affine(x, mapping, block, target, qmin, qmax, eps=EPS, zero_point_dtype=torch.int32)
    nblocks = [d // b for d, b in zip(x.shape, block)]
    return scale.reshape(nblocks), zp.reshape(nblocks).to(torch.int32), qmin, qmax


def ref_fake_quant_torchao(x, dtype, scale, zp, block, qmin, qmax):
    target = torch.uint8 if dtype.startswith("u") else torch.int8
    q = quantize_affine(x, block, scale, zp, target, qmin, qmax)
    return dequantize_affine(q, block, scale, zp, target, qmin, qmax)


def rand(shape, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale + shift


# ------------------------------------------------------------------------------------------ ranges


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("qscheme", SCHEMES)
def test_quant_range_matches_spec(dtype, qscheme):
    fq = make_fake_quantize(spec(dtype=dtype, qscheme=qscheme), (4,))
    assert (fq.quant_min, fq.quant_max) == ref_range(dtype, qscheme)


def test_float_ranges():
    assert (
        make_fake_quantize(spec(dtype="float8_e4m3fn"), (4,)).quant_max == torch.finfo(torch.float8_e4m3fn).max == 448
    )
    assert make_fake_quantize(spec(dtype="float8_e5m2"), (4,)).quant_max == torch.finfo(torch.float8_e5m2).max == 57344
    assert make_fake_quantize(spec(dtype="float4_e2m1fn_x2"), (4,)).quant_max == 6


# ------------------------------------------------------------------------------ int vs torch kernels


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("qscheme", SCHEMES)
def test_per_tensor_matches_torch_kernel(dtype, qscheme):
    x = rand((8, 16), seed=1, scale=2.0, shift=0.7)
    fq = make_fake_quantize(spec(dtype=dtype, qscheme=qscheme), x.shape)
    y = fq(x)
    scale, zp, qmin, qmax = ref_qparams(x, dtype, qscheme, tuple(x.shape))
    torch.testing.assert_close(fq.scale, scale.reshape(()), rtol=0, atol=0)
    assert torch.equal(fq.zero_point, zp.reshape(()))
    ref = torch.fake_quantize_per_tensor_affine(x, scale.reshape(1), zp.reshape(1), qmin, qmax)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("qscheme", SCHEMES)
@pytest.mark.parametrize("axis", [0, 1])
def test_per_channel_matches_torch_kernel(dtype, qscheme, axis):
    x = rand((6, 10, 3), seed=2, shift=0.3)
    fq = make_fake_quantize(
        spec(dtype=dtype, qscheme=qscheme, granularity="per_channel", axis=axis), x.shape, role="state"
    )
    y = fq(x)
    block = tuple(1 if i == axis else d for i, d in enumerate(x.shape))
    scale, zp, qmin, qmax = ref_qparams(x, dtype, qscheme, block)
    torch.testing.assert_close(fq.scale, scale.flatten(), rtol=0, atol=0)
    assert torch.equal(fq.zero_point, zp.flatten())
    ref = torch.fake_quantize_per_channel_affine(x, scale.flatten(), zp.flatten(), axis, qmin, qmax)
    torch.testing.assert_close(y, ref, rtol=0, atol=0)


PER_BLOCK_CASES = [
    # (shape, block_size spec, axis, role, resolved block per dim)
    ((8, 32), 8, 1, "state", (1, 8)),
    ((8, 32), (4, -1), None, "state", (4, 32)),
    ((8, 4, 3, 3), 2, 1, "state", (1, 2, 3, 3)),  # conv weight: kernel dims stay whole
    ((4, 6, 16), 4, 2, "input", (4, 1, 4)),  # activation: other dims collapse but the batch, which one block spans
    ((8, 32), (2, 16), None, "state", (2, 16)),
]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("qscheme", SCHEMES)
@pytest.mark.parametrize("case", PER_BLOCK_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_per_block_matches_torchao(dtype, qscheme, case):
    shape, bs, axis, role, block = case
    x = rand(shape, seed=3, shift=-0.4)
    fq = make_fake_quantize(
        spec(dtype=dtype, qscheme=qscheme, granularity="per_block", block_size=bs, axis=axis), shape, role=role
    )
    y = fq(x)
    scale, zp, qmin, qmax = ref_qparams(x, dtype, qscheme, block)
    assert fq.qparams_shape == tuple(scale.shape)
    torch.testing.assert_close(fq.scale, scale, rtol=0, atol=0)
    assert torch.equal(fq.zero_point, zp)
    ref = ref_fake_quant_torchao(x, dtype, scale, zp, block, qmin, qmax)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------- minval


@pytest.mark.parametrize("dtype", ["int8", "int4", "uint4"])
@pytest.mark.parametrize("qscheme", SCHEMES)
def test_minval_formulation(dtype, qscheme):
    """x̂ = u·s + m, u = clamp(round((x - m)/s), 0, qmax - qmin); m = min (asym) or -max|x| (sym)."""
    x = rand((4, 64), seed=4, shift=0.5)
    fq = make_fake_quantize(
        spec(dtype=dtype, qscheme=qscheme, qformulation="minval", granularity="per_channel", axis=0), x.shape
    )
    y = fq(x)
    qmin, qmax = ref_range(dtype, qscheme)
    lo = x.amin(dim=1, keepdim=True).clamp(max=0)
    hi = x.amax(dim=1, keepdim=True).clamp(min=0)
    if qscheme == "asymmetric":
        m, s = lo, (hi - lo) / (qmax - qmin)
    else:
        a = torch.maximum(-lo, hi)
        m, s = -a, a / ((qmax - qmin) / 2)
    u = torch.clamp(torch.round((x - m) * (1.0 / s)), 0, qmax - qmin)
    torch.testing.assert_close(y, u * s + m, rtol=0, atol=1e-6)
    _, minval = fq.qparams()
    torch.testing.assert_close(minval, m.flatten())
    # the grid spans [m, m + (qmax - qmin)·s]: the observed extreme(s) are representable up to rounding
    if qscheme == "asymmetric":
        torch.testing.assert_close(y.amin(dim=1), m.flatten(), rtol=0, atol=1e-6)
    else:
        torch.testing.assert_close(y.abs().amax(dim=1), -m.flatten(), rtol=0, atol=1e-5)
    q, s_, mv = fq.quantize_for_storage(x)
    assert int(q.min()) >= qmin and int(q.max()) <= qmax
    torch.testing.assert_close(fq.dequantize(q, s_, mv), y, rtol=0, atol=0)


# -------------------------------------------------------------------------------------- floats


def ref_e2m1(v: torch.Tensor) -> torch.Tensor:
    """Nearest e2m1 value by brute force over the signed grid, ties to the even code (saturating)."""
    mags = torch.tensor(E2M1_GRID)
    a = v.abs().clamp(max=6.0).unsqueeze(-1)
    d = (a - mags).abs()
    best = d.min(dim=-1, keepdim=True).values
    cand = d == best
    codes = torch.arange(8)
    # among tied candidates prefer the even code
    idx = torch.where(cand, codes + (codes % 2) * 100, 10_000).argmin(dim=-1)
    return torch.copysign(mags[idx], v)


@pytest.mark.parametrize(
    "dtype,torch_dtype", [("float8_e4m3fn", torch.float8_e4m3fn), ("float8_e5m2", torch.float8_e5m2)]
)
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_fp8_casts_through_torch_dtype(dtype, torch_dtype, granularity):
    x = rand((8, 32), seed=5, scale=3.0)
    kw = dict(granularity="per_channel", axis=0) if granularity == "per_channel" else {}
    fq = make_fake_quantize(spec(dtype=dtype, **kw), x.shape, role="state")
    y = fq(x)
    fmax = torch.finfo(torch_dtype).max
    amax = x.abs().amax(dim=1, keepdim=True) if granularity == "per_channel" else x.abs().amax()
    s = amax / fmax
    ref = (x / s).clamp(-fmax, fmax).to(torch_dtype).to(torch.float32) * s
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    q, scale, zp = fq.quantize_for_storage(x)
    assert q.dtype == torch_dtype and zp is None
    torch.testing.assert_close(fq.dequantize(q, scale), y, rtol=0, atol=0)


def test_fp4_rounds_to_e2m1_grid():
    x = torch.linspace(-7, 7, 281)  # includes every tie point (multiples of 0.25)
    fq = make_fake_quantize(spec(dtype="float4_e2m1fn_x2", float_range=(-6.0, 6.0)), x.shape)
    assert fq.scale.item() == 1.0  # amax 6 -> 2^(floor(log2 6) - 2) = 1
    y = fq(x)
    torch.testing.assert_close(y, ref_e2m1(x), rtol=0, atol=0)
    # second oracle: torchao's MX fp4 conversion
    from torchao.prototype.mx_formats.kernels import f4_unpacked_to_f32, f32_to_f4_unpacked

    torch.testing.assert_close(y, f4_unpacked_to_f32(f32_to_f4_unpacked(x.clamp(-6, 6))), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn_x2"])
def test_e8m0_scales_are_powers_of_two(dtype):
    x = rand((16, 64), seed=6, scale=5.0)
    fq = make_fake_quantize(
        spec(dtype=dtype, scale_dtype="float8_e8m0fnu", granularity="per_block", block_size=32, axis=1),
        x.shape,
        role="state",
    )
    y = fq(x)
    scale = fq.scale
    mant, _ = torch.frexp(scale)
    assert torch.all(mant == 0.5)  # exact powers of two
    assert torch.equal(scale.to(torch.float8_e8m0fnu).to(torch.float32), scale)
    emax = {"float8_e4m3fn": 8, "float8_e5m2": 15, "float4_e2m1fn_x2": 2}[dtype]
    amax = x.abs().reshape(16, 2, 32).amax(dim=-1)
    assert torch.equal(scale, torch.exp2(torch.floor(torch.log2(amax)) - emax))
    q, s, _ = fq.quantize_for_storage(x)
    torch.testing.assert_close(fq.dequantize(q, s), y, rtol=0, atol=0)
    if dtype.startswith("float4"):
        assert q.dtype == torch.uint8 and q.shape == (16, 32)
        assert q.view(torch.float4_e2m1fn_x2).shape == (16, 32)
        # unpacked values are the fake-quantized ones divided by their block scale, on the e2m1 grid
        grid = set(E2M1_GRID) | {-v for v in E2M1_GRID}
        vals = (y.reshape(16, 2, 32) / s.reshape(16, 2, 1)).flatten().tolist()
        assert set(vals) <= grid


def test_fp4_packing_layout():
    fq = make_fake_quantize(spec(dtype="float4_e2m1fn_x2", float_range=(-6.0, 6.0)), (1, 4))
    q, _, _ = fq.quantize_for_storage(torch.tensor([[0.5, 6.0, -1.0, 0.0]]))
    # codes: 0.5 -> 1, 6 -> 7, -1 -> 8|2 = 10, 0 -> 0; element 2i in the low nibble
    assert q.tolist() == [[1 | (7 << 4), 10 | (0 << 4)]]


# ------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("dtype", ["int8", "uint4", "int2"])
@pytest.mark.parametrize("qscheme", SCHEMES)
def test_ste_gradient_matches_torch_kernel(dtype, qscheme):
    x0 = rand((4, 50), seed=7, scale=2.0, shift=0.3)
    fq = make_fake_quantize(spec(dtype=dtype, qscheme=qscheme, float_range=(-1.0, 1.5)), x0.shape)
    x = x0.clone().requires_grad_()
    g = rand(x0.shape, seed=8)
    fq(x).backward(g)
    xr = x0.clone().requires_grad_()
    torch.fake_quantize_per_tensor_affine(
        xr, fq.scale.reshape(1), fq.zero_point.reshape(1), fq.quant_min, fq.quant_max
    ).backward(g)
    assert torch.equal(x.grad, xr.grad)
    assert (x.grad == 0).any() and (x.grad != 0).any()  # the range clips some values and passes others


def test_ste_gradient_per_channel_and_float():
    w0 = rand((6, 20), seed=9, scale=3.0)
    fq = make_fake_quantize(spec(granularity="per_channel", axis=0, float_range=(-2.0, 2.0)), w0.shape, role="state")
    w = w0.clone().requires_grad_()
    fq(w).sum().backward()
    s = fq.scale.reshape(-1, 1)
    r = torch.round(w0 * (1.0 / s))
    assert torch.equal(w.grad, ((r >= -128) & (r <= 127)).float())
    f8 = make_fake_quantize(spec(dtype="float8_e4m3fn", float_range=(-448.0, 448.0)), (5,))
    x = torch.tensor([-500.0, -448.0, 0.1, 448.0, 449.0], requires_grad=True)
    f8(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"dtype": "uint8", "qscheme": "asymmetric"},
        {"qformulation": "minval", "qscheme": "asymmetric"},
        {"granularity": "per_channel", "axis": 0},
    ],
    ids=["sym", "asym", "minval", "per_channel"],
)
def test_large_tensors_recompute_the_same_codes(monkeypatch, kw):
    """Tensors of RECOMPUTE_NUMEL elements or more recompute their codes in backward: values and
    gradients equal the saved-codes path, with retain_graph and with a second forward (new qparams)
    before the backward of the first."""
    import qplan.runtime.fake_quant as fq_mod

    results = []
    for threshold in (1 << 40, 0):
        monkeypatch.setattr(fq_mod, "RECOMPUTE_NUMEL", threshold)
        fq = make_fake_quantize(spec(**kw), (6, 20), role="state")
        outs = []
        x = rand((6, 20), seed=1, scale=2.0, shift=0.3).requires_grad_()
        y = fq(x)
        y.backward(rand((6, 20), seed=2), retain_graph=True)
        outs.append(x.grad.clone())
        y.backward(rand((6, 20), seed=3))
        outs += [y.detach(), x.grad]
        x = rand((6, 20), seed=4, scale=3.0).requires_grad_()
        first = fq(x)
        second = fq(x.detach() * 0.2)  # the static observer shrinks the range; `first` must keep its own
        first.sum().backward()
        outs += [x.grad, second]
        # under the second call's qparams most of x would clip (gradient 0)
        assert (x.grad != 0).float().mean() > 0.9
        results.append(outs)
    for saved, recomputed in zip(*results, strict=True):
        assert torch.equal(saved, recomputed)


def test_no_gradient_to_qparams_and_no_grad_input():
    fq = make_fake_quantize(spec(), (3,))
    y = fq(torch.tensor([1.0, -2.0, 0.5]))
    assert not y.requires_grad
    assert not fq.scale.requires_grad


# ------------------------------------------------------------------------------------- observers


def test_static_tracks_the_current_tensor():
    fq = make_fake_quantize(spec(qparam_calculator="static"), (10,))
    fq(torch.linspace(-4, 4, 10))
    fq(torch.linspace(-1, 2, 10))
    assert fq.min_val.item() == -1.0 and fq.max_val.item() == 2.0
    assert fq.scale.item() == pytest.approx(2.0 / 127.5)


def test_moving_average_ema():
    fq = make_fake_quantize(spec(qscheme="asymmetric", qparam_calculator="moving_average"), (10,))
    fq(torch.linspace(-4, 4, 10))  # first observation initialises
    assert (fq.min_val.item(), fq.max_val.item()) == (-4.0, 4.0)
    fq(torch.linspace(-1, 2, 10))
    c = EMA_CONSTANT
    assert fq.min_val.item() == pytest.approx(-4 + c * (-1 + 4))
    assert fq.max_val.item() == pytest.approx(4 + c * (2 - 4))
    assert fq.scale.item() == pytest.approx((fq.max_val - fq.min_val).item() / 255)


def test_global_minmax():
    fq = make_fake_quantize(spec(qscheme="asymmetric", qparam_calculator="global_minmax"), (3,))
    fq(torch.tensor([-1.0, 0.0, 3.0]))
    fq(torch.tensor([-2.0, 0.0, 1.0]))
    fq(torch.tensor([-0.5, 0.0, 0.5]))
    assert (fq.min_val.item(), fq.max_val.item()) == (-2.0, 3.0)


def test_range_always_contains_zero():
    fq = make_fake_quantize(spec(qscheme="asymmetric"), (3,))
    fq(torch.tensor([1.0, 2.0, 3.0]))
    assert fq.min_val.item() == 0.0 and fq.zero_point.item() == -128


def test_dynamic_is_stateless_per_forward():
    fq = make_fake_quantize(
        spec(qscheme="asymmetric", qparam_calculator="dynamic", granularity="per_channel", axis=0), (2, 8)
    )
    ref = make_fake_quantize(
        spec(qscheme="asymmetric", qparam_calculator="static", granularity="per_channel", axis=0), (2, 8)
    )
    assert "bounds" not in fq.state_dict() and "scale" not in fq.state_dict()
    for seed in (1, 2):
        x = rand((2, 8), seed=seed, scale=seed)
        assert torch.equal(fq(x), ref(x))
    fq.disable_observer()  # dynamic ignores the observer switch: qparams always come from the input
    x = rand((2, 8), seed=3, scale=10)
    assert torch.equal(fq(x), ref(x))
    with pytest.raises(RuntimeError, match="dynamic"):
        fq.qparams()


def test_dynamic_per_block_accepts_any_batch():
    fq = make_fake_quantize(spec(qparam_calculator="dynamic", granularity="per_block", block_size=4, axis=1), (2, 8))
    for b in (2, 5):
        x = rand((b, 8), seed=b)
        scale, zp, qmin, qmax = ref_qparams(x, "int8", "symmetric", (1, 4))  # dynamic: per example
        torch.testing.assert_close(
            fq(x), ref_fake_quant_torchao(x, "int8", scale, zp, (1, 4), qmin, qmax), rtol=0, atol=1e-6
        )


def test_float_range_fixes_bounds():
    fq = make_fake_quantize(
        spec(qscheme="asymmetric", float_range=(-1.0, 3.0), qparam_calculator="moving_average"), (4,)
    )
    assert fq.scale.item() == pytest.approx(4 / 255)  # known before any data
    fq(torch.tensor([-10.0, 0.0, 1.0, 20.0]))
    assert fq.scale.item() == pytest.approx(4 / 255)
    half = make_fake_quantize(spec(qscheme="asymmetric", float_range=(None, 3.0)), (4,))
    half(torch.tensor([-5.0, 0.0, 1.0, 20.0]))
    assert (half.min_val.item(), half.max_val.item()) == (-5.0, 3.0)


def test_activation_batch_size_may_change():
    fq = make_fake_quantize(spec(granularity="per_channel", axis=1), (4, 3, 5))
    fq(rand((4, 3, 5)))
    fq(rand((7, 3, 5), seed=1))
    assert fq.scale.shape == (3,)


def test_per_block_shape_mismatch_is_a_clear_error():
    fq = make_fake_quantize(spec(granularity="per_block", block_size=2, axis=1), (4, 8))
    with pytest.raises(ValueError, match="does not fit"):
        fq(rand((4, 6)))


@pytest.mark.parametrize("bs", [4, (-1, 1, 4), (2, 1, 4), (1, 1, 4)])
def test_per_block_activations_take_any_batch_size(bs):
    """Issue 9: activation blocks never split the batch dimension, so the qparams (one block along the
    batch) fit every batch size and every example of a batch shares its position's qparams."""
    kw = dict(block_size=bs, axis=2) if isinstance(bs, int) else dict(block_size=bs)
    if bs == (1, 1, 4):
        with pytest.raises(ValueError, match="cannot block its batch dimension"):
            make_fake_quantize(spec(granularity="per_block", **kw), (2, 3, 8), "a:in0")
        return
    fq = make_fake_quantize(spec(granularity="per_block", **kw), (2, 3, 8))
    assert fq.qparams_shape == (1, 3, 2)
    fq(rand((2, 3, 8)))
    for b in (1, 5):
        x = rand((b, 3, 8), seed=b)
        scale, zp, qmin, qmax = ref_qparams(x, "int8", "symmetric", (b, 1, 4))
        fq.enable_observer(True)
        torch.testing.assert_close(
            fq(x), ref_fake_quant_torchao(x, "int8", scale, zp, (b, 1, 4), qmin, qmax), rtol=0, atol=1e-6
        )
        fq.enable_observer(False)
        assert fq(x).shape == x.shape


def test_per_block_activation_axis_0_is_an_error():
    with pytest.raises(ValueError, match=r"cannot block its batch dimension.*axis: -1"):
        make_fake_quantize(spec(granularity="per_block", block_size=2, axis=0), (4, 8), "a:in0")


# -------------------------------------------------------------------------------------- switches


def test_fake_quant_off_returns_input_and_observer_still_runs():
    fq = make_fake_quantize(spec(), (4,)).enable_fake_quant(False)
    x = torch.tensor([-1.0, 0.3, 2.0, 0.0])
    assert fq(x) is x
    assert fq.max_val.item() == 2.0 and fq.fake_quant_enabled.item() == 0
    fq.enable_fake_quant()
    assert not torch.equal(fq(x), x)


def test_observer_off_freezes_qparams():
    fq = make_fake_quantize(spec(), (4,))
    fq(torch.tensor([-1.0, 0.3, 2.0, 0.0]))
    scale = fq.scale.clone()
    fq.disable_observer()
    assert fq.observer_enabled.item() == 0
    y = fq(torch.tensor([-8.0, 0.0, 9.0, 1.0]))
    assert torch.equal(fq.scale, scale)
    assert y.max().item() == pytest.approx(127 * scale.item())  # clipped by the frozen range


def test_state_dict_round_trip_restores_switches_and_qparams():
    a = make_fake_quantize(spec(qscheme="asymmetric", granularity="per_channel", axis=0), (3, 4))
    a(rand((3, 4)))
    a.disable_observer()
    b = make_fake_quantize(spec(qscheme="asymmetric", granularity="per_channel", axis=0), (3, 4))
    b.load_state_dict(a.state_dict())
    assert not b._obs_on and b._fq_on
    x = rand((3, 4), seed=5, scale=4)
    assert torch.equal(a(x), b(x))


def test_apply_schedule():
    fq = make_fake_quantize(
        spec(schedule=QATSchedule(enable_observer=2, enable_fake_quant=3, disable_observer=5)), (2,)
    )
    states = []
    for step in range(7):
        fq.apply_schedule(step)
        states.append((fq.observer_enabled.item(), fq.fake_quant_enabled.item()))
    assert states == [(0, 0), (0, 0), (1, 0), (1, 1), (1, 1), (0, 1), (0, 1)]


def test_bad_specs_are_clear_errors():
    with pytest.raises(ValueError, match="needs a resolved axis"):
        make_fake_quantize(spec(granularity="per_channel"), (4, 4), "fc.weight")
    with pytest.raises(ValueError, match="does not divide"):
        make_fake_quantize(spec(granularity="per_block", block_size=3, axis=1), (4, 8))
    with pytest.raises(ValueError, match="unsupported quantization dtype"):
        make_fake_quantize(spec(dtype="int3"), (4,))
    with pytest.raises(ValueError, match="float dtype"):
        make_fake_quantize(spec(dtype="float8_e4m3fn", qscheme="asymmetric"), (4,))
    with pytest.raises(ValueError, match="unsupported qparam calculator"):
        make_fake_quantize(spec(qparam_calculator="default"), (4,))
    with pytest.raises(ValueError, match="only for float dtypes"):
        make_fake_quantize(spec(scale_dtype="float8_e8m0fnu"), (4,))
    with pytest.raises(ValueError, match=r"float_range \[null, null\]"):
        make_fake_quantize(spec(qparam_calculator="dynamic", float_range=(-1.0, None)), (4,))


def test_repr_is_readable():
    fq = make_fake_quantize(spec(dtype="int4", granularity="per_channel", axis=0), (8, 4), "fc.weight", role="state")
    text = repr(fq)
    assert "fc.weight" in text and "int4" in text and "per_channel(axis=0)" in text and "[-8, 7]" in text


def test_half_precision_input_keeps_dtype():
    fq = make_fake_quantize(spec(granularity="per_channel", axis=0), (4, 8))
    x = rand((4, 8)).to(torch.bfloat16)
    y = fq(x)
    assert y.dtype == torch.bfloat16
    ref = make_fake_quantize(spec(granularity="per_channel", axis=0), (4, 8))(x.float())
    torch.testing.assert_close(y, ref.to(torch.bfloat16), rtol=0, atol=0)


# ---------------------------------------------------------------------------- storage round trip


@pytest.mark.parametrize(
    "dtype,qscheme,gran",
    list(itertools.product(INT_DTYPES, ["symmetric", "asymmetric"], ["per_tensor", "per_channel", "per_block"])),
)
def test_quantize_for_storage_round_trip(dtype, qscheme, gran):
    kw = {"per_tensor": {}, "per_channel": dict(axis=0), "per_block": dict(block_size=4, axis=1)}[gran]
    x = rand((4, 8), seed=11, shift=0.2)
    fq = make_fake_quantize(spec(dtype=dtype, qscheme=qscheme, granularity=gran, **kw), x.shape, role="state")
    y = fq(x)
    q, scale, zp = fq.quantize_for_storage(x)
    assert q.dtype == (torch.uint8 if dtype.startswith("u") else torch.int8)
    qmin, qmax = ref_range(dtype, qscheme)
    assert qmin <= int(q.min()) and int(q.max()) <= qmax
    torch.testing.assert_close(fq.dequantize(q, scale, zp), y, rtol=0, atol=0)


# -------------------------------------------------------------------------------------- compile


@pytest.mark.slow
def test_torch_compile_matches_eager():
    try:
        import torch._dynamo
    except Exception:  # pragma: no cover - depends on the torch build
        pytest.skip("torch.compile is unavailable")
    torch._dynamo.reset()
    fq = make_fake_quantize(spec(granularity="per_channel", axis=0, qparam_calculator="moving_average"), (4, 16))
    ref = make_fake_quantize(spec(granularity="per_channel", axis=0, qparam_calculator="moving_average"), (4, 16))
    try:
        compiled = torch.compile(fq, backend="aot_eager", fullgraph=True)  # traces the autograd kernels too
        for seed in range(3):
            x = rand((4, 16), seed=seed, scale=seed + 1).requires_grad_()
            xr = x.detach().clone().requires_grad_()
            y = compiled(x)
            yr = ref(xr)
            torch.testing.assert_close(y, yr, rtol=0, atol=0)
            y.sum().backward()
            yr.sum().backward()
            torch.testing.assert_close(x.grad, xr.grad)
        fq.disable_observer()
        ref.disable_observer()
        x = rand((4, 16), seed=9, scale=5)
        torch.testing.assert_close(compiled(x), ref(x), rtol=0, atol=0)
        fq.disable_fake_quant()
        assert torch.equal(compiled(x), x)
    except torch._dynamo.exc.BackendCompilerFailed as err:  # pragma: no cover
        pytest.skip(f"torch.compile backend unavailable: {err}")
    torch.testing.assert_close(fq.bounds, ref.bounds)


# ------------------------------------------------------------------------------------- properties


_finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(_finite, min_size=2, max_size=40),
    dtype=st.sampled_from(INT_DTYPES),
    qscheme=st.sampled_from(SCHEMES),
    formulation=st.sampled_from(["zp", "minval"]),
)
def test_int_values_on_grid_in_range_and_idempotent(values, dtype, qscheme, formulation):
    x = torch.tensor(values)
    fq = make_fake_quantize(spec(dtype=dtype, qscheme=qscheme, qformulation=formulation), x.shape)
    y = fq(x)
    qmin, qmax = ref_range(dtype, qscheme)
    s = fq.scale.item()
    off, base = (fq.minval.item(), qmin) if formulation == "minval" else (0.0, fq.zero_point.item())
    codes = (y - off) / s + base
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.round().min() >= qmin and codes.round().max() <= qmax
    fq.disable_observer()
    assert torch.equal(fq(y), y)  # idempotent for fixed qparams


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(_finite, min_size=2, max_size=40),
    dtype=st.sampled_from(["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn_x2"]),
)
def test_float_values_representable_and_idempotent(values, dtype):
    x = torch.tensor(values)
    fq = make_fake_quantize(spec(dtype=dtype), x.shape)
    y = fq(x)
    v = y / fq.scale  # on the grid up to the float32 rounding of (v·s)/s
    assert v.abs().max() <= fq.quant_max * (1 + 1e-6)
    if dtype.startswith("float8"):
        td = getattr(torch, dtype)
        torch.testing.assert_close(v.to(td).float(), v, rtol=1e-6, atol=0)
    else:
        assert set(v.abs().tolist()) <= set(E2M1_GRID)  # fp4 scales are powers of two: exact
    fq.disable_observer()
    assert torch.equal(fq(y), y)


def test_dynamic_quantize_for_storage():
    fq = make_fake_quantize(spec(dtype="uint8", qparam_calculator="dynamic"), (3,))
    x = torch.tensor([-1.0, 0.25, 2.0])
    q, scale, zp = fq.quantize_for_storage(x)
    assert q.dtype == torch.uint8 and zp.item() == 128
    torch.testing.assert_close(fq.dequantize(q, scale, zp), fq(x), rtol=0, atol=0)


def test_deepcopy_and_pickle_keep_state():
    import copy
    import pickle

    fq = make_fake_quantize(spec(qscheme="asymmetric"), (4,), "a")
    fq(torch.tensor([-1.0, 0.0, 2.0, 3.0]))
    fq.disable_observer()
    for clone in (copy.deepcopy(fq), pickle.loads(pickle.dumps(fq))):
        assert not clone._obs_on and torch.equal(clone.scale, fq.scale)
        x = torch.tensor([5.0, -3.0, 0.1, 1.0])
        assert torch.equal(clone(x), fq(x))


def test_make_fake_quantize_rejects_unknown_class():
    with pytest.raises(ValueError, match="fake_quantize class"):
        make_fake_quantize(spec(fake_quantize="learnable"), (2,))


def test_module_is_an_nn_module_with_buffers_only():
    fq = FakeQuantize(spec(), (4,))
    assert list(fq.parameters()) == []
    assert {"scale", "zero_point", "bounds", "observer_enabled", "fake_quant_enabled", "observed"} <= set(
        fq.state_dict()
    )
    assert math.isclose(fq.scale.item(), 1.0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(dtype="int4", qscheme="asymmetric", qformulation="minval", granularity="per_block", block_size=4, axis=1),
        dict(dtype="float4_e2m1fn_x2"),
    ],
    ids=["int4-minval-block", "fp4"],
)
def test_torch_export_of_frozen_fake_quant_and_dequantize(kw):
    """Finalization traces frozen fake-quants and ``dequantize`` with torch.export."""
    fq = make_fake_quantize(spec(**kw), (4, 16), role="state")
    x = rand((4, 16), seed=12)
    fq(x)
    fq.disable_observer().eval()
    ep = torch.export.export(fq, (x,))
    assert torch.equal(ep.module()(x), fq(x))

    class Dequant(torch.nn.Module):
        def forward(self, q, s, o):
            return fq.dequantize(q, s, o)

    q, s, o = fq.quantize_for_storage(x)
    o = torch.zeros(()) if o is None else o
    ep = torch.export.export(Dequant(), (q, s, o))
    assert torch.equal(ep.module()(q, s, o), fq(x))
