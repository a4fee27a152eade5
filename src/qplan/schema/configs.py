"""The config types of the config language (see docs/config-language.md#tensor-keys-inputs-outputs-and-states, docs/config-language.md#module-configs-and-the-whole-config): op, module and whole-quantizer
configs, as msgspec Structs built from the specs of :mod:`qplan.schema.specs`.

Reading and writing documents (``from_yaml``, ``to_yaml``, ...) belongs to the loader and the
dumper, which import these types; so that this module need not import them back, the text-form
methods of :class:`QuantizerConfig` call a :class:`TextForms` that :mod:`qplan.schema.loader`
installs with :func:`install_text_forms` when it is imported (``qplan.schema`` imports it, so it
is in place before any ``qplan.schema.*`` module can be used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta, field

from qplan.schema.rules import check_global, check_regex, check_tensor_keys, raise_first, type_key
from qplan.schema.specs import (
    STRUCT_OPTIONS,
    ExecutionMode,
    QATSchedule,
    QuantizationSpec,
    default_activation_spec,
    default_weight_spec,
)

__all__ = [
    "ModuleQuantizerConfig",
    "OpQuantizerConfig",
    "QuantizerConfig",
    "TextForms",
    "install_text_forms",
]


@dataclass(frozen=True)
class TextForms:
    """How a :class:`QuantizerConfig` is read from and written to documents (the loader's functions)."""

    from_document: Callable[[Any], QuantizerConfig]
    """Validate a whole document of Python values and build the config."""
    load: Callable[[Any], QuantizerConfig]
    """Load a config from a path, YAML/JSON text or a stream."""
    to_document: Callable[[QuantizerConfig], dict[str, Any]]
    """The whole document of a config, fields at their default left out."""
    to_yaml: Callable[[Any], str]
    """YAML text for a document of builtins."""


_text_forms: list[TextForms] = []


def install_text_forms(forms: TextForms) -> None:
    """Give :class:`QuantizerConfig` its text forms (called once, by :mod:`qplan.schema.loader`)."""
    _text_forms[:] = [forms]


def _forms() -> TextForms:
    if not _text_forms:  # pragma: no cover - qplan.schema imports the loader first
        raise RuntimeError("qplan bug: qplan.schema.loader has not installed the config text forms")
    return _text_forms[0]


SpecOrDecline = QuantizationSpec | None
TensorSpecs = dict[str, SpecOrDecline]
_TENSOR_KEYS_DOC = 'Tensor key (`"*"`, an index, or a name) -> spec, or null to decline that tensor.'


def _normalize_tensor_specs(value: Any) -> dict[str, SpecOrDecline]:
    """null -> {"*": null}; int keys -> digit strings; validates key mixing."""
    if value is None:
        return {"*": None}
    out = {str(k) if isinstance(k, int) else k: v for k, v in value.items()}
    raise_first(check_tensor_keys(out))
    return out


def _default_inputs() -> dict[str, SpecOrDecline]:
    return {"*": default_activation_spec()}


def _default_outputs() -> dict[str, SpecOrDecline]:
    return {"*": default_activation_spec()}


def _default_states() -> dict[str, SpecOrDecline]:
    return {"weight": default_weight_spec()}


_TENSOR_FIELDS = ("op_input_spec", "op_output_spec", "op_state_spec")


class OpQuantizerConfig(msgspec.Struct, omit_defaults=True, **STRUCT_OPTIONS):
    """How the tensors of one op are quantized: inputs, outputs and states (see docs/config-language.md#tensor-keys-inputs-outputs-and-states)."""

    op_input_spec: Annotated[
        TensorSpecs | None, Meta(description="Op inputs. " + _TENSOR_KEYS_DOC + " Omitted: int8 activations.")
    ] = field(default_factory=_default_inputs)
    op_output_spec: Annotated[
        TensorSpecs | None, Meta(description="Op outputs. " + _TENSOR_KEYS_DOC + " Omitted: int8 activations.")
    ] = field(default_factory=_default_outputs)
    op_state_spec: Annotated[
        TensorSpecs | None,
        Meta(
            description="Op states (`weight`, `bias`, ...). " + _TENSOR_KEYS_DOC + " Omitted: int8 per-channel weight."
        ),
    ] = field(default_factory=_default_states)

    def __post_init__(self) -> None:
        for name in _TENSOR_FIELDS:
            setattr(self, name, _normalize_tensor_specs(getattr(self, name)))


class ModuleQuantizerConfig(OpQuantizerConfig, omit_defaults=True, **STRUCT_OPTIONS):
    """How one module subtree is quantized (see docs/config-language.md#module-configs-and-the-whole-config)."""

    presets: ClassVar[Any]

    op_type_config: Annotated[
        dict[str, OpQuantizerConfig | None],
        Meta(description="Op type (`linear`, `matmul`, `add`, ...) -> op config, or null to decline it."),
    ] = field(default_factory=dict)
    op_name_config: Annotated[
        dict[str, OpQuantizerConfig | None],
        Meta(description="Op-name regex (fullmatch, e.g. `attn\\.matmul_1`) -> op config, or null."),
    ] = field(default_factory=dict)
    module_input_spec: Annotated[
        TensorSpecs, Meta(description="Boundary inputs of the matched module. " + _TENSOR_KEYS_DOC)
    ] = field(default_factory=dict)
    module_output_spec: Annotated[
        TensorSpecs, Meta(description="Boundary outputs of the matched module. " + _TENSOR_KEYS_DOC)
    ] = field(default_factory=dict)
    module_state_spec: Annotated[
        TensorSpecs, Meta(description="States the matched module owns directly -> spec, or null.")
    ] = field(default_factory=dict)
    qat_schedule: Annotated[QATSchedule | None, Meta(description="QAT schedule; null = always on.")] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("ModuleQuantizerConfig is final and cannot be subclassed")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("module_input_spec", "module_output_spec", "module_state_spec"):
            value = getattr(self, name)
            setattr(self, name, {} if value is None else _normalize_tensor_specs(value))
        for pattern in self.op_name_config:
            check_regex(pattern, "op_name_config")

    @property
    def has_module_specs(self) -> bool:
        """Whether any module_input_spec / module_output_spec / module_state_spec is set."""
        return bool(self.module_input_spec or self.module_output_spec or self.module_state_spec)


ModuleConfigOrDecline = ModuleQuantizerConfig | None


class QuantizerConfig(msgspec.Struct, omit_defaults=True, **STRUCT_OPTIONS):
    """The whole quantization config: a global default plus overrides (see docs/config-language.md#module-configs-and-the-whole-config)."""

    presets: ClassVar[Any]

    global_config: Annotated[
        ModuleConfigOrDecline, Meta(description="Default for every module; null = quantize nothing by default.")
    ] = field(default_factory=ModuleQuantizerConfig)
    module_type_configs: Annotated[
        dict[str, ModuleConfigOrDecline],
        Meta(description="Module class (`torch.nn.Linear`, full name, or bare name) -> config, or null."),
    ] = field(default_factory=dict)
    module_name_configs: Annotated[
        dict[str, ModuleConfigOrDecline],
        Meta(description="Module-path regex (fullmatch, e.g. `blocks\\.[0-3]\\..*`) -> config, or null."),
    ] = field(default_factory=dict)
    execution_mode: Annotated[
        ExecutionMode, Meta(description="`graph` (torch.export) or `eager`; `pt2e` is a deprecated alias of `graph`.")
    ] = ExecutionMode.graph
    preserved_attributes: Annotated[
        list[str] | None, Meta(description="Attribute names kept on prepared and finalized models.")
    ] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("QuantizerConfig is final and cannot be subclassed")

    def __post_init__(self) -> None:
        self.execution_mode = ExecutionMode.parse(self.execution_mode)
        self.module_type_configs = {type_key(k): v for k, v in self.module_type_configs.items()}
        check_global(self.global_config)
        for pattern in self.module_name_configs:
            check_regex(pattern, "module_name_configs")

    # -- chainable setters -------------------------------------------------------------
    def set_execution_mode(self, mode: ExecutionMode | str) -> QuantizerConfig:
        """Set `execution_mode` (`graph`, `eager`, or the `pt2e` alias); returns self."""
        self.execution_mode = ExecutionMode.parse(mode)
        return self

    def set_global(self, config: ModuleQuantizerConfig | None) -> QuantizerConfig:
        """Set `global_config` (None: quantize nothing by default); returns self."""
        check_global(config)
        self.global_config = config
        return self

    def set_module_type(self, module_type: Any, config: ModuleQuantizerConfig | None) -> QuantizerConfig:
        """Set the config of a module class (a class, its import path or class name); returns self."""
        self.module_type_configs[type_key(module_type)] = config
        return self

    def set_module_name(self, pattern: str, config: ModuleQuantizerConfig | None) -> QuantizerConfig:
        """Set the config of the modules whose path fullmatches the regex `pattern`; returns self."""
        check_regex(pattern, "module_name_configs")
        self.module_name_configs[pattern] = config
        return self

    def only_for(self, *targets: Any) -> QuantizerConfig:
        """Quantize only `targets` (module types or name regexes) with the global config."""
        for target in targets:
            self._set_target(target, self.global_config)
        self.global_config = None
        return self

    def without(self, *targets: Any) -> QuantizerConfig:
        """Leave `targets` (module types or name regexes) unquantized."""
        for target in targets:
            self._set_target(target, None)
        return self

    def _set_target(self, target: Any, config: ModuleQuantizerConfig | None) -> None:
        if isinstance(target, type):
            self.set_module_type(target, config)
        else:
            self.set_module_name(target, config)

    # -- text forms ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> QuantizerConfig:
        """Build from a whole document (with `quantization_config`); raises ConfigError."""
        return _forms().from_document(document)

    @classmethod
    def from_yaml(cls, source: Any) -> QuantizerConfig:
        """Load from a path, YAML/JSON text, or a text stream; raises ConfigError."""
        return _forms().load(source)

    def to_dict(self) -> dict[str, Any]:
        """The whole document, as plain Python values (fields at their default are left out)."""
        return _forms().to_document(self)

    def to_yaml(self) -> str:
        """The whole document as YAML text (loads back to an equal config)."""
        return _forms().to_yaml(self.to_dict())
