"""Config types of the qplan config language (SPEC §1), as msgspec Structs.

The types are the schema: field docstrings and ``Meta`` become JSON Schema descriptions,
``forbid_unknown_fields`` becomes ``additionalProperties: false``. Cross-field rules live in
``check_*`` generators that yield ``(field, message)`` pairs; ``__post_init__`` raises the first
one, and the loader reports all of them with file positions.
"""

from __future__ import annotations

import enum
import math
import re
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, field
from msgspec.structs import force_setattr

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

INT_DTYPES = ("int8", "int4", "int2", "uint8", "uint4", "uint2")
FLOAT_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn_x2")
DTYPES = INT_DTYPES + FLOAT_DTYPES
DTYPE_ALIASES = {"float8_e4m3": "float8_e4m3fn", "float4_e2m1fn": "float4_e2m1fn_x2"}

DType = Annotated[
    Literal[
        "int8",
        "int4",
        "int2",
        "uint8",
        "uint4",
        "uint2",
        "float8_e4m3fn",
        "float8_e5m2",
        "float4_e2m1fn_x2",
        "float8_e4m3",
        "float4_e2m1fn",
    ],
    Meta(description="Storage dtype of the quantized tensor (`float8_e4m3` and `float4_e2m1fn` are aliases)."),
]


def normalize_dtype(value: Any) -> str:
    """Return the canonical dtype name for a string alias or a ``torch.dtype``."""
    if not isinstance(value, str):
        value = str(value).removeprefix("torch.")
    return DTYPE_ALIASES.get(value, value)


class QuantizationScheme(str, enum.Enum):
    """How the integer grid sits around zero."""

    symmetric = "symmetric"
    asymmetric = "asymmetric"
    symmetric_with_clipping = "symmetric_with_clipping"

    def __str__(self) -> str:
        return self.value


class ExecutionMode(str, enum.Enum):
    """How the model is captured: `graph` (torch.export) or `eager` (recorded forward)."""

    graph = "graph"
    eager = "eager"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: Any) -> ExecutionMode:
        """Accept the enum, its value, or the deprecated alias `pt2e` (any case)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.lower() == "pt2e":
            warnings.warn("execution_mode `pt2e` is deprecated; use `graph`", DeprecationWarning, stacklevel=3)
            return cls.graph
        return cls(value)


_STRUCT = dict(forbid_unknown_fields=True, kw_only=True)


class PerTensorGranularity(msgspec.Struct, frozen=True, tag_field="type", tag="per_tensor", **_STRUCT):
    """One scale (and zero point) for the whole tensor."""

    def __repr__(self) -> str:
        return "PerTensorGranularity()"


class PerChannelGranularity(msgspec.Struct, frozen=True, tag_field="type", tag="per_channel", **_STRUCT):
    """One scale per slice along `axis`."""

    axis: Annotated[int | None, Meta(description="Channel axis; omitted: chosen per op for weights (SPEC §2.5).")] = (
        None
    )


class PerBlockGranularity(msgspec.Struct, frozen=True, tag_field="type", tag="per_block", **_STRUCT):
    """One scale per block of `block_size` elements along `axis` (or per block shape)."""

    block_size: Annotated[
        int | tuple[int, ...],
        Meta(description="Block length along `axis`, or one entry per dim (-1 = whole dim)."),
    ]
    axis: Annotated[int | None, Meta(description="Blocked axis; omitted: chosen per op for weights.")] = None

    def __post_init__(self) -> None:
        if isinstance(self.block_size, list):
            force_setattr(self, "block_size", tuple(self.block_size))
        _raise_first(_check_block(self))


Granularity = PerTensorGranularity | PerChannelGranularity | PerBlockGranularity


def _check_block(g: PerBlockGranularity) -> Iterator[tuple[str, str]]:
    if isinstance(g.block_size, tuple):
        if g.axis is not None:
            yield "axis", "a list `block_size` (one entry per dim) excludes `axis`"
        if not g.block_size:
            yield "block_size", "a list `block_size` must not be empty"
        for b in g.block_size:
            if b != -1 and b < 1:
                yield "block_size", f"block size entries must be positive or -1, got `{b}`"
    elif g.block_size < 1:
        yield "block_size", f"`block_size` must be positive, got `{g.block_size}`"


QParamCalculator = Annotated[
    Literal["default", "static", "moving_average", "global_minmax", "dynamic"],
    Meta(
        description=(
            "How qparams are computed: `default` (weights static, activations moving_average), "
            "`static`, `moving_average` (EMA 0.01), `global_minmax`, `dynamic` (activations, per forward)."
        )
    ),
]
RangeBound = float | None


class QuantizationSpec(msgspec.Struct, frozen=True, omit_defaults=True, **_STRUCT):
    """How one tensor is quantized (immutable, hashable)."""

    dtype: DType = "int8"
    qscheme: Annotated[QuantizationScheme, Meta(description="Integer grid placement.")] = QuantizationScheme.symmetric
    qformulation: Annotated[
        Literal["zp", "minval"], Meta(description="`zp`: scale + zero point; `minval`: scale + min value.")
    ] = "zp"
    granularity: Annotated[Granularity, Meta(description="Per tensor, per channel or per block.")] = field(
        default_factory=PerTensorGranularity
    )
    qparam_calculator_cls: QParamCalculator = "default"
    range_calculator_cls: Annotated[Literal["minmax"], Meta(description="Range estimator.")] = "minmax"
    fake_quantize_cls: Annotated[Literal["default"], Meta(description="Fake-quantize implementation.")] = "default"
    float_range: Annotated[
        tuple[RangeBound, RangeBound],
        Meta(description="Fixed `[min, max]` of the float range; null bounds are learned."),
    ] = (None, None)
    scale_dtype: Annotated[
        Literal["float8_e8m0fnu"] | None,
        Meta(description="Scale dtype: null, or `float8_e8m0fnu` (power-of-two scales, float dtypes only)."),
    ] = None

    def __post_init__(self) -> None:
        force_setattr(self, "dtype", normalize_dtype(self.dtype))
        if not isinstance(self.qscheme, QuantizationScheme):
            force_setattr(self, "qscheme", QuantizationScheme(self.qscheme))
        if isinstance(self.float_range, list):
            force_setattr(self, "float_range", tuple(self.float_range))
        _raise_first(check_spec(self))

    @property
    def is_float(self) -> bool:
        """Whether `dtype` is a float format (fp8/fp4) rather than an integer one."""
        return self.dtype in FLOAT_DTYPES


def check_spec(s: QuantizationSpec) -> Iterator[tuple[str, str]]:
    """Cross-field rules of SPEC §1.2, as ``(field, message)`` pairs."""
    dtype = normalize_dtype(s.dtype)
    if dtype not in DTYPES:
        yield "dtype", f"unknown dtype `{s.dtype}`; expected one of {', '.join(DTYPES)}"
        return
    qscheme = str(s.qscheme)
    is_float = dtype in FLOAT_DTYPES
    if is_float and qscheme != "symmetric":
        yield "qscheme", f"float dtype `{dtype}` needs qscheme `symmetric`, got `{qscheme}`"
    if is_float and s.qformulation != "zp":
        yield "qformulation", f"float dtype `{dtype}` needs qformulation `zp`, got `{s.qformulation}`"
    if s.scale_dtype is not None and not is_float:
        yield "scale_dtype", f"scale_dtype `{s.scale_dtype}` is only for float dtypes, not `{dtype}`"
    if s.qparam_calculator_cls == "dynamic":
        if qscheme == "symmetric_with_clipping":
            yield "qscheme", "qscheme `symmetric_with_clipping` is not allowed with qparam_calculator_cls `dynamic`"
        if tuple(s.float_range) != (None, None):
            yield "float_range", "qparam_calculator_cls `dynamic` needs float_range `[null, null]`"
    if len(s.float_range) != 2:
        yield "float_range", f"float_range needs exactly 2 entries, got {len(s.float_range)}"
        return
    lo, hi = s.float_range
    for name, bound in (("min", lo), ("max", hi)):
        if isinstance(bound, float) and not math.isfinite(bound):
            # JSON (and so the plan) has no inf or nan: it would be written as null, "learned"
            yield "float_range", f"float_range {name} ({bound}) must be finite; use null for a learned bound"
    if lo is not None and lo > 0:
        yield "float_range", f"float_range min ({lo}) must be <= 0"
    if hi is not None and hi < 0:
        yield "float_range", f"float_range max ({hi}) must be >= 0"
    if lo is not None and hi is not None and not lo < hi:
        yield "float_range", f"float_range min ({lo}) must be < max ({hi})"


def _raise_first(problems: Iterator[tuple[str, str]]) -> None:
    for _field, message in problems:
        raise ValueError(message)


def default_activation_spec() -> QuantizationSpec:
    """int8 symmetric per tensor, moving-average qparams."""
    return QuantizationSpec(qparam_calculator_cls="moving_average")


def default_weight_spec() -> QuantizationSpec:
    """int8 symmetric per channel, axis chosen per op (SPEC §2.5)."""
    return QuantizationSpec(granularity=PerChannelGranularity())


class QATSchedule(msgspec.Struct, frozen=True, omit_defaults=True, **_STRUCT):
    """When observers and fake-quant switch on and off during QAT, in `step()` counts."""

    enable_observer: Annotated[int, Meta(ge=0, description="Step at which observers switch on.")] = 0
    enable_fake_quant: Annotated[int, Meta(ge=0, description="Step at which fake-quant switches on.")] = 0
    disable_observer: Annotated[int | None, Meta(description="Step at which observers freeze (> 0); null = never.")] = (
        None
    )

    def __post_init__(self) -> None:
        _raise_first(check_schedule(self))

    def observer_on(self, step: int) -> bool:
        """Whether observers run at `step`: ``enable_observer <= step < disable_observer``."""
        return self.enable_observer <= step and (self.disable_observer is None or step < self.disable_observer)

    def fake_quant_on(self, step: int) -> bool:
        """Whether fake-quantization is applied at `step`: ``step >= enable_fake_quant``."""
        return step >= self.enable_fake_quant


def check_schedule(s: QATSchedule) -> Iterator[tuple[str, str]]:
    """Cross-field rules of SPEC §1.5, worded as the SPEC says."""
    if s.enable_observer < 0:
        yield "enable_observer", f"enable_observer ({s.enable_observer}) must be >= 0"
    if s.enable_fake_quant < 0:
        yield "enable_fake_quant", f"enable_fake_quant ({s.enable_fake_quant}) must be >= 0"
    if s.enable_fake_quant < s.enable_observer:
        yield (
            "enable_fake_quant",
            (f"enable_fake_quant ({s.enable_fake_quant}) must be >= enable_observer ({s.enable_observer})"),
        )
    if s.disable_observer is not None:
        if s.disable_observer <= 0:
            yield "disable_observer", f"disable_observer ({s.disable_observer}) must be > 0"
        if s.disable_observer <= s.enable_observer:
            yield (
                "disable_observer",
                (f"disable_observer ({s.disable_observer}) must be > enable_observer ({s.enable_observer})"),
            )
        if s.disable_observer < s.enable_fake_quant:
            yield (
                "disable_observer",
                (f"disable_observer ({s.disable_observer}) must be >= enable_fake_quant ({s.enable_fake_quant})"),
            )


SpecOrDecline = QuantizationSpec | None
TensorSpecs = dict[str, SpecOrDecline]
_TENSOR_KEYS_DOC = 'Tensor key (`"*"`, an index, or a name) -> spec, or null to decline that tensor.'


def check_tensor_keys(specs: dict[Any, Any]) -> Iterator[tuple[str, str]]:
    """A tensor dict must not mix index keys and name keys (`"*"` mixes with both)."""
    kinds = {"index" if _is_index(k) else "name" for k in specs if k != "*"}
    if len(kinds) > 1:
        keys = ", ".join(f"`{k}`" for k in specs)
        yield "", f"tensor keys mix indices and names ({keys}); use one kind per dict"


def _is_index(key: Any) -> bool:
    return isinstance(key, int) or (isinstance(key, str) and key.isdigit())


def _normalize_tensor_specs(value: Any) -> dict[str, SpecOrDecline]:
    """null -> {"*": null}; int keys -> digit strings; validates key mixing."""
    if value is None:
        return {"*": None}
    out = {str(k) if isinstance(k, int) else k: v for k, v in value.items()}
    _raise_first(check_tensor_keys(out))
    return out


def _default_inputs() -> dict[str, SpecOrDecline]:
    return {"*": default_activation_spec()}


def _default_outputs() -> dict[str, SpecOrDecline]:
    return {"*": default_activation_spec()}


def _default_states() -> dict[str, SpecOrDecline]:
    return {"weight": default_weight_spec()}


_TENSOR_FIELDS = ("op_input_spec", "op_output_spec", "op_state_spec")


class OpQuantizerConfig(msgspec.Struct, omit_defaults=True, **_STRUCT):
    """How the tensors of one op are quantized: inputs, outputs and states (SPEC §1.3)."""

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


def _check_regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid {what} regex `{pattern}`: {e}") from None
    except (OverflowError, RecursionError) as e:  # `a{99999999999}`, thousands of nested groups
        raise ValueError(f"invalid {what} regex `{_clip(pattern)}`: {e}") from None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModuleQuantizerConfig(OpQuantizerConfig, omit_defaults=True, **_STRUCT):
    """How one module subtree is quantized (SPEC §1.4)."""

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
            _check_regex(pattern, "op_name_config")

    @property
    def has_module_specs(self) -> bool:
        """Whether any module_input_spec / module_output_spec / module_state_spec is set."""
        return bool(self.module_input_spec or self.module_output_spec or self.module_state_spec)


ModuleConfigOrDecline = ModuleQuantizerConfig | None


class QuantizerConfig(msgspec.Struct, omit_defaults=True, **_STRUCT):
    """The whole quantization config: a global default plus overrides (SPEC §1.4)."""

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
        self.module_type_configs = {_type_key(k): v for k, v in self.module_type_configs.items()}
        _check_global(self.global_config)
        for pattern in self.module_name_configs:
            _check_regex(pattern, "module_name_configs")

    # -- chainable setters -------------------------------------------------------------
    def set_execution_mode(self, mode: ExecutionMode | str) -> QuantizerConfig:
        """Set `execution_mode` (`graph`, `eager`, or the `pt2e` alias); returns self."""
        self.execution_mode = ExecutionMode.parse(mode)
        return self

    def set_global(self, config: ModuleQuantizerConfig | None) -> QuantizerConfig:
        """Set `global_config` (None: quantize nothing by default); returns self."""
        _check_global(config)
        self.global_config = config
        return self

    def set_module_type(self, module_type: Any, config: ModuleQuantizerConfig | None) -> QuantizerConfig:
        """Set the config of a module class (a class, its import path or class name); returns self."""
        self.module_type_configs[_type_key(module_type)] = config
        return self

    def set_module_name(self, pattern: str, config: ModuleQuantizerConfig | None) -> QuantizerConfig:
        """Set the config of the modules whose path fullmatches the regex `pattern`; returns self."""
        _check_regex(pattern, "module_name_configs")
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
        from qplan.schema.loader import config_from_document

        return config_from_document(document)

    @classmethod
    def from_yaml(cls, source: Any) -> QuantizerConfig:
        """Load from a path, YAML/JSON text, or a text stream; raises ConfigError."""
        from qplan.schema.loader import load_config

        return load_config(source).config

    def to_dict(self) -> dict[str, Any]:
        """The whole document, as plain Python values (fields at their default are left out)."""
        from qplan.schema.dump import config_document

        return config_document(self)

    def to_yaml(self) -> str:
        """The whole document as YAML text (loads back to an equal config)."""
        from qplan.schema.loader import dump_yaml

        return dump_yaml(self.to_dict())


def _check_global(config: ModuleQuantizerConfig | None) -> None:
    if config is not None and config.has_module_specs:
        raise ValueError("global_config must not set module_input_spec, module_output_spec or module_state_spec")


def _type_key(module_type: Any) -> str:
    """A module type key: classes become their fully-qualified name; strings stay as written."""
    if isinstance(module_type, type):
        return f"{module_type.__module__}.{module_type.__qualname__}"
    if not isinstance(module_type, str) or not module_type:
        raise ValueError(f"module type key must be a class or a non-empty string, got `{module_type!r}`")
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module_type):
        raise ValueError(f"module type key `{module_type}` is not a class name or import path")
    return module_type
