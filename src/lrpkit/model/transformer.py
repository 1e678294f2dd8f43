"""Layer specs of a vision transformer: patch tokens, pre-LN encoder blocks, the class token's readout.

``Tokens(dim, patch)`` cuts ``(C, H, W)`` into ``patch x patch`` patches embedded by a strided conv, puts a learned
class token in front and adds learned position embeddings: ``(H/patch * W/patch + 1, dim)``. ``Encoder(heads,
hidden)`` is a pre-LN block, ``x + MHA(LN(x))`` then ``x + MLP(LN(x))`` with a GELU (``nn.MultiheadAttention``,
explained as its parts). ``ClassToken()`` is the final LayerNorm and the class token's vector ``(dim,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from .layers import Bounds, LayerSpec, Shape, _integer


class TokensModule(nn.Module):
    def __init__(self, channels: int, dim: int, patch: int, count: int) -> None:
        super().__init__()
        self.embed = nn.Conv2d(channels, dim, patch, patch)
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, count + 1, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], 1) + self.position


class EncoderModule(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ClassTokenModule(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)[:, 0]


@dataclass(frozen=True)
class Tokens(LayerSpec):
    """Patch tokens with a class token and position embeddings: ``(C, H, W)`` -> ``(H W / patch^2 + 1, dim)``."""

    dim: int
    patch: int

    def __post_init__(self) -> None:
        _integer(self, "dim")
        _integer(self, "patch")

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3 or shape[1] % self.patch or shape[2] % self.patch:
            raise SpecError(f"Tokens: needs (C, H, W) input with H and W multiples of patch={self.patch}")
        return ((shape[1] // self.patch) * (shape[2] // self.patch) + 1, self.dim)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return TokensModule(shape[0], self.dim, self.patch, self.output_shape(shape)[0] - 1)


@dataclass(frozen=True)
class Encoder(LayerSpec):
    """A pre-LN transformer encoder block on ``(tokens, dim)``: multi-head attention, then a GELU MLP."""

    heads: int = 4
    hidden: int = 128

    def __post_init__(self) -> None:
        _integer(self, "heads")
        _integer(self, "hidden")

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2 or shape[1] % self.heads:
            raise SpecError(f"Encoder: needs (tokens, dim) input with dim a multiple of heads={self.heads}")
        return shape

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return EncoderModule(shape[1], self.heads, self.hidden)


@dataclass(frozen=True)
class ClassToken(LayerSpec):
    """The final LayerNorm and the class token's vector: ``(tokens, dim)`` -> ``(dim,)``."""

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2:
            raise SpecError("ClassToken: needs (tokens, dim) input (after Tokens and Encoder layers)")
        return (shape[1],)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return ClassTokenModule(shape[1])


TRANSFORMER_LAYERS = (Tokens, Encoder, ClassToken)
