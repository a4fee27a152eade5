"""Pass: resolve granularity axes and check block sizes (see docs/config-language.md#placement-rules, axis defaults).

Weights whose spec omits the axis take the default of the op that reads them (per_channel:
linear/conv/embedding 0, conv_transpose 1; per_block: linear/conv/embedding 1, conv_transpose 0;
from the op table); a weight read by an op without a default is a ``missing-axis`` error naming
the tensor. Activations need an explicit axis. Negative axes are normalised; an axis out of
range is an error. A block size that does not divide its dimension leaves the tensor float
(``block-not-divisible`` warning, an error under strict; a ``skipped`` decision).
"""

from __future__ import annotations

from copy import copy

from qplan.compiler.ops import weight_axis
from qplan.compiler.plan import Decision
from qplan.compiler.state import Entry, State
from qplan.schema.types import PerBlockGranularity, PerChannelGranularity

__all__ = ["resolve_axes"]


def resolve_axes(state: State) -> State:
    """Fill in default axes and check axes and block sizes of every entry; returns the new state.

    An entry this pass refines (axis, block size, dropped) is copied first; the others are kept.
    """
    entries = []
    for e in state.entries:
        g = e.spec.granularity
        if e.role == "state" and e.spec.qparam_calculator_cls == "dynamic":
            e = copy(e)
            _error(state, e, "unsupported-spec", f"weight `{e.address}` cannot use qparam_calculator_cls `dynamic`")
        elif isinstance(g, PerChannelGranularity):
            e = copy(e)
            e.axis = _axis(state, e, g.axis, "per_channel")
        elif isinstance(g, PerBlockGranularity):
            e = copy(e)
            _block(state, e, g)
        entries.append(e)
    return state.evolve(entries=entries)


def _axis(state: State, e: Entry, axis: int | None, kind: str) -> int | None:
    ndim = len(e.shape)
    if axis is None:
        if e.role != "state":
            _error(
                state,
                e,
                "missing-axis",
                f"activation `{e.address}` uses {kind} without an axis",
                help="activations need an explicit `granularity.axis`",
            )
            return None
        axis = weight_axis(e.axis_op, kind) if e.axis_op else None
        if axis is None:
            _error(
                state,
                e,
                "missing-axis",
                f"weight `{e.address}` uses {kind} without an axis, and op type `{e.axis_op}` has no default",
                help="set `granularity.axis` for this tensor",
            )
            return None
    if not -ndim <= axis < ndim:
        _error(
            state, e, "axis-out-of-range", f"axis {axis} is out of range for `{e.address}` with shape {list(e.shape)}"
        )
        return None
    return axis % ndim


def _block(state: State, e: Entry, g: PerBlockGranularity) -> None:
    shape = e.shape
    if isinstance(g.block_size, tuple):
        if len(g.block_size) != len(shape):
            _error(
                state,
                e,
                "axis-out-of-range",
                f"block_size {list(g.block_size)} needs one entry per dim of `{e.address}` with shape {list(shape)}",
            )
            return
        bad = [d for d, b in enumerate(g.block_size) if b != -1 and shape[d] % b]
        e.block_size = tuple(g.block_size)
        if bad:
            _skip(state, e, f"block_size {list(g.block_size)} does not divide shape {list(shape)} (dim {bad[0]})")
        return
    axis = _axis(state, e, g.axis, "per_block")
    if axis is None:
        return
    e.axis, e.block_size = axis, g.block_size
    if shape[axis] % g.block_size:
        _skip(
            state,
            e,
            f"block_size {g.block_size} does not divide dim {axis} (size {shape[axis]}) of shape {list(shape)}",
        )


def _error(state: State, e: Entry, code: str, message: str, help: str | None = None) -> None:
    e.dropped = True
    parts = e.opinion.parts
    state.report(code, message, parts, help=help)


def _skip(state: State, e: Entry, why: str) -> None:
    e.dropped = True
    parts = e.opinion.parts
    state.report(
        "block-not-divisible",
        f"`{e.address}` stays float: {why}",
        parts,
        help="choose a block size that divides the dimension",
    )
    state.decisions.append(Decision(kind="skipped", subjects=(e.address,), reason=f"left float: {why}"))
