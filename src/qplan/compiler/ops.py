"""The op table (see docs/config-language.md#op-types): every op type qplan knows, as data. No other module spells op names.

Each entry says, for one op type:

* its **class**: ``compute`` (quantized by a module's ``op_*_spec``), ``value_preserving``
  (likewise, and its quantized inputs and output share qparams), ``pass_through`` (never
  quantized, transparent to the edge rule), ``known`` (quantized only when a config names it),
  or ``ignore`` (creation and bookkeeping ops such as ``arange``/``zeros``: their output is not
  tracked at all);
* its **tensor inputs** by index and name (``linear``: 0=``input``; ``matmul``: 0=``input``,
  1=``other``; ``cat``: the list elements, index i = i-th tensor of the list), and which inputs
  carry integers (``embedding`` input 0 holds indices: never quantized as an activation);
* its **states** (``weight``, ``bias``, ...): argument slots that normally hold parameters;
* its **outputs** by name;
* the weight-axis defaults of docs/config-language.md#placement-rules for per-channel and per-block weight specs.

Names seen at capture (torch function names, Tensor methods, dunder methods, aten overloads)
normalise through :func:`normalize_op_type`: ``concat``→``cat``, ``__iadd__``→``add``,
``aten.linear.default``→``linear``, ``torch.nn.functional.linear``→``linear``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Literal

import msgspec

__all__ = [
    "OpClass",
    "OP_CLASSES",
    "OpInfo",
    "OP_TABLE",
    "FUSABLE_ACTIVATIONS",
    "BATCH_NORMS",
    "ARG_ALIASES",
    "normalize_op_type",
    "op_info",
    "is_known",
    "op_class",
    "suggest",
    "table_op_type",
    "input_name",
    "is_int_input",
    "state_slots",
    "weight_axis",
    "is_batch_norm",
    "is_fusable_activation",
]

OpClass = Literal["compute", "value_preserving", "pass_through", "known", "ignore"]
OP_CLASSES: tuple[str, ...] = ("compute", "value_preserving", "pass_through", "known", "ignore")


class OpInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the op table."""

    op_type: str
    cls: OpClass
    inputs: tuple[str, ...] = ("input",)  # tensor inputs, by index; "tensors" = a list (cat/stack)
    states: tuple[str, ...] = ()  # argument slots holding parameters ("weight", "bias", ...)
    outputs: tuple[str, ...] = ("output",)
    int_inputs: frozenset[str] = frozenset()  # inputs holding integer tensors (never quantized)
    per_channel_axis: int | None = None  # default weight axis for per_channel specs
    per_block_axis: int | None = None  # default weight axis for per_block specs
    list_input: bool = False  # input 0 is a list of tensors, each one input (cat, stack)
    arg_names: tuple[tuple[str, str], ...] = ()  # signature name -> slot name, for this op only
    param_state: str | None = None  # the state a parameter in the list input becomes (einsum)
    trim_outputs: bool = False  # aten returns more tensors than the torch function (embedding_bag)

    def slot_of(self, arg: str) -> str | None:
        """The input or state slot of a signature argument named `arg` (``addmm``'s ``mat2`` →
        ``weight``), before the table-wide :data:`ARG_ALIASES`; None when this op renames nothing."""
        for name, slot in self.arg_names:
            if name == arg:
                return slot
        return None

    def input_index(self, key: str | int) -> int | None:
        """The index of an input named `key` (or given as an index), None when absent."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            return int(key)
        return self.inputs.index(key) if key in self.inputs else None


def _row(op_type: str, cls: OpClass, **kw: object) -> OpInfo:
    return OpInfo(op_type=op_type, cls=cls, **kw)  # type: ignore[arg-type]


def _names(text: str) -> tuple[str, ...]:
    """Op types written as one space-separated string (keeps the long lists of the table short)."""
    return tuple(text.split())


_W = ("weight", "bias")
_LINEAR_AXES = {"per_channel_axis": 0, "per_block_axis": 1}
_TRANSPOSED_AXES = {"per_channel_axis": 1, "per_block_axis": 0}
# Linear maps in other clothes. addmm(bias, x, W) computes x @ W + bias with W stored [in, out]
# (transformers' Conv1D): its output channels are W's axis 1. baddbmm(bias, x, W): W is
# [batch, in, out], output channels on axis 2. Their first argument is the bias.
_ADDMM_ARGS = (("self", "bias"), ("input", "bias"), ("mat1", "input"), ("mat2", "weight"))
_BADDBMM_ARGS = (("self", "bias"), ("input", "bias"), ("batch1", "input"), ("batch2", "weight"))
# embedding_bag(input, weight, offsets, ..., per_sample_weights): rows of the weight are the
# embeddings, as for embedding. aten spells the indices `indices` (an ARG_ALIAS of `input`).
_EMBEDDING_BAG = {
    "inputs": ("input", "offsets", "per_sample_weights"),
    "states": ("weight",),
    "int_inputs": frozenset({"input", "offsets"}),
    "trim_outputs": True,
}
# einsum(equation, *operands): a float parameter among the operands is its `weight`; which axis
# holds the output channels depends on the equation, so there is no default axis (a per_channel
# or per_block weight spec without an axis is a `missing-axis` error naming the weight).
_EINSUM = {
    "inputs": ("operands",),
    "list_input": True,
    "states": ("weight",),
    "param_state": "weight",
    "arg_names": (("args", "operands"), ("tensors", "operands")),
}
_BINARY = ("input", "other")


def _quantized_rows() -> list[OpInfo]:
    """Compute and value-preserving ops (quantized by module configs)."""
    return [
        # compute ops
        _row("linear", "compute", states=_W, **_LINEAR_AXES),
        *(_row(f"conv{d}d", "compute", states=_W, **_LINEAR_AXES) for d in (1, 2, 3)),
        *(_row(f"conv_transpose{d}d", "compute", states=_W, **_TRANSPOSED_AXES) for d in (1, 2, 3)),
        _row("embedding", "compute", states=("weight",), int_inputs=frozenset({"input"}), **_LINEAR_AXES),
        _row("embedding_bag", "compute", **_EMBEDDING_BAG, **_LINEAR_AXES),
        _row("addmm", "compute", states=_W, arg_names=_ADDMM_ARGS, **_TRANSPOSED_AXES),
        _row("baddbmm", "compute", states=_W, arg_names=_BADDBMM_ARGS, per_channel_axis=2, per_block_axis=1),
        _row("einsum", "compute", **_EINSUM),
        _row("matmul", "compute", inputs=_BINARY),
        _row("bmm", "compute", inputs=("input", "mat2")),
        _row("add", "compute", inputs=_BINARY),
        _row("sub", "compute", inputs=_BINARY),
        _row("mul", "compute", inputs=_BINARY),
        # value-preserving ops
        _row("cat", "value_preserving", inputs=("tensors",), list_input=True),
        *(_row(f"{p}_pool{d}d", "value_preserving") for p in ("max", "avg") for d in (1, 2, 3)),
        *(_row(f"adaptive_{p}_pool{d}d", "value_preserving") for p in ("max", "avg") for d in (1, 2, 3)),
        _row("flatten", "value_preserving"),
        _row("mean", "value_preserving"),
    ]


def _known_rows() -> list[OpInfo]:
    """Known ops: quantized only when an op name/type config names them."""
    return [
        # known ops: activations
        *(
            _row(a, "known")
            for a in _names(
                "relu relu6 leaky_relu gelu silu sigmoid tanh hardswish hardsigmoid hardtanh elu selu celu mish "
                "softplus glu logsigmoid"
            )
        ),
        _row("prelu", "known", states=("weight",)),
        # known ops: normalisation and attention
        _row("softmax", "known"),
        _row("log_softmax", "known"),
        _row("layer_norm", "known", states=_W),
        _row("group_norm", "known", states=_W),
        _row("rms_norm", "known", states=("weight",)),
        _row("instance_norm", "known", states=("weight", "bias", "running_mean", "running_var")),
        _row("batch_norm", "known", states=("weight", "bias", "running_mean", "running_var")),
        _row(
            "scaled_dot_product_attention",
            "known",
            inputs=("query", "key", "value", "attn_mask"),
        ),
        # known ops: arithmetic and reductions
        _row("div", "known", inputs=_BINARY),
        _row("pow", "known", inputs=("input", "exponent")),
        *(
            _row(u, "known")
            for u in _names(
                "rsqrt sqrt neg exp log abs sin cos erf reciprocal square clamp sum amax amin var std cumsum tril triu"
            )
        ),
        _row("where", "known", inputs=("condition", "input", "other"), int_inputs=frozenset({"condition"})),
        _row("masked_fill", "known", inputs=("input", "mask"), int_inputs=frozenset({"mask"})),
        _row("stack", "known", inputs=("tensors",), list_input=True),
    ]


def _unquantized_rows() -> list[OpInfo]:
    """Pass-through ops (transparent to the edge rule) and ignored ops (not tracked)."""
    return [
        # pass-through ops
        *(
            _row(p, "pass_through")
            for p in _names(
                "reshape view view_as reshape_as permute transpose t contiguous clone detach alias dropout slice "
                "select unsqueeze squeeze expand expand_as getitem chunk split split_with_sizes unbind unflatten "
                "narrow movedim flip roll repeat repeat_interleave index_select gather to type type_as float half "
                "bfloat16 double identity unfold tile broadcast_to numpy_T mT mH index feature_dropout "
                "alpha_dropout requires_grad_ data getattr long int bool short byte char cpu cuda"
            )
        ),
        # ignored: creation, bookkeeping, in-place writes into views
        *(
            _row(i, "ignore", inputs=())
            for i in _names(
                "arange zeros ones full empty zeros_like ones_like full_like empty_like rand randn rand_like "
                "randn_like tensor as_tensor new_zeros new_ones new_full new_empty new_tensor lift_fresh_copy "
                "lift_fresh scalar_tensor setitem copy_ _assert_tensor_metadata sym_size sym_numel sym_stride "
                "_assert_scalar linspace eye"
            )
        ),
    ]


def _build() -> dict[str, OpInfo]:
    return {r.op_type: r for r in (*_quantized_rows(), *_known_rows(), *_unquantized_rows())}


OP_TABLE: Mapping[str, OpInfo] = _build()

FUSABLE_ACTIVATIONS: tuple[str, ...] = (
    "relu", "relu6", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
    "hardtanh", "elu",
)  # fmt: skip
BATCH_NORMS: tuple[str, ...] = ("batch_norm",)

# Argument names seen in torch/aten signatures -> the table's input/state names.
ARG_ALIASES: Mapping[str, str] = {"self": "input", "indices": "input"}

_ALIASES: dict[str, str] = {
    **dict.fromkeys(("concat", "concatenate"), "cat"),
    **dict.fromkeys(("@", "__matmul__", "__rmatmul__", "mm"), "matmul"),
    "multiply": "mul",
    **dict.fromkeys(("subtract", "rsub"), "sub"),
    **dict.fromkeys(
        ("divide", "true_divide", "__truediv__", "__rtruediv__", "__itruediv__", "__rdiv__", "__div__", "__idiv__"),
        "div",
    ),
    **dict.fromkeys(("__pow__", "__rpow__", "__ipow__", "float_power"), "pow"),
    **dict.fromkeys(("__neg__", "negative"), "neg"),
    "__getitem__": "getitem",
    "__setitem__": "setitem",
    **dict.fromkeys(("__abs__", "absolute"), "abs"),
    **dict.fromkeys(("clip", "clamp_min", "clamp_max"), "clamp"),
    "hardtanh_": "hardtanh",
    **dict.fromkeys(("silu_", "swish"), "silu"),
    "relu_": "relu",
    **dict.fromkeys(("T", "H"), "numpy_T"),
    "_unsafe_view": "view",
    "unsafe_split": "split",
    "unsafe_chunk": "chunk",
    **dict.fromkeys(("dropout1d", "dropout2d", "dropout3d", "native_dropout"), "dropout"),
    "native_layer_norm": "layer_norm",
    **dict.fromkeys(
        ("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"), "batch_norm"
    ),
    "native_group_norm": "group_norm",
    **dict.fromkeys(("_softmax", "special_softmax"), "softmax"),
    "_log_softmax": "log_softmax",
    "max_pool2d_with_indices": "max_pool2d",
    "max_pool1d_with_indices": "max_pool1d",
    "max_pool3d_with_indices": "max_pool3d",
    "_adaptive_avg_pool2d": "adaptive_avg_pool2d",
    "_adaptive_avg_pool3d": "adaptive_avg_pool3d",
    **dict.fromkeys(("_to_copy", "to_copy"), "to"),
    **dict.fromkeys(("_embedding_bag", "_embedding_bag_forward_only"), "embedding_bag"),
    "expit": "sigmoid",  # torch.special.expit
}
# in-place and dunder spellings of the binary ops: add_, __add__, __iadd__, iadd, __radd__ -> add
for _op in ("add", "sub", "mul", "div"):
    for _form in (f"{_op}_", f"__{_op}__", f"__i{_op}__", f"i{_op}", f"__r{_op}__"):
        _ALIASES.setdefault(_form, _op)
_ALIASES["__rsub__"] = "sub"
_ALIASES["__isub__"] = "sub"

_PREFIXES = (
    "torch.nn.functional.",
    "torch.functional.",
    "torch.Tensor.",
    "torch._C._TensorBase.",
    "torch._C.TensorBase.",
    "torch._C._nn.",
    "torch._C._VariableFunctions.",
    "torch.special.",
    "torch.linalg.",
    "torch.ops.aten.",
    "aten.",
    "torch.",
    "F.",
    "Tensor.",
)


def normalize_op_type(name: str | None) -> str | None:
    """The short op type for any spelling capture or a config may use, or None for ``None``/``""``.

    Unknown names come back in their short form (``torch.cumprod`` → ``cumprod``), so
    ``is_known(normalize_op_type(x))`` tells whether the table has them.

    >>> normalize_op_type("aten.linear.default"), normalize_op_type("__iadd__"), normalize_op_type("concat")
    ('linear', 'add', 'cat')
    """
    if not name:
        return None
    n = name.strip()
    if n in OP_TABLE:
        return n
    if n in _ALIASES:
        return _ALIASES[n]
    for prefix in _PREFIXES:
        if n.startswith(prefix):
            n = n[len(prefix) :]
            break
    if n.startswith(("aten.", "ops.aten.")):
        n = n.split("aten.", 1)[1]
    # torch.special.erf is `erf` in eager mode and `special_erf` under export: one op type
    if n.startswith("special_") and len(n) > 8:
        n = n[8:]
    # property getters (`x.T`, `x.data`) seen as "T.__get__" or a bare "__get__"
    if n == "__get__" or n.endswith(".__get__"):
        return "getattr"
    # aten overload ("linear.default", "softmax.int"): the first part names the op; a dotted
    # torch name ("functional.einsum", "method_descriptor.add"): the last part does
    if "." in n:
        first, last = n.split(".", 1)[0], n.rsplit(".", 1)[-1]
        n = first if first in OP_TABLE or first in _ALIASES else last
    if n in OP_TABLE:
        return n
    if n in _ALIASES:
        return _ALIASES[n]
    # in-place variants not listed explicitly: "gelu_" -> "gelu"
    if n.endswith("_") and not n.startswith("_") and n[:-1] in OP_TABLE:
        return n[:-1]
    return n


def op_info(op_type: str) -> OpInfo:
    """The table row of `op_type` (any spelling); ``KeyError`` with a did-you-mean when unknown."""
    key = normalize_op_type(op_type)
    if key is None or key not in OP_TABLE:
        hint = suggest(op_type)
        raise KeyError(f"unknown op type `{op_type}`" + (f"; {hint}" if hint else ""))
    return OP_TABLE[key]


def is_known(op_type: str | None) -> bool:
    """True when `op_type` (any spelling) is in the op table."""
    key = normalize_op_type(op_type)
    return key is not None and key in OP_TABLE


def op_class(op_type: str | None) -> OpClass | None:
    """The class of `op_type` (any spelling), or None when it is not in the table.

    Ops outside the table and ``ignore`` ops are never quantized at op level.
    """
    info = _lookup(op_type)
    return info.cls if info is not None else None


def suggest(name: str, choices: Iterable[str] | None = None) -> str | None:
    """``"did you mean `softmax`?"`` for a misspelled op type, or None when nothing is close."""
    pool = list(choices) if choices is not None else [k for k, v in OP_TABLE.items() if v.cls != "ignore"]
    lowered = {c.lower(): c for c in pool}
    word = str(name).lower()
    if word in lowered and lowered[word] != name:
        return f"did you mean `{lowered[word]}`?"
    match = difflib.get_close_matches(word, list(lowered), n=1, cutoff=0.6)
    if not match or lowered[match[0]] == name:
        return None
    return f"did you mean `{lowered[match[0]]}`?"


# -- the questions the passes ask (memoised: each op type comes up for many ops) ----------------


@cache
def _lookup(op_type: str | None) -> OpInfo | None:
    return OP_TABLE.get(normalize_op_type(op_type) or "")


@cache
def table_op_type(key: str) -> str | None:
    """The op type a config key names (any spelling), or None when the key is not in the table."""
    name = normalize_op_type(key)
    return name if name is not None and name in OP_TABLE else None


@cache
def input_name(op_type: str, i: int) -> str | None:
    """The table's name for input `i` of `op_type` (list inputs: the list's name), or None."""
    info = _lookup(op_type)
    if info is None or not info.inputs:
        return None
    if info.list_input:
        return info.inputs[0]
    return info.inputs[i] if i < len(info.inputs) else None


def is_int_input(op_type: str, i: int) -> bool:
    """True for inputs that hold integers by definition (embedding indices, masks)."""
    info = _lookup(op_type)
    name = input_name(op_type, i)
    return info is not None and name is not None and name in info.int_inputs


@cache
def state_slots(op_type: str) -> tuple[str, ...]:
    """The table's state slots of `op_type` (`weight`, `bias`, ...); other states are custom."""
    info = _lookup(op_type)
    return info.states if info is not None else ()


@cache
def weight_axis(op_type: str, granularity: str) -> int | None:
    """Default axis of a weight read by `op_type` for `per_channel` / `per_block`, or None."""
    info = _lookup(op_type)
    if info is None:
        return None
    return info.per_channel_axis if granularity == "per_channel" else info.per_block_axis


def is_batch_norm(op_type: str) -> bool:
    """BatchNorm op types (fused into a preceding compute op, docs/config-language.md#placement-rules)."""
    return op_type in BATCH_NORMS


def is_fusable_activation(op_type: str) -> bool:
    """Activations that fuse with a preceding compute op (see docs/config-language.md#placement-rules)."""
    return op_type in FUSABLE_ACTIVATIONS
