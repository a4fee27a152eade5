"""One qplan tensor spec <-> one compressed-tensors ``QuantizationArgs``, both directions.

compressed-tensors describes a tensor by bit width, int/float type, ``symmetric``, a strategy (``tensor``,
``channel``, ``group``, ``block``, ``token``) and ``dynamic``. Its integer grid is always the signed
``[-2^(b-1), 2^(b-1) - 1]`` with ``x = (q - zp)·s``; qplan's unsigned dtypes map onto it by shifting codes
and zero points down by ``2^(b-1)`` (same dequantized values), its ``symmetric_with_clipping`` grid is a
subset of it. What has no counterpart (``minval``, fp4, float8_e5m2, per-channel activations, a channel
axis other than 0, ...) is reported as a reason string, never silently dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qplan.schema.types import (
    PerBlockGranularity,
    PerChannelGranularity,
    PerTensorGranularity,
    QuantizationSpec,
)

if TYPE_CHECKING:
    from qplan.compiler.plan import ResolvedSpec

__all__ = ["Unsupported", "weight_args", "activation_args", "spec_from_args", "INT_BITS", "uint_shift"]


def __dir__() -> list[str]:
    return __all__


INT_BITS = {"int8": 8, "int4": 4, "int2": 2, "uint8": 8, "uint4": 4, "uint2": 2}


class Unsupported(Exception):
    """A spec (or args) the other side cannot express; the message says why."""


def uint_shift(dtype: str) -> int:
    """What to subtract from qplan codes and zero points to land on the signed grid (0 for signed dtypes)."""
    return 2 ** (INT_BITS[dtype] - 1) if dtype.startswith("u") else 0


def _common(spec: ResolvedSpec) -> dict[str, Any]:
    if spec.dtype == "float8_e4m3fn":
        if spec.scale_dtype is not None:
            raise Unsupported(
                f"power-of-two scales (`scale_dtype: {spec.scale_dtype}`) have no field in compressed-tensors"
            )
        return {"num_bits": 8, "type": "float", "symmetric": True}
    if spec.dtype not in INT_BITS:
        raise Unsupported(
            f"dtype `{spec.dtype}` has no compressed-tensors counterpart (int2..int8 and float8_e4m3fn do)"
        )
    if spec.qformulation != "zp":
        raise Unsupported(
            "the `minval` formulation (x = (q - qmin)·s + m) needs a non-integer zero point; "
            "compressed-tensors stores integer zero points"
        )
    return {"num_bits": INT_BITS[spec.dtype], "type": "int", "symmetric": spec.qscheme != "asymmetric"}


def weight_args(spec: ResolvedSpec, shape: tuple[int, ...]) -> dict[str, Any]:
    """``QuantizationArgs`` fields for a 2-D weight (``[out, in]``, the Linear / Embedding layout)."""
    args = _common(spec)
    if len(shape) != 2:
        raise Unsupported(f"weight of shape {list(shape)} is not 2-D; compressed-tensors quantizes Linear/Embedding")
    if spec.granularity == "per_tensor":
        args["strategy"] = "tensor"
    elif spec.granularity == "per_channel":
        if spec.axis != 0:
            raise Unsupported(f"per-channel axis {spec.axis}: compressed-tensors' `channel` strategy is axis 0 (rows)")
        args["strategy"] = "channel"
    else:
        rows, cols = _weight_block(spec, shape)
        if rows == 1:
            args.update(strategy="group", group_size=cols)
        elif args["type"] == "int" and args["num_bits"] < 8:
            raise Unsupported(
                f"2-D blocks {[rows, cols]} of {spec.dtype}: pack-quantized stores groups of one row only"
            )
        else:
            args.update(strategy="block", block_structure=[rows, cols])
    if spec.qparam_calculator == "dynamic":
        raise Unsupported("dynamic weight qparams: compressed-tensors stores weight scales")
    return args


def _weight_block(spec: ResolvedSpec, shape: tuple[int, ...]) -> tuple[int, int]:
    bs = spec.block_size
    if isinstance(bs, (tuple, list)):
        rows, cols = (d if b == -1 else int(b) for b, d in zip(bs, shape, strict=True))
    elif spec.axis == 1 and isinstance(bs, int):
        rows, cols = 1, bs
    else:
        raise Unsupported(
            f"per-block along axis {spec.axis}: compressed-tensors groups run along the input dim (axis 1)"
        )
    return rows, cols


def activation_args(spec: ResolvedSpec, shape: tuple[int, ...]) -> dict[str, Any]:
    """``QuantizationArgs`` fields for an activation (a Linear input or output)."""
    args = _common(spec)
    dynamic = spec.qparam_calculator == "dynamic"
    if spec.granularity == "per_tensor":
        args["strategy"] = "tensor"
    elif spec.granularity == "per_block" and dynamic and _per_token(spec, shape):
        args["strategy"] = "token"
    else:
        raise Unsupported(
            f"{spec.granularity} activations: compressed-tensors has per-tensor activations (static or dynamic) "
            "and dynamic per-token ones"
        )
    if tuple(spec.float_range) != (None, None):
        raise Unsupported(f"a fixed float_range {list(spec.float_range)} is calibration-time only; it is not stored")
    args["dynamic"] = dynamic
    return args


def _per_token(spec: ResolvedSpec, shape: tuple[int, ...]) -> bool:
    bs = spec.block_size
    if isinstance(bs, (tuple, list)):
        return all(b == 1 for b in bs[:-1]) and bs[-1] in (-1, shape[-1])
    return spec.axis == len(shape) - 1 and bs == shape[-1]


# ------------------------------------------------------------------------------------------- reverse


def spec_from_args(args: dict[str, Any], *, weight: bool) -> QuantizationSpec:
    """A qplan spec for one compressed-tensors ``QuantizationArgs`` (as a dict); :class:`Unsupported` if none."""
    num_bits = int(args.get("num_bits", 8))
    kind = str(args.get("type", "int"))
    symmetric = bool(args.get("symmetric", True))
    strategy = args.get("strategy") or _implied_strategy(args.get("group_size"))
    dynamic = args.get("dynamic", False)
    if args.get("actorder") not in (None, False):
        raise Unsupported(f"actorder `{args['actorder']}` (GPTQ column order) has no qplan counterpart")
    if dynamic not in (True, False):
        raise Unsupported(f"dynamic `{dynamic}` (locally dynamic tensor_group scales) has no qplan counterpart")
    if kind == "float":
        if num_bits != 8:
            raise Unsupported(f"float{num_bits} (nvfp4/mxfp tensor_group scales) has no qplan counterpart")
        dtype = "float8_e4m3fn"
    elif kind == "int" and num_bits in (2, 4, 8):
        dtype = f"int{num_bits}"
    else:
        raise Unsupported(f"{kind}{num_bits} has no qplan dtype")
    if kind == "float" and not symmetric:
        raise Unsupported("asymmetric float quantization has no qplan counterpart")
    granularity: Any
    if strategy == "tensor":
        granularity = PerTensorGranularity()
    elif strategy == "channel" and weight:
        granularity = PerChannelGranularity(axis=0)
    elif strategy == "group" and weight:
        granularity = PerBlockGranularity(block_size=int(args["group_size"]), axis=1)
    elif strategy == "block" and weight:
        granularity = PerBlockGranularity(block_size=tuple(int(b) for b in args["block_structure"]))
    else:
        role = "weights" if weight else "activations"
        raise Unsupported(f"strategy `{strategy}` for {role} has no qplan granularity")
    calculator = "dynamic" if dynamic else ("static" if weight else "default")
    fields: dict[str, Any] = {
        "dtype": dtype,
        "qscheme": "symmetric" if symmetric else "asymmetric",
        "granularity": granularity,
        "qparam_calculator_cls": calculator,
    }
    return QuantizationSpec(**fields)


def _implied_strategy(group_size: Any) -> str:
    if group_size is None:
        return "tensor"
    return "channel" if int(group_size) == -1 else "group"
