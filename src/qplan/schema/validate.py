"""Validate a raw config document completely, before msgspec builds any value.

One walker visits the plain document (dicts, lists, scalars) along the config types, as
``msgspec.inspect`` describes them, and records every problem as a :class:`Diagnostic` with its
config path and source span: unknown keys, wrong types, bad enum values, invalid regexes, mixed
tensor keys and the cross-field rules of ``types.check_*`` (so messages match programmatic
construction). It also returns the document in the exact form ``msgspec.convert`` accepts.
"""

from __future__ import annotations

import enum
import functools
import re
import typing
import warnings
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import msgspec
import msgspec.inspect as mi

from qplan.diagnostics import Diagnostic, Span
from qplan.schema import types as T
from qplan.schema.paths import config_path
from qplan.schema.rules import check_block, check_regex, type_key
from qplan.schema.yamldoc import INVALID, ParsedDocument, norm_path
from qplan.suggest import did_you_mean

__all__ = [
    "TOP_LEVEL_KEYS",
    "TENSOR_KEY_PATTERN",
    "TENSOR_INDEX_PATTERN",
    "TENSOR_NAME_PATTERN",
    "MODULE_TYPE_PATTERN",
    "validate_document",
]

TOP_LEVEL_KEYS = ("quantization_config", "quantization_spec", "$schema")
_INDEX = r"[0-9]+"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TENSOR_KEY_PATTERN = rf"^(\*|{_INDEX}|{_NAME})$"
"""A tensor key: `"*"`, an index, or a name (an ASCII identifier)."""
TENSOR_INDEX_PATTERN = rf"^(\*|{_INDEX})$"
"""The keys of an index-keyed tensor dict (one dict holds indices or names, not both)."""
TENSOR_NAME_PATTERN = rf"^(\*|{_NAME})$"
"""The keys of a name-keyed tensor dict."""
MODULE_TYPE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
TENSOR_DICT_FIELDS = frozenset(
    ("op_input_spec", "op_output_spec", "op_state_spec", "module_input_spec", "module_output_spec", "module_state_spec")
)
REGEX_KEY_FIELDS = {"op_name_config": "op_name_config", "module_name_configs": "module_name_configs"}
MODULE_SPEC_FIELDS = ("module_input_spec", "module_output_spec", "module_state_spec")

# What a null means, per field name, for the empty-value warning.
_NULL_MEANS = {
    "global_config": "quantize nothing by default",
    "op_input_spec": "decline every input",
    "op_output_spec": "decline every output",
    "op_state_spec": "decline every state",
    "qat_schedule": "no QAT schedule",
    "quantization_spec": "no named specs",
}

Path = tuple[Any, ...]


def validate_document(document: Any, parsed: ParsedDocument | None = None) -> tuple[Any, list[Diagnostic]]:
    """Check a whole document; return (clean ``quantization_config`` value, diagnostics).

    The clean value is only meaningful when no diagnostic is an error.
    """
    walker = _Walker(parsed)
    clean = walker.document(document)
    return clean, [*(parsed.warnings if parsed is not None else []), *walker.diagnostics]


_QUANTIZER_CONFIG = mi.type_info(T.QuantizerConfig)
_SPEC = mi.type_info(T.QuantizationSpec)


@functools.lru_cache(maxsize=1024)
def _regex_problems(pattern: str, what: str) -> tuple[str | None, tuple[str, ...]]:
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


class _Walker:
    def __init__(self, parsed: ParsedDocument | None):
        self.parsed = parsed
        self.diagnostics: list[Diagnostic] = []
        self.errors = 0
        self.seen: set[tuple] = set()

    # -- reporting ------------------------------------------------------------------------
    def span(self, path: Path, at: str = "value") -> Span | None:
        p = self.parsed
        if p is None:
            return None
        first, second = (p.key_spans, p.value_spans) if at == "key" else (p.value_spans, p.key_spans)
        path = norm_path(path)
        while True:
            span = first.get(path) or second.get(path)
            if span is not None or not path:
                return span
            path = path[:-1]

    def report(
        self, code: str, message: str, path: Path, *, at: str = "value", help: str | None = None, level: str = "error"
    ) -> None:
        if level == "error":
            self.errors += 1
        span = self.span(path, at)
        if span is not None:  # a node reached through several aliases is reported once, at its first path
            if (span, code, message) in self.seen:
                return
            self.seen.add((span, code, message))
        self.diagnostics.append(
            Diagnostic(
                code=code,
                level=level,
                message=message,
                path=config_path(path) or None,
                span=span,
                help=help,
            )
        )

    def is_empty(self, path: Path) -> bool:
        return self.parsed is not None and norm_path(path) in self.parsed.empty

    def found(self, value: Any, path: Path) -> str:
        if value is None:
            return "an empty value" if self.is_empty(path) else "`null`"
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        if isinstance(value, str):
            return f"the string `{value}`"
        if isinstance(value, (int, float)):
            return f"`{value}`"
        if isinstance(value, dict):
            return "a mapping"
        if isinstance(value, (list, tuple)):
            return "a list"
        return f"`{value!r}` ({type(value).__name__})"

    def type_error(self, value: Any, t: Any, path: Path) -> Any:
        self.report("invalid-type", f"expected {_describe(t)}, got {self.found(value, path)}", path)
        return INVALID

    # -- document -------------------------------------------------------------------------
    def document(self, doc: Any) -> Any:
        if not isinstance(doc, dict):
            hint = None
            if isinstance(doc, str) and "\n" not in doc.strip():
                hint = f"if `{doc.strip()}` is a file name, no such file exists"
            self.report(
                "invalid-type",
                f"the top level must be a mapping with `quantization_config`, got {self.found(doc, ())}",
                (),
                help=hint,
            )
            return INVALID
        from qplan.plan_format import PLAN_FORMAT

        if doc.get("format") == PLAN_FORMAT and "quantization_config" not in doc:
            source = doc.get("config", {}).get("source") if isinstance(doc.get("config"), dict) else None
            self.report(
                "invalid-type",
                "this is a qplan plan (written by `qplan compile-plan`), not a config",
                (),
                help=f"pass the config it was compiled from (`{source}`)"
                if isinstance(source, str)
                else "pass the config it was compiled from",
            )
            return INVALID
        self.unknown_keys(doc, TOP_LEVEL_KEYS, (), "at the top level")
        if "$schema" in doc and not isinstance(doc["$schema"], str):
            self.type_error(doc["$schema"], mi.StrType(), ("$schema",))
        specs = doc.get("quantization_spec")
        if specs is None and "quantization_spec" in doc:
            self.warn_empty(("quantization_spec",))
        elif specs is not None:
            if not isinstance(specs, dict):
                self.type_error(specs, mi.DictType(mi.StrType(), _SPEC), ("quantization_spec",))
            else:
                for name, spec in specs.items():
                    path = ("quantization_spec", name)
                    self.check(spec, _SPEC, path)
        if "quantization_config" not in doc:
            self.report(
                "missing-key",
                "missing required key `quantization_config`",
                (),
                help="put the QuantizerConfig under `quantization_config:`",
            )
            return INVALID
        return self.check(doc["quantization_config"], _QUANTIZER_CONFIG, ("quantization_config",))

    def unknown_keys(self, mapping: dict, allowed: Iterable[str], path: Path, where: str) -> None:
        allowed = list(allowed)
        for key in mapping:
            if key not in allowed:
                self.report(
                    "unknown-key",
                    f"unknown key `{key}` {where}; expected one of {_choices(allowed)}",
                    (*path, key),
                    at="key",
                    help=did_you_mean(key, allowed),
                )

    def warn_empty(self, path: Path) -> None:
        if not self.is_empty(path):
            return
        key = path[-1]
        means = _NULL_MEANS.get(key if isinstance(key, str) else "")
        if means is None and len(path) >= 2 and path[-2] in TENSOR_DICT_FIELDS:
            means = "decline this tensor"
        meaning = f" ({means})" if means else ""
        alternative = (
            " or `{}` for the defaults"
            if key in ("global_config", "op_input_spec", "op_output_spec", "op_state_spec")
            else ""
        )
        self.report(
            "empty-value",
            f"`{config_path(path[-1:])}` is left empty, which means `null`{meaning}",
            path,
            at="key",
            level="warning",
            help=f"write `null` explicitly if that is what you mean{alternative}",
        )

    # -- types ----------------------------------------------------------------------------
    def check(self, value: Any, t: Any, path: Path) -> Any:
        if isinstance(t, mi.Metadata):
            t = t.type
        if value is INVALID:
            return INVALID
        if isinstance(value, msgspec.Struct):  # Python callers may mix built values into a document
            value = msgspec.to_builtins(value)
        if isinstance(t, mi.UnionType):
            return self.union(value, t, path)
        if value is None:
            if isinstance(t, mi.NoneType):
                self.warn_empty(path)
                return None
            return self.type_error(value, t, path)
        if isinstance(t, mi.StructType):
            return self.struct(value, t, path)
        if isinstance(t, mi.DictType):
            return self.dict(value, t, path)
        if isinstance(t, (mi.LiteralType, mi.EnumType)):
            return self.choice(value, t, path)
        if isinstance(t, mi.IntType):
            return self.int(value, t, path)
        if isinstance(t, mi.FloatType):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            return self.type_error(value, t, path)
        if isinstance(t, mi.StrType):
            return value if isinstance(value, str) else self.type_error(value, t, path)
        if isinstance(t, (mi.VarTupleType, mi.ListType)):
            if not isinstance(value, (list, tuple)):
                return self.type_error(value, t, path)
            items = [self.check(v, t.item_type, (*path, i)) for i, v in enumerate(value)]
            return INVALID if INVALID in items else items
        if isinstance(t, mi.TupleType):
            if not isinstance(value, (list, tuple)):
                return self.type_error(value, t, path)
            if len(value) != len(t.item_types):
                self.report("invalid-value", f"expected a list of {len(t.item_types)} items, got {len(value)}", path)
                return INVALID
            items = [self.check(v, it, (*path, i)) for i, (v, it) in enumerate(zip(value, t.item_types))]
            return INVALID if INVALID in items else items
        raise TypeError(f"qplan bug: no check for {t!r}")  # pragma: no cover

    def union(self, value: Any, t: mi.UnionType, path: Path) -> Any:
        members = [m.type if isinstance(m, mi.Metadata) else m for m in t.types]
        if value is None:
            if any(isinstance(m, mi.NoneType) for m in members):
                self.warn_empty(path)
                return None
            return self.type_error(value, t, path)
        fitting = [m for m in members if _fits_kind(m, value)]
        tagged = [m for m in fitting if isinstance(m, mi.StructType) and m.tag_field]
        if tagged:
            return self.tagged(value, tagged, path)
        if len(fitting) != 1:
            return self.type_error(value, t, path)
        return self.check(value, fitting[0], path)

    def tagged(self, value: dict, members: list[mi.StructType], path: Path) -> Any:
        tag_field = members[0].tag_field
        tags = [m.tag for m in members]
        what = f"{path[-1]} {tag_field}" if path and isinstance(path[-1], str) else f"`{tag_field}`"
        if tag_field not in value:
            self.report("missing-key", f"missing required key `{tag_field}`; expected one of {_choices(tags)}", path)
            return INVALID
        tag = value[tag_field]
        for m in members:
            if tag == m.tag:
                return self.struct(value, m, path)
        self.report(
            "invalid-value",
            f"{self.found(tag, (*path, tag_field)).removeprefix('the string ')} is not a valid {what}; "
            f"expected one of {_choices(tags)}",
            (*path, tag_field),
            help=did_you_mean(tag, tags),
        )
        return INVALID

    def struct(self, value: Any, t: mi.StructType, path: Path) -> Any:
        if not isinstance(value, dict):
            return self.type_error(value, t, path)
        before = self.errors
        fields = {f.encode_name: f for f in t.fields}
        allowed = [*([t.tag_field] if t.tag_field else []), *fields]
        self.unknown_keys(value, allowed, path, f"in {_article(t.cls.__name__)}")
        clean: dict[str, Any] = {}
        for key, v in value.items():
            if key == t.tag_field:
                clean[key] = v
            elif key in fields:
                clean[key] = self.field(t.cls, key, v, fields[key].type, (*path, key))
        for f in t.fields:
            if f.required and f.encode_name not in value:
                self.report(
                    "missing-key", f"missing required key `{f.encode_name}` in {_article(t.cls.__name__)}", path
                )
        if self.errors != before:
            return INVALID
        for parts, message in self.cross_field(t, clean):
            if parts[0] in clean:
                self.report("cross-field", message, (*path, *parts), at="key" if len(parts) > 1 else "value")
            else:
                self.report("cross-field", message, path)
        return INVALID if self.errors != before else clean

    def field(self, cls: type, key: str, value: Any, t: Any, path: Path) -> Any:
        if (
            key == "dtype"
            and cls is T.QuantizationSpec
            and not isinstance(value, str)
            and type(value).__name__ == "dtype"
        ):
            value = T.normalize_dtype(value)  # a torch.dtype, from Python
        if key == "execution_mode" and isinstance(value, str) and value.lower() == "pt2e":
            self.report(
                "deprecated",
                f"execution_mode `{value}` is deprecated; use `graph`",
                path,
                level="warning",
                help="write `execution_mode: graph`",
            )
            return "graph"
        if key in TENSOR_DICT_FIELDS:
            return self.tensor_dict(value, t, path)
        if key == "module_type_configs" and isinstance(value, dict):  # classes, from Python
            value = {type_key(k) if isinstance(k, type) else k: v for k, v in value.items()}
        before = self.errors
        keys = (
            [str(k) for k in value if isinstance(k, (str, int)) and not isinstance(k, bool)]
            if isinstance(value, dict)
            else []
        )
        if key in REGEX_KEY_FIELDS:
            for pattern in keys:
                error, messages = _regex_problems(pattern, REGEX_KEY_FIELDS[key])
                if error is not None:
                    self.report("invalid-regex", error, (*path, pattern), at="key")
                for message in messages:
                    self.report(
                        "regex-warning",
                        f"regex `{pattern}`: {message.lower()}",
                        (*path, pattern),
                        at="key",
                        level="warning",
                        help="escape `[`, `-`, `&`, `~` and `|` inside `[...]` with a backslash",
                    )
        elif key == "module_type_configs":
            for name in keys:
                try:
                    type_key(name)
                except ValueError as e:
                    self.report(
                        "invalid-key",
                        str(e),
                        (*path, name),
                        at="key",
                        help="use a class name (`Linear`) or an import path (`torch.nn.Linear`)",
                    )
        clean = self.check(value, t, path)
        return INVALID if self.errors != before else clean

    def tensor_dict(self, value: Any, t: Any, path: Path) -> Any:
        if not isinstance(value, dict):
            return self.check(value, t, path)
        before = self.errors
        renamed: dict[Any, Any] = {}
        for key in value:
            ok = (isinstance(key, int) and not isinstance(key, bool) and key >= 0) or (
                isinstance(key, str) and re.fullmatch(TENSOR_KEY_PATTERN, key)
            )
            if not ok:
                self.report(
                    "invalid-key", f'tensor key `{key}` is not `"*"`, an index or a name', (*path, key), at="key"
                )
            elif str(key) in renamed:
                self.report(
                    "duplicate-key",
                    f"tensor key `{key}` appears twice (as an index and as a string)",
                    (*path, key),
                    at="key",
                )
            else:
                renamed[str(key)] = value[key]
        if self.errors == before:
            for _, message in T.check_tensor_keys(renamed):
                self.report("mixed-tensor-keys", message, path)
        clean = {str(key): self.check(v, _tensor_value_type(t), (*path, key)) for key, v in value.items()}
        return INVALID if self.errors != before else clean

    def dict(self, value: Any, t: mi.DictType, path: Path) -> Any:
        if not isinstance(value, dict):
            return self.type_error(value, t, path)
        before = self.errors
        clean = {}
        for key, v in value.items():
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)  # YAML `0:`; JSON (and the schema) only has string keys
            elif not isinstance(key, str):
                self.report("invalid-key", f"key `{key!r}` must be a string", (*path, key), at="key")
            clean[key] = self.check(v, t.value_type, (*path, key))
        return INVALID if self.errors != before else clean

    def choice(self, value: Any, t: Any, path: Path) -> Any:
        allowed = [e.value for e in t.cls] if isinstance(t, mi.EnumType) else _declared_order(t.values)
        if isinstance(value, enum.Enum):
            value = value.value
        if not isinstance(value, str):
            return self.type_error(value, t, path)
        if value in allowed:
            return value
        what = f"`{path[-1]}`" if path and isinstance(path[-1], str) else "value"
        self.report(
            "invalid-value",
            f"`{value}` is not a valid {what}; expected one of {_choices(allowed)}",
            path,
            help=did_you_mean(value, allowed),
        )
        return INVALID

    def int(self, value: Any, t: mi.IntType, path: Path) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return self.type_error(value, t, path)
        name = path[-1] if path and isinstance(path[-1], str) else "value"
        if t.ge is not None and value < t.ge:
            self.report("invalid-value", f"`{name}` must be >= {t.ge}, got `{value}`", path)
            return INVALID
        if t.gt is not None and value <= t.gt:
            self.report("invalid-value", f"`{name}` must be > {t.gt}, got `{value}`", path)
            return INVALID
        return value

    # -- cross-field rules (types.check_*) ------------------------------------------------
    def cross_field(self, t: mi.StructType, clean: dict) -> Iterator[tuple[Path, str]]:
        """Problems as (path relative to the struct, message)."""
        for field, message in self._cross_field(t, clean):
            yield (field,) if isinstance(field, str) else field, message

    def _cross_field(self, t: mi.StructType, clean: dict) -> Iterator[tuple[str | Path, str]]:
        cls = t.cls
        if cls in (T.QuantizationSpec, T.QATSchedule, T.PerBlockGranularity):
            values = {f.name: (None if f.default is msgspec.NODEFAULT else f.default) for f in t.fields}
            values.update(clean)
            ns = SimpleNamespace(**values)
            if cls is T.QuantizationSpec:
                yield from T.check_spec(ns)
            elif cls is T.QATSchedule:
                yield from T.check_schedule(ns)
            else:
                if isinstance(ns.block_size, list):
                    ns.block_size = tuple(ns.block_size)
                yield from check_block(ns)
        elif cls is T.QuantizerConfig:
            g = clean.get("global_config")
            if isinstance(g, dict):
                for name in MODULE_SPEC_FIELDS:
                    if g.get(name):
                        yield (
                            ("global_config", name),
                            ("global_config must not set module_input_spec, module_output_spec or module_state_spec"),
                        )
                        return


def _literals(hint: Any) -> Iterator[tuple]:
    if typing.get_origin(hint) is typing.Literal:
        yield typing.get_args(hint)
    for arg in typing.get_args(hint):
        yield from _literals(arg)


_STRUCT_TYPES = (
    T.QuantizerConfig,
    T.ModuleQuantizerConfig,
    T.OpQuantizerConfig,
    T.QuantizationSpec,
    T.QATSchedule,
    T.PerTensorGranularity,
    T.PerChannelGranularity,
    T.PerBlockGranularity,
)
_DECLARED = {
    frozenset(values): values
    for cls in _STRUCT_TYPES
    for hint in typing.get_type_hints(cls, include_extras=True).values()
    for values in _literals(hint)
}


def _declared_order(values: tuple) -> list:
    """Literal values in the order the types declare them (msgspec.inspect sorts them)."""
    return list(_DECLARED.get(frozenset(values), values))


def _tensor_value_type(t: Any) -> Any:
    t = t.type if isinstance(t, mi.Metadata) else t
    if isinstance(t, mi.UnionType):
        t = next(m for m in t.types if isinstance(m, mi.DictType))
    return t.value_type


def _fits_kind(t: Any, value: Any) -> bool:
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


def _describe(t: Any) -> str:
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        parts: list[str] = []
        for m in t.types:
            d = _describe(m)
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
        return f"one of {_choices(e.value for e in t.cls)}"
    if isinstance(t, mi.LiteralType):
        return f"one of {_choices(t.values)}"
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


def _choices(values: Iterable[Any]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _article(name: str) -> str:
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"
