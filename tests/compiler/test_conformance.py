"""Fake-quant placements against the reference library coreai-opt 0.3.0 (an oracle; never imported by qplan).

For each case, both libraries' fake-quants are read as a map ``tensor -> [(dtype, qscheme,
granularity, axis), ...]`` (one row per fake-quant on that tensor) and the maps must be equal, so
the right dtype on the wrong tensor fails. Tensors are named the way qplan's plan names a
quantizer's ``source``: a parameter by its first fqn, a model input as ``:in<k>``, an op output as
``<op name>:out<k>`` (op names from qplan's capture inventory).

Reading the reference (graph mode, its only mode with a graph to read activations from): each
fake-quant module called in the prepared ``GraphModule`` reads one node. A weight fake-quant reads
a ``get_attr`` (through BN folding's ``mul``), named by the float model's parameter. An activation
fake-quant reads a placeholder (``:in<k>``) or an op node; op nodes map to qplan's op names by
their module (``nn_module_stack``) and aten target, the k-th such node of the module to qplan's
k-th op with the same module and target. A node qplan does not list (a view, reshape, transpose:
pass-through for the SPEC) is followed to its first argument, so a reference fake-quant on a view
lands on the tensor qplan quantizes through the view; two of them on one tensor show as two rows
and fail. Eager mode is not compared here: the reference's eager fake-quants are hooks on module
calls with no graph node to read the tensor from (tests/compiler/test_conformance_weights.py
compares the weights in both modes).

Divergences the SPEC keeps on purpose are rewrites of the reference's map, each of which must
change it (a divergence that no longer shows is stale). The transformer with the default config
is left out: there the reference quantizes softmax and layer_norm outputs with a module's ``"*"``
(SPEC: known ops only when named), puts separate fake-quants on view/transpose/slice outputs (SPEC:
pass-through ops are transparent) and on constant buffers; its quantized weights are checked by
``test_same_quantized_weights_on_the_transformer``.
"""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

import pytest

import qplan.models as models
from qplan.compiler import compile_plan
from qplan.compiler.capture import capture
from qplan.schema.loader import load_config
from qplan.schema.types import QuantizerConfig

pytestmark = pytest.mark.conformance

with warnings.catch_warnings():  # the reference's import warns about torchao internals
    warnings.simplefilter("ignore")
    pytest.importorskip("coreai_opt.quantization", reason="the reference library coreai-opt 0.3.0 is not installed")
    import torch.fx as fx
    from coreai_opt.config.spec import CompressionTargetTensor
    from coreai_opt.quantization import Quantizer as ReferenceQuantizer
    from coreai_opt.quantization import QuantizerConfig as ReferenceConfig
    from coreai_opt.quantization.spec import PerBlockGranularity as RefPerBlock
    from coreai_opt.quantization.spec import PerChannelGranularity as RefPerChannel
    from coreai_opt.quantization.spec.fake_quantize import FakeQuantizeImplBase

EXAMPLES = Path(__file__).parents[2] / "src" / "qplan" / "examples"

Row = tuple  # (dtype, qscheme, granularity, axis)
Placements = dict[str, list[Row]]  # tensor -> one row per fake-quant on it


def _reference_row(fq) -> Row:
    g, dtype = fq.granularity, str(fq.dtype).removeprefix("torch.")
    if isinstance(g, RefPerBlock):
        return (dtype, fq.qscheme.value, "per_block", g.axis)
    if isinstance(g, RefPerChannel):
        return (dtype, fq.qscheme.value, "per_channel", g.axis)
    return (dtype, fq.qscheme.value, "per_tensor", None)


def _module_path(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


class _TensorNames:
    """Names a reference graph node's tensor the way qplan's plan names a quantizer's source."""

    def __init__(self, gm: fx.GraphModule, inventory, first_name: dict[int, str]) -> None:
        ops = collections.defaultdict(list)
        for op in inventory.ops:
            ops[(op.module, op.target)].append(op.name)
        seen: collections.Counter = collections.Counter()
        self.op_name: dict[fx.Node, str] = {}
        for node in gm.graph.nodes:
            key = (_module_path(node), str(node.target))
            if node.op == "call_function" and key in ops:
                assert seen[key] < len(ops[key]), f"the reference graph has more {key} nodes than qplan's inventory"
                self.op_name[node] = ops[key][seen[key]]
                seen[key] += 1
        self.inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
        self.params = dict(gm.named_parameters(remove_duplicate=False))
        self.first_name = first_name

    def __call__(self, node: fx.Node) -> str:
        while True:
            if node.op == "placeholder":
                return f":in{self.inputs.index(node)}"
            if node.op == "get_attr":  # a parameter (by its first fqn) or a constant buffer (by its target)
                param = self.params.get(str(node.target))
                return self.first_name[id(param)] if param is not None else str(node.target)
            if node in self.op_name:
                return f"{self.op_name[node]}:out0"
            node = node.args[0]  # pass-through for qplan: the tensor it reads


def reference_placements(factory: str, config: str | None) -> Placements:
    model, example = getattr(models, factory)()
    first_name = {id(p): n for n, p in reversed(list(model.named_parameters(remove_duplicate=False)))}
    inventory = capture(model, example, "graph").inventory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_config = ReferenceConfig.from_yaml(EXAMPLES / config) if config else ReferenceConfig()
        gm = ReferenceQuantizer(model, ref_config).prepare(example)
    name = _TensorNames(gm, inventory, first_name)
    modules = dict(gm.named_modules(remove_duplicate=False))
    out: Placements = collections.defaultdict(list)
    for node in gm.graph.nodes:
        fq = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(fq, FakeQuantizeImplBase):
            continue
        src = node.args[0]
        if fq.quantization_target != CompressionTargetTensor.ACTIVATION:
            while src.op == "call_function":  # BN folding: the weight fake-quant reads `weight * scale`
                src = src.args[0]
        out[name(src)].append(_reference_row(fq))
    return dict(out)


def qplan_placements(factory: str, config: str | None) -> Placements:
    model, example = getattr(models, factory)()
    plan = compile_plan(model, load_config(EXAMPLES / config).config if config else QuantizerConfig(), example, "graph")
    out: Placements = collections.defaultdict(list)
    for q in plan.quantizers:
        s = plan.specs[q.spec]
        out[q.source].append((s.dtype, s.qscheme, s.granularity, s.axis))
    return dict(out)


# Where the reference's graph mode picks its own qscheme: it proposes asymmetric qparams with the
# range [0, inf) for relu/relu6 outputs (coreai_opt/quantization/_graph/_annotation_utils.py) and
# shares them through max_pool2d/flatten; qplan quantizes each tensor with the spec the config
# resolves for it (SPEC §1.2: the default qscheme is symmetric) and never rewrites a spec.
ONE_SIDED = {
    "mlp": ("layers.1.relu:out0", "layers.3.relu:out0", "layers.5.relu:out0"),
    "cnn": ("relu1.relu:out0", "relu2.relu:out0", "pool.max_pool2d:out0", "flatten.flatten:out0"),
}


def _symmetric_where_the_reference_guesses(factory: str, ref: Placements) -> Placements:
    out = dict(ref)
    for tensor in ONE_SIDED.get(factory, ()):
        out[tensor] = [(d, "symmetric", g, a) if q == "asymmetric" else (d, q, g, a) for d, q, g, a in ref[tensor]]
    return out


CASES = [  # (model, config, quantizes activations)
    ("mlp", None, True),
    ("cnn", None, True),
    ("transformer", "ref_only_linear_modules.yaml", True),
    ("transformer", "ref_linear_w4_embedding_w8.yaml", False),
]


@pytest.mark.parametrize(("factory", "config", "activations"), CASES)
def test_same_fake_quant_placements_as_the_reference(factory, config, activations):
    ref, ours = reference_placements(factory, config), qplan_placements(factory, config)
    expected = _symmetric_where_the_reference_guesses(factory, ref)
    assert (expected != ref) == (factory in ONE_SIDED), "the relu qscheme divergence changed: update ONE_SIDED"
    assert ours == expected
    params = dict(getattr(models, factory)()[0].named_parameters())
    assert any(t in params for t in ours)  # weights compared
    assert any(":out" in t for t in ours) == activations  # activations compared where the config has them


def test_same_quantized_weights_on_the_transformer():
    model, _ = models.transformer()
    params = dict(model.named_parameters())  # the tied embedding/head weight once, as `embed.weight`
    ref = {t: rows for t, rows in reference_placements("transformer", None).items() if t in params}
    ours = {t: rows for t, rows in qplan_placements("transformer", None).items() if t in params}
    assert ours == ref and len(ours) == 7  # 6 linear weights + the tied embedding/head weight
    assert model.head.weight is model.embed.weight
