"""Fake-quantize modules: an observer and a fake-quantizer in one module, built from a ``ResolvedSpec``.

Numerics (SPEC §4), with ``s`` the scale and ``[qmin, qmax]`` the integer range:

- ``zp`` formulation: ``q = clamp(round(x/s) + zp, qmin, qmax)``, ``x̂ = (q - zp)·s``.
  Symmetric: ``s = max(-min, max) / ((qmax - qmin)/2)``, ``zp = 0`` (uint: ``(qmin + qmax + 1) // 2``).
  Asymmetric: ``s = (max - min) / (qmax - qmin)``, ``zp = clamp(qmin - round(min/s), qmin, qmax)``.
- ``minval`` formulation (scale + min value ``m``): ``q = clamp(round((x - m)/s) + qmin, qmin, qmax)``,
  ``x̂ = (q - qmin)·s + m``, i.e. ``x̂ = u·s + m`` with the unsigned code ``u = q - qmin``. The grid starts
  at ``m`` instead of being anchored at 0: ``m = min`` (asymmetric) or ``m = -max(|min|, |max|)``
  (symmetric), with ``s`` as in the zp formulation.
- float formats (fp8, fp4): ``x̂ = cast(clamp(x/s, -fmax, fmax))·s`` with ``s = amax/fmax``, or a power of
  two (``scale_dtype: float8_e8m0fnu``; always for fp4) ``2^(floor(log2 amax) - emax)``.

``min``/``max`` always include 0 (``min ≤ 0 ≤ max``). Scales are at least ``torch.finfo(float32).eps``
(integers) or the smallest normal float32 (floats). ``x/s`` is computed as ``x·(1/s)`` for integers, as
torch's and torchao's kernels do. Gradients are straight-through: ``∂x̂/∂x = 1`` where ``round(x/s) + zp``
lies in ``[qmin, qmax]`` (floats: ``|x/s| ≤ fmax``), 0 elsewhere; qparams get no gradient.

Observers (``qparam_calculator``): ``static`` takes the range of the current tensor; ``moving_average``
is an EMA with constant 0.01 (the first observation initialises it); ``global_minmax`` keeps the min of
mins and the max of maxes; ``dynamic`` computes qparams from each tensor and keeps no state. A
``float_range`` bound that is not null replaces the observed one. Qparams are recomputed at every
observation and frozen while the observer is off.

Speed: the hot path is a handful of tensor ops with no host synchronisation; on/off switches are 0/1
uint8 buffers (persisted, like ``torch.ao``'s ``FakeQuantize``) mirrored by Python booleans that the
forward branches on, so switching is cheap and ``torch.compile`` guards on them instead of breaking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as _dist
from torch import nn

from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.qformats import (
    FLOAT_FORMATS,
    codes_to_e2m1,
    e2m1_to_codes,
    e8m0_scale,
    int_range,
    pack_fp4,
    round_to_e2m1,
    unpack_fp4,
)

__all__ = ["FakeQuantize", "make_fake_quantize", "EMA_CONSTANT"]


def __dir__() -> list[str]:
    return __all__


EMA_CONSTANT = 0.01
_CALCULATORS = ("static", "moving_average", "global_minmax", "dynamic")
_QSCHEMES = ("symmetric", "asymmetric", "symmetric_with_clipping")
_INT_EPS = torch.finfo(torch.float32).eps
_FLOAT_EPS = torch.finfo(torch.float32).tiny


def _world_size() -> int:
    if _dist.is_available() and _dist.is_initialized():
        return _dist.get_world_size()
    return 1


# --------------------------------------------------------------------------------------------------
# Autograd kernels: a few float elementwise ops forward, one `hardtanh_backward` backward.


_hardtanh_backward = torch.ops.aten.hardtanh_backward.default


def _above(v: float) -> float:
    """The next float32 above ``v`` (as a Python float), so a strict bound acts as an inclusive one."""
    return torch.nextafter(torch.tensor(v, dtype=torch.float32), torch.tensor(math.inf)).item()


# Tensors of at least this many elements recompute their codes in backward instead of keeping them:
# one full-size buffer less per call. On CPU a fresh buffer of that size comes from `mmap`, and
# page-faulting it in costs more than the extra multiply and round.
RECOMPUTE_NUMEL = 1 << 16
_hardtanh_backward_into = torch.ops.aten.hardtanh_backward.grad_input


def _codes(x, inv_scale, zp, off):  # type: ignore[no-untyped-def]
    """``round((x - off)·inv) + zp``, a fresh tensor."""
    t = torch.mul(x, inv_scale) if off is None else torch.sub(x, off).mul_(inv_scale)
    t.round_()
    return t if zp is None else t.add_(zp)


def _frozen_qparam(v):  # type: ignore[no-untyped-def]
    """A qparam as backward will read it: tensors are copied (the observer updates them in place)."""
    return v.clone() if isinstance(v, torch.Tensor) else v


def _fq_int(ctx, x, scale, inv_scale, zp, off, lo, hi):  # type: ignore[no-untyped-def]
    """Forward of :class:`_FakeQuantInt` (and of :class:`_ObserveFakeQuantInt` after its observer)."""
    t = torch.mul(x, inv_scale) if off is None else torch.sub(x, off).mul_(inv_scale)  # `_codes`, inline
    t.round_()
    if zp is not None:
        t.add_(zp)
    if ctx.needs_input_grad[0]:
        ctx.bounds = (lo - 0.5, hi + 0.5)
        if x.numel() >= RECOMPUTE_NUMEL:
            ctx.save_for_backward(x)
            ctx.qparams = (_frozen_qparam(inv_scale), _frozen_qparam(zp), _frozen_qparam(off))
            out = t.clamp_(lo, hi)
        else:
            ctx.save_for_backward(t)
            ctx.qparams = None
            out = torch.clamp(t, lo, hi)
    else:
        out = t.clamp_(lo, hi)
    if zp is not None:
        out.sub_(zp)
    if off is None:
        return out.mul_(scale)
    return torch.addcmul(off, out, scale)


def _fq_int_grad(ctx, grad):  # type: ignore[no-untyped-def]
    (saved,) = ctx.saved_tensors
    if ctx.qparams is None:
        return _hardtanh_backward(grad, saved, *ctx.bounds)
    t = _codes(saved, *ctx.qparams)
    return _hardtanh_backward_into(grad, t, *ctx.bounds, grad_input=t)


class _FakeQuantInt(torch.autograd.Function):
    """``(clamp(round((x - off)·inv) + zp, lo, hi) - zp)·s + off``; gradient ``g·[lo ≤ round(...) + zp ≤ hi]``.

    ``zp`` and ``off`` may be ``None`` (skipped) and ``zp`` may be a Python number. The mask is not
    materialised: backward applies ``hardtanh_backward`` to the integer-valued pre-clamp codes with
    bounds ``lo - 0.5`` and ``hi + 0.5`` (float ops only; bool tensors are slow on CPU). Small tensors
    save the codes; tensors of :data:`RECOMPUTE_NUMEL` elements or more save ``x`` and copies of the
    qparams and recompute the codes in backward (same ops, same values), writing the gradient into them.
    """

    forward = staticmethod(_fq_int)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _fq_int_grad(ctx, grad), None, None, None, None, None, None


class _ObserveFakeQuantInt(torch.autograd.Function):
    """A :class:`FakeQuantize`'s observer and :class:`_FakeQuantInt` in one autograd call: inside
    ``forward`` grad mode is off, so the observer reads ``x`` itself (no ``detach``)."""

    @staticmethod
    def forward(ctx, x, fq):  # type: ignore[override]
        return fq._observe_and_fake_quant(ctx, x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return _fq_int_grad(ctx, grad), None


class _FakeQuantFloat(torch.autograd.Function):
    """``cast(clamp(x/s, -fmax, fmax))·s`` through a float8 dtype or the e2m1 grid (``dtype=None``);
    gradient ``g·[|x/s| ≤ fmax]``."""

    @staticmethod
    def forward(ctx, x, scale, fmax, dtype, grad_bound):  # type: ignore[override]
        t = torch.div(x, scale)
        out = torch.clamp(t, -fmax, fmax)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(t)
            ctx.bound = grad_bound  # the float32 just above fmax: |t| <= fmax passes
        out = round_to_e2m1(out) if dtype is None else out.to(dtype).to(x.dtype)
        return out.mul_(scale)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (t,) = ctx.saved_tensors
        return _hardtanh_backward(grad, t, -ctx.bound, ctx.bound), None, None, None, None


# ``Function.apply`` re-inspects the class and unwraps functorch wrappers in Python on every call; the
# hot path calls the C implementation directly unless functorch transforms or dynamo are active.
_C_APPLY_INT = super(torch.autograd.Function, _FakeQuantInt).apply
_C_APPLY_OBSERVE_INT = super(torch.autograd.Function, _ObserveFakeQuantInt).apply
_functorch_active = torch._C._are_functorch_transforms_active
_is_compiling = torch.compiler.is_compiling


def _apply_int(x, scale, inv, zp, off, lo, hi):  # type: ignore[no-untyped-def]
    if _is_compiling() or _functorch_active():
        return _FakeQuantInt.apply(x, scale, inv, zp, off, lo, hi)
    return _C_APPLY_INT(x, scale, inv, zp, off, lo, hi)


# --------------------------------------------------------------------------------------------------


def _block_bshape(vshape: Sequence[int]) -> tuple[int, ...]:
    """Broadcast shape of per-block qparams against a ``(blocks, length)``-split view."""
    return tuple(1 if i % 2 else n for i, n in enumerate(vshape))


class FakeQuantize(nn.Module):
    """Observe a tensor's range and fake-quantize it, following one :class:`ResolvedSpec`.

    Parameters
    ----------
    spec:
        The resolved spec (dtype, qscheme, qformulation, granularity, calculator, float_range, scale_dtype).
    shape:
        The tensor's shape as recorded in the plan; it fixes the number of qparams (channels, blocks).
        Activation batch sizes may differ at run time as long as the qparams count does not change.
    role:
        ``"state"`` for weights (SPEC §3 roles), anything else is an activation. It decides how an
        integer ``block_size`` collapses the other dims and whether observers reduce across ranks
        (weights are identical on every DDP rank, so they are not reduced).
    name:
        Shown in ``repr`` and in error messages (for instance the plan address).

    Buffers: ``scale`` (float32), ``zero_point`` (int32, zp formulation) or ``minval`` (float32, minval
    formulation), ``bounds`` (``[2, *qshape]``: ``-min`` and ``max`` of the observed range, both ≥ 0),
    ``observer_enabled`` / ``fake_quant_enabled`` / ``observed`` (uint8 flags). ``dynamic`` keeps only
    the flags. Per-tensor qparams are 0-dim, per-channel ``[C]``, per-block ``[n_0, n_1, ...]`` (blocks
    per dim, the torchao layout).
    """

    def __init__(self, spec: ResolvedSpec, shape: Sequence[int], *, role: str = "input", name: str | None = None):
        super().__init__()
        self.spec = spec
        self.shape = tuple(int(d) for d in shape)
        self.role = role
        self.name = name
        self.is_weight = role == "state"
        self._check_spec()
        dtype = spec.dtype
        self.is_float = dtype in FLOAT_FORMATS
        self.symmetric = spec.qscheme != "asymmetric"
        self.use_minval = spec.qformulation == "minval"
        self.calculator = spec.qparam_calculator
        self.dynamic = self.calculator == "dynamic"
        if self.is_float:
            fmt = FLOAT_FORMATS[dtype]
            self._fmt = fmt
            self._cast_dtype = fmt.torch_dtype  # None: fp4, rounded on the e2m1 grid
            self.quant_min, self.quant_max = -fmt.fmax, fmt.fmax
            self.pow2_scale = spec.scale_dtype == "float8_e8m0fnu" or fmt.torch_dtype is None
            self._grad_bound = _above(fmt.fmax)
        else:
            self._fmt = None
            self._cast_dtype = None
            self.quant_min, self.quant_max = int_range(dtype, spec.qscheme)
            self.pow2_scale = False
        # Constant zero point of symmetric integer schemes: 0 (signed) or mid-range (unsigned).
        self._zp_const = (self.quant_min + self.quant_max + 1) // 2 if not self.is_float else 0
        self._setup_granularity()
        # Constants as 0-dim tensors: binary ops with a Python number pay for wrapping it on every call.
        # scale = range / divisor: fmax (floats), (qmax - qmin) / 2 (symmetric), qmax - qmin (asymmetric).
        if self.is_float:
            divisor = float(self.quant_max)
        else:
            divisor = float(self.quant_max - self.quant_min) / (2 if self.symmetric else 1)
        self.register_buffer("_divisor", torch.tensor(divisor), persistent=False)
        self.register_buffer("_qmin_t", torch.tensor(float(self.quant_min)), persistent=False)
        self.register_buffer("_zp_t", torch.tensor(float(self._zp_const)), persistent=False)

        lo, hi = tuple(spec.float_range)
        self._fixed_lo = None if lo is None else float(lo)
        self._fixed_hi = None if hi is None else float(hi)
        self._frozen_range = self._fixed_lo is not None and self._fixed_hi is not None
        self._setup_hot_path()

        qshape = self.qparams_shape
        self._obs_on = True
        self._fq_on = True
        self._observed = False
        self.register_buffer("observer_enabled", torch.ones(1, dtype=torch.uint8))
        self.register_buffer("fake_quant_enabled", torch.ones(1, dtype=torch.uint8))
        self.register_buffer("observed", torch.zeros(1, dtype=torch.uint8))
        if not self.dynamic:
            self.register_buffer("scale", torch.ones(qshape))
            self.register_buffer("_inv_scale", torch.ones(qshape), persistent=False)
            if not self.is_float:
                if self.use_minval:
                    self.register_buffer("minval", torch.zeros(qshape))
                else:
                    self.register_buffer("zero_point", torch.full(qshape, self._zp_const, dtype=torch.int32))
            self.register_buffer("bounds", torch.zeros((2, *qshape)))
            if self._frozen_range:
                self.bounds[0].fill_(max(-self._fixed_lo, 0.0))
                self.bounds[1].fill_(max(self._fixed_hi, 0.0))
                self._compute_qparams(self.bounds, out=True)
                self._set_observed()

    # ---------------------------------------------------------------------------------------- setup

    def _check_spec(self) -> None:
        spec = self.spec
        where = f" for `{self.name}`" if self.name else ""
        if spec.dtype not in FLOAT_FORMATS and spec.dtype not in ("int8", "int4", "int2", "uint8", "uint4", "uint2"):
            raise ValueError(f"unsupported quantization dtype `{spec.dtype}`{where}")
        if spec.qscheme not in _QSCHEMES:
            raise ValueError(f"unsupported qscheme `{spec.qscheme}`{where}; expected one of {', '.join(_QSCHEMES)}")
        if spec.qformulation not in ("zp", "minval"):
            raise ValueError(f"unsupported qformulation `{spec.qformulation}`{where}; expected `zp` or `minval`")
        if spec.qparam_calculator not in _CALCULATORS:
            raise ValueError(
                f"unsupported qparam calculator `{spec.qparam_calculator}`{where}; expected one of {', '.join(_CALCULATORS)}"
            )
        if spec.dtype in FLOAT_FORMATS and (spec.qscheme != "symmetric" or spec.qformulation != "zp"):
            raise ValueError(f"float dtype `{spec.dtype}` needs qscheme `symmetric` and qformulation `zp`{where}")
        if spec.scale_dtype not in (None, "float8_e8m0fnu"):
            raise ValueError(f"unsupported scale_dtype `{spec.scale_dtype}`{where}; expected null or `float8_e8m0fnu`")
        if spec.scale_dtype is not None and spec.dtype not in FLOAT_FORMATS:
            raise ValueError(f"scale_dtype `{spec.scale_dtype}` is only for float dtypes, not `{spec.dtype}`{where}")
        if spec.qparam_calculator == "dynamic" and tuple(spec.float_range) != (None, None):
            raise ValueError(f"`dynamic` qparams need float_range [null, null]{where}")
        if spec.range_calculator != "minmax":
            raise ValueError(f"unsupported range calculator `{spec.range_calculator}`{where}; expected `minmax`")

    def _setup_granularity(self) -> None:
        spec, shape = self.spec, self.shape
        ndim = len(shape)
        self.granularity = spec.granularity
        self.axis: int | None = None
        self._block: tuple[int | None, ...] | None = None  # per dim: block length, None = whole dim
        if spec.granularity == "per_tensor":
            self.qparams_shape: tuple[int, ...] = ()
            self._rdims: tuple[int, ...] = ()
            self._bshape: tuple[int, ...] = ()
        elif spec.granularity == "per_channel":
            axis = self._check_axis(spec.axis, ndim)
            self.axis = axis
            self.qparams_shape = (shape[axis],)
            self._rdims = tuple(i for i in range(ndim) if i != axis)
            self._bshape = tuple(shape[axis] if i == axis else 1 for i in range(ndim))
        elif spec.granularity == "per_block":
            block = self._resolve_block(spec, shape)
            self._block = tuple(None if b == d else b for b, d in zip(block, shape, strict=True))
            self.qparams_shape = tuple(d // b for d, b in zip(shape, block, strict=True))
            self._rdims = tuple(range(1, 2 * ndim, 2))
            self._bshape = ()  # per call, from the block view (see `_view`)
        else:
            raise ValueError(f"unsupported granularity `{spec.granularity}`")

    def _check_axis(self, axis: int | None, ndim: int) -> int:
        if axis is None:
            raise ValueError(f"{self.spec.granularity} needs a resolved axis (got none) for `{self.name}`")
        a = axis + ndim if axis < 0 else axis
        if not 0 <= a < ndim:
            raise ValueError(f"axis {axis} is out of range for a tensor of shape {list(self.shape)} (`{self.name}`)")
        return a

    def _resolve_block(self, spec: ResolvedSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
        ndim = len(shape)
        bs = spec.block_size
        if isinstance(bs, (tuple, list)):
            if len(bs) != ndim:
                raise ValueError(
                    f"block_size {list(bs)} needs one entry per dim of shape {list(shape)} (`{self.name}`)"
                )
            block = [d if b == -1 else int(b) for b, d in zip(bs, shape, strict=True)]
        elif isinstance(bs, int):
            axis = self._check_axis(spec.axis, ndim)
            # weights: only the two leading (channel) dims split, kernel dims stay whole;
            # activations: one block per position along every other dim.
            collapse = min(2, ndim) if self.is_weight else ndim
            block = list(shape)
            for i in range(collapse):
                block[i] = 1
            block[axis] = bs
        else:
            raise ValueError(f"per_block needs a block_size (`{self.name}`)")
        for b, d in zip(block, shape, strict=True):
            if b <= 0 or d % b:
                raise ValueError(f"block_size {bs} does not divide shape {list(shape)} (`{self.name}`)")
        return tuple(block)

    def _setup_hot_path(self) -> None:
        """Constants the per-call code reads instead of re-deriving them from the spec."""
        self._replace_always = self.calculator == "static"  # the observer keeps no history
        self._ema = self.calculator == "moving_average"
        # integer, not per-block, qparams stored: one autograd call with cached qparam views
        self._fast = not (self.is_float or self.dynamic or self._block is not None)
        if self.use_minval:
            self._int_kind, self._offset_name = "minval", "minval"
        elif self.symmetric:
            self._int_kind, self._offset_name = "sym", None
        else:
            self._int_kind, self._offset_name = "asym", "zero_point"
        self.__dict__["_qcache"] = None  # (scale, inv, offset buffers, their broadcast views)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_qcache"] = None  # views of the buffers: rebuilt from the copied buffers on first use
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "_fast" not in self.__dict__:  # pickled before the hot-path constants existed
            self._setup_hot_path()

    def _qviews(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(scale, 1/scale, zero_point | minval | None)`` buffers, viewed to broadcast against the
        tensor. The views share the buffers' storage (qparams are updated in place), so they are made
        once and remade only when a buffer object is replaced (``.to()``, ``load_state_dict(assign=True)``)."""
        b = self._buffers
        scale, inv = b["scale"], b["_inv_scale"]
        off = b[self._offset_name] if self._offset_name is not None else None
        c = self._qcache
        if c is not None and c[0] is scale and c[1] is inv and c[2] is off:
            return c[3]
        bshape = self._bshape
        if bshape:
            views = (scale.view(bshape), inv.view(bshape), None if off is None else off.view(bshape))
        else:
            views = (scale, inv, off)
        self.__dict__["_qcache"] = (scale, inv, off, views)
        return views

    # --------------------------------------------------------------------------------------- switches

    def enable_observer(self, enabled: bool = True) -> FakeQuantize:
        self.observer_enabled.fill_(1 if enabled else 0)
        self._obs_on = bool(enabled)
        return self

    def disable_observer(self) -> FakeQuantize:
        return self.enable_observer(False)

    def enable_fake_quant(self, enabled: bool = True) -> FakeQuantize:
        self.fake_quant_enabled.fill_(1 if enabled else 0)
        self._fq_on = bool(enabled)
        return self

    def disable_fake_quant(self) -> FakeQuantize:
        return self.enable_fake_quant(False)

    def apply_schedule(self, step: int) -> None:
        """Set both switches from the spec's QAT schedule at ``step`` (SPEC §1.5)."""
        sch = self.spec.schedule
        if sch is None:
            raise ValueError(f"`{self.name}` has no QAT schedule")
        self.enable_observer(sch.observer_on(step))
        self.enable_fake_quant(sch.fake_quant_on(step))

    def _set_observed(self) -> None:
        self._observed = True
        self.observed.fill_(1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._obs_on = bool(self.observer_enabled[0])
        self._fq_on = bool(self.fake_quant_enabled[0])
        self._observed = bool(self.observed[0])
        if not self.dynamic:
            torch.reciprocal(self.scale, out=self._inv_scale)

    # --------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast and self._fq_on and x.dtype == torch.float32:
            # the common case inline (integer, per-tensor or per-channel, stored qparams): each Python
            # frame and tensor op here is paid by every fake-quant on every step
            traced = _is_compiling() or _functorch_active()
            if self._obs_on and not self._frozen_range and not traced:
                return _C_APPLY_OBSERVE_INT(x, self)
            b = self._buffers
            if self._obs_on and not self._frozen_range:
                self._observe_int(x.detach(), b)
            if self._bshape:
                scale, inv, offset = self._qviews()
            else:
                scale, inv = b["scale"], b["_inv_scale"]
                offset = b[self._offset_name] if self._offset_name is not None else None
            apply = _FakeQuantInt.apply if traced else _C_APPLY_INT
            kind = self._int_kind
            if kind == "sym":
                zp = b["_zp_t"] if self._zp_const else None
                return apply(x, scale, inv, zp, None, self.quant_min, self.quant_max)
            if kind == "asym":
                return apply(x, scale, inv, offset, None, self.quant_min, self.quant_max)
            return apply(x, scale, inv, None, offset, 0, self.quant_max - self.quant_min)
        if not self._fq_on:
            if self._obs_on and not self.dynamic:
                self._observe(x)
            return x
        if x.dtype != torch.float32:
            return self._forward_fq(x.float()).to(x.dtype)
        return self._forward_fq(x)

    def _forward_fq(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast:
            if self._obs_on:
                self._observe(x)
            scale, inv, offset = self._qviews()
            kind = self._int_kind
            if kind == "sym":
                zp = self._buffers["_zp_t"] if self._zp_const else None
                return _apply_int(x, scale, inv, zp, None, self.quant_min, self.quant_max)
            if kind == "asym":
                return _apply_int(x, scale, inv, offset, None, self.quant_min, self.quant_max)
            return _apply_int(x, scale, inv, None, offset, 0, self.quant_max - self.quant_min)
        if self.dynamic:
            scale, inv, offset = self._compute_qparams(self._range_of(x.detach()))
        else:
            if self._obs_on:
                self._observe(x)
            scale, inv = self.scale, self._inv_scale
            offset = None if self.is_float else (self.minval if self.use_minval else self.zero_point)
        return self._fake_quant(x, scale, inv, offset)

    def _fake_quant(self, x, scale, inv, offset):  # type: ignore[no-untyped-def]
        block = self._block is not None
        if block:
            vshape = self._view_shape(x.shape)
            v = x.reshape(vshape)
            bshape = _block_bshape(vshape)
        else:
            v = x
            bshape = self._bshape
        if bshape:
            scale = scale.view(bshape)
            if torch.is_tensor(offset):
                offset = offset.view(bshape)
            if inv is not None:
                inv = inv.view(bshape)
        if self.is_float:
            out = _FakeQuantFloat.apply(v, scale, self.quant_max, self._cast_dtype, self._grad_bound)
        elif self.use_minval:
            out = _FakeQuantInt.apply(v, scale, inv, None, offset, 0, self.quant_max - self.quant_min)
        elif self.symmetric:
            zp = self._zp_t if self._zp_const else None
            out = _FakeQuantInt.apply(v, scale, inv, zp, None, self.quant_min, self.quant_max)
        else:
            out = _FakeQuantInt.apply(v, scale, inv, offset, None, self.quant_min, self.quant_max)
        return out.reshape(x.shape) if block else out

    # --------------------------------------------------------------------------------------- observer

    def _view_shape(self, shape: torch.Size) -> list[int]:
        """Split every dim into ``(blocks, block length)`` for per-block reductions and broadcasts."""
        out: list[int] = []
        for d, b, n in zip(shape, self._block, self.qparams_shape, strict=True):  # type: ignore[arg-type]
            if b is None:
                out += (1, d)
            elif self.dynamic:
                out += (d // b, b)
            else:
                if d != n * b:
                    raise ValueError(
                        f"`{self.name}`: tensor of shape {list(shape)} does not fit the {list(self.qparams_shape)} "
                        f"blocks fixed by the plan shape {list(self.shape)}"
                    )
                out += (n, b)
        return out

    def _view(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """``x`` in the layout qparams broadcast against, and the broadcast shape of the qparams."""
        if self._block is None:
            return x, self._bshape
        vshape = self._view_shape(x.shape)
        return x.reshape(vshape), _block_bshape(vshape)

    def _range_of(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``[2, *qshape]`` float32: ``-min`` and ``max`` of float32 ``x`` per qparam group, clamped at 0
        (written into ``out`` when given)."""
        if self._block is not None:
            v = x.reshape(self._view_shape(x.shape))
            mn = torch.amin(v, dim=self._rdims)
            mx = torch.amax(v, dim=self._rdims)
        elif self._rdims:
            mn = torch.amin(x, dim=self._rdims)
            mx = torch.amax(x, dim=self._rdims)
        else:
            mn, mx = torch.aminmax(x)
        return torch.stack((torch.neg(mn), mx), out=out).clamp_(0)

    def _observe_and_fake_quant(self, ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        """Forward of :class:`_ObserveFakeQuantInt`: the inline case of :meth:`forward` with its observer on."""
        b = self._buffers
        self._observe_int(x, b)
        if self._bshape:
            scale, inv, offset = self._qviews()
        else:
            scale, inv = b["scale"], b["_inv_scale"]
            offset = b[self._offset_name] if self._offset_name is not None else None
        kind = self._int_kind
        if kind == "sym":
            return _fq_int(
                ctx, x, scale, inv, b["_zp_t"] if self._zp_const else None, None, self.quant_min, self.quant_max
            )
        if kind == "asym":
            return _fq_int(ctx, x, scale, inv, offset, None, self.quant_min, self.quant_max)
        return _fq_int(ctx, x, scale, inv, None, offset, 0, self.quant_max - self.quant_min)

    def _observe_int(self, x: torch.Tensor, b: dict) -> None:
        """:meth:`_observe` of a detached float32 tensor for integer, not per-block specs without a
        fixed range, in one frame: the same ops in the same order."""
        bounds = b["bounds"]
        observed = self._observed
        replace = self._replace_always or not observed
        rd = self._rdims
        if rd:
            mn = torch.amin(x, dim=rd)
            mx = torch.amax(x, dim=rd)
        else:
            mn, mx = torch.aminmax(x)
        cur = torch.stack((torch.neg(mn), mx), out=bounds if replace else None).clamp_(0)
        self._merge_range(bounds, cur, replace)
        if self._int_kind == "sym":
            amax = torch.amax(bounds, dim=0) if rd else torch.max(bounds)
            scale = torch.div(amax, b["_divisor"], out=b["scale"]).clamp_(_INT_EPS)
            torch.reciprocal(scale, out=b["_inv_scale"])
        else:
            self._compute_qparams(bounds, out=True)

    def _observe(self, x: torch.Tensor) -> None:
        if self._frozen_range:
            return
        x = x.detach()
        if x.dtype != torch.float32:
            x = x.float()
        bounds = self._buffers["bounds"]
        replace = self._replace_always or not self._observed
        cur = self._range_of(x, out=bounds if replace else None)
        self._merge_range(bounds, cur, replace)
        self._compute_qparams(bounds, out=True)

    def _merge_range(self, bounds: torch.Tensor, cur: torch.Tensor, replace: bool) -> None:
        """Fold this call's range ``cur`` into ``bounds`` (already written there when `replace`):
        reduce across DDP ranks, then EMA or running min/max, then the fixed `float_range` bounds."""
        if not self.is_weight and self.training and _world_size() > 1:
            _dist.all_reduce(cur, op=_dist.ReduceOp.MAX)
        if replace:
            if not self._observed:
                self._set_observed()
        elif self._ema:
            bounds.lerp_(cur, EMA_CONSTANT)
        else:  # global_minmax
            torch.maximum(bounds, cur, out=bounds)
        if self._fixed_lo is not None:
            bounds[0].fill_(max(-self._fixed_lo, 0.0))
        if self._fixed_hi is not None:
            bounds[1].fill_(max(self._fixed_hi, 0.0))

    def _compute_qparams(self, bounds: torch.Tensor, out: bool = False):  # type: ignore[no-untyped-def]
        """``(scale, 1/scale, zero_point | minval | None)`` from ``bounds``; with ``out`` into the buffers."""
        b = self._buffers
        o_scale = b["scale"] if out else None
        o_inv = b["_inv_scale"] if out else None
        if self.is_float:
            amax = torch.amax(bounds, dim=0)
            if self.pow2_scale:
                s = e8m0_scale(amax, self._fmt)  # type: ignore[arg-type]
                scale = o_scale.copy_(s) if out else s
            else:
                scale = torch.div(amax, b["_divisor"], out=o_scale).clamp_(min=_FLOAT_EPS)
            return scale, torch.reciprocal(scale, out=o_inv), None
        if self.symmetric:
            amax = torch.amax(bounds, dim=0) if self._rdims or self._block is not None else torch.max(bounds)
            scale = torch.div(amax, b["_divisor"], out=o_scale).clamp_(_INT_EPS)
            inv = torch.reciprocal(scale, out=o_inv)
            if self.use_minval:
                return scale, inv, torch.neg(amax, out=b["minval"] if out else None)
            return scale, inv, None if out else self._zp_const
        scale = torch.sum(bounds, dim=0).div_(b["_divisor"])
        scale = torch.clamp(scale, min=_INT_EPS, out=o_scale)
        inv = torch.reciprocal(scale, out=o_inv)
        if self.use_minval:
            return scale, inv, torch.neg(bounds[0], out=b["minval"] if out else None)
        zp = torch.div(bounds[0], scale).round_().add_(b["_qmin_t"]).clamp_(self.quant_min, self.quant_max)
        if out:
            return scale, inv, b["zero_point"].copy_(zp)
        return scale, inv, zp.to(torch.int32)

    # ------------------------------------------------------------------------------- qparams / storage

    @property
    def min_val(self) -> torch.Tensor:
        """Observed minimum per qparam group (≤ 0)."""
        return -self.bounds[0]

    @property
    def max_val(self) -> torch.Tensor:
        """Observed maximum per qparam group (≥ 0)."""
        return self.bounds[1]

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(scale, zero_point)`` (zp formulation), ``(scale, minval)`` (minval) or ``(scale, None)``
        (float formats), copies of the current values."""
        if self.dynamic:
            raise RuntimeError(f"`{self.name}` computes its qparams per forward (dynamic); it has none stored")
        if self.is_float:
            return self.scale.clone(), None
        return self.scale.clone(), (self.minval if self.use_minval else self.zero_point).clone()

    @property
    def storage_dtype(self) -> torch.dtype:
        """The dtype :meth:`quantize_for_storage` returns: int8 for intN, uint8 for uintN and packed fp4
        (two e2m1 codes per byte), the float8 dtype for fp8."""
        if self.is_float:
            return self._cast_dtype or torch.uint8
        return torch.uint8 if self.spec.dtype.startswith("u") else torch.int8

    def quantize_for_storage(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Quantize ``x`` with the current qparams: ``(q, scale, zero_point | minval | None)``.

        ``q`` has dtype :attr:`storage_dtype`; integer codes lie in ``[quant_min, quant_max]`` (for
        ``minval`` the code of ``x̂ = (q - quant_min)·s + m``). fp4 codes are packed in pairs along the
        last dim (element ``2i`` in the low nibble), so ``q.view(torch.float4_e2m1fn_x2)`` is valid.
        """
        x = x.detach().float()
        if self.dynamic:
            scale, inv, offset = self._compute_qparams(self._range_of(x))
            if offset is not None and not torch.is_tensor(offset):
                offset = torch.full_like(scale, offset, dtype=torch.int32)
        else:
            scale, offset = self.qparams()
            inv = torch.reciprocal(scale)
            if offset is None and not self.is_float:
                offset = torch.full_like(scale, self._zp_const, dtype=torch.int32)
        v, b = self._view(x)
        s_b = scale.view(b) if b else scale
        if self.is_float:
            t = torch.div(v, s_b).clamp_(self.quant_min, self.quant_max)
            if self._cast_dtype is not None:
                q = t.to(self._cast_dtype).reshape(x.shape)
            else:
                q = pack_fp4(e2m1_to_codes(round_to_e2m1(t)).reshape(x.shape))
            return q, scale, None
        o_b = offset.view(b) if b else offset  # type: ignore[union-attr]
        inv_b = inv.view(b) if b else inv
        if self.use_minval:
            t = torch.sub(v, o_b).mul_(inv_b).round_().add_(self.quant_min)
        else:
            t = torch.mul(v, inv_b).round_().add_(o_b)
        q = t.clamp_(self.quant_min, self.quant_max).to(self.storage_dtype).reshape(x.shape)
        return q, scale, offset

    def dequantize(
        self,
        q: torch.Tensor,
        scale: torch.Tensor,
        offset: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Inverse of :meth:`quantize_for_storage`: the float values of ``q`` (packed fp4 accepted as uint8
        or ``torch.float4_e2m1fn_x2``)."""
        if self.is_float and self._cast_dtype is None:
            codes = unpack_fp4(q.view(torch.uint8))
            vals = codes_to_e2m1(codes)
        else:
            vals = q.to(torch.float32)
        shape = vals.shape
        v, b = self._view(vals)
        s_b = scale.view(b) if b else scale
        if self.is_float:
            out = v * s_b
        else:
            assert offset is not None, "integer dequantize needs the zero point or minval"
            o_b = offset.view(b) if b else offset
            if self.use_minval:
                out = torch.addcmul(o_b, v - self.quant_min, s_b)
            else:
                out = (v - o_b) * s_b
        return out.reshape(shape).to(dtype)

    def extra_repr(self) -> str:
        s = self.spec
        gran = self.granularity
        if self.axis is not None and gran == "per_channel":
            gran += f"(axis={self.axis})"
        elif self._block is not None:
            gran += f"(qparams={list(self.qparams_shape)})"
        parts = [
            f"name={self.name!r}" if self.name else None,
            f"dtype={s.dtype}",
            f"qscheme={s.qscheme}",
            f"qformulation={s.qformulation}" if not self.is_float else None,
            gran,
            f"calculator={self.calculator}",
            f"quant_range=[{self.quant_min}, {self.quant_max}]",
            "scale=pow2" if self.pow2_scale else None,
            f"float_range={list(s.float_range)}" if tuple(s.float_range) != (None, None) else None,
            f"observer={'on' if self._obs_on else 'off'}",
            f"fake_quant={'on' if self._fq_on else 'off'}",
        ]
        return ", ".join(p for p in parts if p)


def make_fake_quantize(
    spec: ResolvedSpec, shape: Sequence[int], name: str | None = None, *, role: str = "input"
) -> FakeQuantize:
    """Build the fake-quantize module for one plan entry (``role="state"`` for weights)."""
    if spec.fake_quantize != "default":
        raise ValueError(f"unsupported fake_quantize class `{spec.fake_quantize}` for `{name}`; expected `default`")
    return FakeQuantize(spec, shape, role=role, name=name)
