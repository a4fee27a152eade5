"""The config language: types, loading, validation, JSON Schema and presets (see docs/config-language.md)."""

from qplan.schema import loader as _loader  # noqa: F401  (installs QuantizerConfig.from_yaml, to_yaml, ...)
from qplan.schema import presets as _presets  # noqa: F401  (attaches QuantizerConfig.presets)
from qplan.schema.types import (
    ExecutionMode,
    ModuleQuantizerConfig,
    OpQuantizerConfig,
    PerBlockGranularity,
    PerChannelGranularity,
    PerTensorGranularity,
    QATSchedule,
    QuantizationScheme,
    QuantizationSpec,
    QuantizerConfig,
)

__all__ = [
    "ExecutionMode",
    "ModuleQuantizerConfig",
    "OpQuantizerConfig",
    "PerBlockGranularity",
    "PerChannelGranularity",
    "PerTensorGranularity",
    "QATSchedule",
    "QuantizationScheme",
    "QuantizationSpec",
    "QuantizerConfig",
]


def __dir__() -> list[str]:
    return __all__
