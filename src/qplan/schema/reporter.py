"""The validator's reporting half: spans of config paths, diagnostics recorded once per node, and
the reports every node kind shares (wrong type, unknown key, empty value).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qplan.diagnostics import Diagnostic, Level, Span
from qplan.schema.keys import TENSOR_DICT_FIELDS
from qplan.schema.paths import config_path
from qplan.schema.typedesc import choices, describe
from qplan.schema.yamlvalues import INVALID, ParsedDocument, norm_path
from qplan.suggest import did_you_mean

__all__ = ["Path", "Reporter"]

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


class Reporter:
    """Records diagnostics for one document (with spans when it was parsed from text)."""

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
        self, code: str, message: str, path: Path, *, at: str = "value", help: str | None = None, level: Level = "error"
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
        self.report("invalid-type", f"expected {describe(t)}, got {self.found(value, path)}", path)
        return INVALID

    def unknown_keys(self, mapping: dict, allowed: Iterable[str], path: Path, where: str) -> None:
        allowed = list(allowed)
        for key in mapping:
            if key not in allowed:
                self.report(
                    "unknown-key",
                    f"unknown key `{key}` {where}; expected one of {choices(allowed)}",
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
