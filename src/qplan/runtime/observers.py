"""Range observers and qparams: observe a tensor's range, merge it into the running range, compute
scale and zero point / minval from it.

A range is a ``[2, *qparams_shape]`` float32 tensor ``(-min, max)``, both clamped at 0 so that
``min ≤ 0 ≤ max``. Calculators (``qparam_calculator``): ``static`` takes the current range;
``moving_average`` is an EMA with constant :data:`EMA_CONSTANT` (the first observation initialises
it); ``global_minmax`` keeps the min of mins and the max of maxes; ``dynamic`` keeps no state. A
``float_range`` bound that is not null replaces the observed one. Under DDP, activation ranges are
all-reduced with ``MAX`` over ``(-min, max)`` before merging, at every observation in calibration
(eval) and in training alike, so every rank calls the model the same number of times while observers
are on (weights are the same on every rank and are not reduced).

Scales are at least ``torch.finfo(float32).eps`` (integers) or the smallest normal float32 (floats),
or a power of two (``e8m0``) for pow2 float formats.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as _dist

from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.layout import QParamLayout
from qplan.runtime.numerics import Numerics
from qplan.runtime.qformats import e8m0_scale

__all__ = [
    "check_observer",
    "EMA_CONSTANT",
    "CALCULATORS",
    "INT_EPS",
    "range_of",
    "merge_range",
    "compute_qparams",
    "sync_range",
]

EMA_CONSTANT = 0.01
CALCULATORS = ("static", "moving_average", "global_minmax", "dynamic")
INT_EPS = torch.finfo(torch.float32).eps
FLOAT_EPS = torch.finfo(torch.float32).tiny


def check_observer(spec: ResolvedSpec, where: str = "") -> None:
    """Raise ``ValueError`` unless the runtime implements the spec's observer (``where``: `` for `name```)."""
    if spec.qparam_calculator not in CALCULATORS:
        raise ValueError(
            f"unsupported qparam calculator `{spec.qparam_calculator}`{where}; expected one of {', '.join(CALCULATORS)}"
        )
    if spec.qparam_calculator == "dynamic" and tuple(spec.float_range) != (None, None):
        raise ValueError(f"`dynamic` qparams need float_range [null, null]{where}")
    if spec.range_calculator != "minmax":
        raise ValueError(f"unsupported range calculator `{spec.range_calculator}`{where}; expected `minmax`")


def world_size() -> int:
    if _dist.is_available() and _dist.is_initialized():
        return _dist.get_world_size()
    return 1


def sync_range(cur: torch.Tensor) -> None:
    """All-reduce a range ``(-min, max)`` with ``MAX`` across DDP ranks, in place."""
    _dist.all_reduce(cur, op=_dist.ReduceOp.MAX)


def range_of(x: torch.Tensor, layout: QParamLayout, out: torch.Tensor | None = None) -> torch.Tensor:
    """The range of float32 ``x`` per qparam group (written into ``out`` when given)."""
    if layout.block is not None:
        v = x.reshape(layout.view_shape(x.shape))
        mn = torch.amin(v, dim=layout.rdims)
        mx = torch.amax(v, dim=layout.rdims)
    elif layout.rdims:
        mn = torch.amin(x, dim=layout.rdims)
        mx = torch.amax(x, dim=layout.rdims)
    else:
        mn, mx = torch.aminmax(x)
    return torch.stack((torch.neg(mn), mx), out=out).clamp_(0)


def merge_range(
    bounds: torch.Tensor,
    cur: torch.Tensor,
    *,
    replace: bool,
    ema: bool,
    sync: bool,
    fixed: tuple[float | None, float | None],
) -> None:
    """Fold this call's range ``cur`` into ``bounds`` (already written there when ``replace``): reduce
    across DDP ranks (``sync``), then EMA or running min/max, then the fixed ``float_range`` bounds."""
    if sync and world_size() > 1:
        sync_range(cur)
    if replace:
        pass
    elif ema:
        bounds.lerp_(cur, EMA_CONSTANT)
    else:  # global_minmax
        torch.maximum(bounds, cur, out=bounds)
    lo, hi = fixed
    if lo is not None:
        bounds[0].fill_(max(-lo, 0.0))
    if hi is not None:
        bounds[1].fill_(max(hi, 0.0))


def symmetric_scale(
    bounds: torch.Tensor, divisor: torch.Tensor, reduce: bool, out: torch.Tensor | None, inv_out: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scale, 1/scale, amax)`` of a symmetric integer scheme (``reduce``: per group, else one)."""
    amax = torch.amax(bounds, dim=0) if reduce else torch.max(bounds)
    scale = torch.div(amax, divisor, out=out).clamp_(INT_EPS)
    return scale, torch.reciprocal(scale, out=inv_out), amax


def compute_qparams(
    num: Numerics, layout: QParamLayout, bounds: torch.Tensor, buffers: dict[str, Any], out: bool = False
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``(scale, 1/scale, zero_point | minval | None)`` from ``bounds``; with ``out`` written into the
    ``scale``/``_inv_scale``/``zero_point``/``minval`` tensors of ``buffers`` (which also holds the
    ``_divisor`` and ``_qmin_t`` constants). Without ``out`` a symmetric zp returns its constant."""
    b = buffers
    o_scale = b["scale"] if out else None
    o_inv = b["_inv_scale"] if out else None
    if num.is_float:
        amax = torch.amax(bounds, dim=0)
        if num.pow2_scale:
            s = e8m0_scale(amax, num.fmt)  # type: ignore[arg-type]
            scale = o_scale.copy_(s) if o_scale is not None else s
        else:
            scale = torch.div(amax, b["_divisor"], out=o_scale).clamp_(min=FLOAT_EPS)
        return scale, torch.reciprocal(scale, out=o_inv), None
    if num.symmetric:
        reduce = bool(layout.rdims) or layout.block is not None
        scale, inv, amax = symmetric_scale(bounds, b["_divisor"], reduce, o_scale, o_inv)
        if num.use_minval:
            return scale, inv, torch.neg(amax, out=b["minval"] if out else None)
        return scale, inv, None if out else num.zp_const
    scale = torch.sum(bounds, dim=0).div_(b["_divisor"])
    scale = torch.clamp(scale, min=INT_EPS, out=o_scale)
    inv = torch.reciprocal(scale, out=o_inv)
    if num.use_minval:
        return scale, inv, torch.neg(bounds[0], out=b["minval"] if out else None)
    zp = torch.div(bounds[0], scale).round_().add_(b["_qmin_t"]).clamp_(num.quant_min, num.quant_max)
    if out:
        return scale, inv, b["zero_point"].copy_(zp)
    return scale, inv, zp.to(torch.int32)
