"""Config paths: the canonical text form of a location in a config document.

``quantization_config.module_name_configs["enc.*"].op_state_spec.weight.dtype``: identifier keys
are written ``.key``, other string keys ``["key"]`` (JSON-quoted), integer keys and digit strings
``[0]`` (tensor keys ``0`` and ``"0"`` are the same key once loaded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["config_path"]


def config_path(parts: Iterable[Any]) -> str:
    """Render a sequence of keys as a config path (``""`` for the document root)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (int, str)):
            out.append(f"[{json.dumps(str(part))}]")
        elif isinstance(part, int) or part.isdigit():
            out.append(f"[{part}]")
        elif part.isidentifier() and part.isascii():
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)
