"""qplan: a quantization config compiler for PyTorch (config -> plan -> prepared model).

The public surface is the config language of SPEC §1.6; see :mod:`qplan.schema`. Importing
qplan does not import torch.
"""

from qplan.diagnostics import ConfigError
from qplan.schema import (
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
from qplan.schema.loader import load_config
from qplan.compiler.plan import load_plan  # noqa: F401  (read a plan file for the runtime)

__all__ = [
    "ConfigError",
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
    "load_config",
]


def __dir__() -> list[str]:
    return __all__
