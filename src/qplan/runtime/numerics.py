"""Quantize / dequantize arithmetic per number format: the one implementation that fake-quant and
finalize both run, so a finalized model computes bit for bit what the prepared model computed.

Integer formats work on float-valued codes (see docs/runtime.md), written with two optional operands:
``codes = round((x - off)·inv) + zp`` clamped to ``[lo, hi]``, and ``x̂ = (codes - zp)·s + off``.
:meth:`Numerics.operands` picks them per scheme (the only place the schemes differ):

- symmetric (zp formulation): ``zp`` the constant zero point (``None`` when 0), no ``off``;
- asymmetric (zp formulation): ``zp`` the zero-point tensor, no ``off``;
- minval: no ``zp``, ``off`` the min value ``m``; codes are the unsigned ``u = q - qmin`` in
  ``[0, qmax - qmin]`` and storage adds ``qmin`` back.

Float formats (fp8, fp4): ``x̂ = cast(clamp(x/s, -fmax, fmax))·s``; fp4 rounds on the e2m1 grid.
:meth:`Numerics.quantize` / :meth:`Numerics.dequantize` take qparams as stored and broadcast them
with the tensor's :class:`~qplan.runtime.layout.QParamLayout` (per-tensor, per-channel or per-block);
the other functions take qparams already viewed to broadcast.
"""

from __future__ import annotations

import math

import torch

from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.layout import QParamLayout
from qplan.runtime.qformats import (
    FLOAT_FORMATS,
    INT_BITS,
    FloatFormat,
    codes_to_e2m1,
    e2m1_to_codes,
    int_range,
    pack_fp4,
    round_to_e2m1,
    unpack_fp4,
)

__all__ = ["Numerics", "check_format", "int_codes", "dequantize_codes_", "float_codes", "float_round"]

Operand = torch.Tensor | float | None
Scale = torch.Tensor | float


def _above(v: float) -> float:
    """The next float32 above ``v`` (as a Python float), so a strict bound acts as an inclusive one."""
    return torch.nextafter(torch.tensor(v, dtype=torch.float32), torch.tensor(math.inf)).item()


QSCHEMES = ("symmetric", "asymmetric", "symmetric_with_clipping")


def check_format(spec: ResolvedSpec, where: str = "") -> None:
    """Raise ``ValueError`` unless the runtime implements the spec's number format (``where``: `` for `name```)."""
    if spec.dtype not in FLOAT_FORMATS and spec.dtype not in INT_BITS:
        raise ValueError(f"unsupported quantization dtype `{spec.dtype}`{where}")
    if spec.qscheme not in QSCHEMES:
        raise ValueError(f"unsupported qscheme `{spec.qscheme}`{where}; expected one of {', '.join(QSCHEMES)}")
    if spec.qformulation not in ("zp", "minval"):
        raise ValueError(f"unsupported qformulation `{spec.qformulation}`{where}; expected `zp` or `minval`")
    if spec.dtype in FLOAT_FORMATS and (spec.qscheme != "symmetric" or spec.qformulation != "zp"):
        raise ValueError(f"float dtype `{spec.dtype}` needs qscheme `symmetric` and qformulation `zp`{where}")
    if spec.scale_dtype not in (None, "float8_e8m0fnu"):
        raise ValueError(f"unsupported scale_dtype `{spec.scale_dtype}`{where}; expected null or `float8_e8m0fnu`")
    if spec.scale_dtype is not None and spec.dtype not in FLOAT_FORMATS:
        raise ValueError(f"scale_dtype `{spec.scale_dtype}` is only for float dtypes, not `{spec.dtype}`{where}")


class Numerics:
    """The number format of one spec: its integer or float grid and the operands of its arithmetic.

    ``kind`` is ``"float"``, ``"sym"``, ``"asym"`` or ``"minval"``; ``[lo, hi]`` is the code range of
    the arithmetic (``[quant_min, quant_max]``, or ``[0, quant_max - quant_min]`` for minval).
    """

    def __init__(self, spec: ResolvedSpec):
        dtype = spec.dtype
        self.is_float = dtype in FLOAT_FORMATS
        self.symmetric = spec.qscheme != "asymmetric"
        self.use_minval = spec.qformulation == "minval"
        self.fmt: FloatFormat | None = FLOAT_FORMATS.get(dtype)
        self.cast_dtype: torch.dtype | None = None  # float8 dtype; None for integers and fp4 (e2m1 grid)
        self.pow2_scale = False
        self.grad_bound = 0.0  # floats: the float32 just above fmax
        self.quant_min: int | float
        self.quant_max: int | float
        if self.fmt is not None:
            self.cast_dtype = self.fmt.torch_dtype
            self.quant_min, self.quant_max = -self.fmt.fmax, self.fmt.fmax
            self.pow2_scale = spec.scale_dtype == "float8_e8m0fnu" or self.fmt.torch_dtype is None
            self.grad_bound = _above(self.fmt.fmax)
            self.kind = "float"
        else:
            self.quant_min, self.quant_max = int_range(dtype, spec.qscheme)
            self.kind = "minval" if self.use_minval else ("sym" if self.symmetric else "asym")
        # constant zero point of symmetric integer schemes: 0 (signed) or mid-range (unsigned)
        self.zp_const = 0 if self.is_float else (int(self.quant_min) + int(self.quant_max) + 1) // 2
        self.lo, self.hi = (0, self.quant_max - self.quant_min) if self.use_minval else (self.quant_min, self.quant_max)
        # scale = range / divisor: fmax (floats), (qmax - qmin) / 2 (symmetric), qmax - qmin (asymmetric)
        if self.is_float:
            self.divisor = float(self.quant_max)
        else:
            self.divisor = float(self.quant_max - self.quant_min) / (2 if self.symmetric else 1)
        self.storage_dtype: torch.dtype
        if self.is_float:
            self.storage_dtype = self.cast_dtype or torch.uint8
        else:
            self.storage_dtype = torch.uint8 if dtype.startswith("u") else torch.int8

    def operands(self, offset: Operand, zp_const: Operand) -> tuple[Operand, Operand]:
        """``(zp, off)`` of the integer arithmetic from the stored offset (zero point or minval) and
        the constant zero point of symmetric schemes (a tensor or number, ``None`` when it is 0)."""
        kind = self.kind
        if kind == "sym":
            return zp_const, None
        if kind == "asym":
            return offset, None
        return None, offset

    # ------------------------------------------------------------------------ storage round trip

    def quantize(
        self, x: torch.Tensor, layout: QParamLayout, scale: torch.Tensor, inv: torch.Tensor, offset: Operand
    ) -> torch.Tensor:
        """Storage of float32 ``x`` with qparams in their stored ``layout`` (fp4 packed)."""
        v, b = layout.view(x)
        if b:
            scale, inv = scale.view(b), inv.view(b)
            offset = offset.view(b) if isinstance(offset, torch.Tensor) else offset
        return self.pack(self.quantize_view(v, scale, inv, offset).reshape(x.shape))

    def dequantize(self, q: torch.Tensor, layout: QParamLayout, scale: torch.Tensor, offset: Operand) -> torch.Tensor:
        """Float32 values of stored ``q`` (inverse of :meth:`quantize`)."""
        vals = self.code_values(q)
        v, b = layout.view(vals)
        if b:
            scale = scale.view(b)
            offset = offset.view(b) if isinstance(offset, torch.Tensor) else offset
        return self.dequantize_codes(v, scale, offset).reshape(vals.shape)

    def quantize_view(self, v: torch.Tensor, scale: torch.Tensor, inv: torch.Tensor, offset: Operand) -> torch.Tensor:
        """Storage codes of float32 ``v`` (qparams broadcast against it), dtype :attr:`storage_dtype`;
        fp4 gives one 4-bit code per element, for :meth:`pack` once ``v`` has its own shape again."""
        if self.is_float:
            _, t = float_codes(v, scale, float(self.quant_max))
            if self.cast_dtype is not None:
                return t.to(self.cast_dtype)
            return e2m1_to_codes(round_to_e2m1(t))
        zp, off = self.operands(offset, self.zp_const or None)
        t = int_codes(v, inv, zp, off).clamp_(self.lo, self.hi)
        if self.use_minval:
            t.add_(self.quant_min)
        return t.to(self.storage_dtype)

    def pack(self, q: torch.Tensor) -> torch.Tensor:
        """fp4 codes packed in pairs along the last dim (element ``2i`` in the low nibble); other formats
        as they are."""
        return pack_fp4(q) if self.is_float and self.cast_dtype is None else q

    def code_values(self, q: torch.Tensor) -> torch.Tensor:
        """The float32 codes of stored ``q`` as :meth:`dequantize_codes` reads them (packed fp4 accepted
        as uint8 or ``torch.float4_e2m1fn_x2``; minval codes shifted back to ``[0, qmax - qmin]``)."""
        if self.is_float and self.cast_dtype is None:
            return codes_to_e2m1(unpack_fp4(q.view(torch.uint8)))
        vals = q.to(torch.float32)
        return vals.sub_(self.quant_min) if self.use_minval else vals

    def dequantize_codes(self, t: torch.Tensor, scale: Scale, offset: Operand) -> torch.Tensor:
        """``x̂`` of float32 codes ``t`` (from :meth:`code_values`), written into ``t``."""
        if self.is_float:
            return t.mul_(scale)
        zp, off = self.operands(offset, self.zp_const or None)
        return dequantize_codes_(t, scale, zp, off)


def int_codes(x: torch.Tensor, inv: Scale, zp: Operand, off: Operand) -> torch.Tensor:
    """``round((x - off)·inv) + zp``, unclamped, a fresh tensor (``x/s`` as ``x·(1/s)``, as torch's
    and torchao's kernels compute it)."""
    t = torch.mul(x, inv) if off is None else torch.sub(x, off).mul_(inv)
    t.round_()
    return t if zp is None else t.add_(zp)


def dequantize_codes_(t: torch.Tensor, scale: Scale, zp: Operand, off: Operand) -> torch.Tensor:
    """``(t - zp)·s + off`` for clamped integer codes ``t``, written into ``t`` (``off``: a new tensor)."""
    if zp is not None:
        t.sub_(zp)
    if off is None:
        return t.mul_(scale)
    return torch.addcmul(off, t, scale)  # type: ignore[arg-type]


def float_codes(x: torch.Tensor, scale: Scale, fmax: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x/s, clamp(x/s, -fmax, fmax))``, two fresh tensors (the first decides the gradient)."""
    t = torch.div(x, scale)
    return t, torch.clamp(t, -fmax, fmax)


def float_round(t: torch.Tensor, cast_dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` rounded onto the float8 grid of ``cast_dtype`` (via a cast) or the e2m1 grid (``None``)."""
    return round_to_e2m1(t) if cast_dtype is None else t.to(cast_dtype).to(t.dtype)
