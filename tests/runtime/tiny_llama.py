"""A tiny transformers Llama (random weights, no download) for the runtime's shape/dtype/load tests.

``use_cache=False``: these tests generate by re-running the whole sequence, so they need no cache
(models with their cache on export too: tests/runtime/test_finalize_formats.py).
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 100


def tiny_llama(dtype: torch.dtype = torch.float32) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=64,
        use_cache=False,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(dtype).eval()


class Logits(nn.Module):
    """``ids -> model(ids).logits``: the logits wrapper users write around a causal LM."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids, use_cache=False).logits


def ids(batch: int, seq: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))
