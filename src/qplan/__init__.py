"""qplan: a quantization config compiler for PyTorch (config -> plan -> prepared model).

The config language (its types, ``load_config``) is imported eagerly and stays free of torch;
the compiler and runtime entry points (``compile_plan``, ``load_plan``, ``Quantizer``,
``load_program``) are resolved on first use, so ``import qplan`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qplan.diagnostics import CompileError, ConfigError, QplanError
from qplan.schema import *  # noqa: F403 - the config language's public names, listed once in qplan.schema
from qplan.schema import __all__ as _schema_names
from qplan.schema.loader import load_config

if TYPE_CHECKING:
    from qplan.compiler import compile_plan as compile_plan
    from qplan.compiler.plan import load_plan as load_plan
    from qplan.runtime import Quantizer as Quantizer
    from qplan.runtime import load_program as load_program

__version__ = "0.1.0"

_LAZY = {
    "compile_plan": "qplan.compiler",
    "load_plan": "qplan.compiler.plan",
    "Quantizer": "qplan.runtime",
    "load_program": "qplan.runtime",
}

__all__ = [
    *_schema_names,
    "CompileError",
    "ConfigError",
    "QplanError",
    "load_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'qplan' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
