"""Write configs back out: the canonical document of a config, and YAML text for a document.

``QuantizerConfig.to_dict`` / ``to_yaml`` use these; ``from_dict(c.to_dict()) == c`` holds because
only fields equal to their default are left out.
"""

from __future__ import annotations

import io
from typing import Any

import msgspec

from qplan.schema.configs import QuantizerConfig

__all__ = ["config_document", "dump_yaml"]


def config_document(config: QuantizerConfig, *, explicit_specs: bool = False) -> dict[str, Any]:
    """The whole document for `config` as builtins; fields at their default are left out.

    With `explicit_specs`, specs, granularities and fields with a non-empty default keep every
    field (for people to read).
    """
    return {"quantization_config": _compact(config, explicit_specs)}


def _compact(value: Any, explicit: bool) -> Any:
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        config = value.__struct_config__
        if config.tag_field is not None:
            out[config.tag_field] = config.tag
        keep_all = explicit and config.frozen
        for f in msgspec.structs.fields(value):
            v = getattr(value, f.name)
            default = f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default
            spelled_out = keep_all or (explicit and f.default_factory not in (msgspec.NODEFAULT, dict))
            if spelled_out or f.required or v != default:
                out[f.encode_name] = _compact(v, explicit)
        return out
    if isinstance(value, dict):
        return {k: _compact(v, explicit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compact(v, explicit) for v in value]
    return msgspec.to_builtins(value)


def dump_yaml(data: Any) -> str:
    """YAML for a document of builtins: block style, innermost collections in flow style."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # ruamel's stub types it as None
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
