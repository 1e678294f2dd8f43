"""The benchmark models and inputs: lrpkit's MNIST MLP and CNN, and VGG-16 as a plain ``torch.nn.Sequential``.

Every model comes as a :class:`Case`: the module, a batch of inputs, per-sample target classes and the input
bounds (low, high) that the zB rule uses on the first layer. Weights are random (seeded): speed and
agreement between implementations do not depend on training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import lrpkit

VGG16_CHANNELS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Case:
    """One benchmark model with its inputs; ``low``/``high`` bound the first layer's input (for zB)."""

    name: str
    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    classes: int
    low: torch.Tensor | float
    high: torch.Tensor | float

    def __repr__(self) -> str:
        return f"Case({self.name}, x={tuple(self.x.shape)} {self.x.dtype} on {self.x.device}, classes={self.classes})"


def vgg16(classes: int = 1000, seed: int = 0) -> nn.Sequential:
    """VGG-16 (configuration D, Simonyan & Zisserman 2015) built from plain torch.nn layers, random weights.

    Convolutions: He-normal weights (activations keep their scale through the 13 layers); dense layers:
    N(0, 0.01); biases uniform in [-0.05, 0.05] so that bias handling shows in the results.
    """
    layers: list[nn.Module] = []
    channels = 3
    for entry in VGG16_CHANNELS:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(entry), 3, padding=1), nn.ReLU()]
            channels = int(entry)
    layers += [nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten()]
    layers += [nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout()]
    layers.append(nn.Linear(4096, classes))
    model = nn.Sequential(*layers)
    _init_vgg(model, seed)
    return model.eval()


def _init_vgg(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.01, generator=generator)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.bias.uniform_(-0.05, 0.05, generator=generator)


def image_bounds(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel bounds (3, 1, 1) of ImageNet-normalised pixels: ``(0 - mean) / std`` and ``(1 - mean) / std``."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=dtype).view(3, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


def make_case(name: str, batch: int, size: int = 224, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Case:
    """Builds ``"mlp"``, ``"cnn"`` (lrpkit Networks, MNIST inputs in [0, 1]) or ``"vgg16"`` (``size`` x ``size``)."""
    generator = torch.Generator().manual_seed(1)
    if name in ("mlp", "cnn"):
        model: nn.Module = lrpkit.ARCHITECTURES[name](seed=0).eval()
        x = torch.rand(batch, 1, 28, 28, generator=generator, dtype=dtype)
        low, high = model.bounds  # type: ignore[union-attr]
        classes = 10
    elif name == "vgg16":
        model = vgg16(seed=0)
        pixels = torch.rand(batch, 3, size, size, generator=generator, dtype=dtype)
        mean, std = (torch.tensor(v, dtype=dtype).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
        x = (pixels - mean) / std
        low, high = image_bounds(dtype)
        classes = 1000
    else:
        raise ValueError(f"unknown model {name!r}; valid: mlp, cnn, vgg16")
    target = torch.randint(classes, (batch,), generator=generator)
    model = model.to(device=device, dtype=dtype)
    move = (lambda t: t.to(device)) if isinstance(low, torch.Tensor) else (lambda t: t)
    return Case(name, model, x.to(device), target.to(device), classes, move(low), move(high))


def weighted_kinds(model: nn.Module) -> list[str]:
    """``"linear"``/``"conv"``/``"other"`` per leaf layer, in forward order (the kinds ``methods.resolve`` takes)."""
    names = {nn.Linear: "linear", nn.Conv2d: "conv"}
    return [next((k for t, k in names.items() if isinstance(m, t)), "other") for m in leaf_layers(model)]


def leaf_layers(model: nn.Module) -> list[nn.Module]:
    """The modules without children, in registration order (the forward order for Sequential-like models)."""
    return [m for m in model.modules() if not list(m.children())]
