"""How the validator words types and values: a type's description (``an integer``, ``one of
`a`, `b` ``), enum and literal choices in the order the types declare them, and which type of a
union a plain value can be (``msgspec.inspect`` types throughout).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec.inspect as mi

from qplan.schema.configs import ModuleQuantizerConfig, OpQuantizerConfig, QuantizerConfig
from qplan.schema.specs import (
    PerBlockGranularity,
    PerChannelGranularity,
    PerTensorGranularity,
    QATSchedule,
    QuantizationSpec,
)

__all__ = ["article", "choices", "declared_order", "describe", "fits_kind", "tensor_value_type"]


def _literals(hint: Any) -> Iterator[tuple]:
    if typing.get_origin(hint) is typing.Literal:
        yield typing.get_args(hint)
    for arg in typing.get_args(hint):
        yield from _literals(arg)


_STRUCT_TYPES = (
    QuantizerConfig,
    ModuleQuantizerConfig,
    OpQuantizerConfig,
    QuantizationSpec,
    QATSchedule,
    PerTensorGranularity,
    PerChannelGranularity,
    PerBlockGranularity,
)
_DECLARED = {
    frozenset(values): values
    for cls in _STRUCT_TYPES
    for hint in typing.get_type_hints(cls, include_extras=True).values()
    for values in _literals(hint)
}


def declared_order(values: tuple) -> list:
    """Literal values in the order the types declare them (msgspec.inspect sorts them)."""
    return list(_DECLARED.get(frozenset(values), values))


def tensor_value_type(t: Any) -> Any:
    t = t.type if isinstance(t, mi.Metadata) else t
    if isinstance(t, mi.UnionType):
        t = next(m for m in t.types if isinstance(m, mi.DictType))
    return t.value_type


def fits_kind(t: Any, value: Any) -> bool:
    if isinstance(t, (mi.StructType, mi.DictType)):
        return isinstance(value, dict)
    if isinstance(t, (mi.LiteralType, mi.EnumType, mi.StrType)):
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if isinstance(t, mi.IntType):
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(t, mi.FloatType):
        return isinstance(value, (int, float))
    if isinstance(t, (mi.VarTupleType, mi.ListType, mi.TupleType)):
        return isinstance(value, (list, tuple))
    return False


def describe(t: Any) -> str:
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        parts: list[str] = []
        for m in t.types:
            d = describe(m)
            if d not in parts:
                parts.append(d)
        return " or ".join(parts)
    if isinstance(t, mi.StructType):
        if t.tag_field:
            return "a granularity mapping"
        return f"a mapping ({t.cls.__name__})"
    if isinstance(t, mi.DictType):
        return "a mapping"
    if isinstance(t, mi.EnumType):
        return f"one of {choices(e.value for e in t.cls)}"
    if isinstance(t, mi.LiteralType):
        return f"one of {choices(t.values)}"
    if isinstance(t, mi.IntType):
        return "an integer"
    if isinstance(t, mi.FloatType):
        return "a number"
    if isinstance(t, mi.StrType):
        return "a string"
    if isinstance(t, mi.TupleType):
        return f"a list of {len(t.item_types)} items"
    if isinstance(t, (mi.VarTupleType, mi.ListType)):
        return "a list"
    if isinstance(t, mi.NoneType):
        return "null"
    return repr(t)  # pragma: no cover


def choices(values: Iterable[Any]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def article(name: str) -> str:
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"
