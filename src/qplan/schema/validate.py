"""Validate a raw config document completely, before msgspec builds any value.

One walker (reporting in :mod:`qplan.schema.reporter`) visits the plain document (dicts, lists, scalars) along the config types, as
``msgspec.inspect`` describes them, and records every problem as a :class:`Diagnostic` with its
config path and source span: unknown keys, wrong types, bad enum values, invalid regexes, mixed
tensor keys and the cross-field rules of :mod:`qplan.schema.rules` (so messages match programmatic
construction; :mod:`qplan.schema.docrules`). It also returns the document in the exact form ``msgspec.convert`` accepts.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from qplan.diagnostics import Diagnostic
from qplan.schema import types as T
from qplan.schema.docrules import cross_field_problems, regex_problems
from qplan.schema.keys import (
    MODULE_SPEC_FIELDS,
    MODULE_TYPE_PATTERN,
    REGEX_KEY_FIELDS,
    TENSOR_DICT_FIELDS,
    TENSOR_INDEX_PATTERN,
    TENSOR_KEY_PATTERN,
    TENSOR_NAME_PATTERN,
    TOP_LEVEL_KEYS,
)
from qplan.schema.paths import config_path
from qplan.schema.reporter import Path, Reporter
from qplan.schema.rules import type_key
from qplan.schema.typedesc import article, choices, declared_order, fits_kind, tensor_value_type
from qplan.schema.yamlvalues import INVALID, ParsedDocument
from qplan.suggest import did_you_mean

__all__ = [
    "TOP_LEVEL_KEYS",
    "TENSOR_KEY_PATTERN",
    "TENSOR_INDEX_PATTERN",
    "TENSOR_NAME_PATTERN",
    "MODULE_TYPE_PATTERN",
    "MODULE_SPEC_FIELDS",
    "REGEX_KEY_FIELDS",
    "TENSOR_DICT_FIELDS",
    "validate_document",
]


def validate_document(document: Any, parsed: ParsedDocument | None = None) -> tuple[Any, list[Diagnostic]]:
    """Check a whole document; return (clean ``quantization_config`` value, diagnostics).

    The clean value is only meaningful when no diagnostic is an error.
    """
    walker = _Walker(parsed)
    clean = walker.document(walker.without_surrogates(document, ()))
    return clean, [*(parsed.warnings if parsed is not None else []), *walker.diagnostics]


_QUANTIZER_CONFIG = mi.type_info(T.QuantizerConfig)
_SPEC = mi.type_info(T.QuantizationSpec)
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Walker(Reporter):
    """Checks each node against its type, recording problems (see :class:`Reporter`)."""

    # -- text -----------------------------------------------------------------------------
    def without_surrogates(self, value: Any, path: Path) -> Any:
        """`value` with every string holding a lone surrogate (from an escape such as `"\\udc80"`,
        which no UTF-8 text can encode) reported and removed: a value becomes INVALID, a key is dropped."""
        if isinstance(value, str):
            if _SURROGATE.search(value):
                self._report_surrogate(value, path, "value", path)
                return INVALID
            return value
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    self._report_surrogate(key, (*path, key), "key", path)
                    continue
                out[key] = self.without_surrogates(item, (*path, key))
            return out
        if isinstance(value, list):
            return [self.without_surrogates(item, (*path, i)) for i, item in enumerate(value)]
        return value

    def _report_surrogate(self, text: str, path: Path, at: str, shown: Path) -> None:
        escaped = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        char = _SURROGATE.search(text)[0]  # type: ignore[index]
        self.errors += 1
        where = config_path(shown) if at == "value" else config_path(shown) + f'["{escaped}"]'
        self.diagnostics.append(
            Diagnostic(
                code="invalid-value",
                level="error",
                message=f"the {at} `{escaped}` holds a lone surrogate `\\u{ord(char):04x}`, which is not a character",
                path=where or None,
                span=self.span(path, at),
                help="surrogate escapes come in pairs (`\\ud83d\\ude00` is one character); remove it or write"
                " the character itself",
            )
        )

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
        from qplan.plan_format import PLAN_FORMAT, looks_like_plan

        if looks_like_plan(doc):
            source = doc.get("config", {}).get("source") if isinstance(doc.get("config"), dict) else None
            odd = "" if doc.get("format") == PLAN_FORMAT else f", format `{doc.get('format')}`"
            self.report(
                "invalid-type",
                f"this is a qplan plan (written by `qplan compile-plan`{odd}), not a config",
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
            return self.mapping(value, t, path)
        if isinstance(t, (mi.LiteralType, mi.EnumType)):
            return self.choice(value, t, path)
        if isinstance(t, mi.IntType):
            return self.integer(value, t, path)
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
        fitting = [m for m in members if fits_kind(m, value)]
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
            self.report("missing-key", f"missing required key `{tag_field}`; expected one of {choices(tags)}", path)
            return INVALID
        tag = value[tag_field]
        for m in members:
            if tag == m.tag:
                return self.struct(value, m, path)
        self.report(
            "invalid-value",
            f"{self.found(tag, (*path, tag_field)).removeprefix('the string ')} is not a valid {what}; "
            f"expected one of {choices(tags)}",
            (*path, tag_field),
            help=did_you_mean(tag, [str(t) for t in tags]),
        )
        return INVALID

    def struct(self, value: Any, t: mi.StructType, path: Path) -> Any:
        if not isinstance(value, dict):
            return self.type_error(value, t, path)
        before = self.errors
        fields = {f.encode_name: f for f in t.fields}
        allowed = [*([t.tag_field] if t.tag_field else []), *fields]
        self.unknown_keys(value, allowed, path, f"in {article(t.cls.__name__)}")
        clean: dict[str, Any] = {}
        for key, v in value.items():
            if key == t.tag_field:
                clean[key] = v
            elif key in fields:
                clean[key] = self.field(t.cls, key, v, fields[key].type, (*path, key))
        for f in t.fields:
            if f.required and f.encode_name not in value:
                self.report("missing-key", f"missing required key `{f.encode_name}` in {article(t.cls.__name__)}", path)
        if self.errors != before:
            return INVALID
        for parts, message in cross_field_problems(t, clean):
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
                error, messages = regex_problems(pattern, REGEX_KEY_FIELDS[key])
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
        clean = {str(key): self.check(v, tensor_value_type(t), (*path, key)) for key, v in value.items()}
        return INVALID if self.errors != before else clean

    def mapping(self, value: Any, t: mi.DictType, path: Path) -> Any:
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
        allowed = [e.value for e in t.cls] if isinstance(t, mi.EnumType) else declared_order(t.values)
        if isinstance(value, enum.Enum):
            value = value.value
        if not isinstance(value, str):
            return self.type_error(value, t, path)
        if value in allowed:
            return value
        what = f"`{path[-1]}`" if path and isinstance(path[-1], str) else "value"
        self.report(
            "invalid-value",
            f"`{value}` is not a valid {what}; expected one of {choices(allowed)}",
            path,
            help=did_you_mean(value, allowed),
        )
        return INVALID

    def integer(self, value: Any, t: mi.IntType, path: Path) -> Any:
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
