"""The modules a finalized model holds in place of its fake-quants: a stored (quantized) weight with
its dequantize, and an activation's quantize + dequantize with frozen qparams.

Both compute exactly what the fake-quant they replace computes in inference mode (through
:mod:`qplan.runtime.numerics`, or torch's ``quantized_decomposed`` ops, which do the same operations
in the same order), so a finalized program matches the prepared model bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.ao.quantization.fx._decomposed
from torch import nn

from qplan.runtime.fake_quant import FakeQuantize
from qplan.runtime.numerics import float_codes, float_round
from qplan.runtime.packing import unpack_codes

__all__ = ["QuantizedWeight", "QuantizeDequantize"]

_qd = torch.ops.quantized_decomposed


def _uses_registered_op(fq: FakeQuantize) -> bool:
    return not fq.is_float and not fq.use_minval and fq.granularity in ("per_tensor", "per_channel")


class QuantizedWeight(nn.Module):
    """Dequantizes a stored weight: ``forward(q) -> float weight`` (``q`` = the stored tensor).

    ``own`` holds the quantized tensor here instead, for a parameter that float readers still use.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor | None
    minval: torch.Tensor | None
    q: torch.Tensor | None

    def __init__(
        self,
        fq: FakeQuantize,
        scale: torch.Tensor,
        offset: torch.Tensor | None,
        own: torch.Tensor | None,
        out_dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.out_dtype = out_dtype  # the float weight's dtype: fp16/bf16 models read their weights in it
        self.num, self.layout = fq.num, fq.layout  # the fake-quant's arithmetic, without its observer buffers
        self.registered = _uses_registered_op(fq)
        self.axis = fq.axis
        self.quant_min, self.quant_max = int(fq.quant_min), int(fq.quant_max)
        self.storage = fq.storage_dtype
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer(
            "zero_point" if not fq.use_minval else "minval", None if offset is None else offset.clone()
        )
        self.register_buffer("q", own)
        self.packing: tuple[int, int, bool] | None = None  # (bits, last dim, signed) when stored packed

    def forward(self, q: torch.Tensor | None = None) -> torch.Tensor:
        if self.q is not None:
            q = self.q
        assert q is not None, "a stored weight is read from its parameter or held in `q`"
        if self.packing is not None:
            q = unpack_codes(q, *self.packing)
        if self.registered:
            if self.axis is None:
                return _qd.dequantize_per_tensor.tensor(
                    q,
                    self.scale,
                    self.zero_point,
                    self.quant_min,
                    self.quant_max,
                    self.storage,
                    out_dtype=self.out_dtype,
                )
            return _qd.dequantize_per_channel(
                q,
                self.scale,
                self.zero_point,
                self.axis,
                self.quant_min,
                self.quant_max,
                self.storage,
                out_dtype=self.out_dtype,
            )
        offset = self.minval if self.num.use_minval else self.zero_point
        return self.num.dequantize(q, self.layout, self.scale, offset).to(self.out_dtype)


class QuantizeDequantize(nn.Module):
    """An activation's quantize + dequantize with frozen qparams (see the module docstring)."""

    def __init__(self, fq: FakeQuantize):
        super().__init__()
        self.kind = "fake_quant"
        if not fq.dynamic and fq.granularity == "per_tensor" and not fq.use_minval:
            scale, zp = fq.qparams()
            self.scale = float(scale)
            if zp is not None:
                self.kind = "int"
                self.zero_point = int(zp)
                self.quant_min, self.quant_max = int(fq.quant_min), int(fq.quant_max)
                self.storage = fq.storage_dtype
            elif fq.num.cast_dtype is not None and not fq.pow2_scale:
                self.kind = "float8"
                self.num = fq.num
                self.fmax = float(fq.quant_max)
        if self.kind == "fake_quant":
            self.fq = fq

    def hold_qparams_in_state_dict(self) -> None:
        """For ``finalize(format="module")``: the qparams baked in as constants also live in buffers
        (``qparam_scale``, ``qparam_zero_point``), so the state_dict carries them and loading one
        updates the constants `forward` uses. (Exported programs keep plain constants.)"""
        if self.kind == "fake_quant":
            return  # the frozen fake-quant's own buffers are in the state_dict already
        self.register_buffer("qparam_scale", torch.tensor(self.scale, dtype=torch.float64))
        if self.kind == "int":
            self.register_buffer("qparam_zero_point", torch.tensor(self.zero_point, dtype=torch.int64))
        self.register_load_state_dict_post_hook(_refresh_constants)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "int":
            q = _qd.quantize_per_tensor(x, self.scale, self.zero_point, self.quant_min, self.quant_max, self.storage)
            return _qd.dequantize_per_tensor(
                q, self.scale, self.zero_point, self.quant_min, self.quant_max, self.storage, out_dtype=x.dtype
            )
        if self.kind == "float8":  # the fake-quant's own arithmetic, with the scale a constant
            _, t = float_codes(x, self.scale, self.fmax)
            return self.num.dequantize_codes(float_round(t, self.num.cast_dtype), self.scale, None).to(x.dtype)
        return self.fq(x)


def _refresh_constants(module: nn.Module, incompatible_keys: Any) -> None:
    """After a state_dict load: the constants `forward` uses follow the loaded qparam buffers."""
    buffers = dict(module.named_buffers(recurse=False))
    setattr(module, "scale", float(buffers["qparam_scale"]))  # noqa: B010 - a plain float attribute, not a buffer
    if "qparam_zero_point" in buffers:
        setattr(module, "zero_point", int(buffers["qparam_zero_point"]))  # noqa: B010
