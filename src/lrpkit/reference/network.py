"""The reference network: layer specs (JSON dicts, as ``Network.spec()`` writes them) plus NumPy weights.

Weights are named like the torch ``state_dict``: ``body.{i}.weight`` / ``body.{i}.bias``, Linear ``(out, in)``,
Conv ``(out, in, k, k)``. Every computation runs in the dtype of ``x`` (float32 or float64).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..composites import resolve
from ..errors import InputError, SpecError
from . import layers as L
from .targets import class_filter, one_hot

Array = np.ndarray
Shape = tuple[int, ...]
MAXPOOL_MODES = ("winner", "proportional")


@dataclass(frozen=True, eq=False)
class ReferenceNetwork:
    """A feed-forward network in plain NumPy: ``forward``, ``activations``, ``lrp``, ``layerwise_lrp``."""

    layers: tuple[L.Layer, ...]
    kinds: tuple[str, ...]  # per layer: "linear", "conv", or the lower-cased layer type
    input_shape: Shape
    classes: int
    bounds: tuple[float, float]  # the Format layer's (low, high): zB defaults

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], weights: Mapping[str, Any]) -> ReferenceNetwork:
        """Builds the twin of ``Network.from_spec(spec)`` holding ``weights`` (NumPy arrays by state_dict name)."""
        return _build(spec, weights)

    # -- forward --------------------------------------------------------------------------------

    def check_input(self, x: Any) -> Array:
        """``x`` as a float ``(N, *input_shape)`` array, or :class:`InputError` naming the problem."""
        if not isinstance(x, np.ndarray):
            raise InputError(f"x must be a NumPy array, got {type(x).__name__}")
        if x.dtype not in (np.float32, np.float64):
            raise InputError(f"x must be float32 or float64, got dtype {x.dtype}")
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(self.input_shape):
            raise InputError(f"x has shape {x.shape}; expected (N, {', '.join(map(str, self.input_shape))})")
        if not np.isfinite(x).all():
            raise InputError("x contains NaN or Inf values")
        return x.reshape(x.shape[0], *self.input_shape)

    def activations(self, x: Array) -> list[Array]:
        """Every layer's output, ``[x, layer0(x), ..., logits]`` (len(layers) + 1 arrays)."""
        out = [self.check_input(x)]
        for layer in self._in_dtype(x.dtype):
            out.append(layer.forward(out[-1]))
        return out

    def forward(self, x: Array) -> Array:
        """The logits, ``(N, classes)``."""
        return self.activations(x)[-1]

    __call__ = forward

    # -- relevance ------------------------------------------------------------------------------

    def layerwise_lrp(
        self, x: Array, target: Any, method: Any = "simple", bounds: Any = None, maxpool: str = "winner"
    ) -> list[Array]:
        """Relevance at every layer boundary: ``R[k]`` at the input of layer ``k``, ``R[-1]`` = the start.

        ``R[-1] = logits * filter`` (``relu(logits) * filter`` for ``deeptaylor``). With ``target="all"``
        every entry gets a class axis: ``(N, classes, *shape)``.
        """
        acts = self.activations(x)
        plan = resolve(method, self.kinds)
        if maxpool not in MAXPOOL_MODES:
            raise SpecError(f"maxpool must be one of {MAXPOOL_MODES}, got {maxpool!r}")
        top = np.maximum(acts[-1], 0) if plan.rectify else acts[-1]
        options = [L.Options(rule, self.bounds if bounds is None else bounds, maxpool) for rule in plan.rules]
        if isinstance(target, str) and target == "all":
            eye = [one_hot(np.full(len(top), c), self.classes, top.dtype) for c in range(self.classes)]
            runs = [self._propagate(acts, top * f, options) for f in eye]
            return [np.stack(per_class, axis=1) for per_class in zip(*runs, strict=True)]
        return self._propagate(acts, top * class_filter(target, acts[-1]), options)

    def lrp(self, x: Array, target: Any, method: Any = "simple", **kwargs: Any) -> Array:
        """Input relevance in the shape of ``x`` (``(N, classes, *x.shape[1:])`` for ``target="all"``)."""
        R = self.layerwise_lrp(x, target, method, **kwargs)[0]
        lead = R.shape[: R.ndim - len(self.input_shape)]
        return R.reshape(*lead, *x.shape[1:])

    def _propagate(self, acts: list[Array], top: Array, options: list[L.Options]) -> list[Array]:
        relevance = [top]
        for k in reversed(range(len(self.layers))):
            layer = self._layer_in(acts[k].dtype, k)
            relevance.append(layer.relevance(acts[k], relevance[-1], options[k]))
        return relevance[::-1]

    # -- helpers --------------------------------------------------------------------------------

    def _layer_in(self, dtype: Any, k: int) -> L.Layer:
        layer = self.layers[k]
        if isinstance(layer, (L.Linear, L.Conv)) and layer.weight.dtype != dtype:
            return dataclasses.replace(layer, weight=layer.weight.astype(dtype), bias=layer.bias.astype(dtype))
        return layer

    def _in_dtype(self, dtype: Any) -> list[L.Layer]:
        return [self._layer_in(dtype, k) for k in range(len(self.layers))]

    def __repr__(self) -> str:
        body = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"ReferenceNetwork(input_shape={self.input_shape}, classes={self.classes}){body}"


# -- building from a spec -------------------------------------------------------------------------

ALIASES = {"FirstLinear": "Linear", "NextLinear": "Linear"} | dict.fromkeys(
    ["FirstConvolution", "NextConvolution", "FirstConvolutional", "NextConvolutional"], "Conv"
)


POOLS = {"SumPool": L.SumPool, "AvgPool": L.AvgPool, "MaxPool": L.MaxPool}
IMAGE_LAYERS = ("Pad", "Conv", *POOLS)
KNOWN = ("Format", "NoFormat", "Dropout", "ReLU", "Flatten", "Linear", *IMAGE_LAYERS)


def _build(spec: Mapping[str, Any], weights: Mapping[str, Any]) -> ReferenceNetwork:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("layers"), list) or not spec["layers"]:
        raise SpecError("a network spec must be an object with a non-empty 'layers' list")
    shape = _input_shape(spec)
    bounds = _bounds(spec["layers"][0])
    built, kinds = [], []
    for i, entry in enumerate(spec["layers"]):
        kind, params = _parse(entry, i)
        try:
            layer, shape = _make(kind, params, shape, bounds, weights, i)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, SpecError):
                raise
            raise SpecError(f"layer {i} ({kind}): bad or missing parameter: {err!r}") from None
        built.append(layer)
        kinds.append(kind.lower())
    classes = int(spec.get("classes", 10))
    if shape != (classes,):
        raise SpecError(f"the last layer outputs shape {shape}, expected ({classes},) logits")
    return ReferenceNetwork(tuple(built), tuple(kinds), _input_shape(spec), classes, bounds)


def _parse(entry: Any, i: int) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        raise SpecError(f"layer {i}: expected an object with a 'type' key, got {entry!r}")
    params = {k: v for k, v in entry.items() if k != "type"}
    return ALIASES.get(entry["type"], entry["type"]), params


def _bounds(first: Any) -> tuple[float, float]:
    if isinstance(first, Mapping) and first.get("type") == "Format":
        return float(first.get("low", -1.0)), float(first.get("high", 1.0))
    return 0.0, 1.0


def _make(kind: str, p: dict[str, Any], shape: Shape, bounds: tuple[float, float], weights: Mapping[str, Any], i: int):
    """One reference layer and its output shape (per sample)."""
    if kind == "Format":
        return L.Format(float(p.get("low", -1.0)), float(p.get("high", 1.0))), shape
    if kind in ("NoFormat", "Dropout"):
        return L.Identity(), shape
    if kind == "ReLU":
        return L.ReLU(), shape
    if kind == "Flatten":
        return L.Flatten(), (math.prod(shape),)
    if kind == "Linear":
        w, b = _weights(weights, i, (int(p["units"]), math.prod(shape)))
        return L.Linear(w, b, shape), (int(p["units"]),)
    if kind not in IMAGE_LAYERS:
        raise SpecError(f"layer {i}: the NumPy reference has no layer type {kind!r}; known: {', '.join(KNOWN)}")
    _need_image(kind, shape, i)
    if kind == "Pad":
        pixels, value = int(p["pixels"]), p.get("value")
        layer = L.Pad(pixels, bounds[0] if value is None else float(value))
        return layer, (shape[0], shape[1] + 2 * pixels, shape[2] + 2 * pixels)
    if kind == "Conv":
        k, stride, pad = int(p["kernel_size"]), int(p.get("stride", 1)), int(p.get("padding", 0))
        w, b = _weights(weights, i, (int(p["out_channels"]), shape[0], k, k))
        size = tuple(L.out_size(s + 2 * pad, k, stride) for s in shape[1:])
        return L.Conv(w, b, stride, pad, (shape[1], shape[2])), (w.shape[0], *size)
    k, stride = int(p.get("kernel", 2)), int(p.get("stride", 2))
    return POOLS[kind](k, stride), (shape[0], *(L.out_size(s, k, stride) for s in shape[1:]))


def _need_image(kind: str, shape: Shape, i: int) -> None:
    if len(shape) != 3:
        raise SpecError(f"layer {i} ({kind}) needs an image input (C, H, W), got shape {shape}")


def _weights(weights: Mapping[str, Any], i: int, shape: Shape) -> tuple[Array, Array]:
    """``body.{i}.weight`` (of ``shape``) and ``body.{i}.bias`` (of ``shape[0]``) as NumPy arrays."""
    out = []
    for name, expected in ((f"body.{i}.weight", shape), (f"body.{i}.bias", shape[:1])):
        if name not in weights:
            raise SpecError(f"layer {i}: weight {name!r} is missing (have: {', '.join(sorted(weights)) or 'none'})")
        value = np.asarray(weights[name])
        if value.shape != expected:
            raise SpecError(f"layer {i}: {name!r} has shape {value.shape}, expected {expected}")
        out.append(value)
    return out[0], out[1]


def _input_shape(spec: Mapping[str, Any]) -> Shape:
    return tuple(int(s) for s in spec.get("input_shape", (1, 28, 28)))
