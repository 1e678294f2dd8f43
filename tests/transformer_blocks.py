"""Small attention models written in plain torch (no transformers, no torchvision), and LXT's construction.

- ``Encoder``: token and position embeddings, pre-LN blocks with ``nn.MultiheadAttention`` and a GELU MLP, mean
  pooling, a classifier (``attention="mha"``: MultiheadAttention with its weights, ``"fused"``: without, i.e. the
  fused ``scaled_dot_product_attention``);
- ``Decoder``: a causal LM with RMSNorm written out, rotary embeddings, attention written out (``matmul``,
  ``softmax``, an additive mask from ``attention_mask``) or fused (``F.scaled_dot_product_attention`` with
  ``is_causal``, grouped-query heads), and a SwiGLU MLP;
- ``ViT``: a conv patch embedding, a class token, position embeddings, pre-LN blocks, the class token's head.

Each forward can run as **LXT's construction** (``model.lxt = "attnlrp"`` or ``"cp"``, on a copy): gradient x
input then is AttnLRP / CP-LRP -- the normalisers' scales detached, the gradient through ``q`` and ``k`` divided by
4 and through ``v`` by 2 (CP-LRP: ``q``, ``k`` and the MLP gate detached), the activations' gradient replaced by
``act(x) / x`` (the identity rule), the gated product's gradient halved. Written here from the paper's recipe.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

F64 = torch.float64


class _Scale(torch.autograd.Function):
    """Identity forward; the gradient divided by ``factor`` (the uniform rule in gradient x input)."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.factor, None


class _Identity(torch.autograd.Function):
    """``act(x)`` forward; gradient ``act(x) / x`` (the identity rule in gradient x input)."""

    @staticmethod
    def forward(ctx, x, act):
        y = act(x)
        ctx.save_for_backward(y / x)
        return y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.saved_tensors[0], None


class Tricks:
    """The LXT construction a block applies when ``mode`` is set (None: the plain forward)."""

    def __init__(self, mode: str | None) -> None:
        self.mode = mode

    def norm_scale(self, scale: Tensor) -> Tensor:
        return scale.detach() if self.mode else scale

    def qkv(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.mode == "attnlrp":
            return _Scale.apply(q, 4.0), _Scale.apply(k, 4.0), _Scale.apply(v, 2.0)
        if self.mode == "cp":
            return q.detach(), k.detach(), v
        return q, k, v

    def act(self, x: Tensor, fn) -> Tensor:
        return _Identity.apply(x, fn) if self.mode else fn(x)

    def gate(self, gate: Tensor) -> Tensor:
        return gate.detach() if self.mode == "cp" else gate

    def gated(self, product: Tensor) -> Tensor:
        return _Scale.apply(product, 2.0) if self.mode == "attnlrp" else product


def layer_norm(x: Tensor, norm: nn.LayerNorm, tricks: Tricks) -> Tensor:
    """``norm(x)``, or under LXT's construction ``(x - mean) / std`` with ``std`` detached."""
    if tricks.mode is None:
        return norm(x)
    centred = x - x.mean(-1, keepdim=True)
    std = (centred.square().mean(-1, keepdim=True) + norm.eps).sqrt()
    return centred / tricks.norm_scale(std) * norm.weight + norm.bias


class RMSNorm(nn.Module):
    """RMSNorm written out in ops, as Hugging Face writes it: ``w * x * rsqrt(mean(x^2) + eps)``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.eps, self.tricks = nn.Parameter(torch.ones(dim)), eps, Tricks(None)

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * (x * self.tricks.norm_scale(scale))


def attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v``, written out (so that LXT's construction can run through it)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class EncoderLayer(nn.Module):
    """Pre-LN: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))`` with a GELU."""

    def __init__(self, dim: int, heads: int, hidden: int, weights: bool) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.weights, self.tricks = weights, Tricks(None)

    def forward(self, x: Tensor) -> Tensor:
        y = layer_norm(x, self.ln1, self.tricks)
        if self.tricks.mode is None:
            a, _ = self.mha(y, y, y, need_weights=self.weights)
        else:
            a = self._attention(y)
        x = x + a
        y = layer_norm(x, self.ln2, self.tricks)
        return x + self.fc2(self.tricks.act(self.fc1(y), F.gelu))

    def _attention(self, y: Tensor) -> Tensor:
        """MultiheadAttention's computation from its own weights (for LXT's construction)."""
        n, length, dim = y.shape
        heads = self.mha.num_heads
        q, k, v = F.linear(y, self.mha.in_proj_weight, self.mha.in_proj_bias).chunk(3, -1)
        split = lambda t: t.view(n, length, heads, dim // heads).transpose(1, 2)  # noqa: E731
        q, k, v = self.tricks.qkv(split(q), split(k), split(v))
        out = attention(q, k, v, None).transpose(1, 2).reshape(n, length, dim)
        return self.mha.out_proj(out)


class Encoder(nn.Module):
    """Token ids (or ``inputs_embeds``) -> class logits: embeddings + positions, pre-LN layers, mean pooling."""

    def __init__(self, vocab=13, dim=8, heads=2, hidden=16, layers=2, classes=3, length=6, attention="mha"):
        super().__init__()
        self.embed, self.position = nn.Embedding(vocab, dim), nn.Parameter(torch.randn(length, dim) * 0.5)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, hidden, attention == "mha") for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.tricks = Tricks(None)

    def forward(self, input_ids=None, inputs_embeds=None):
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        x = x + self.position[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.head(layer_norm(x, self.ln, self.tricks).mean(1))


def rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, -1)
    return torch.cat((-second, first), -1)


class DecoderLayer(nn.Module):
    """``x + Attention(RMSNorm(x))`` with rotary embeddings, then ``x + SwiGLU(RMSNorm(x))``."""

    def __init__(self, dim: int, heads: int, groups: int, hidden: int, fused: bool) -> None:
        super().__init__()
        self.heads, self.groups, self.head_dim, self.fused = heads, groups, dim // heads, fused
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, groups * self.head_dim, bias=False)
        self.v = nn.Linear(dim, groups * self.head_dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.tricks = Tricks(None)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, bias: Tensor | None) -> Tensor:
        n, length, dim = x.shape
        y = self.norm1(x)
        q = self.q(y).view(n, length, self.heads, -1).transpose(1, 2)
        k = self.k(y).view(n, length, self.groups, -1).transpose(1, 2)
        v = self.v(y).view(n, length, self.groups, -1).transpose(1, 2)
        q, k, v = self.tricks.qkv(q, k, v)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if self.fused and self.tricks.mode is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=bias is None, enable_gqa=True)
        else:
            repeat = self.heads // self.groups
            k, v = k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1)
            out = attention(q, k, v, bias if bias is not None else causal_bias(length, x.dtype))
        x = x + self.o(out.transpose(1, 2).reshape(n, length, dim))
        y = self.norm2(x)
        gate = self.tricks.act(self.tricks.gate(self.gate(y)), F.silu)
        return x + self.down(self.tricks.gated(gate * self.up(y)))


def causal_bias(length: int, dtype: torch.dtype) -> Tensor:
    return torch.full((length, length), float("-inf"), dtype=dtype).triu(1)


class Decoder(nn.Module):
    """A causal LM: token ids -> next-token logits ``(N, L, vocab)``; ``attention_mask`` (1 = token, 0 = padding)
    becomes an additive mask (``finfo.min``) on top of the causal one."""

    def __init__(self, vocab=17, dim=8, heads=2, groups=2, hidden=12, layers=2, length=6, fused=False):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, groups, hidden, fused) for _ in range(layers))
        self.norm, self.head = RMSNorm(dim), nn.Linear(dim, vocab, bias=False)
        angles = torch.arange(length)[:, None] / 10000 ** (torch.arange(0, dim // heads, 2) / (dim // heads))
        angles = torch.cat((angles, angles), -1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        self.tricks = Tricks(None)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None):
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        length = x.shape[1]
        cos, sin = self.cos[:length].to(x.dtype), self.sin[:length].to(x.dtype)
        bias = None
        if attention_mask is not None:
            padding = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            bias = causal_bias(length, x.dtype) + padding
        for layer in self.layers:
            x = layer(x, cos, sin, bias)
        return self.head(self.norm(x))


class ViT(nn.Module):
    """A conv patch embedding, a class token, position embeddings, pre-LN layers (fused attention), a head."""

    def __init__(self, channels=1, size=8, patch=4, dim=8, heads=2, hidden=16, layers=2, classes=3):
        super().__init__()
        self.patch = nn.Conv2d(channels, dim, patch, patch)
        self.token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.position = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.5)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, hidden, False) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.tricks = Tricks(None)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], 1) + self.position
        for layer in self.layers:
            x = layer(x)
        return self.head(layer_norm(x, self.ln, self.tricks)[:, 0])


def make(name: str, seed: int = 0) -> nn.Module:
    """A float64 model in eval mode with random weights (LayerNorm affine parameters away from 1 and 0)."""
    torch.manual_seed(seed)
    models = {
        "encoder": lambda: Encoder(),
        "encoder_fused": lambda: Encoder(attention="fused"),
        "decoder": lambda: Decoder(),
        "decoder_fused": lambda: Decoder(heads=4, groups=2, fused=True),
        "vit": lambda: ViT(),
    }
    model = models[name]()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, RMSNorm)):
                module.weight.copy_(torch.rand(module.weight.shape) + 0.5)
                if getattr(module, "bias", None) is not None:
                    module.bias.copy_(torch.rand(module.bias.shape) * 0.4 - 0.2)
    return model.double().eval()


def inputs(name: str, seed: int = 0, n: int = 2) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    if name == "vit":
        return torch.randn(n, 1, 8, 8, generator=generator, dtype=F64)
    vocab = 13 if name.startswith("encoder") else 17
    return torch.randint(0, vocab, (n, 6), generator=generator)


def zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    return model


def lxt_copy(model: nn.Module, mode: str) -> nn.Module:
    """A copy of ``model`` whose gradient x input is AttnLRP (``"attnlrp"``) or CP-LRP (``"cp"``)."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, "tricks"):
            module.tricks = Tricks(mode)
    return twin
