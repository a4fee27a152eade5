"""Rules the validator applies to document values rather than types: the cross-field rules of
:mod:`qplan.schema.rules` on a checked mapping (so messages match programmatic construction), and
the error and warnings of compiling a regex key.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import msgspec.inspect as mi

from qplan.schema.configs import QuantizerConfig
from qplan.schema.keys import MODULE_SPEC_FIELDS
from qplan.schema.rules import check_block, check_regex, check_schedule, check_spec
from qplan.schema.specs import PerBlockGranularity, QATSchedule, QuantizationSpec

__all__ = ["cross_field_problems", "regex_problems"]

Path = tuple[Any, ...]


@functools.lru_cache(maxsize=1024)
def regex_problems(pattern: str, what: str) -> tuple[str | None, tuple[str, ...]]:
    """The error (or None) and the warnings of compiling `pattern`, the same on every call: `re`
    warns only when it compiles a pattern, not when it reuses its cached copy, so that cache is
    cleared before the first (and, thanks to lru_cache, only) compile here."""
    re.purge()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_regex(pattern, what)
        except ValueError as e:
            return str(e), tuple(str(w.message) for w in caught)
    return None, tuple(str(w.message) for w in caught)


def cross_field_problems(t: mi.StructType, clean: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """Cross-field problems of the checked mapping `clean` of struct type `t`, as (path relative to
    the struct, message)."""
    for field, message in _cross_field(t, clean):
        yield (field,) if isinstance(field, str) else field, message


def _cross_field(t: mi.StructType, clean: dict[str, Any]) -> Iterator[tuple[str | Path, str]]:
    cls = t.cls
    if cls in (QuantizationSpec, QATSchedule, PerBlockGranularity):
        values = {f.name: (None if f.default is msgspec.NODEFAULT else f.default) for f in t.fields}
        values.update(clean)
        ns = cast(Any, SimpleNamespace(**values))  # the rules read attributes only
        if cls is QuantizationSpec:
            yield from check_spec(ns)
        elif cls is QATSchedule:
            yield from check_schedule(ns)
        else:
            if isinstance(ns.block_size, list):
                ns.block_size = tuple(ns.block_size)
            yield from check_block(ns)
    elif cls is QuantizerConfig:
        g = clean.get("global_config")
        if isinstance(g, dict):
            for name in MODULE_SPEC_FIELDS:
                if g.get(name):
                    yield (
                        ("global_config", name),
                        ("global_config must not set module_input_spec, module_output_spec or module_state_spec"),
                    )
                    return
