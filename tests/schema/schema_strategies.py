"""Hypothesis strategies for config documents, valid and invalid (shared by the schema tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Each choice is valid, or invalid at a rate drawn once per document, so that about half of the
# documents are valid. QATSchedule ordering is always valid (`enable_fake_quant >= enable_observer`,
# `disable_observer > enable_observer` and `>= enable_fake_quant`): JSON Schema cannot compare two
# fields. No NaN, and no keys that collide once stringified (`0` and `"0"`).

__all__ = ["document", "one_spec", "schedule_only", "tensor_keys_only"]

_RATE = st.shared(st.sampled_from([0, 2, 10, 40]), key="rate")  # percent of choices that are invalid, per document


def _v(valid: list, invalid: list) -> st.SearchStrategy:
    """A valid choice, or (at the document's rate) an invalid one."""
    return st.tuples(_RATE, st.integers(0, 99)).flatmap(
        lambda t: st.sampled_from(invalid) if t[1] < t[0] else st.sampled_from(valid)
    )


def _either(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(_RATE, st.integers(0, 99)).flatmap(lambda t: invalid if t[1] < t[0] else valid)


def _maybe(d: dict[str, st.SearchStrategy], bad_key: str | None = None) -> st.SearchStrategy[dict]:
    """Some of the keys of `d`; sometimes (at the rate) also an unknown key."""
    base = st.fixed_dictionaries({}, optional=d)
    if bad_key is None:
        return base
    extra = _v([{}], [{bad_key: 1}])
    return st.tuples(base, extra).map(lambda t: {**t[0], **t[1]})


_DTYPES = [
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
]
_BOUND = _v([None, -2.0, -1, 0, 0.0, 0.5, 3, None], ["x", True])

_granularity = st.one_of(
    _maybe({"type": st.just("per_tensor")}, bad_key="axis"),
    _maybe(
        {"type": st.just("per_channel"), "axis": _v([0, 1, -1, None, 1.0], ["x", 1.5, False])}, bad_key="block_size"
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("per_block"),
            "block_size": _either(
                st.one_of(
                    st.sampled_from([32, 2.0, 1]), st.lists(st.sampled_from([-1, 1, 32]), min_size=1, max_size=3)
                ),
                st.one_of(st.sampled_from([0, -1, "8", None]), st.lists(st.sampled_from([0, -2, True, 4]), max_size=3)),
            ),
        },
        optional={"axis": _v([None, 0, 1], ["0"])},
    ),
    _either(st.nothing(), st.fixed_dictionaries({"type": st.sampled_from(["per_chanel", 3])}) | st.just({"axis": 0})),
)

_spec = _maybe(
    {
        "dtype": _v(_DTYPES, ["int3", 8]),
        "qscheme": _v(["symmetric", "symmetric", "asymmetric", "symmetric_with_clipping"], ["symetric", None]),
        "qformulation": _v(["zp", "zp", "minval"], ["max"]),
        "granularity": _granularity,
        "qparam_calculator_cls": _v(["default", "static", "moving_average", "global_minmax", "dynamic"], ["ema"]),
        "range_calculator_cls": _v(["minmax"], ["mse"]),
        "fake_quantize_cls": _v(["default"], [None]),
        "float_range": _either(st.lists(_BOUND, min_size=2, max_size=2), st.lists(_BOUND, max_size=3)),
        "scale_dtype": _v([None, None, "float8_e8m0fnu"], ["e8m0"]),
    },
    bad_key="dtyp",
)


@st.composite
def _schedule(draw: st.DrawFn) -> dict:
    eo = draw(_v([0, 1, 2, 4], [-3, -1]))
    ef = eo + draw(st.integers(0, 3))
    out: dict[str, Any] = {}
    if eo != 0 or draw(st.booleans()):  # an omitted field is its default, 0
        out["enable_observer"] = eo
    if ef != 0 or draw(st.booleans()):
        out["enable_fake_quant"] = ef
    if draw(st.booleans()):
        out["disable_observer"] = None if draw(st.booleans()) else ef + draw(st.integers(1, 3))
    return {**out, **draw(_v([{}], [{"enable_observer": True}, {"disable_observer": "3"}, {"enable_observr": 1}]))}


_tensor_dict = st.dictionaries(
    _v(["*", "weight", "bias", "input", "2", 0, 1], [-1, "in put", ""]), st.one_of(st.none(), _spec), max_size=3
)
_tensor_field = _either(st.one_of(st.none(), _tensor_dict), st.just("x"))
_op_config = _maybe(
    {"op_input_spec": _tensor_field, "op_output_spec": _tensor_field, "op_state_spec": _tensor_field},
    bad_key="op_type_config",
)
_module_config = _maybe(
    {
        "op_input_spec": _tensor_field,
        "op_state_spec": _tensor_field,
        "op_type_config": st.dictionaries(
            _v(["linear", "matmul", 3], [3]), st.one_of(st.none(), _op_config), max_size=2
        ),
        "op_name_config": st.dictionaries(
            _v([r"attn\.matmul_1", "x", 4], ["(", "a["]), st.one_of(st.none(), _op_config), max_size=2
        ),
        "module_input_spec": _either(_tensor_dict, st.none()),
        "module_state_spec": _tensor_dict,
        "qat_schedule": st.one_of(st.none(), _schedule()),
    },
    bad_key="module_type_configs",
)
_quantizer_config = _maybe(
    {
        "global_config": st.one_of(st.none(), _module_config),
        "module_type_configs": st.dictionaries(
            _v(["torch.nn.Linear", "Linear"], ["torch.nn.Linear()", "1abc", 7]),
            st.one_of(st.none(), _module_config),
            max_size=2,
        ),
        "module_name_configs": st.dictionaries(
            _v([r"enc\..*", "blocks.[0-3]", 5], ["("]), st.one_of(st.none(), _module_config), max_size=2
        ),
        "execution_mode": _v(["graph", "eager", "pt2e", "PT2E"], ["graf", 1]),
        "preserved_attributes": _v([None, ["a", "b"]], ["a", [1]]),
    },
    bad_key="extra",
)
document = st.tuples(
    _maybe(
        {
            "quantization_spec": _either(
                st.one_of(st.none(), st.dictionaries(st.sampled_from(["w4", "a8", 0]), _spec, max_size=2)), st.just(3)
            ),
            "$schema": _v(["schema.json"], [3]),
        },
        bad_key="quantisation_config",
    ),
    _either(
        _quantizer_config.map(lambda c: {"quantization_config": c}),
        st.sampled_from([{}, {"quantization_config": None}]),
    ),
).map(lambda t: {**t[0], **t[1]})


# Focused documents, so that each rule is often the only problem in a document.
one_spec = _spec.map(lambda spec: {"quantization_config": {"global_config": {"op_state_spec": {"weight": spec}}}})
tensor_keys_only = st.tuples(
    st.dictionaries(
        st.sampled_from(
            ["*", "weight", "input", "_w2", "2", "07", 0, 1, -1, "in put", "", "w.orig", "w-1", "é", "２", "**"]
        ),
        st.sampled_from([None, {}]),
        max_size=3,
    ),
    st.sampled_from(["op_input_spec", "module_state_spec", "op_state_spec"]),
    st.sampled_from(["global_config", "module"]),
).map(
    lambda t: (
        {"quantization_config": {"module_name_configs": {"m": {t[1]: t[0]}}}}
        if t[2] == "module"
        else {"quantization_config": {"global_config": {t[1]: t[0]}}}
    )
)
schedule_only = _schedule().map(
    lambda sched: {"quantization_config": {"module_type_configs": {"Linear": {"qat_schedule": sched}}}}
)
