"""The reference network: layer specs (JSON dicts, as ``Network.spec()`` writes them) built into lrpkit's node
list by the reference's own code, plus NumPy weights, run by the NumPy interpreter.

Weights are named like the torch ``state_dict``: ``body.{i}.weight`` / ``body.{i}.bias``, Linear ``(out, in)``,
Conv ``(out, in, k, k)``. Every computation runs in the dtype of ``x`` (float32 or float64).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.graph import Graph, Node
from ..errors import InputError, SpecError
from .interpreter import ReferenceGraph, check_array
from .layers import Conv, Linear

Array = np.ndarray
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Described:
    """A layer without weights, as the per-layer reports name it."""

    text: str

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True, eq=False)
class ReferenceNetwork:
    """A feed-forward network in plain NumPy: ``forward``, ``activations``, ``lrp``, ``layerwise_lrp``."""

    twin: ReferenceGraph
    layers: tuple[Any, ...]  # per layer: its weighted twin layer (Linear/Conv) or a description
    entering: tuple[str, ...]  # per layer: the node whose value enters it; then the output node
    input_shape: Shape
    classes: int
    bounds: tuple[float, float]  # the Format layer's (low, high)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], weights: Mapping[str, Any]) -> ReferenceNetwork:
        """Builds the twin of ``Network.from_spec(spec)`` holding ``weights`` (NumPy arrays by state_dict name)."""
        return _Builder(spec, weights).build()

    # -- forward --------------------------------------------------------------------------------

    def check_input(self, x: Any) -> Array:
        """``x`` as a float ``(N, *input_shape)`` array, or :class:`InputError` naming the problem."""
        x = check_array(x)
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(self.input_shape):
            raise InputError(f"x has shape {x.shape}; expected (N, {', '.join(map(str, self.input_shape))})")
        return x.reshape(x.shape[0], *self.input_shape)

    def activations(self, x: Array) -> list[Array]:
        """Every layer's output, ``[x, layer0(x), ..., logits]`` (len(layers) + 1 arrays)."""
        values = self.twin.values(self.check_input(x))
        return [values[name] for name in self.entering]

    def forward(self, x: Array) -> Array:
        """The logits, ``(N, classes)``."""
        return self.activations(x)[-1]

    __call__ = forward

    # -- relevance ------------------------------------------------------------------------------

    def layerwise_lrp(
        self, x: Array, target: Any, method: Any = "simple", bounds: Any = None, maxpool: str = "winner"
    ) -> list[Array]:
        """Relevance at every layer boundary: ``R[k]`` entering layer ``k``, ``R[-1]`` = ``logits * filter``
        (``relu(logits) * filter`` for ``deeptaylor``); ``target="all"`` adds a class axis: ``(N, C, *shape)``.
        ``bounds``: the zB bounds of the input (default ``[0, 1]``, which the Format layer maps to its own)."""
        layers = [f"body.{i}" for i in range(len(self.layers))]
        found = self.twin.layerwise_lrp(self.check_input(x), target, method, bounds or (0.0, 1.0), maxpool, layers)
        return [found[name] for name in self.entering]

    def lrp(self, x: Array, target: Any, method: Any = "simple", **kwargs: Any) -> Array:
        """Input relevance in the shape of ``x`` (``(N, classes, *x.shape[1:])`` for ``target="all"``)."""
        R = self.layerwise_lrp(x, target, method, **kwargs)[0]
        lead = R.shape[: R.ndim - len(self.input_shape)]
        return R.reshape(*lead, *x.shape[1:])

    def __repr__(self) -> str:
        body = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"ReferenceNetwork(input_shape={self.input_shape}, classes={self.classes}){body}"


# -- building from a spec -------------------------------------------------------------------------

ALIASES = {"FirstLinear": "Linear", "NextLinear": "Linear"} | dict.fromkeys(
    ["FirstConvolution", "NextConvolution", "FirstConvolutional", "NextConvolutional"], "Conv"
)
POOLS = ("SumPool", "AvgPool", "MaxPool")
IMAGE_LAYERS = ("Pad", "Conv", *POOLS)
KNOWN = ("Format", "NoFormat", "Dropout", "ReLU", "Flatten", "Linear", "BatchNorm", "Residual", *IMAGE_LAYERS)
BATCHNORM_EPS = 1e-5
"""torch's default, which lrpkit's BatchNorm spec keeps."""


class _Builder:
    """Turns a spec into nodes, one layer at a time, each layer's nodes named ``body.{i}.*``."""

    def __init__(self, spec: Mapping[str, Any], weights: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
            raise SpecError("a network spec must be an object with a non-empty 'layers' list")
        self.spec, self.weights = spec, weights
        self.input_shape = tuple(int(s) for s in spec.get("input_shape", (1, 28, 28)))
        self.bounds = _bounds(spec["layers"][0])
        self.nodes: list[Node] = [Node("x", "input")]
        self.constants: dict[str, Array] = {}
        self.tail, self.shape = "x", self.input_shape

    def build(self) -> ReferenceNetwork:
        layers, entering = [], []
        for i, entry in enumerate(self.spec["layers"]):
            entering.append(self.tail)
            layers.append(self._entry(entry, f"body.{i}", f"layer {i}"))
        classes = int(self.spec.get("classes", 10))
        if self.shape != (classes,):
            raise SpecError(f"the last layer outputs shape {self.shape}, expected ({classes},) logits")
        graph = Graph(tuple(self.nodes), "x", self.tail)
        twin = ReferenceGraph(graph, self.constants)
        return ReferenceNetwork(twin, tuple(layers), (*entering, self.tail), self.input_shape, classes, self.bounds)

    def _entry(self, entry: Any, path: str, where: str) -> Any:
        kind, params = _parse(entry, where)
        try:
            return self._layer(kind, params, path, where)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, SpecError):
                raise
            raise SpecError(f"{where} ({kind}): bad or missing parameter: {err!r}") from None

    def _add(
        self, path: str, op: str, inputs: tuple[str | None, ...] = (), out: Shape | None = None, **params: Any
    ) -> None:
        """A node of the layer at ``path`` reading the current tail (and ``inputs``); ``out``: its per-sample shape."""
        name = f"{path}.{op}_{len(self.nodes)}"
        self.nodes.append(Node(name, op, (self.tail, *inputs), params, module=path))
        self.tail, self.shape = name, out if out is not None else self.shape

    def _flatten(self, path: str) -> None:
        self._add(path, "reshape", out=(math.prod(self.shape),), shape=(-1, math.prod(self.shape)))

    def _constant(self, name: str, value: Array) -> str:
        self.nodes.append(Node(name, "constant"))
        self.constants[name] = value
        return name

    def _layer(self, kind: str, p: dict[str, Any], path: str, where: str) -> Any:
        """The nodes of one layer; returns how reports name it."""
        if kind == "Format":
            low, high = float(p.get("low", -1.0)), float(p.get("high", 1.0))
            self._add(path, "mul", other=high - low)
            self._add(path, "add", scales=(1.0,), other=low)
            return Described(f"Format(low={low}, high={high})")
        if kind in ("NoFormat", "Dropout"):
            return Described("Identity()")
        if kind == "ReLU":
            self._add(path, "activation", fn="relu")
            return Described("ReLU()")
        if kind == "Flatten":
            self._flatten(path)
            return Described("Flatten()")
        if kind == "Linear":
            return self._linear(path, int(p["units"]), where)
        if kind == "BatchNorm":
            return self._batch_norm(path, where)
        if kind == "Residual":
            return self._residual(p, path, where)
        if kind not in IMAGE_LAYERS:
            raise SpecError(f"{where}: the NumPy reference has no layer type {kind!r}; known: {', '.join(KNOWN)}")
        if len(self.shape) != 3:
            raise SpecError(f"{where} ({kind}) needs an image input (C, H, W), got shape {self.shape}")
        if kind == "Pad":
            pixels, value = int(p["pixels"]), p.get("value")
            value = self.bounds[0] if value is None else float(value)
            c, h, w = self.shape
            self._add(path, "pad", out=(c, h + 2 * pixels, w + 2 * pixels), pad=(pixels,) * 4, value=value)
            return Described(f"Pad(pixels={pixels}, value={value})")
        if kind == "Conv":
            geometry = (
                int(p["out_channels"]),
                int(p["kernel_size"]),
                int(p.get("stride", 1)),
                int(p.get("padding", 0)),
            )
            return self._conv(path, *geometry, where)
        return self._pool(path, kind, int(p.get("kernel", 2)), int(p.get("stride", 2)))

    def _linear(self, path: str, units: int, where: str) -> Linear:
        w, b = self._weights(path, (units, math.prod(self.shape)), where)
        self._flatten(path)
        inputs = (self._constant(f"{path}.weight", w), self._constant(f"{path}.bias", b))
        self._add(path, "linear", inputs, (units,))
        return Linear(w, b)

    def _conv(self, path: str, out: int, k: int, stride: int, pad: int, where: str) -> Conv:
        c, h, w = self.shape
        weight, bias = self._weights(path, (out, c, k, k), where)
        size = ((h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        inputs = (self._constant(f"{path}.weight", weight), self._constant(f"{path}.bias", bias))
        self._add(path, "conv", inputs, (out, *size), stride=(stride,) * 2, padding=(pad,) * 2, dilation=(1, 1),
                  groups=1, transposed=False, output_padding=(0, 0))  # fmt: skip
        return Conv(weight, bias, (stride,) * 2, (pad,) * 2, (h, w))

    def _batch_norm(self, path: str, where: str) -> Described:
        names = ("weight", "bias", "running_mean", "running_var")
        inputs = tuple(
            self._constant(f"{path}.{n}", self._tensor(f"{path}.{n}", (self.shape[0],), where)) for n in names
        )
        self._add(path, "batch_norm", inputs, eps=BATCHNORM_EPS)
        return Described("BatchNorm()")

    def _residual(self, p: dict[str, Any], path: str, where: str) -> Described:
        entering = self.tail, self.shape
        for k, entry in enumerate(p["body"]):
            self._entry(entry, f"{path}.body.{k}", f"{where} body layer {k}")
        body, shape = self.tail, self.shape
        self.tail, self.shape = entering
        for k, entry in enumerate(p.get("shortcut") or ()):
            self._entry(entry, f"{path}.shortcut.{k}", f"{where} shortcut layer {k}")
        if self.shape != shape:
            raise SpecError(f"{where} (Residual): the body outputs {shape} but the shortcut {self.shape}")
        self._add(path, "add", (body,), shape, scales=(1.0, 1.0), other=0.0)
        return Described(f"Residual(body={len(p['body'])} layers, shortcut={len(p.get('shortcut') or ())} layers)")

    def _pool(self, path: str, kind: str, k: int, stride: int) -> Described:
        c, h, w = self.shape
        size = (c, (h - k) // stride + 1, (w - k) // stride + 1)
        window = {"kernel_size": (k, k), "stride": (stride, stride), "padding": (0, 0), "ceil_mode": False}
        if kind == "MaxPool":
            self._add(path, "max_pool", out=size, dilation=(1, 1), **window)
        else:
            divisor = k if kind == "SumPool" else None  # sum pooling: the sum of each window / kernel
            self._add(path, "avg_pool", out=size, count_include_pad=True, divisor_override=divisor, **window)
        return Described(f"{kind}(kernel={k}, stride={stride})")

    def _weights(self, path: str, shape: Shape, where: str) -> tuple[Array, Array]:
        """``{path}.weight`` (of ``shape``) and ``{path}.bias`` (of ``shape[0]``) as NumPy arrays."""
        return self._tensor(f"{path}.weight", shape, where), self._tensor(f"{path}.bias", shape[:1], where)

    def _tensor(self, name: str, expected: Shape, where: str) -> Array:
        if name not in self.weights:
            have = ", ".join(sorted(self.weights)) or "none"
            raise SpecError(f"{where}: weight {name!r} is missing (have: {have})")
        value = np.asarray(self.weights[name])
        if value.shape != expected:
            raise SpecError(f"{where}: {name!r} has shape {value.shape}, expected {expected}")
        return value


def unknown_layers(spec: Mapping[str, Any]) -> list[str]:
    """The layer types of ``spec`` (Residual bodies and shortcuts included) that :meth:`ReferenceNetwork.from_spec`
    has no code for (the ViT's ``Tokens``, ``Encoder``, ``ClassToken``), each once; empty when it knows them all."""
    found: list[str] = []
    for i, entry in enumerate(spec.get("layers") or ()):
        kind, params = _parse(entry, f"layer {i}")
        if kind == "Residual":
            found += unknown_layers({"layers": [*params.get("body", ()), *(params.get("shortcut") or ())]})
        elif kind not in KNOWN:
            found.append(kind)
    return list(dict.fromkeys(found))


def _parse(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        raise SpecError(f"{where}: expected an object with a 'type' key, got {entry!r}")
    params = {k: v for k, v in entry.items() if k != "type"}
    return ALIASES.get(entry["type"], entry["type"]), params


def _bounds(first: Any) -> tuple[float, float]:
    if isinstance(first, Mapping) and first.get("type") == "Format":
        return float(first.get("low", -1.0)), float(first.get("high", 1.0))
    return 0.0, 1.0
