"""The model zoo, compile half (issue 9): real architectures and own models compile in both modes
to the same addresses, and no Linear-like weight is left float in silence.

transformers models are built from tiny configs with random weights (no downloads) and their
default attention implementation (sdpa) and cache setting. Their cache objects (``DynamicCache``,
``EncoderDecoderCache``) are registered for export at capture, so models that return a KV cache by
default capture in graph mode too (docs/models.md).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from qplan import QuantizerConfig, compile_plan

hf = pytest.importorskip("transformers")
Conv1D = pytest.importorskip("transformers.pytorch_utils").Conv1D

W8A8 = QuantizerConfig.presets.w8a8()


def ids(n=8, seed=0):
    return torch.randint(0, 100, (1, n), generator=torch.Generator().manual_seed(seed))


def randn(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


_DECODER = dict(
    vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64,
)  # fmt: skip
_SEQ2SEQ = dict(
    vocab_size=100, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
)  # fmt: skip


def llama():
    return hf.LlamaForCausalLM(hf.LlamaConfig(**_DECODER)), (ids(),)


def qwen2():
    return hf.Qwen2ForCausalLM(hf.Qwen2Config(**_DECODER)), (ids(),)


def mistral():
    return hf.MistralForCausalLM(hf.MistralConfig(**_DECODER)), (ids(),)


def gpt2():
    cfg = hf.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    return hf.GPT2LMHeadModel(cfg), (ids(),)


def bert():
    cfg = hf.BertConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        max_position_embeddings=64,
    )  # fmt: skip
    return hf.BertForSequenceClassification(cfg), (ids(),)


def bart():
    cfg = hf.BartConfig(**_SEQ2SEQ, max_position_embeddings=64)
    return hf.BartForConditionalGeneration(cfg), (ids(), None, ids(4, seed=1))


def vit():
    cfg = hf.ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, image_size=32,
        patch_size=8, num_labels=10,
    )  # fmt: skip
    return hf.ViTForImageClassification(cfg), (randn(1, 3, 32, 32),)


def whisper():
    cfg = hf.WhisperConfig(
        **_SEQ2SEQ, num_mel_bins=16, max_source_positions=16, max_target_positions=32, decoder_start_token_id=1,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    return hf.WhisperForConditionalGeneration(cfg), (randn(1, 16, 32), None, ids(4, seed=1))


# ---------------------------------------------------------------- own models


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(100, 16, mode="mean")
        self.fc = nn.Linear(16, 4)

    def forward(self, idx):  # 2-D indices: one bag per row
        return self.fc(self.bag(idx))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.gru = nn.GRU(16, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.head(y[:, -1])


class Decoder2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)

    def forward(self, x):
        return self.up(torch.relu(self.conv(x)))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 8) * 0.1)
        self.b = nn.Parameter(torch.zeros(16))
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(F.gelu(F.linear(x, self.w, self.b)))


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(8, 8)

    def forward(self, x):
        y = self.act(self.fc1(x))
        y.add_(x)
        y.mul_(0.5)
        return self.fc2(y)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.block(self.block(x)))


class Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleDict({"a": nn.Linear(8, 8), "b": nn.Conv1d(8, 8, 1)})
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        a = self.branches["a"](x)
        b = self.branches["b"](x.unsqueeze(-1)).squeeze(-1)
        return self.head(a + b)


HF = {
    "llama": llama, "qwen2": qwen2, "mistral": mistral, "gpt2": gpt2, "bert": bert, "bart": bart, "vit": vit,
    "whisper": whisper,
}  # fmt: skip
OWN = {
    "embedding_bag": lambda: (Bag(), (torch.randint(0, 100, (4, 3), generator=torch.Generator().manual_seed(0)),)),
    "lstm_gru": lambda: (Recurrent(), (randn(2, 5, 8),)),
    "conv_transpose2d": lambda: (Decoder2d(), (randn(1, 3, 8, 8),)),
    "functional_linear": lambda: (Functional(), (randn(2, 8),)),
    "in_place": lambda: (InPlace(), (randn(2, 8),)),
    "called_twice": lambda: (Twice(), (randn(2, 8),)),
    "module_dict": lambda: (Branches(), (randn(2, 8),)),
}
ZOO = {**HF, **OWN}
SAME_INVENTORY: tuple[str, ...] = ()  # transformers models whose whole inventories agree across modes
CACHED = [name for name in HF if name not in ("bert", "vit")]  # models whose default returns a KV cache

LINEAR_LIKE = (nn.Linear, Conv1D, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
LINEAR_LIKE += (nn.ConvTranspose3d, nn.Embedding, nn.EmbeddingBag)


def build(name, *, use_cache=None):
    torch.manual_seed(0)
    model, args = ZOO[name]()
    if use_cache is not None:
        model.config.use_cache = use_cache
    return model.eval(), args


def linear_like_weights(model):
    """Canonical fqns of every Linear-like weight (tied weights once), plus functional ones."""
    canonical = {}
    for fqn, p in model.named_parameters():
        canonical.setdefault(id(p), fqn)
    found = {canonical[id(m.weight)] for m in model.modules() if isinstance(m, LINEAR_LIKE)}
    if isinstance(model, Functional):
        found.add("w")
    return found


_PLANS: dict = {}


def plans(name):
    """(graph plan, eager plan, model) with the cache off: compiled once per session."""
    if name not in _PLANS:
        model, args = build(name, use_cache=False if name in CACHED else None)
        _PLANS[name] = tuple(compile_plan(model, W8A8, args, mode) for mode in ("graph", "eager")) + (model,)
    return _PLANS[name]


@pytest.mark.parametrize("name", list(ZOO))
def test_both_modes_give_the_same_addresses_and_no_silent_float_weight(name):
    graph, eager, model = plans(name)
    assert [q.address for q in graph.quantizers] == [q.address for q in eager.quantizers]
    if name in OWN or name in SAME_INVENTORY:  # sdpa takes shortcuts in eager that export does not take
        assert graph.model.fingerprint == eager.model.fingerprint
    for plan in (graph, eager):
        quantized = {q.address for q in plan.quantizers if q.role == "state"}
        named = {d.message.split("`")[1] for d in plan.diagnostics if d.code == "unquantized-weight"}
        silent = linear_like_weights(model) - quantized - named
        assert not silent, f"{plan.mode}: left float in silence: {sorted(silent)}"


def test_weights_outside_the_op_table_are_named():
    graph, eager, _ = plans("lstm_gru")
    for plan in (graph, eager):
        named = {d.message.split("`")[1] for d in plan.diagnostics if d.code == "unquantized-weight"}
        assert {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "gru.weight_ih_l0", "gru.weight_hh_l0"} <= named
    graph, eager, _ = plans("whisper")  # decoder positions are read by slicing the embedding's weight
    for plan in (graph, eager):
        assert any("model.decoder.embed_positions.weight" in d.message for d in plan.diagnostics)


@pytest.mark.parametrize("name", CACHED)
def test_the_default_cache_output_captures_in_both_modes(name):
    model, args = build(name)  # the default: use_cache=True, a KV cache in the output
    graph = compile_plan(model, W8A8, args, "graph")
    eager = compile_plan(model, W8A8, args, "eager")
    assert [q.address for q in graph.quantizers] == [q.address for q in eager.quantizers]
    cache_off, _, _ = plans(name)  # the cache adds its own ops (the key/value `cat`s); nothing else changes
    assert {q.address for q in cache_off.quantizers} <= {q.address for q in graph.quantizers}


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_w4_weight_only_quantizes_every_gpt2_projection(mode):
    model, args = build("gpt2", use_cache=False)
    plan = compile_plan(model, QuantizerConfig.presets.w4(), args, mode)
    states = {q.address: q for q in plan.quantizers if q.role == "state"}
    projections = {f"{path}.weight" for path, m in model.named_modules() if isinstance(m, Conv1D)}
    assert len(projections) == 4 and projections <= set(states)
    for fqn in projections:  # Conv1D stores [in, out]: per output channel is axis 1
        assert plan.specs[states[fqn].spec].axis == 1
    assert not [d for d in plan.diagnostics if d.code == "unquantized-weight"]
