"""Load a config document (a path, YAML/JSON text, or a stream) into a :class:`QuantizerConfig`.

Reading: bytes are decoded as UTF-8 and parsed by :mod:`qplan.schema.yamldoc` (spans for every
node); checking: :mod:`qplan.schema.validate` reports every problem at once; building:
``msgspec.convert`` on the checked document. Problems raise :class:`ConfigError`.

Importing this module gives ``QuantizerConfig`` its text forms (``from_yaml``, ``to_yaml``, ...;
see :func:`qplan.schema.configs.install_text_forms`): the types stay below the loader.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from qplan.diagnostics import ConfigError, Diagnostic, Span
from qplan.schema.configs import QuantizerConfig, TextForms, install_text_forms
from qplan.schema.dump import config_document, dump_yaml
from qplan.schema.paths import config_path
from qplan.schema.validate import validate_document
from qplan.schema.yamldoc import ParsedDocument, parse_document

__all__ = ["LoadedConfig", "load_config", "config_from_document", "config_document", "dump_yaml", "config_path"]

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class LoadedConfig:
    """A loaded config with where it came from: name as given, sha256 of the bytes, and spans."""

    config: QuantizerConfig
    name: str
    sha256: str
    spans: dict[str, Span] = field(default_factory=dict, repr=False)
    """Config path of every node -> its span (from the key, when it has one, to the end of the value)."""
    warnings: list[Diagnostic] = field(default_factory=list)

    def span_for(self, parts: Sequence[Any]) -> Span | None:
        """Span of the config path `parts`, or of its nearest ancestor that has one."""
        parts = list(parts)
        while True:
            span = self.spans.get(config_path(parts))
            if span is not None or not parts:
                return span
            parts.pop()


def load_config(source: Any, *, name: str | None = None) -> LoadedConfig:
    """Load and validate a config from a path, YAML/JSON text, bytes or a text/binary stream."""
    data, default_name = _read(source)
    name = name if name is not None else default_name
    sha = hashlib.sha256(data).hexdigest()
    text = _decode(data, name)
    parsed = parse_document(text, name)
    config, warnings = _build(parsed.value, parsed)
    return LoadedConfig(config=config, name=name, sha256=sha, spans=_spans(parsed), warnings=warnings)


def config_from_document(document: Any) -> QuantizerConfig:
    """Validate a whole document given as Python values and build the config (raises ConfigError)."""
    return _build(document, None)[0]


def _build(document: Any, parsed: ParsedDocument | None) -> tuple[QuantizerConfig, list[Diagnostic]]:
    clean, diagnostics = validate_document(document, parsed)
    if any(d.level == "error" for d in diagnostics):
        raise ConfigError(diagnostics)
    try:
        config = msgspec.convert(clean, QuantizerConfig)
    except (msgspec.ValidationError, ValueError, TypeError) as e:  # a rule the walker missed: still no traceback
        file = parsed.name if parsed is not None else None
        span = Span(file=file, line=1, col=1) if file else None
        raise ConfigError(
            [*diagnostics, Diagnostic(code="invalid-config", level="error", message=str(e), span=span)]
        ) from None
    return config, [d for d in diagnostics if d.level != "error"]


def _read(source: Any) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "<string>"
    if isinstance(source, str) and not _looks_like_path(source):
        return source.encode("utf-8"), "<string>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                return f.read(), path
        except OSError as e:
            raise ConfigError(
                Diagnostic(
                    code="unreadable-file",
                    level="error",
                    message=f"cannot read `{path}`: {e.strerror or e}",
                    span=Span(file=path, line=1, col=1),
                )
            ) from None
    if hasattr(source, "read"):
        data = source.read()
        stream_name = getattr(source, "name", None)
        name = stream_name if isinstance(stream_name, str) else "<stream>"
        return (data.encode("utf-8") if isinstance(data, str) else bytes(data)), name
    raise TypeError(f"load_config expects a path, YAML/JSON text or a stream, got {type(source).__name__}")


def _looks_like_path(text: str) -> bool:
    if "\n" in text or not text.strip():
        return False
    if text.lower().endswith(_CONFIG_SUFFIXES):
        return True
    try:
        return Path(text).exists()  # a directory too: unreadable, not YAML
    except OSError:  # e.g. a one-line JSON document longer than a file name may be
        return False


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError(
            Diagnostic(
                code="invalid-encoding",
                level="error",
                message=f"the file is not valid UTF-8: byte `0x{data[e.start]:02x}` at offset {e.start}",
                span=Span(file=name, line=line, col=col),
                help="save the config as UTF-8",
            )
        ) from None


def _spans(parsed: ParsedDocument) -> dict[str, Span]:
    spans = {}
    for path, value in parsed.value_spans.items():
        key = parsed.key_spans.get(path)
        if key is not None:  # from the key to the end of the value
            value = Span(file=value.file, line=key.line, col=key.col, end_line=value.end_line, end_col=value.end_col)
        spans[config_path(path)] = value
    return spans


install_text_forms(
    TextForms(
        from_document=config_from_document,
        load=lambda source: load_config(source).config,
        to_document=config_document,
        to_yaml=dump_yaml,
    )
)
