"""The compiler against the reference library coreai-opt 0.3.0 (an oracle; never imported by qplan).

Where the SPEC keeps the reference's behaviour, the fake-quants agree: same count and dtypes on the
MLP and the CNN (conv+bn+relu fusion, shared qparams on max_pool/flatten), and the same quantized
weights on the transformer. The SPEC fixes some reference defects on purpose, so totals on the
transformer differ: the reference quantizes softmax and layer_norm outputs with a module's `"*"`
(SPEC: known ops only when named), puts separate fake-quants on view/transpose/slice outputs (SPEC:
pass-through ops are transparent, one fake-quant serves through them) and on constant buffers.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch

import qplan.models as models
from qplan.compiler import compile_plan
from qplan.schema.loader import load_config
from qplan.schema.types import QuantizerConfig

pytestmark = pytest.mark.conformance

EXAMPLES = Path(__file__).parents[2] / "src" / "qplan" / "examples"


def _reference(model, example, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from coreai_opt.quantization import Quantizer
        from coreai_opt.quantization import QuantizerConfig as ReferenceConfig

        config = ReferenceConfig.from_yaml(path) if path else ReferenceConfig()
        gm = Quantizer(model, config).prepare(example)
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and "post_process" in str(node.target):
            arg = node.args[0]
            dtype = str(gm.get_submodule(node.target).dtype).removeprefix("torch.")
            out.append((dtype, arg.target if arg.op == "get_attr" else None))
    return out


def _ours(model, example, path):
    config = load_config(path) if path else QuantizerConfig()
    plan = compile_plan(model, config, example, "graph")
    return [(plan.specs[q.spec].dtype, q.address if q.role == "state" else None) for q in plan.quantizers]


CASES = [
    ("mlp", None),
    ("cnn", None),
    ("transformer", "ref_only_linear_modules.yaml"),
    ("transformer", "ref_linear_w4_embedding_w8.yaml"),
]


@pytest.mark.parametrize(("factory", "config"), CASES)
def test_same_fake_quants_as_the_reference(factory, config):
    model, example = getattr(models, factory)()
    path = EXAMPLES / config if config else None
    ref, ours = _reference(model, example, path), _ours(model, example, path)
    assert Counter(d for d, _ in ours) == Counter(d for d, _ in ref)


def test_same_quantized_weights_on_the_transformer():
    model, example = models.transformer()
    ids = {name: id(p) for name, p in model.named_parameters(remove_duplicate=False)}
    ref = {ids[t] for _, t in _reference(model, example, None) if t in ids}
    ours = {ids[a] for _, a in _ours(model, example, None) if a is not None}
    assert ours == ref and len(ours) == 7  # 6 linear weights + the tied embedding/head weight
    assert isinstance(model.head.weight, torch.nn.Parameter)
