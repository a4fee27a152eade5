"""Ready-made configs (see docs/config-language.md#python-api): ``QuantizerConfig.presets.w8()``, ``ModuleQuantizerConfig.presets.fp8()``, ...

Each preset is one function building a :class:`ModuleQuantizerConfig`; the ``QuantizerConfig``
form puts it in ``global_config``. :data:`PRESETS` lists them (``qplan presets``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qplan.schema.dump import config_document, dump_yaml
from qplan.schema.types import (
    ModuleQuantizerConfig,
    PerBlockGranularity,
    PerChannelGranularity,
    QuantizationSpec,
    QuantizerConfig,
)

__all__ = ["PRESETS", "Preset", "ModulePresets", "ConfigPresets"]


def _weight_only(weight: QuantizationSpec) -> ModuleQuantizerConfig:
    return ModuleQuantizerConfig(op_input_spec=None, op_output_spec=None, op_state_spec={"weight": weight})


def w8(axis: int | None = None) -> ModuleQuantizerConfig:
    """Weight-only int8, symmetric, per channel."""
    return _weight_only(QuantizationSpec(dtype="int8", granularity=PerChannelGranularity(axis=axis)))


def w4(axis: int | None = None) -> ModuleQuantizerConfig:
    """Weight-only int4, symmetric, per channel."""
    return _weight_only(QuantizationSpec(dtype="int4", granularity=PerChannelGranularity(axis=axis)))


def w4_per_block(block_size: int = 32, axis: int | None = None) -> ModuleQuantizerConfig:
    """Weight-only int4, symmetric, per block of `block_size`."""
    return _weight_only(
        QuantizationSpec(dtype="int4", granularity=PerBlockGranularity(block_size=block_size, axis=axis))
    )


def w8a8() -> ModuleQuantizerConfig:
    """int8 per-channel weights and int8 per-tensor activations (the library default)."""
    return ModuleQuantizerConfig()


def _fp8_activations() -> dict[str, QuantizationSpec | None]:
    return {"*": QuantizationSpec(dtype="float8_e4m3fn", qparam_calculator_cls="moving_average")}


def fp8() -> ModuleQuantizerConfig:
    """FP8 (E4M3) weights per channel and FP8 activations per tensor."""
    return ModuleQuantizerConfig(
        op_input_spec=_fp8_activations(),
        op_output_spec=_fp8_activations(),
        op_state_spec={"weight": QuantizationSpec(dtype="float8_e4m3fn", granularity=PerChannelGranularity())},
    )


def mxfp4() -> ModuleQuantizerConfig:
    """FP4 (E2M1) weights per block of 32 with power-of-two (E8M0) scales, FP8 activations."""
    weight = QuantizationSpec(
        dtype="float4_e2m1fn_x2", granularity=PerBlockGranularity(block_size=32), scale_dtype="float8_e8m0fnu"
    )
    return ModuleQuantizerConfig(
        op_input_spec=_fp8_activations(), op_output_spec=_fp8_activations(), op_state_spec={"weight": weight}
    )


@dataclass(frozen=True)
class Preset:
    """One preset: its name, call signature, one-line summary and module-level factory."""

    name: str
    factory: Callable[..., ModuleQuantizerConfig]

    @property
    def signature(self) -> str:
        params = inspect.signature(self.factory).parameters.values()
        return "(" + ", ".join(f"{p.name}={p.default!r}" for p in params) + ")"

    @property
    def summary(self) -> str:
        return (self.factory.__doc__ or "").strip()

    def build(self, *args: Any, **kwargs: Any) -> QuantizerConfig:
        return QuantizerConfig(global_config=self.factory(*args, **kwargs))

    def yaml(self) -> str:
        """The preset (default arguments) as a config document, its specs spelled out in full."""
        return dump_yaml(config_document(self.build(), explicit_specs=True))


PRESETS: dict[str, Preset] = {f.__name__: Preset(f.__name__, f) for f in (w8, w4, w4_per_block, w8a8, fp8, mxfp4)}


class ModulePresets:
    """``ModuleQuantizerConfig.presets``: each preset as a module config."""

    def __getattr__(self, name: str) -> Callable[..., ModuleQuantizerConfig]:
        try:
            return PRESETS[name].factory
        except KeyError:
            raise AttributeError(f"no preset `{name}`; presets: {', '.join(PRESETS)}") from None

    def __dir__(self) -> list[str]:
        return list(PRESETS)


class ConfigPresets:
    """``QuantizerConfig.presets``: each preset as a whole config (the preset is the global config)."""

    def __getattr__(self, name: str) -> Callable[..., QuantizerConfig]:
        try:
            return PRESETS[name].build
        except KeyError:
            raise AttributeError(f"no preset `{name}`; presets: {', '.join(PRESETS)}") from None

    def __dir__(self) -> list[str]:
        return list(PRESETS)


ModuleQuantizerConfig.presets = ModulePresets()
QuantizerConfig.presets = ConfigPresets()
