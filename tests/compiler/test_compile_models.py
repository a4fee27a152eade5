"""The compiler on captured models: the bundled qplan.models and tiny transformers models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qplan.models as models
from qplan.compiler import compile_plan
from qplan.compiler.plan import encode_plan
from qplan.schema.types import QuantizerConfig


def _linear_weights(model: nn.Module) -> set[str]:
    return {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def _states(plan) -> dict[str, tuple[str, ...]]:
    return {q.address: q.readers for q in plan.quantizers if q.role == "state"}


@pytest.mark.parametrize("factory", ["mlp", "cnn", "transformer"])
def test_both_modes_give_the_same_quantizers(factory):
    model, example = getattr(models, factory)()
    graph = compile_plan(model, QuantizerConfig(), example, "graph")
    eager = compile_plan(model, QuantizerConfig(), example, "eager")
    assert graph.mode == "graph" and eager.mode == "eager"
    assert graph.quantizers == eager.quantizers
    assert graph.specs == eager.specs
    assert graph.model.fingerprint == eager.model.fingerprint


def test_transformer_w8a8():
    model, example = models.transformer()
    plan = compile_plan(model, QuantizerConfig(), example)
    states = _states(plan)
    linear = _linear_weights(model) - {"head.weight"}  # head is tied to embed (no own weight)
    assert linear <= set(states)
    # the tied embedding weight is quantized once, read by both consumers
    tied = [a for a, readers in states.items() if len(readers) > 1]
    assert tied == ["embed.weight"] and set(states["embed.weight"]) == {"embed.embedding:weight", "head.linear:weight"}
    # softmax is a known op: the module's "*" never reaches it
    assert not any(q.address.endswith("softmax:out0") for q in plan.quantizers)
    assert not any(".softmax" in q.provenance.rule for q in plan.quantizers)


def test_cnn_fuses_and_folds_batchnorm_in_graph_mode():
    model, example = models.cnn()
    graph = compile_plan(model, QuantizerConfig(), example, "graph")
    eager = compile_plan(model, QuantizerConfig(), example, "eager")
    folds = [d.reason for d in graph.decisions if d.kind == "bn-fold"]
    assert folds and all("is folded" in r for r in folds)
    assert all("not folded" in d.reason for d in eager.decisions if d.kind == "bn-fold")
    assert not any("bn" in q.address for q in graph.quantizers)


def test_config_path_and_default_mode_from_config(tmp_path):
    path = tmp_path / "eager.yaml"
    path.write_text("quantization_config:\n  execution_mode: eager\n")
    model, example = models.mlp()
    plan = compile_plan(model, path, example)
    assert plan.mode == "eager"
    assert plan.config.source == "eager.yaml"  # never an absolute path
    assert encode_plan(plan) == encode_plan(compile_plan(model, path, example))


class MyLinear(nn.Linear):
    pass


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.plain = nn.Linear(4, 4)
        self.mine = MyLinear(4, 4)

    def forward(self, x):
        return self.mine(self.plain(x))


def test_type_keys_match_exact_class_not_subclasses():
    cfg = QuantizerConfig().set_module_type(nn.Linear, None)
    plan = compile_plan(Two(), cfg, (torch.randn(2, 4),), "eager")
    assert set(_states(plan)) == {"mine.weight"}


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=True,
        use_cache=False,
    )
    return LlamaForCausalLM(cfg).eval(), (torch.randint(0, 64, (1, 8)),)


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return BertModel(cfg).eval(), (torch.randint(0, 64, (1, 8)),)


@pytest.mark.parametrize("make", [_tiny_llama, _tiny_bert], ids=["llama", "bert"])
def test_transformers_w8a8(make):
    model, example = make()
    plan = compile_plan(model, QuantizerConfig(), example, "graph")
    states = _states(plan)
    linear = _linear_weights(model)
    if "lm_head.weight" in linear and model.lm_head.weight is model.model.embed_tokens.weight:
        linear = (linear - {"lm_head.weight"}) | {"model.embed_tokens.weight"}
        assert set(states["model.embed_tokens.weight"]) == {
            "model.embed_tokens.embedding:weight",
            "lm_head.linear:weight",
        }
    assert linear <= set(states)
    # no norm weights (RMSNorm's `weight * x` is a custom state the default spec does not reach)
    assert not any("norm" in a.lower() for a in states)
    assert not any("softmax" in q.address or "scaled_dot_product_attention:out" in q.address for q in plan.quantizers)
    assert not [d for d in plan.diagnostics if d.level != "info"]
