"""All config types of the config language (see docs/config-language.md) in one namespace, for callers that import
``qplan.schema.types``: the spec types (:mod:`qplan.schema.specs`), the config types
(:mod:`qplan.schema.configs`) and their cross-field rules (:mod:`qplan.schema.rules`).

This module defines nothing; it re-exports.
"""

from __future__ import annotations

from qplan.schema.configs import ModuleQuantizerConfig, OpQuantizerConfig, QuantizerConfig
from qplan.schema.rules import (
    DTYPE_ALIASES,
    DTYPES,
    FLOAT_DTYPES,
    check_schedule,
    check_spec,
    check_tensor_keys,
    normalize_dtype,
)
from qplan.schema.specs import (
    ExecutionMode,
    PerBlockGranularity,
    PerChannelGranularity,
    PerTensorGranularity,
    QATSchedule,
    QuantizationScheme,
    QuantizationSpec,
    default_activation_spec,
    default_weight_spec,
)

__all__ = [
    "DTYPES",
    "DTYPE_ALIASES",
    "FLOAT_DTYPES",
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
    "check_schedule",
    "check_spec",
    "check_tensor_keys",
    "default_activation_spec",
    "default_weight_spec",
    "normalize_dtype",
]
