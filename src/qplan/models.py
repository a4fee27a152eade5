"""Bundled example models for the CLI, tests and benchmarks.

Each factory returns ``(model, example_inputs)``, is deterministic (seeded, eval mode) and
tiny enough to export in well under a second: ``qplan compile-plan cfg.yaml --model qplan.models:cnn``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["mlp", "cnn", "transformer", "MLP", "DigitsCNN", "TinyLM", "Block", "Attention"]


class MLP(nn.Module):
    """A stack of Linear+ReLU layers (the last Linear has no activation)."""

    def __init__(self, n_layers: int = 4, width: int = 64, in_features: int = 16, out_features: int = 10) -> None:
        super().__init__()
        dims = [in_features] + [width] * (n_layers - 1) + [out_features]
        layers: list[nn.Module] = []
        for k in range(n_layers):
            layers.append(nn.Linear(dims[k], dims[k + 1]))
            if k < n_layers - 1:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 single-channel digit images (10 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool(self.relu2(self.bn2(self.conv2(x))))
        return self.fc(self.flatten(x))


class Attention(nn.Module):
    """Causal multi-head self-attention written with matmuls and softmax.

    The causal mask is a bool tensor applied with ``masked_fill`` (a known op), so a W8A8 config
    never fake-quantizes the ``-inf`` entries (adding a float ``-inf`` mask would).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, d // h).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * (d // h) ** -0.5
        probs = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)
        return self.o_proj(out)


class Block(nn.Module):
    """Pre-norm transformer block: attention and a GELU MLP, each with a residual add."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    """A small causal LM: token embedding tied with the output head, one or more blocks."""

    mask: torch.Tensor

    def __init__(
        self, vocab: int = 64, dim: int = 32, heads: int = 4, hidden: int = 64, n_blocks: int = 1, ctx: int = 16
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(n_blocks))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.register_buffer("mask", torch.ones(ctx, ctx, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.embed(ids)
        mask = self.mask[:t, :t]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


def mlp(n_layers: int = 4, width: int = 64) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Linear+ReLU stack on 16 features, 10 outputs; inputs: a batch of 8."""
    torch.manual_seed(0)
    model = MLP(n_layers, width).eval()
    return model, (torch.randn(8, 16),)


def cnn() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Conv-BN-ReLU CNN for 8x8 digits; inputs: a batch of 4 images (4, 1, 8, 8)."""
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    return model, (torch.randn(4, 1, 8, 8),)


def transformer() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """One-block causal LM (vocab 64, width 32, 4 heads); inputs: token ids (2, 8)."""
    torch.manual_seed(0)
    model = TinyLM().eval()
    return model, (torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1)),)
