"""Fake-quantize modules: an observer and a fake-quantizer in one module, built from a ``ResolvedSpec``.

The arithmetic is :mod:`qplan.runtime.numerics` (shared with finalize), the range observers and
qparams :mod:`qplan.runtime.observers`, the per-tensor / per-channel / per-block layout
:mod:`qplan.runtime.layout`. This module holds the autograd functions and the ``nn.Module``.

Gradients are straight-through: ``∂x̂/∂x = 1`` where ``round(x/s) + zp`` lies in ``[qmin, qmax]``
(floats: ``|x/s| ≤ fmax``), 0 elsewhere; qparams get no gradient. Qparams are recomputed at every
observation and frozen while the observer is off.

Speed: the hot path is a handful of tensor ops with no host synchronisation; on/off switches are 0/1
uint8 buffers (persisted, like ``torch.ao``'s ``FakeQuantize``) mirrored by Python booleans that the
forward branches on, so switching is cheap and ``torch.compile`` guards on them instead of breaking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from qplan.compiler.plan import ResolvedSpec
from qplan.diagnostics import QplanError
from qplan.runtime.layout import QParamLayout
from qplan.runtime.numerics import Numerics, check_format, dequantize_codes_, float_codes, float_round, int_codes
from qplan.runtime.observers import (
    EMA_CONSTANT,
    check_observer,
    compute_qparams,
    merge_range,
    range_of,
    symmetric_scale,
)

__all__ = ["FakeQuantize", "make_fake_quantize", "EMA_CONSTANT", "UncalibratedError", "uncalibrated_message"]


def __dir__() -> list[str]:
    return __all__


class UncalibratedError(QplanError):
    """An activation fake-quant quantized with qparams it never observed (the defaults, scale 1)."""


CALIBRATE_HELP = (
    "help: calibrate first (`q.calibration_mode()`, run representative inputs through the prepared model, "
    "then `q.inference_mode()`) or train with `q.training_mode()`"
)


def uncalibrated_message(names: Sequence[str], opt_in: str) -> str:
    """The error for fake-quants that never observed a value; ``opt_in`` names the call that allows it."""
    shown = ", ".join(f"`{n}`" for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    what = "fake-quant" if len(names) == 1 else f"{len(names)} fake-quants"
    return (
        f"{what} {shown} never observed a value, so {'its' if len(names) == 1 else 'their'} qparams are the "
        f"defaults (scale 1) and would wreck the output; {CALIBRATE_HELP}; to use the default qparams on "
        f"purpose, call `{opt_in}`"
    )


# --------------------------------------------------------------------------------------------------
# Autograd kernels: the numerics' float elementwise ops forward, one `hardtanh_backward` backward.

_hardtanh_backward = torch.ops.aten.hardtanh_backward.default
_hardtanh_backward_into = torch.ops.aten.hardtanh_backward.grad_input

# Tensors of at least this many elements recompute their codes in backward instead of keeping them:
# one full-size buffer less per call. On CPU a fresh buffer of that size comes from `mmap`, and
# page-faulting it in costs more than the extra multiply and round.
RECOMPUTE_NUMEL = 1 << 16


def _frozen_qparam(v: Any) -> Any:
    """A qparam as backward will read it: tensors are copied (the observer updates them in place)."""
    return v.clone() if isinstance(v, torch.Tensor) else v


def _fq_int(ctx: Any, x: torch.Tensor, scale: Any, inv_scale: Any, zp: Any, off: Any, lo: Any, hi: Any) -> torch.Tensor:
    """Forward of :class:`_FakeQuantInt` (and of :class:`_ObserveFakeQuantInt` after its observer)."""
    t = int_codes(x, inv_scale, zp, off)
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
    return dequantize_codes_(out, scale, zp, off)


def _fq_int_grad(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
    (saved,) = ctx.saved_tensors
    if ctx.qparams is None:
        return _hardtanh_backward(grad, saved, *ctx.bounds)
    t = int_codes(saved, *ctx.qparams)
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
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return _fq_int_grad(ctx, grad), None, None, None, None, None, None


class _ObserveFakeQuantInt(torch.autograd.Function):
    """A :class:`FakeQuantize`'s observer and :class:`_FakeQuantInt` in one autograd call: inside
    ``forward`` grad mode is off, so the observer reads ``x`` itself (no ``detach``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fq: FakeQuantize) -> torch.Tensor:
        return fq._observe_and_fake_quant(ctx, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return _fq_int_grad(ctx, grad), None


class _FakeQuantFloat(torch.autograd.Function):
    """``cast(clamp(x/s, -fmax, fmax))·s`` through a float8 dtype or the e2m1 grid (``dtype=None``);
    gradient ``g·[|x/s| ≤ fmax]``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: Any, fmax: float, dtype: Any, grad_bound: float) -> torch.Tensor:
        t, out = float_codes(x, scale, fmax)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(t)
            ctx.bound = grad_bound  # the float32 just above fmax: |t| <= fmax passes
        return float_round(out, dtype).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (t,) = ctx.saved_tensors
        return _hardtanh_backward(grad, t, -ctx.bound, ctx.bound), None, None, None, None


# ``Function.apply`` re-inspects the class and unwraps functorch wrappers in Python on every call; the
# hot path calls the C implementation directly unless functorch transforms or dynamo are active.
_C_APPLY_INT = super(torch.autograd.Function, _FakeQuantInt).apply
_C_APPLY_OBSERVE_INT = super(torch.autograd.Function, _ObserveFakeQuantInt).apply
_functorch_active = torch._C._are_functorch_transforms_active
_is_compiling = torch.compiler.is_compiling


# --------------------------------------------------------------------------------------------------
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
        ``"state"`` for weights (see docs/compiler.md roles), anything else is an activation. It decides how an
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

    observer_enabled: torch.Tensor
    fake_quant_enabled: torch.Tensor
    observed: torch.Tensor
    scale: torch.Tensor
    _inv_scale: torch.Tensor
    zero_point: torch.Tensor
    minval: torch.Tensor
    bounds: torch.Tensor
    _divisor: torch.Tensor
    _qmin_t: torch.Tensor
    _zp_t: torch.Tensor
    _qcache: Any  # (scale, inv, offset buffers, their broadcast views), in __dict__

    def __init__(self, spec: ResolvedSpec, shape: Sequence[int], *, role: str = "input", name: str | None = None):
        super().__init__()
        self.spec = spec
        self.shape = tuple(int(d) for d in shape)
        self.role = role
        self.name = name
        self.is_weight = role == "state"
        where = f" for `{name}`" if name else ""
        check_format(spec, where)
        check_observer(spec, where)
        self.num = num = Numerics(spec)
        self.is_float, self.symmetric, self.use_minval = num.is_float, num.symmetric, num.use_minval
        self.quant_min, self.quant_max = num.quant_min, num.quant_max
        self.pow2_scale = num.pow2_scale
        self._zp_const = num.zp_const
        self.calculator = spec.qparam_calculator
        self.dynamic = self.calculator == "dynamic"
        self.layout = lay = QParamLayout(spec, self.shape, is_weight=self.is_weight, dynamic=self.dynamic, name=name)
        self.granularity, self.axis, self.qparams_shape = lay.granularity, lay.axis, lay.qparams_shape
        self._block, self._rdims, self._bshape = lay.block, lay.rdims, lay.bshape
        # Constants as 0-dim tensors: binary ops with a Python number pay for wrapping it on every call.
        self.register_buffer("_divisor", torch.tensor(num.divisor), persistent=False)
        self.register_buffer("_qmin_t", torch.tensor(float(self.quant_min)), persistent=False)
        self.register_buffer("_zp_t", torch.tensor(float(self._zp_const)), persistent=False)

        lo, hi = tuple(spec.float_range)
        self._fixed = (None if lo is None else float(lo), None if hi is None else float(hi))
        self._frozen_range = self._fixed[0] is not None and self._fixed[1] is not None
        self._setup_hot_path()

        qshape = self.qparams_shape
        self._obs_on = True
        self._fq_on = True
        self._observed = False
        self.allow_uncalibrated = False  # quantize with never-observed (default) qparams without raising
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
                merge_range(self.bounds, self.bounds, replace=True, ema=False, sync=False, fixed=self._fixed)
                compute_qparams(num, lay, self.bounds, self._buffers, out=True)
                self._set_observed()

    # ---------------------------------------------------------------------------------------- setup

    def _setup_hot_path(self) -> None:
        """Constants the per-call code reads instead of re-deriving them from the spec."""
        self._replace_always = self.calculator == "static"  # the observer keeps no history
        self._ema = self.calculator == "moving_average"
        # integer, not per-block, qparams stored: one autograd call with cached qparam views
        self._fast = not (self.is_float or self.dynamic or self._block is not None)
        self._int_kind = self.num.kind
        self._offset_name = None if self.is_float else ("minval" if self.use_minval else "zero_point")
        self.__dict__["_qcache"] = None  # (scale, inv, offset buffers, their broadcast views)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_qcache"] = None  # views of the buffers: rebuilt from the copied buffers on first use
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "_fast" not in self.__dict__:  # pickled before the hot-path constants existed
            self._setup_hot_path()
        self.__dict__.setdefault("allow_uncalibrated", False)

    def _qviews(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(scale, 1/scale, zero_point | minval | None)`` buffers, viewed to broadcast against the
        tensor. The views share the buffers' storage (qparams are updated in place), so they are made
        once and remade only when a buffer object is replaced (``.to()``, ``load_state_dict(assign=True)``)."""
        b = self._buffers
        scale, inv = b["scale"], b["_inv_scale"]
        off = b[self._offset_name] if self._offset_name is not None else None
        assert scale is not None and inv is not None
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

    def _int_args(self, offset: Any, zp_t: Any) -> tuple[Any, Any, Any, Any]:
        """``(zp, off, lo, hi)`` of :func:`_fq_int` from the stored offset (the scheme dispatch)."""
        num = self.num
        zp, off = num.operands(offset, zp_t if self._zp_const else None)
        return zp, off, num.lo, num.hi

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
        """Set both switches from the spec's QAT schedule at ``step`` (see docs/config-language.md#qat-schedules)."""
        sch = self.spec.schedule
        if sch is None:
            raise ValueError(f"`{self.name}` has no QAT schedule")
        self.enable_observer(sch.observer_on(step))
        self.enable_fake_quant(sch.fake_quant_on(step))

    def _unobserved(self, x: torch.Tensor) -> None:
        """Fake-quant on, observer off, nothing observed yet: a weight observes itself once (its range
        needs no data, as in finalize); an activation raises :class:`UncalibratedError` unless
        :attr:`allow_uncalibrated` is set."""
        if self.is_weight:
            self._observe(x)
        elif not self.allow_uncalibrated:
            raise UncalibratedError(
                uncalibrated_message([self.name or "?"], "q.inference_mode(allow_uncalibrated=True)")
            )

    def _set_observed(self) -> None:
        self._observed = True
        self.observed.fill_(1)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
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
            if self._obs_on and not self._frozen_range:
                self._observe_int(x.detach(), self._buffers)
            elif not self._observed:
                self._unobserved(x)
            apply = _FakeQuantInt.apply if traced else _C_APPLY_INT
            return apply(x, *self._stored_int_args())
        if not self._fq_on:
            if self._obs_on and not self.dynamic:
                self._observe(x)
            return x
        if x.dtype != torch.float32:
            return self._forward_fq(x.float()).to(x.dtype)
        return self._forward_fq(x)

    def _stored_int_args(self) -> tuple[Any, ...]:
        """``(scale, inv, zp, off, lo, hi)`` of the stored qparams for :func:`_fq_int`."""
        b = self._buffers
        scale: Any
        inv: Any
        offset: Any
        if self._bshape:
            scale, inv, offset = self._qviews()
        else:
            scale, inv = b["scale"], b["_inv_scale"]
            offset = b[self._offset_name] if self._offset_name is not None else None
        num = self.num
        zp, off = num.operands(offset, b["_zp_t"] if self._zp_const else None)
        return scale, inv, zp, off, num.lo, num.hi

    def _forward_fq(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast:
            if self._obs_on:
                self._observe(x)
            elif not self._observed:
                self._unobserved(x)
            args = self._stored_int_args()
            if _is_compiling() or _functorch_active():
                return _FakeQuantInt.apply(x, *args)
            return _C_APPLY_INT(x, *args)
        if self.dynamic:
            scale, inv, offset = compute_qparams(
                self.num, self.layout, range_of(x.detach(), self.layout), self._buffers
            )
        else:
            if self._obs_on:
                self._observe(x)
            elif not self._observed:
                self._unobserved(x)
            scale, inv = self.scale, self._inv_scale
            offset = None if self.is_float else (self.minval if self.use_minval else self.zero_point)
        return self._fake_quant(x, scale, inv, offset)

    def _fake_quant(self, x: torch.Tensor, scale: Any, inv: Any, offset: Any) -> torch.Tensor:
        v, bshape = self.layout.view(x)
        if bshape:
            scale = scale.view(bshape)
            if torch.is_tensor(offset):
                offset = offset.view(bshape)
            if inv is not None:
                inv = inv.view(bshape)
        if self.is_float:
            num = self.num
            out = _FakeQuantFloat.apply(v, scale, num.quant_max, num.cast_dtype, num.grad_bound)
        else:
            out = _FakeQuantInt.apply(v, scale, inv, *self._int_args(offset, self._zp_t))
        return out.reshape(x.shape) if self._block is not None else out

    # --------------------------------------------------------------------------------------- observer

    def _observe_and_fake_quant(self, ctx: Any, x: torch.Tensor) -> torch.Tensor:
        """Forward of :class:`_ObserveFakeQuantInt`: the inline case of :meth:`forward` with its observer on."""
        self._observe_int(x, self._buffers)
        return _fq_int(ctx, x, *self._stored_int_args())

    def _observe_int(self, x: torch.Tensor, b: dict[str, Any]) -> None:
        """:meth:`_observe` of a detached float32 tensor for integer, not per-block specs without a
        fixed range, in one frame: the same ops in the same order."""
        bounds = b["bounds"]
        replace = self._replace_always or not self._observed
        rd = self._rdims
        if rd:
            mn = torch.amin(x, dim=rd)
            mx = torch.amax(x, dim=rd)
        else:
            mn, mx = torch.aminmax(x)
        cur = torch.stack((torch.neg(mn), mx), out=bounds if replace else None).clamp_(0)
        self._merge_range(bounds, cur, replace)
        if self._int_kind == "sym":
            symmetric_scale(bounds, b["_divisor"], bool(rd), b["scale"], b["_inv_scale"])
        else:
            compute_qparams(self.num, self.layout, bounds, b, out=True)

    def _observe(self, x: torch.Tensor) -> None:
        if self._frozen_range:
            return
        x = x.detach()
        if x.dtype != torch.float32:
            x = x.float()
        bounds = self.bounds
        replace = self._replace_always or not self._observed
        cur = range_of(x, self.layout, out=bounds if replace else None)
        self._merge_range(bounds, cur, replace)
        compute_qparams(self.num, self.layout, bounds, self._buffers, out=True)

    def _merge_range(self, bounds: torch.Tensor, cur: torch.Tensor, replace: bool) -> None:
        if replace and not self._observed:
            self._set_observed()
        # activation ranges are reduced across ranks whenever observed, in calibration (eval) as in
        # training: every rank ends with the same qparams (see docs/runtime.md)
        sync = not self.is_weight
        merge_range(bounds, cur, replace=replace, ema=self._ema, sync=sync, fixed=self._fixed)

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
        return self.num.storage_dtype

    def quantize_for_storage(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Quantize ``x`` with the current qparams: ``(q, scale, zero_point | minval | None)``.

        ``q`` has dtype :attr:`storage_dtype`; integer codes lie in ``[quant_min, quant_max]`` (for
        ``minval`` the code of ``x̂ = (q - quant_min)·s + m``). fp4 codes are packed in pairs along the
        last dim (element ``2i`` in the low nibble), so ``q.view(torch.float4_e2m1fn_x2)`` is valid.
        """
        x = x.detach().float()
        if self.dynamic:
            scale, inv, offset = compute_qparams(self.num, self.layout, range_of(x, self.layout), self._buffers)
        else:
            scale, offset = self.qparams()
            inv = torch.reciprocal(scale)
        if not self.is_float and not torch.is_tensor(offset):  # symmetric dynamic: the constant zero point
            offset = torch.full_like(scale, self._zp_const, dtype=torch.int32)
        return self.num.quantize(x, self.layout, scale, inv, offset), scale, offset

    def dequantize(
        self,
        q: torch.Tensor,
        scale: torch.Tensor,
        offset: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Inverse of :meth:`quantize_for_storage`: the float values of ``q`` (packed fp4 accepted as uint8
        or ``torch.float4_e2m1fn_x2``)."""
        if not self.is_float:
            assert offset is not None, "integer dequantize needs the zero point or minval"
        return self.num.dequantize(q, self.layout, scale, offset).to(dtype)

    def extra_repr(self) -> str:
        s = self.spec
        parts = [
            f"name={self.name!r}" if self.name else None,
            f"dtype={s.dtype}",
            f"qscheme={s.qscheme}",
            f"qformulation={s.qformulation}" if not self.is_float else None,
            self.layout.describe(),
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
