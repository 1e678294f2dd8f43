"""Small versions of the blocks real models are built from (plain torch.nn, no torchvision), and random graphs.

Each ``make_*`` returns a float64 model in eval mode with randomised BatchNorm statistics, so merging them is
not the identity; ``Graphs`` draws random residual/dense/gated/depthwise graphs for property tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

F64 = torch.float64


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """float64, eval mode, BatchNorm statistics and affine parameters away from their defaults."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.copy_(torch.rand(size, generator=generator) * 0.4 - 0.2)
    return model.double().eval()


def zero_biases(model: nn.Module) -> nn.Module:
    """Every bias and BatchNorm shift zero (running mean and beta), for exact conservation."""
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()
    return model


class BasicBlock(nn.Module):
    """ResNet's basic block: conv-BN-ReLU-conv-BN, plus the input or a 1x1 projection, then ReLU (one ReLU
    module used twice)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        projection = stride != 1 or cin != cout
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if projection else None
        )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """ResNet's bottleneck: 1x1 reduce, 3x3, 1x1 expand, with a projection shortcut."""

    def __init__(self, cin: int, width: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class DenseLayer(nn.Module):
    """DenseNet's layer: BN-ReLU-conv (pre-activation BatchNorm), its output concatenated to its input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm, self.relu, self.conv = nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(self.relu(self.norm(x)))], 1)


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-and-excitation: a hardsigmoid gate from pooled features scales the input."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return scale * x


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expand, depthwise 3x3, 1x1 project (BN after each), residual add;
    ``se`` adds a squeeze-and-excitation gate and hardswish (MobileNetV3)."""

    def __init__(self, channels: int, expand: int, se: bool = False) -> None:
        super().__init__()
        hidden = channels * expand
        act = nn.Hardswish if se else nn.ReLU6
        self.expand = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), act()
        )
        self.se = SqueezeExcite(hidden, max(hidden // 4, 1)) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.project(self.se(self.depthwise(self.expand(x))))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: depthwise 7x7, channels-last LayerNorm, Linear-GELU-Linear, layer scale, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.fc1, self.fc2 = nn.Linear(channels, 4 * channels), nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), 0.5))

    def forward(self, x):
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.fc2(F.gelu(self.fc1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class GroupNormBlock(nn.Module):
    """Conv-GroupNorm-SiLU twice with a residual (as in diffusion U-Nets)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(2, channels)
        self.conv2, self.norm2 = nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(2, channels)

    def forward(self, x):
        return x + F.silu(self.norm2(self.conv2(F.silu(self.norm1(self.conv1(x))))))


class Classifier(nn.Module):
    """A stem, some blocks, global average pooling written as ``mean((2, 3))``, a Linear head."""

    def __init__(self, stem: int, blocks: nn.Module, features: int, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, stem, 3, 1, 1)
        self.blocks = blocks
        self.fc = nn.Linear(features, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(x.mean((2, 3)))


class Functional(nn.Module):
    """A forward written with functions: F.relu, torch.flatten, x.mean, x + y, a sum built inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(3, 6, 1)
        self.c = nn.Conv2d(6, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        y = F.relu(self.a(x)) + self.b(x)
        branches = [F.relu(y), self.b(x), F.max_pool2d(y, 3, 1, 1)]
        total = sum(branches[1:], branches[0])  # a Sum created inside forward
        z = F.relu(self.c(total))
        z = F.avg_pool2d(z, 2)
        return self.fc(torch.flatten(z, 1))


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    models = {
        "basic": lambda: Classifier(8, nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 12, 2)), 12),
        "bottleneck": lambda: Classifier(8, Bottleneck(8, 4, 16, 2), 16),
        "dense": lambda: Classifier(6, nn.Sequential(DenseLayer(6, 4), DenseLayer(10, 4)), 14),
        "mobilenet_v2": lambda: Classifier(8, InvertedResidual(8, 3), 8),
        "mobilenet_v3": lambda: Classifier(8, InvertedResidual(8, 2, se=True), 8),
        "functional": Functional,
        "convnext": lambda: Classifier(8, ConvNeXtBlock(8), 8),
        "groupnorm": lambda: Classifier(8, GroupNormBlock(8), 8),
    }
    return randomise(models[name](), seed)


BLOCKS = ["basic", "bottleneck", "dense", "mobilenet_v2", "mobilenet_v3", "functional", "convnext", "groupnorm"]
RELU_ONLY = ["basic", "bottleneck", "functional"]  # ReLUs, Linear-type layers, sums, pooling, moves: LRP-0 = g x i


# -- random graphs ------------------------------------------------------------------------------------------


class Graph(nn.Module):
    """A random graph: a stem, then steps that each add a residual, concatenate a branch, gate, or go through
    a (depthwise) conv with BatchNorm before or after; global pooling and a Linear head."""

    def __init__(self, steps: list[tuple[str, int]], seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.steps = steps
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        layers, channels = [], 4
        for kind, width in steps:
            layer, channels = _step(kind, channels, width)
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.fc = nn.Linear(channels, 3)
        randomise(self, seed)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for (kind, _), layer in zip(self.steps, self.layers, strict=True):
            x = _apply(kind, layer, x)
        return self.fc(x.mean((2, 3)))


def _step(kind: str, channels: int, width: int) -> tuple[nn.Module, int]:
    if kind == "residual":
        return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)), channels
    if kind == "projection":
        body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width))
        return nn.ModuleList([body, nn.Conv2d(channels, width, 1)]), width
    if kind == "concat":
        return nn.Conv2d(channels, width, 1), channels + width
    if kind == "gate":
        return nn.Conv2d(channels, channels, 1), channels
    if kind == "depthwise":
        return nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.BatchNorm2d(channels)
        ), channels
    if kind == "preact":  # BatchNorm before the conv: not merged, the identity rule
        return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, width, 1)), width
    raise ValueError(kind)


def _apply(kind: str, layer: nn.Module, x):
    if kind == "residual":
        return F.relu(layer(x) + x)
    if kind == "projection":
        return F.relu(layer[0](x) + layer[1](x))
    if kind == "concat":
        return torch.cat([x, F.relu(layer(x))], 1)
    if kind == "gate":
        return x * torch.sigmoid(layer(x.mean((2, 3), keepdim=True)))
    if kind == "depthwise":
        return F.relu(layer(x))
    return layer(x)


STEPS = ["residual", "projection", "concat", "gate", "depthwise", "preact"]


@st.composite
def graphs(draw, kinds=STEPS):
    """A random :class:`Graph` and a batch of inputs."""
    steps = draw(st.lists(st.tuples(st.sampled_from(kinds), st.sampled_from([3, 5])), min_size=1, max_size=4))
    seed = draw(st.integers(0, 10_000))
    x = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return Graph(steps, seed), x
