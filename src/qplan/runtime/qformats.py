"""Quantized number formats: integer ranges, float8/float4 grids and power-of-two (e8m0) scales.

Pure tensor functions shared by the fake-quantize modules and by finalization. No state.

Integer ranges (see docs/config-language.md#quantizationspec-how-one-tensor-is-quantized): ``intN`` is ``[-2^(N-1), 2^(N-1)-1]``, or the narrow range
``[-(2^(N-1)-1), 2^(N-1)-1]`` with ``symmetric_with_clipping``; ``uintN`` is ``[0, 2^N-1]`` for every
scheme. Float formats are symmetric around zero with a largest finite magnitude ``fmax``:
float8_e4m3fn 448, float8_e5m2 57344, float4_e2m1fn 6.
"""

from __future__ import annotations

import torch

__all__ = [
    "INT_BITS",
    "FLOAT_FORMATS",
    "FloatFormat",
    "int_range",
    "round_to_e2m1",
    "e2m1_to_codes",
    "codes_to_e2m1",
    "pack_fp4",
    "unpack_fp4",
    "e8m0_scale",
    "E2M1_GRID",
]

INT_BITS = {"int8": 8, "int4": 4, "int2": 2, "uint8": 8, "uint4": 4, "uint2": 2}


class FloatFormat:
    """A low-precision float format: its largest finite value and the exponent of that value."""

    __slots__ = ("name", "fmax", "emax", "torch_dtype")

    def __init__(self, name: str, fmax: float, emax: int, torch_dtype: torch.dtype | None):
        self.name = name
        self.fmax = fmax  # largest finite magnitude
        self.emax = emax  # floor(log2(fmax)): the target exponent of e8m0 (MX) scaling
        self.torch_dtype = torch_dtype  # the storage dtype, None where torch has no arithmetic cast (fp4)

    def __repr__(self) -> str:
        return f"FloatFormat({self.name}, fmax={self.fmax})"


FLOAT_FORMATS = {
    "float8_e4m3fn": FloatFormat("float8_e4m3fn", 448.0, 8, torch.float8_e4m3fn),
    "float8_e5m2": FloatFormat("float8_e5m2", 57344.0, 15, torch.float8_e5m2),
    "float4_e2m1fn_x2": FloatFormat("float4_e2m1fn_x2", 6.0, 2, None),
}

# The non-negative e2m1 values, indexed by their 3-bit code (sign is bit 3).
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def int_range(dtype: str, qscheme: str) -> tuple[int, int]:
    """``(qmin, qmax)`` of an integer dtype under a qscheme."""
    try:
        bits = INT_BITS[dtype]
    except KeyError:
        raise ValueError(
            f"`{dtype}` is not an integer quantization dtype; expected one of {', '.join(INT_BITS)}"
        ) from None
    if dtype.startswith("u"):
        return 0, 2**bits - 1
    qmax = 2 ** (bits - 1) - 1
    qmin = -qmax if qscheme == "symmetric_with_clipping" else -qmax - 1
    return qmin, qmax


def round_to_e2m1(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest float4 e2m1 value (ties to even code), saturating at ±6.

    The e2m1 grid has spacing 0.5 below 2, 1 in [2, 4) and 2 in [4, 6]; rounding ``|x| / step`` to the
    nearest even integer is round-half-to-even on the code. NaN stays NaN; the sign of zero is kept.
    """
    a = x.abs().clamp_(max=6.0)
    step = torch.where(a < 2.0, 0.5, torch.where(a < 4.0, 1.0, 2.0))
    return torch.copysign(a.div_(step).round_().mul_(step), x)


def e2m1_to_codes(v: torch.Tensor) -> torch.Tensor:
    """4-bit codes (uint8, one per element, sign in bit 3) of values already on the e2m1 grid."""
    a = v.abs()
    # code of |v|: 2*|v| below 2 (0, 0.5, 1, 1.5 -> 0..3), then 2,3 -> 4,5 and 4,6 -> 6,7
    mag = torch.where(a < 2.0, a * 2.0, torch.where(a < 4.0, a + 2.0, a * 0.5 + 4.0)).to(torch.uint8)
    sign = torch.signbit(v).to(torch.uint8) << 3
    return mag | sign


def codes_to_e2m1(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Values of 4-bit e2m1 codes (uint8, sign in bit 3)."""
    grid = torch.tensor(E2M1_GRID, dtype=dtype, device=codes.device)
    mag = grid[(codes & 7).long()]
    return torch.where((codes & 8) != 0, -mag, mag)


def pack_fp4(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes in pairs along the last dim: element ``2i`` in the low nibble, ``2i+1`` in the high
    nibble (the ``torch.float4_e2m1fn_x2`` / torchao ``pack_uint4`` layout). The last dim must be even."""
    if codes.shape[-1] % 2:
        raise ValueError(f"float4 packing needs an even last dimension, got shape {tuple(codes.shape)}")
    c = codes.contiguous()
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_fp4`: uint8 codes, one per element."""
    low = packed & 15
    high = packed >> 4
    return torch.stack((low, high), dim=-1).flatten(-2)


def e8m0_scale(amax: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Power-of-two scales (the OCP MX "floor" rule): ``2^(floor(log2(amax)) - emax)``.

    The exponent is clamped to [-126, 127] (e8m0 without its subnormal-producing 2^-127, so scales stay
    normal float32); an all-zero block gets ``2^-126``. The result is float32 and exactly representable in
    ``torch.float8_e8m0fnu``.
    """
    bits = amax.to(torch.float32).view(torch.int32)
    exp = ((bits >> 23) & 0xFF) - 127  # floor(log2(amax)) for normal numbers
    exp = (exp - fmt.emax).clamp_(-126, 127)
    return ((exp + 127) << 23).view(torch.float32)
