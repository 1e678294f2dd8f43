"""Layer specs: small immutable descriptions of a layer that build the matching torch module.

A spec knows its JSON form (``to_dict`` / ``layer_from_dict``), the shape it outputs for a given input
shape (with a clear :class:`SpecError` when it does not fit), and how to build its ``torch.nn`` module.
Shapes are per sample, without the batch dimension: ``(C, H, W)`` for images, ``(D,)`` for vectors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .. import checks
from ..errors import SpecError

Shape = tuple[int, ...]
Bounds = tuple[float, float]


# -- torch modules of the layers torch does not have -------------------------------------------


class FormatModule(nn.Module):
    """Maps inputs in [0, 1] to [low, high]: ``x -> x * (high - low) + low``."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.high - self.low) + self.low

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


class Dense(nn.Linear):
    """``nn.Linear`` that flattens inputs of rank > 2 to ``(N, features)`` first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))


# -- specs --------------------------------------------------------------------------------------


def _integer(spec: LayerSpec, name: str, minimum: int = 1) -> None:
    """Checks ``spec.<name>`` (an integer >= minimum) and stores it as a plain int."""
    object.__setattr__(spec, name, checks.integer(getattr(spec, name), f"{type(spec).__name__}: {name}", minimum))


def _number(spec: LayerSpec, name: str, **limits: float) -> None:
    """Checks ``spec.<name>`` (a finite number within ``limits``) and stores it as a float."""
    object.__setattr__(spec, name, checks.number(getattr(spec, name), f"{type(spec).__name__}: {name}", **limits))


@dataclass(frozen=True)
class LayerSpec:
    """Base of all layer specs. ``weighted`` marks Linear and Conv (the layers LRP rules act on)."""

    weighted: ClassVar[bool] = False

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        raise NotImplementedError

    def parameter_count(self, shape: Shape) -> int:
        """How many parameters the layer has for inputs of ``shape`` (known before anything is allocated)."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Format(LayerSpec):
    """Maps inputs in [0, 1] to [low, high]; these bounds are the zB rule's default input bounds."""

    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        _number(self, "low")
        _number(self, "high")
        if not self.low < self.high:
            raise SpecError(f"Format: need finite low < high, got low={self.low!r}, high={self.high!r}")

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return FormatModule(self.low, self.high)


@dataclass(frozen=True)
class NoFormat(LayerSpec):
    """Identity: inputs stay in [0, 1] (so the zB bounds default to 0 and 1)."""

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.Identity()


@dataclass(frozen=True)
class Linear(LayerSpec):
    """Fully connected layer with ``units`` outputs; inputs of rank > 1 are flattened."""

    units: int
    weighted: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _integer(self, "units")

    def output_shape(self, shape: Shape) -> Shape:
        return (self.units,)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return Dense(math.prod(shape), self.units)

    def parameter_count(self, shape: Shape) -> int:
        return (math.prod(shape) + 1) * self.units


def _need_image(spec: LayerSpec, shape: Shape) -> None:
    if len(shape) != 3:
        raise SpecError(f"{type(spec).__name__} needs an image input (C, H, W), got shape {shape}")


def _window_output(spec: LayerSpec, shape: Shape, kernel: int, stride: int, padding: int = 0) -> Shape:
    _need_image(spec, shape)
    size = [(s + 2 * padding - kernel) // stride + 1 for s in shape[1:]]
    if min(size) < 1:
        raise SpecError(
            f"{spec}: the kernel ({kernel}x{kernel}) is larger than the padded input "
            f"({shape[1] + 2 * padding}x{shape[2] + 2 * padding})"
        )
    return (shape[0], *size)


@dataclass(frozen=True)
class Conv(LayerSpec):
    """2-D convolution (cross-correlation) with square kernels; no padding by default."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    weighted: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("out_channels", "kernel_size", "stride"):
            _integer(self, name)
        _integer(self, "padding", minimum=0)

    def output_shape(self, shape: Shape) -> Shape:
        _, h, w = _window_output(self, shape, self.kernel_size, self.stride, self.padding)
        return (self.out_channels, h, w)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.Conv2d(shape[0], self.out_channels, self.kernel_size, self.stride, self.padding)

    def parameter_count(self, shape: Shape) -> int:
        return (shape[0] * self.kernel_size**2 + 1) * self.out_channels


@dataclass(frozen=True)
class ReLU(LayerSpec):
    """Rectified linear unit."""

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.ReLU()


@dataclass(frozen=True)
class _Pool(LayerSpec):
    kernel: int = 2
    stride: int = 2

    def __post_init__(self) -> None:
        _integer(self, "kernel")
        _integer(self, "stride")

    def output_shape(self, shape: Shape) -> Shape:
        return _window_output(self, shape, self.kernel, self.stride)


@dataclass(frozen=True)
class SumPool(_Pool):
    """Sum pooling, output = sum of each block / kernel (0.5 x the sum of a 2x2 block, as in classic LRP)."""

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.AvgPool2d(self.kernel, self.stride, divisor_override=self.kernel)


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling."""

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.AvgPool2d(self.kernel, self.stride)


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling (a real max in the forward pass)."""

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.MaxPool2d(self.kernel, self.stride)


@dataclass(frozen=True)
class Flatten(LayerSpec):
    """Flattens each sample to a vector."""

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.Flatten()


@dataclass(frozen=True)
class Pad(LayerSpec):
    """Pads each image by ``pixels`` on every side with ``value`` (None: the Format's low bound)."""

    pixels: int
    value: float | None = None

    def __post_init__(self) -> None:
        _integer(self, "pixels", minimum=0)
        if self.value is not None:
            _number(self, "value")

    def output_shape(self, shape: Shape) -> Shape:
        _need_image(self, shape)
        return (shape[0], shape[1] + 2 * self.pixels, shape[2] + 2 * self.pixels)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.ConstantPad2d(self.pixels, bounds[0] if self.value is None else self.value)


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Dropout with probability ``p`` while training; the identity otherwise."""

    p: float = 0.5

    def __post_init__(self) -> None:
        _number(self, "p", minimum=0.0, below=1.0)

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.Dropout(self.p)


@dataclass(frozen=True)
class BatchNorm(LayerSpec):
    """Batch normalisation over the channels (``BatchNorm2d`` for images, ``BatchNorm1d`` for vectors).

    Explaining merges it into the Linear/Conv right before it, or passes relevance through it elsewhere.
    """

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])

    def parameter_count(self, shape: Shape) -> int:
        return 4 * shape[0]  # weight, bias, running mean and variance


class ResidualModule(nn.Module):
    """``body(x) + shortcut(x)`` (the shortcut: the identity, or e.g. a strided 1x1 conv)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


@dataclass(frozen=True)
class Residual(LayerSpec):
    """A residual block: ``body(x) + shortcut(x)``, each a sequence of layer specs (``shortcut=None``: the
    input itself). Put a ``ReLU()`` after it for ResNet's basic block."""

    body: tuple[LayerSpec, ...]
    shortcut: tuple[LayerSpec, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", _specs(self.body, "body"))
        if self.shortcut is not None:
            object.__setattr__(self, "shortcut", _specs(self.shortcut, "shortcut"))
        if not self.body:
            raise SpecError("Residual: the body needs at least one layer")

    def output_shape(self, shape: Shape) -> Shape:
        out = _chain_shape(self.body, shape, "body")
        other = _chain_shape(self.shortcut, shape, "shortcut") if self.shortcut else shape
        if out != other:
            raise SpecError(f"Residual: the body outputs {out} but the shortcut {other}; give a shortcut that matches")
        return out

    def parameter_count(self, shape: Shape) -> int:
        return sum(_chain_counts(self.body, shape)) + sum(_chain_counts(self.shortcut or (), shape))

    def build(self, shape: Shape, bounds: Bounds) -> nn.Module:
        body = _chain(self.body, shape, bounds)
        return ResidualModule(body, _chain(self.shortcut, shape, bounds) if self.shortcut else nn.Identity())

    def to_dict(self) -> dict[str, Any]:
        shortcut = [s.to_dict() for s in self.shortcut] if self.shortcut is not None else None
        return {"type": "Residual", "body": [s.to_dict() for s in self.body], "shortcut": shortcut}


def _specs(value: Any, name: str) -> tuple[LayerSpec, ...]:
    """A sequence of layer specs (objects or their dicts) as a tuple of specs."""
    if isinstance(value, (LayerSpec, dict)) or not isinstance(value, (list, tuple)):
        raise SpecError(f"Residual: {name} must be a list of layer specs, got {value!r}")
    return tuple(s if isinstance(s, LayerSpec) else layer_from_dict(s, k) for k, s in enumerate(value))


def _chain_shape(specs: tuple[LayerSpec, ...], shape: Shape, name: str) -> Shape:
    for k, spec in enumerate(specs):
        if isinstance(spec, (Format, NoFormat)):
            raise SpecError(f"Residual {name}: {type(spec).__name__} is only allowed as a network's first layer")
        try:
            shape = spec.output_shape(shape)
        except SpecError as err:
            raise SpecError(f"Residual {name} layer {k}: {err} (input shape {shape})") from None
    return shape


def _chain_counts(specs: tuple[LayerSpec, ...], shape: Shape) -> list[int]:
    counts = []
    for spec in specs:
        counts.append(spec.parameter_count(shape))
        shape = spec.output_shape(shape)
    return counts


def _chain(specs: tuple[LayerSpec, ...], shape: Shape, bounds: Bounds) -> nn.Sequential:
    modules = []
    for spec in specs:
        modules.append(spec.build(shape, bounds))
        shape = spec.output_shape(shape)
    return nn.Sequential(*modules)


# Names users of the classic LRP toolboxes know; the engine picks the first-layer rule by position.
FirstLinear = NextLinear = Linear
FirstConvolution = NextConvolution = FirstConvolutional = NextConvolutional = Conv

LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.__name__: cls
    for cls in (
        Format,
        NoFormat,
        Linear,
        Conv,
        ReLU,
        SumPool,
        AvgPool,
        MaxPool,
        Flatten,
        Pad,
        Dropout,
        BatchNorm,
        Residual,
    )
}


def _transformer_layers() -> None:
    from .transformer import TRANSFORMER_LAYERS

    LAYER_TYPES.update({cls.__name__: cls for cls in TRANSFORMER_LAYERS})


_transformer_layers()
ALIASES = {
    "FirstLinear": "Linear",
    "NextLinear": "Linear",
    "FirstConvolution": "Conv",
    "NextConvolution": "Conv",
    "FirstConvolutional": "Conv",
    "NextConvolutional": "Conv",
}


def layer_from_dict(data: Any, index: int | None = None) -> LayerSpec:
    """Parses one layer spec such as ``{"type": "Conv", "out_channels": 32, "kernel_size": 5}``."""
    where = f"layer {index}" if index is not None else "layer"
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise SpecError(f"{where}: expected an object with a 'type' key, got {data!r}")
    params = {k: v for k, v in data.items() if k != "type"}
    name = ALIASES.get(data["type"], data["type"])
    cls = LAYER_TYPES.get(name)
    if cls is None:
        known = ", ".join(sorted([*LAYER_TYPES, *ALIASES]))
        raise SpecError(f"{where}: unknown layer type {data['type']!r}; known types: {known}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise SpecError(f"{where} ({name}): unknown parameter(s) {unknown}; valid: {sorted(fields)}")
    try:
        return cls(**params)
    except TypeError as err:
        raise SpecError(f"{where} ({name}): {err}") from None
    except SpecError as err:
        raise SpecError(f"{where}: {err}") from None
