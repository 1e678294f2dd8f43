"""The benchmark models and inputs: lrpkit's MNIST MLP and CNN, VGG-16 as a plain ``torch.nn.Sequential``, and
torchvision's classifiers (graphs: residual sums, concatenations, depthwise convolutions, gates).

Every model comes as a :class:`Case`: the module, a batch of inputs, per-sample target classes and the input
bounds (low, high) that the zB rule uses on the first layer. Weights are random (seeded): speed and
agreement between implementations do not depend on training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import lrpkit

TORCHVISION = (
    "alexnet",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet50",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "googlenet",
    "squeezenet1_1",
    "shufflenet_v2_x0_5",
    "regnet_y_400mf",
    "convnext_tiny",
)
"""The torchvision classifiers without attention (issue 9's list); ``vgg16`` alone means the plain Sequential
VGG-16 below, ``tv_vgg16`` torchvision's."""
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


def torchvision_model(name: str, seed: int = 0) -> nn.Module:
    """A torchvision classifier with random weights (seeded), in eval mode; ``googlenet`` without aux logits."""
    import torchvision

    options = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torchvision.models.get_model(name, weights=None, **options).eval()


def is_torchvision(name: str) -> bool:
    """``tv_vgg16`` and every name of :data:`TORCHVISION` but ``vgg16`` (the plain Sequential here)."""
    return name.startswith("tv_") or (name in TORCHVISION and name != "vgg16")


def imagenet_inputs(batch: int, size: int, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Uniform pixels in [0, 1], ImageNet-normalised, ``(batch, 3, size, size)``."""
    pixels = torch.rand(batch, 3, size, size, generator=generator, dtype=dtype)
    mean, std = (torch.tensor(v, dtype=dtype).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (pixels - mean) / std


def make_case(name: str, batch: int, size: int = 224, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Case:
    """Builds ``"mlp"``, ``"cnn"`` (lrpkit Networks, MNIST inputs in [0, 1]), ``"vgg16"`` (the Sequential above)
    or a torchvision classifier (:data:`TORCHVISION`, ``tv_vgg16``), ImageNet inputs ``size`` x ``size``."""
    generator = torch.Generator().manual_seed(1)
    if name in ("mlp", "cnn"):
        model: nn.Module = lrpkit.ARCHITECTURES[name](seed=0).eval()
        x = torch.rand(batch, 1, 28, 28, generator=generator, dtype=dtype)
        low, high = model.bounds  # type: ignore[union-attr]
        classes = 10
    elif name == "vgg16" or is_torchvision(name):
        model = vgg16(seed=0) if name == "vgg16" else torchvision_model(name.removeprefix("tv_"))
        x = imagenet_inputs(batch, size, dtype, generator)
        low, high = image_bounds(dtype)
        classes = 1000
    else:
        raise ValueError(f"unknown model {name!r}; valid: mlp, cnn, vgg16, tv_vgg16, {', '.join(TORCHVISION[1:])}")
    target = torch.randint(classes, (batch,), generator=generator)
    model = model.to(device=device, dtype=dtype)
    move = (lambda t: t.to(device)) if isinstance(low, torch.Tensor) else (lambda t: t)
    return Case(name, model, x.to(device), target.to(device), classes, move(low), move(high))


def zero_biases(model: nn.Module) -> nn.Module:
    """Every bias zeroed in place (Linear/Conv/norm ``bias`` parameters, BatchNorm's ``running_mean``): the model
    is then a bias-free function whose logits LRP-0 must conserve exactly."""
    with torch.no_grad():
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                module.running_mean.zero_()
    return model
