"""The spec types of the config language (see docs/config-language.md#quantizationspec-how-one-tensor-is-quantized, docs/config-language.md#qat-schedules): how one tensor is quantized
(:class:`QuantizationSpec` and its granularities, dtypes and schemes) and when QAT switches on
(:class:`QATSchedule`), as frozen msgspec Structs.

The types are the schema: field docstrings and ``Meta`` become JSON Schema descriptions,
``forbid_unknown_fields`` becomes ``additionalProperties: false``. Constructors raise the first
cross-field problem of :mod:`qplan.schema.rules`.
"""

from __future__ import annotations

import enum
import warnings
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field
from msgspec.structs import force_setattr

from qplan.schema.rules import FLOAT_DTYPES, check_block, check_schedule, check_spec, normalize_dtype, raise_first

__all__ = [
    "DType",
    "ExecutionMode",
    "Granularity",
    "PerBlockGranularity",
    "PerChannelGranularity",
    "PerTensorGranularity",
    "QATSchedule",
    "QuantizationScheme",
    "QuantizationSpec",
    "default_activation_spec",
    "default_weight_spec",
]

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


STRUCT_OPTIONS: dict[str, Any] = dict(forbid_unknown_fields=True, kw_only=True)


class PerTensorGranularity(msgspec.Struct, frozen=True, tag_field="type", tag="per_tensor", **STRUCT_OPTIONS):
    """One scale (and zero point) for the whole tensor."""

    def __repr__(self) -> str:
        return "PerTensorGranularity()"


class PerChannelGranularity(msgspec.Struct, frozen=True, tag_field="type", tag="per_channel", **STRUCT_OPTIONS):
    """One scale per slice along `axis`."""

    axis: Annotated[
        int | None,
        Meta(
            description="Channel axis; omitted: chosen per op for weights (see docs/config-language.md#placement-rules)."
        ),
    ] = None


class PerBlockGranularity(msgspec.Struct, frozen=True, tag_field="type", tag="per_block", **STRUCT_OPTIONS):
    """One scale per block of `block_size` elements along `axis` (or per block shape)."""

    block_size: Annotated[
        int | tuple[int, ...],
        Meta(description="Block length along `axis`, or one entry per dim (-1 = whole dim)."),
    ]
    axis: Annotated[int | None, Meta(description="Blocked axis; omitted: chosen per op for weights.")] = None

    def __post_init__(self) -> None:
        if isinstance(self.block_size, list):
            force_setattr(self, "block_size", tuple(self.block_size))
        raise_first(check_block(self))


Granularity = PerTensorGranularity | PerChannelGranularity | PerBlockGranularity


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


class QuantizationSpec(msgspec.Struct, frozen=True, omit_defaults=True, **STRUCT_OPTIONS):
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
        raise_first(check_spec(self))

    @property
    def is_float(self) -> bool:
        """Whether `dtype` is a float format (fp8/fp4) rather than an integer one."""
        return self.dtype in FLOAT_DTYPES


def default_activation_spec() -> QuantizationSpec:
    """int8 symmetric per tensor, moving-average qparams."""
    return QuantizationSpec(qparam_calculator_cls="moving_average")


def default_weight_spec() -> QuantizationSpec:
    """int8 symmetric per channel, axis chosen per op (see docs/config-language.md#placement-rules)."""
    return QuantizationSpec(granularity=PerChannelGranularity())


class QATSchedule(msgspec.Struct, frozen=True, omit_defaults=True, **STRUCT_OPTIONS):
    """When observers and fake-quant switch on and off during QAT, in `step()` counts."""

    enable_observer: Annotated[int, Meta(ge=0, description="Step at which observers switch on.")] = 0
    enable_fake_quant: Annotated[int, Meta(ge=0, description="Step at which fake-quant switches on.")] = 0
    disable_observer: Annotated[int | None, Meta(description="Step at which observers freeze (> 0); null = never.")] = (
        None
    )

    def __post_init__(self) -> None:
        raise_first(check_schedule(self))

    def observer_on(self, step: int) -> bool:
        """Whether observers run at `step`: ``enable_observer <= step < disable_observer``."""
        return self.enable_observer <= step and (self.disable_observer is None or step < self.disable_observer)

    def fake_quant_on(self, step: int) -> bool:
        """Whether fake-quantization is applied at `step`: ``step >= enable_fake_quant``."""
        return step >= self.enable_fake_quant
