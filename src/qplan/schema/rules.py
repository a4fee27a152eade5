"""Cross-field rules of the config types (see docs/config-language.md#quantizationspec-how-one-tensor-is-quantized, docs/config-language.md#module-configs-and-the-whole-config, docs/config-language.md#qat-schedules), as ``(field, message)`` generators.

The struct constructors raise the first problem (:func:`raise_first`); the validator reports every
one with file positions, so a message reads the same whichever way a config was built. The rules
read only attributes, so they take the structs or any object with the same fields, and this
module imports no config type at run time (it sits below :mod:`qplan.schema.specs` and
:mod:`qplan.schema.configs`). The dtype names live here because the spec rule checks them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qplan.schema.patterns import PatternError, compile_pattern

if TYPE_CHECKING:
    from qplan.schema.configs import ModuleQuantizerConfig
    from qplan.schema.specs import PerBlockGranularity, QATSchedule, QuantizationSpec

__all__ = [
    "DTYPES",
    "DTYPE_ALIASES",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "check_block",
    "check_global",
    "check_regex",
    "check_schedule",
    "check_spec",
    "check_tensor_keys",
    "normalize_dtype",
    "raise_first",
    "type_key",
]

INT_DTYPES = ("int8", "int4", "int2", "uint8", "uint4", "uint2")
FLOAT_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn_x2")
DTYPES = INT_DTYPES + FLOAT_DTYPES
DTYPE_ALIASES = {"float8_e4m3": "float8_e4m3fn", "float4_e2m1fn": "float4_e2m1fn_x2"}


def normalize_dtype(value: Any) -> str:
    """Return the canonical dtype name for a string alias or a ``torch.dtype``."""
    if not isinstance(value, str):
        value = str(value).removeprefix("torch.")
    return DTYPE_ALIASES.get(value, value)


def raise_first(problems: Iterator[tuple[str, str]]) -> None:
    for _field, message in problems:
        raise ValueError(message)


def check_block(g: PerBlockGranularity) -> Iterator[tuple[str, str]]:
    if isinstance(g.block_size, tuple):
        if g.axis is not None:
            yield "axis", "a list `block_size` (one entry per dim) excludes `axis`"
        if not g.block_size:
            yield "block_size", "a list `block_size` must not be empty"
        for b in g.block_size:
            if b != -1 and b < 1:
                yield "block_size", f"block size entries must be positive or -1, got `{b}`"
    elif g.block_size < 1:
        yield "block_size", f"`block_size` must be positive, got `{g.block_size}`"


def check_spec(s: QuantizationSpec) -> Iterator[tuple[str, str]]:
    """Cross-field rules of docs/config-language.md#quantizationspec-how-one-tensor-is-quantized, as ``(field, message)`` pairs."""
    dtype = normalize_dtype(s.dtype)
    if dtype not in DTYPES:
        yield "dtype", f"unknown dtype `{s.dtype}`; expected one of {', '.join(DTYPES)}"
        return
    qscheme = str(s.qscheme)
    is_float = dtype in FLOAT_DTYPES
    if is_float and qscheme != "symmetric":
        yield "qscheme", f"float dtype `{dtype}` needs qscheme `symmetric`, got `{qscheme}`"
    if is_float and s.qformulation != "zp":
        yield "qformulation", f"float dtype `{dtype}` needs qformulation `zp`, got `{s.qformulation}`"
    if s.scale_dtype is not None and not is_float:
        yield "scale_dtype", f"scale_dtype `{s.scale_dtype}` is only for float dtypes, not `{dtype}`"
    if s.qparam_calculator_cls == "dynamic":
        if qscheme == "symmetric_with_clipping":
            yield "qscheme", "qscheme `symmetric_with_clipping` is not allowed with qparam_calculator_cls `dynamic`"
        if tuple(s.float_range) != (None, None):
            yield "float_range", "qparam_calculator_cls `dynamic` needs float_range `[null, null]`"
    if len(s.float_range) != 2:
        yield "float_range", f"float_range needs exactly 2 entries, got {len(s.float_range)}"
        return
    lo, hi = s.float_range
    for name, bound in (("min", lo), ("max", hi)):
        if isinstance(bound, float) and not math.isfinite(bound):
            # JSON (and so the plan) has no inf or nan: it would be written as null, "learned"
            yield "float_range", f"float_range {name} ({bound}) must be finite; use null for a learned bound"
    if lo is not None and lo > 0:
        yield "float_range", f"float_range min ({lo}) must be <= 0"
    if hi is not None and hi < 0:
        yield "float_range", f"float_range max ({hi}) must be >= 0"
    if lo is not None and hi is not None and not lo < hi:
        yield "float_range", f"float_range min ({lo}) must be < max ({hi})"


def check_schedule(s: QATSchedule) -> Iterator[tuple[str, str]]:
    """Cross-field rules of docs/config-language.md#qat-schedules, worded as docs/config-language.md words them."""
    if s.enable_observer < 0:
        yield "enable_observer", f"enable_observer ({s.enable_observer}) must be >= 0"
    if s.enable_fake_quant < 0:
        yield "enable_fake_quant", f"enable_fake_quant ({s.enable_fake_quant}) must be >= 0"
    if s.enable_fake_quant < s.enable_observer:
        yield (
            "enable_fake_quant",
            (f"enable_fake_quant ({s.enable_fake_quant}) must be >= enable_observer ({s.enable_observer})"),
        )
    if s.disable_observer is not None:
        if s.disable_observer <= 0:
            yield "disable_observer", f"disable_observer ({s.disable_observer}) must be > 0"
        if s.disable_observer <= s.enable_observer:
            yield (
                "disable_observer",
                (f"disable_observer ({s.disable_observer}) must be > enable_observer ({s.enable_observer})"),
            )
        if s.disable_observer < s.enable_fake_quant:
            yield (
                "disable_observer",
                (f"disable_observer ({s.disable_observer}) must be >= enable_fake_quant ({s.enable_fake_quant})"),
            )


def check_tensor_keys(specs: dict[Any, Any]) -> Iterator[tuple[str, str]]:
    """A tensor dict must not mix index keys and name keys (`"*"` mixes with both)."""
    kinds = {"index" if _is_index(k) else "name" for k in specs if k != "*"}
    if len(kinds) > 1:
        keys = ", ".join(f"`{k}`" for k in specs)
        yield "", f"tensor keys mix indices and names ({keys}); use one kind per dict"


def _is_index(key: Any) -> bool:
    return isinstance(key, int) or (isinstance(key, str) and key.isdigit())


def check_regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid {what} regex `{pattern}`: {e}") from None
    except (OverflowError, RecursionError) as e:  # `a{99999999999}`, thousands of nested groups
        raise ValueError(f"invalid {what} regex `{_clip(pattern)}`: {e}") from None
    try:  # names are matched with RE2 (linear time): Python-only syntax is refused here too
        compile_pattern(pattern)
    except PatternError as e:
        raise ValueError(
            f"invalid {what} regex `{_clip(pattern)}`: {e} is not supported; qplan matches names in "
            "linear time (RE2 syntax), which has no lookarounds, backreferences or possessive quantifiers"
        ) from None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_global(config: ModuleQuantizerConfig | None) -> None:
    if config is not None and config.has_module_specs:
        raise ValueError("global_config must not set module_input_spec, module_output_spec or module_state_spec")


def type_key(module_type: Any) -> str:
    """A module type key: classes become their fully-qualified name; strings stay as written."""
    if isinstance(module_type, type):
        return f"{module_type.__module__}.{module_type.__qualname__}"
    if not isinstance(module_type, str) or not module_type:
        raise ValueError(f"module type key must be a class or a non-empty string, got `{module_type!r}`")
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module_type):
        raise ValueError(f"module type key `{module_type}` is not a class name or import path")
    return module_type
