"""Thin adapter over the op table (:mod:`qplan.compiler.ops`): the few questions the passes ask.

The passes never spell op names themselves; they ask this module, which asks ``ops``.
"""

from __future__ import annotations

from functools import cache

from qplan.compiler import ops as _ops

__all__ = [
    "op_class",
    "input_name",
    "is_int_input",
    "state_slots",
    "weight_axis",
    "normalize_key",
    "suggest",
    "is_batch_norm",
    "is_fusable_activation",
]


@cache
def _info(op_type: str) -> _ops.OpInfo | None:
    return _ops.OP_TABLE.get(_ops.normalize_op_type(op_type) or "")


@cache
def op_class(op_type: str) -> str | None:
    """`compute`, `value_preserving`, `pass_through`, `known`; None for ops never quantized at op level."""
    info = _info(op_type)
    return None if info is None or info.cls == "ignore" else info.cls


@cache
def input_name(op_type: str, i: int) -> str | None:
    """The op table's name for input `i` of `op_type` (list inputs: the list's name), or None."""
    info = _info(op_type)
    if info is None or not info.inputs:
        return None
    if info.list_input:
        return info.inputs[0]
    return info.inputs[i] if i < len(info.inputs) else None


@cache
def state_slots(op_type: str) -> tuple[str, ...]:
    """The op table's state slots of `op_type` (`weight`, `bias`, ...); other states are custom."""
    info = _info(op_type)
    return info.states if info is not None else ()


def is_int_input(op_type: str, i: int) -> bool:
    """True for inputs that hold integers by definition (embedding indices, masks)."""
    info = _info(op_type)
    name = input_name(op_type, i)
    return info is not None and name is not None and name in info.int_inputs


@cache
def weight_axis(op_type: str, granularity: str) -> int | None:
    """Default axis of a weight read by `op_type` for `per_channel` / `per_block`, or None."""
    info = _info(op_type)
    if info is None:
        return None
    return info.per_channel_axis if granularity == "per_channel" else info.per_block_axis


@cache
def normalize_key(key: str) -> str | None:
    """The canonical op type of a config key, or None when the key is not in the table."""
    name = _ops.normalize_op_type(key)
    return name if name is not None and name in _ops.OP_TABLE else None


def suggest(key: str) -> str | None:
    """A 'did you mean' help text for an unknown op type, or None."""
    return _ops.suggest(key)


def is_batch_norm(op_type: str) -> bool:
    """BatchNorm op types (fused into a preceding compute op, SPEC §2.5)."""
    return op_type in _ops.BATCH_NORMS


def is_fusable_activation(op_type: str) -> bool:
    """Activations that fuse with a preceding compute op (SPEC §2.5)."""
    return op_type in _ops.FUSABLE_ACTIVATIONS
