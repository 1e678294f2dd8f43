"""The Network class: a list of layer specs turned into a ``torch.nn.Module``, plus ready-made architectures."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checks
from .. import layers as L
from ..engine.inputs import check_tensor
from ..errors import InputError, SpecError

Shape = tuple[int, ...]


def _check_shape(shape: Any, name: str) -> Shape:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)) or not shape:
        raise SpecError(f"{name} must be a list of positive integers such as (1, 28, 28), got {shape!r}")
    return tuple(checks.positive_int(s, f"{name} {list(shape)!r}: each size") for s in shape)


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _gigabytes(count: int) -> str:
    return f"{count / 2**30:.3g} GiB"


class Network(nn.Module):
    """A feed-forward network from layer specs; ``net(x)`` gives the logits.

    If ``layers`` does not start with ``Format``/``NoFormat``, ``Format()`` (inputs mapped to [-1, 1]) is put
    in front. ``seed`` makes the weight initialisation reproducible without touching the global RNG.
    """

    def __init__(
        self,
        layers: Sequence[L.LayerSpec],
        input_shape: Sequence[int] = (1, 28, 28),
        classes: int = 10,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        specs = list(layers)
        for i, spec in enumerate(specs):
            if not isinstance(spec, L.LayerSpec):
                raise SpecError(f"layer {i}: expected a layer spec such as Linear(10), got {spec!r}")
        if not specs or not isinstance(specs[0], (L.Format, L.NoFormat)):
            specs.insert(0, L.Format())
        for i, spec in enumerate(specs[1:], start=1):
            if isinstance(spec, (L.Format, L.NoFormat)):
                raise SpecError(f"layer {i}: {type(spec).__name__} is only allowed as the first layer")
        self.specs: tuple[L.LayerSpec, ...] = tuple(specs)
        self.input_shape = _check_shape(input_shape, "input_shape")
        self.classes = checks.positive_int(classes, "classes")
        self.metadata: dict[str, Any] = {}
        self.shapes = self._infer_shapes()
        self._check_size()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(checks.seed(seed))
            self.body = nn.Sequential(*self._build())

    def _check_size(self) -> None:
        """:class:`SpecError` before anything is allocated when the float32 weights alone exceed the memory."""
        count = sum(s.parameter_count(shape) for s, shape in zip(self.specs, self.shapes, strict=False))
        memory = memory_bytes()
        if memory is not None and 4 * count > memory:
            raise SpecError(
                f"the network has {count:.3g} parameters ({_gigabytes(4 * count)} as float32), more than this "
                f"machine's memory ({_gigabytes(memory)}); check the layer sizes and input_shape"
            )

    def _build(self) -> list[nn.Module]:
        modules = []
        for i, (spec, shape) in enumerate(zip(self.specs, self.shapes, strict=False)):
            try:
                modules.append(spec.build(shape, self.bounds))
            except (RuntimeError, MemoryError) as err:  # allocation failures that the size check did not foresee
                raise SpecError(f"layer {i} ({spec!r}): cannot be built for input shape {shape} ({err})") from None
        return modules

    def _infer_shapes(self) -> list[Shape]:
        shapes = [self.input_shape]
        for i, spec in enumerate(self.specs):
            try:
                shapes.append(spec.output_shape(shapes[-1]))
            except SpecError as err:
                raise SpecError(f"layer {i}: {err} (input shape {shapes[-1]})") from None
        if shapes[-1] != (self.classes,):
            raise SpecError(
                f"the last layer outputs shape {shapes[-1]}, expected ({self.classes},) logits for "
                f"{self.classes} classes; end with Linear({self.classes}) or Conv + Flatten()"
            )
        return shapes

    @property
    def bounds(self) -> tuple[float, float]:
        """The input-domain bounds (low, high) after the Format layer: the zB rule's defaults."""
        first = self.specs[0]
        return (first.low, first.high) if isinstance(first, L.Format) else (0.0, 1.0)

    @property
    def lrp_layers(self) -> list[str]:
        """The module path of every layer, in order (the engine's per-layer method lists and relevance lists)."""
        return [f"body.{i}" for i in range(len(self.body))]

    lrp_bounds = (0.0, 1.0)
    """The input's bounds, the zB rule's default (the Format layer maps them to its own ``low``/``high``)."""

    @property
    def weighted_indices(self) -> list[int]:
        """Indices of the Linear and Conv layers."""
        return [i for i, spec in enumerate(self.specs) if spec.weighted]

    def check_input(self, x: Any) -> torch.Tensor:
        """Returns ``x`` as a ``(N, *input_shape)`` tensor, or raises :class:`InputError` naming the problem."""
        x = check_tensor(x, self)
        if math.prod(x.shape[1:]) != math.prod(self.input_shape):
            raise InputError(f"x has shape {tuple(x.shape)}; expected (N, {', '.join(map(str, self.input_shape))})")
        return x.reshape(x.shape[0], *self.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(x.shape[0], *self.input_shape))

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output, ``[x, layer0(x), ..., logits]`` (len(layers) + 1 tensors)."""
        out = [x.reshape(x.shape[0], *self.input_shape)]
        for module in self.body:
            out.append(module(out[-1]))
        return out

    def spec(self) -> dict[str, Any]:
        """The architecture as a JSON-ready dict (layers, input shape, classes)."""
        return {
            "layers": [s.to_dict() for s in self.specs],
            "input_shape": list(self.input_shape),
            "classes": self.classes,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any], seed: int | None = 0) -> Network:
        """Builds a network from :meth:`spec` output (as stored in ``model.json`` or an ``--arch`` file)."""
        if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
            raise SpecError("a network spec must be an object with a 'layers' list")
        specs = [L.layer_from_dict(d, i) for i, d in enumerate(spec["layers"])]
        return cls(specs, spec.get("input_shape", (1, 28, 28)), spec.get("classes", 10), seed=seed)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def summary(self) -> str:
        """A table of layers with output shapes and parameter counts."""
        rows = [f"{'#':>3}  {'layer':<58} {'output':<16} {'params':>9}"]
        for i, (spec, module) in enumerate(zip(self.specs, self.body, strict=True)):
            params = sum(p.numel() for p in module.parameters())
            rows.append(f"{i:>3}  {spec!r:<58} {self.shapes[i + 1]!s:<16} {params:>9}")
        rows.append(f"input {self.input_shape}, {self.classes} classes, {self.parameter_count()} parameters")
        return "\n".join(rows)

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, classes={self.classes}"

    # -- training, evaluation, files (see train.py and io.py) --------------------------------------

    def fit(self, data: Any, **kwargs: Any) -> Any:
        """Trains in place with Adam; see :func:`lrpkit.train.fit`."""
        from .train import fit

        return fit(self, data, **kwargs)

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, float]:
        """``{"accuracy": ..., "loss": ...}`` on a data split; see :func:`lrpkit.train.evaluate`."""
        from .train import evaluate

        return evaluate(self, data, **kwargs)

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Writes ``model.json`` + ``weights.safetensors`` atomically; see :func:`lrpkit.io.save`."""
        from .io import save

        return save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> Network:
        """Loads a model directory written by :meth:`save`; see :func:`lrpkit.io.load`."""
        from .io import load

        return load(path)

    # -- explaining (see lrp.py) ---------------------------------------------------------------------

    def lrp(self, x: torch.Tensor, target: Any, method: Any = "simple", **kwargs: Any) -> torch.Tensor:
        """The input relevance of ``x`` for ``target`` (x's shape); see :func:`lrpkit.lrp`."""
        from ..engine import lrp

        return lrp(self, x, target, method, **kwargs)

    def layerwise_lrp(self, x: torch.Tensor, target: Any, method: Any = "simple", **kwargs: Any) -> list:
        """Relevance at every layer boundary, ``R[0]`` input ... ``R[-1]`` readout; see :func:`lrpkit.layerwise_lrp`."""
        from ..engine import layerwise_lrp

        return layerwise_lrp(self, x, target, method, **kwargs)

    def conservation_check(self, heatmaps: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """Per sample ``|sum(heatmap) - sum(R)|`` (R: the readout relevance ``R[-1]`` or its total per sample)."""
        from ..engine import conservation_gap

        return conservation_gap(heatmaps, R)

    # -- the NumPy reference twin and the tutorial format (see reference/ and tutorial_format.py) -----

    def to_numpy(self) -> Any:
        """The NumPy twin (same layers, a copy of the weights); see :class:`lrpkit.reference.ReferenceNetwork`."""
        from ..reference import from_network

        return from_network(self)

    def test(self, x: torch.Tensor, method: Any = None, target: Any = "pred", atol: float | None = None, **kwargs: Any):
        """Compares torch and NumPy layer by layer: every output, or with ``method`` every layerwise relevance.

        Returns the per-layer report; raises :class:`lrpkit.reference.MismatchError` naming the first layer
        that differs by more than ``atol`` + ``rtol`` * its scale (left out: tolerances that fit the dtype,
        ``rtol = 10 sqrt(eps)``). ``bounds``/``maxpool`` go to both sides.

        A network with layers the NumPy layer twin has no code for (:func:`lrpkit.reference.unknown_layers`: the
        ViT's ``Tokens``, ``Encoder``, ``ClassToken``) is checked against the graph twin instead, node by node of
        the engine's graph (:func:`lrpkit.reference.check_model`): its report names nodes, not layers.
        """
        from ..reference import check_model, check_network, unknown_layers

        check = check_model if unknown_layers(self.spec()) else check_network
        return check(self, x, method, target, atol, **kwargs)

    def get_numpy_deeptaylor(self, x: Any, target: Any) -> tuple[Any, Any]:
        """``(heatmaps, R)`` as NumPy arrays: deep-Taylor input relevance (computed by the NumPy twin) and
        ``R = logits * target filter``."""
        from ..reference import deeptaylor

        return deeptaylor(self, x, target)

    def export_tutorial(self, path: str | Path, overwrite: bool = False) -> Path:
        """Writes the heatmapping.org tutorial text format; see :func:`lrpkit.tutorial_format.export_tutorial`."""
        from .tutorial import export_tutorial

        return export_tutorial(self, path, overwrite=overwrite)


# -- ready-made architectures -------------------------------------------------------------------


def mlp(**kwargs: Any) -> Network:
    """784-300-100-10 ReLU MLP (the classic LRP demo network)."""
    return Network([L.Format(), L.Linear(300), L.ReLU(), L.Linear(100), L.ReLU(), L.Linear(10)], **kwargs)


def cnn(**kwargs: Any) -> Network:
    """LeNet-like CNN: Conv 5x5x32, ReLU, SumPool, Conv 5x5x64, ReLU, SumPool, Linear 256, ReLU, Linear 10.

    28x28 -> 24x24x32 -> 12x12x32 -> 8x8x64 -> 4x4x64 (1024 features) -> 256 -> 10.
    """
    layers = [
        L.Format(),
        L.Conv(32, 5),
        L.ReLU(),
        L.SumPool(),
        L.Conv(64, 5),
        L.ReLU(),
        L.SumPool(),
        L.Linear(256),
        L.ReLU(),
        L.Linear(10),
    ]
    return Network(layers, **kwargs)


def tutorial_mlp(**kwargs: Any) -> Network:
    """The heatmapping.org tutorial MLP: 784-300-100-10 with ReLUs, inputs in [-1, 1]."""
    return mlp(**kwargs)


def tutorial_cnn(**kwargs: Any) -> Network:
    """The heatmapping.org tutorial CNN: pad 2 (with -1) to 32x32, then conv 5x5x10, 5x5x25, 4x4x100, 1x1x10.

    Each of the first three convs is followed by ReLU and 2x2 sum pooling; the 1x1x10 output is flattened.
    """
    layers = [
        L.Format(),
        L.Pad(2),
        L.Conv(10, 5),
        L.ReLU(),
        L.SumPool(),
        L.Conv(25, 5),
        L.ReLU(),
        L.SumPool(),
        L.Conv(100, 4),
        L.ReLU(),
        L.SumPool(),
        L.Conv(10, 1),
        L.Flatten(),
    ]
    return Network(layers, **kwargs)


def resnet(**kwargs: Any) -> Network:
    """A small ResNet for MNIST: a 5x5 conv stem with BatchNorm and sum pooling, a basic block at 16 channels,
    a strided one at 32 with a 1x1 projection shortcut, global average pooling, Linear 10.

    28x28 -> 24x24x16 -> 12x12x16 -> (block) 12x12x16 -> (block, stride 2) 6x6x32 -> 32 -> 10.
    """

    def block(channels: int, stride: int = 1) -> list[L.LayerSpec]:
        body = (L.Conv(channels, 3, stride, 1), L.BatchNorm(), L.ReLU(), L.Conv(channels, 3, 1, 1), L.BatchNorm())
        shortcut = (L.Conv(channels, 1, stride), L.BatchNorm()) if stride > 1 else None
        return [L.Residual(body, shortcut), L.ReLU()]

    layers = [L.Format(), L.Conv(16, 5), L.BatchNorm(), L.ReLU(), L.SumPool(), *block(16), *block(32, 2)]
    return Network([*layers, L.AvgPool(6, 6), L.Linear(10)], **kwargs)


def vit(**kwargs: Any) -> Network:
    """A small vision transformer for MNIST: a 3x3 conv stem (stride 2) with ReLU, 2x2 patch tokens of width 64
    with a class token and position embeddings, two pre-LN encoder blocks (4 heads, MLP 128), the class token's
    LayerNorm, Linear 10.

    28x28 -> 14x14x32 -> 49 + 1 tokens x 64 -> (2 blocks) -> 64 -> 10.
    """
    from .transformer import ClassToken, Encoder, Tokens

    layers = [L.Format(), L.Conv(32, 3, 2, 1), L.ReLU(), Tokens(64, 2), Encoder(4, 128), Encoder(4, 128)]
    return Network([*layers, ClassToken(), L.Linear(10)], **kwargs)


ARCHITECTURES = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet": resnet,
    "vit": vit,
    "tutorial_mlp": tutorial_mlp,
    "tutorial_cnn": tutorial_cnn,
}
