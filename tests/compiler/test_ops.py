"""The op table: aliases normalise, every row is well formed, axis defaults follow SPEC §2.5."""

import pytest

from qplan.compiler import ops


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("concat", "cat"),
        ("add_", "add"),
        ("__add__", "add"),
        ("__iadd__", "add"),
        ("iadd", "add"),
        ("__radd__", "add"),
        ("sub_", "sub"),
        ("__isub__", "sub"),
        ("__rsub__", "sub"),
        ("mul_", "mul"),
        ("__imul__", "mul"),
        ("__truediv__", "div"),
        ("div_", "div"),
        ("@", "matmul"),
        ("__matmul__", "matmul"),
        ("aten.linear.default", "linear"),
        ("aten.add.Tensor", "add"),
        ("aten.softmax.int", "softmax"),
        ("torch.ops.aten.conv2d.default", "conv2d"),
        ("torch.nn.functional.linear", "linear"),
        ("torch.nn.functional.scaled_dot_product_attention", "scaled_dot_product_attention"),
        ("torch.Tensor.add", "add"),
        ("torch.Tensor.__getitem__", "getitem"),
        ("torch.Tensor.T.__get__", "getattr"),
        ("torch.relu", "relu"),
        ("gelu_", "gelu"),
        ("softmax.int", "softmax"),
        ("torch.functional.einsum", "einsum"),
        ("method_descriptor.add", "add"),
        ("torch.Tensor.__setitem__", "setitem"),
        ("linear", "linear"),
    ],
)
def test_aliases_normalise(name, expected):
    assert ops.normalize_op_type(name) == expected


def test_unknown_names_keep_their_short_form():
    assert ops.normalize_op_type("torch.cumprod") == "cumprod"
    assert not ops.is_known("cumprod")
    assert ops.normalize_op_type(None) is None and ops.normalize_op_type("") is None


def test_every_row_is_well_formed():
    for key, info in ops.OP_TABLE.items():
        assert key == info.op_type
        assert info.cls in ops.OP_CLASSES
        assert not set(info.inputs) & set(info.states), key
        assert info.int_inputs <= set(info.inputs), key
        assert ops.normalize_op_type(key) == key
    for act in ops.FUSABLE_ACTIVATIONS:
        assert ops.op_class(act) == "known"
    for bn in ops.BATCH_NORMS:
        assert ops.op_info(bn).states[:2] == ("weight", "bias")


def test_spec_types_are_covered_with_their_classes():
    compute = "linear conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d embedding matmul bmm add sub mul"
    preserving = "cat max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d flatten mean"
    passing = (
        "reshape view permute transpose contiguous clone dropout slice select unsqueeze squeeze expand getitem to float"
    )
    known = "softmax layer_norm div relu relu6 leaky_relu gelu silu sigmoid tanh hardswish hardsigmoid hardtanh elu batch_norm scaled_dot_product_attention pow rsqrt neg exp sum"
    for names, cls in (
        (compute, "compute"),
        (preserving, "value_preserving"),
        (passing, "pass_through"),
        (known, "known"),
    ):
        for name in names.split():
            assert ops.op_class(name) == cls, name
    assert ops.op_class("arange") == "ignore" and ops.op_class("zeros") == "ignore"


def test_inputs_and_states_by_index_and_name():
    linear = ops.op_info("linear")
    assert linear.inputs == ("input",) and linear.states == ("weight", "bias")
    assert ops.op_info("matmul").inputs == ("input", "other")
    assert ops.op_info("add").input_index("other") == 1
    assert ops.op_info("add").input_index("1") == 1
    assert ops.op_info("cat").list_input
    emb = ops.op_info("embedding")
    assert emb.states == ("weight",) and "input" in emb.int_inputs


def test_weight_axis_defaults():
    for op in ("linear", "conv1d", "conv2d", "conv3d", "embedding"):
        assert (ops.op_info(op).per_channel_axis, ops.op_info(op).per_block_axis) == (0, 1), op
    for op in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        assert (ops.op_info(op).per_channel_axis, ops.op_info(op).per_block_axis) == (1, 0), op
    assert ops.op_info("matmul").per_channel_axis is None


def test_op_info_unknown_raises_with_suggestion():
    with pytest.raises(KeyError, match="did you mean `softmax`"):
        ops.op_info("sofmax")
    assert ops.suggest("layernorm") == "did you mean `layer_norm`?"
    assert ops.suggest("Linear") == "did you mean `linear`?"
    assert ops.suggest("zzzzzz") is None
    assert ops.suggest("linear") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("special_erf", "erf"),  # graph mode's name of torch.special.erf
        ("torch.special.erf", "erf"),  # eager mode's
        ("aten.special_erf.default", "erf"),
        ("special_expit", "sigmoid"),
        ("torch.special.expit", "sigmoid"),
        ("aten._embedding_bag.default", "embedding_bag"),
        ("aten.embedding_bag.padding_idx", "embedding_bag"),
        ("torch.addmm", "addmm"),
    ],
)
def test_one_op_type_in_both_modes(name, expected):
    assert ops.normalize_op_type(name) == expected


def test_linear_maps_in_other_clothes():
    """Per-channel = per output channel: addmm's weight is [in, out] (transformers' Conv1D),
    baddbmm's [batch, in, out]; per-block blocks the reduction dimension."""
    for op in ("addmm", "baddbmm", "embedding_bag", "einsum"):
        assert ops.op_class(op) == "compute" and "weight" in ops.op_info(op).states, op
    assert (ops.weight_axis("addmm", "per_channel"), ops.weight_axis("addmm", "per_block")) == (1, 0)
    assert (ops.weight_axis("baddbmm", "per_channel"), ops.weight_axis("baddbmm", "per_block")) == (2, 1)
    assert (ops.weight_axis("embedding_bag", "per_channel"), ops.weight_axis("embedding_bag", "per_block")) == (0, 1)
    assert ops.weight_axis("einsum", "per_channel") is None  # depends on the equation: set the axis
    addmm = ops.op_info("addmm")
    assert [addmm.slot_of(a) for a in ("self", "mat1", "mat2")] == ["bias", "input", "weight"]
    assert ops.op_info("embedding_bag").int_inputs == {"input", "offsets"}
