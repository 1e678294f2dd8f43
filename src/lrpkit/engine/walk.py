"""Layer-wise Relevance Propagation for lrpkit Networks and plain ``torch.nn.Sequential`` models.

The forward activations are recorded once (``torch.inference_mode``: no autograd, no hooks, the model is
never changed), then relevance walks back layer by layer with explicit transposed ops: Linear/Conv through
their rule (:mod:`lrpkit.rules`), pooling proportionally (max pooling winner-take-all by default), everything
else passes relevance through. Every target (one class, or all of them) shares the one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..composites import resolve
from ..errors import InputError, SpecError
from ..model.layers import Dense, FormatModule, Pad2d, SumPool2d
from ..model.network import Network
from ..rules import AlphaBeta, Gamma, Rule, ZBox
from .inputs import check_tensor
from .targets import start_relevance
from .weighted import STABILIZER, Recorded, WeightedLayer, propagate, ratio, stab

WEIGHTED = (nn.Linear, nn.Conv2d)
BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)
PASS_THROUGH = (FormatModule, nn.ReLU, nn.Flatten, nn.Dropout, nn.Identity, *BATCHNORM)
POOLS = (SumPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d)
SUPPORTED = (*WEIGHTED, *PASS_THROUGH, *POOLS, Pad2d)
KEEPS_SIGN = (nn.Flatten, nn.Dropout, nn.Identity, *POOLS)  # a >= 0 in, a >= 0 out
MAXPOOL_MODES = ("winner", "proportional")
SIGNED = (AlphaBeta, Gamma)  # rules that split inputs by sign (and skip the a- half for a >= 0)


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of the walk: the module, its index, its kind for ``resolve`` and, for Linear/Conv, the
    :class:`WeightedLayer` (with a BatchNorm that directly follows merged in)."""

    index: int
    module: nn.Module
    kind: str
    weighted: WeightedLayer | None = None


@dataclass(frozen=True)
class Trace:
    """The recorded forward pass: ``activations[i]`` is the input of layer ``i`` (the last: the logits),
    ``z[i]`` the bias-free output of weighted layer ``i``, ``winners[i]`` the arg-max indices of max pooling,
    ``nonneg[i]`` whether ``activations[i] >= 0`` is known from the structure (e.g. after a ReLU)."""

    activations: list[Tensor | None]
    z: dict[int, Tensor]
    winners: dict[int, Tensor]
    nonneg: list[bool]


# -- public API ------------------------------------------------------------------------------------


def lrp(model: nn.Module, x: Tensor, target: Any, method: Any = "simple", **options: Any) -> Tensor:
    """The input relevance (heatmap) of ``x`` for ``target``: ``x``'s shape, or ``(N, C, *x.shape[1:])`` for
    ``target="all"``. ``model``: an lrpkit Network or a ``torch.nn.Sequential``; ``method``: a rule, preset
    or per-layer list (see :func:`lrpkit.methods.resolve`); options as in :func:`layerwise_lrp`."""
    relevance, every = _explain(model, x, target, method, keep=False, **options)
    shape = (x.shape[0], relevance[0].shape[0], *x.shape[1:]) if every else tuple(x.shape)
    return _public(relevance[0], every).reshape(shape)


def layerwise_lrp(
    model: nn.Module,
    x: Tensor,
    target: Any,
    method: Any = "simple",
    *,
    bounds: tuple[Any, Any] | None = None,
    maxpool: str = "winner",
) -> list[Tensor]:
    """Relevance at every layer boundary: ``len(layers) + 1`` tensors, ``R[0]`` in input space, ``R[-1]``
    in readout space (``logits * filter``), each ``(N, *shape)`` or ``(N, C, *shape)`` for ``"all"``.

    ``target``: an int class, class ids per sample, a float filter ``(C,)`` / ``(N, C)``, ``"pred"``,
    ``"all"`` or None (zero relevance). ``bounds``: ``(low, high)`` for zB rules without their own (default:
    the Network's Format bounds; numbers or tensors per channel/pixel). ``maxpool``: ``"winner"`` (all of
    ``R_j`` to the arg-max) or ``"proportional"`` (as sum pooling). A BatchNorm right after a Linear/Conv
    is merged into it; relevance passes it unchanged. The network is explained as in eval mode.
    """
    relevance, every = _explain(model, x, target, method, keep=True, bounds=bounds, maxpool=maxpool)
    return [_public(r, every) for r in relevance]


def conservation_gap(heatmaps: Tensor, relevance: Tensor) -> Tensor:
    """Per sample ``|sum(heatmap) - sum(relevance)|``: how much relevance the explanation lost or created."""
    if heatmaps.shape[0] != relevance.shape[0]:
        raise InputError(f"heatmaps ({heatmaps.shape[0]} samples) and relevance ({relevance.shape[0]}) differ")
    return (heatmaps.flatten(1).sum(1) - relevance.reshape(relevance.shape[0], -1).sum(1)).abs()


def _explain(
    model: nn.Module, x: Any, target: Any, method: Any, *, keep: bool, bounds: Any = None, maxpool: str = "winner"
) -> tuple[list[Tensor], bool]:
    if maxpool not in MAXPOOL_MODES:
        raise SpecError(f"maxpool must be one of {MAXPOOL_MODES}, got {maxpool!r}")
    layers, x, default_bounds = _prepare(model, x)
    plan = resolve(method, [layer.kind for layer in layers])
    bounds = bounds if bounds is not None else default_bounds
    with torch.inference_mode():
        trace = _record(layers, x)
        R, every = start_relevance(trace.activations[-1], target, plan.rectify)
        relevance = _walk(layers, trace, plan.rules, R, bounds, maxpool, keep)
    return relevance, every


def _public(R: Tensor, every: bool) -> Tensor:
    """``(K, N, ...)`` -> ``(N, ...)`` (one target) or ``(N, K, ...)`` (all classes), as an ordinary tensor."""
    R = R.movedim(0, 1) if every else R[0]
    return R.clone(memory_format=torch.contiguous_format)


# -- the model as a list of layers ------------------------------------------------------------------


def _prepare(model: nn.Module, x: Any) -> tuple[list[Layer], Tensor, tuple[Any, Any] | None]:
    if isinstance(model, Network):
        return _layers(list(model.body)), model.check_input(x), model.bounds
    if isinstance(model, nn.Sequential):
        modules = _flatten(model)
        return _layers(modules), check_tensor(x, model), None
    raise SpecError(f"model must be an lrpkit Network or a torch.nn.Sequential, got {type(model).__name__}")


def _flatten(model: nn.Sequential) -> list[nn.Module]:
    modules: list[nn.Module] = []
    for module in model:
        modules += _flatten(module) if isinstance(module, nn.Sequential) else [module]
    return modules


def _layers(modules: Sequence[nn.Module]) -> list[Layer]:
    layers = []
    for i, module in enumerate(modules):
        if not isinstance(module, SUPPORTED):
            names = ", ".join(t.__name__ for t in SUPPORTED)
            raise SpecError(f"layer {i} ({type(module).__name__}) is not supported; supported layers: {names}")
        if isinstance(module, BATCHNORM) and (i == 0 or not isinstance(modules[i - 1], WEIGHTED)):
            raise SpecError(f"layer {i} ({type(module).__name__}) must directly follow a Linear or Conv2d layer")
        layers.append(Layer(i, module, _kind(module), _weighted(modules, i)))
    return layers


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d):
        return "conv"
    return next(t.__name__.lower() for t in SUPPORTED if isinstance(module, t))


def _weighted(modules: Sequence[nn.Module], i: int) -> WeightedLayer | None:
    if not isinstance(modules[i], WEIGHTED):
        return None
    after = modules[i + 1] if i + 1 < len(modules) else None
    try:
        return WeightedLayer.from_module(modules[i], after if isinstance(after, BATCHNORM) else None)
    except SpecError as err:
        raise SpecError(f"layer {i} ({type(modules[i]).__name__}): {err}") from None


def _record(layers: list[Layer], x: Tensor) -> Trace:
    trace = Trace([x], {}, {}, [False])
    for layer in layers:
        a = trace.activations[-1]
        if isinstance(layer.module, nn.ReLU) and _owns_output(layers, layer.index - 1):
            trace.activations[-1] = None  # ReLU in place: the layer's z + b is remade if a rule needs it
            trace.activations.append(a.relu_())
            trace.nonneg.append(True)
            continue
        try:
            out = _forward(layer, a, trace)
        except RuntimeError as err:
            message = str(err).splitlines()[0]
            raise InputError(
                f"layer {layer.index} ({type(layer.module).__name__}) cannot take an input of shape "
                f"{tuple(a.shape)}: {message}"
            ) from None
        trace.activations.append(out)
        trace.nonneg.append(isinstance(layer.module, nn.ReLU) or (_keeps_sign(layer.module) and trace.nonneg[-1]))
    return trace


def _owns_output(layers: list[Layer], i: int) -> bool:
    """Whether layer ``i`` is a Linear/Conv whose recorded output ``z + b`` is a tensor of its own (not ``z``)."""
    return i >= 0 and layers[i].weighted is not None and layers[i].weighted.bias is not None


def _keeps_sign(module: nn.Module) -> bool:
    return isinstance(module, KEEPS_SIGN) or (isinstance(module, Pad2d) and module.value >= 0)


def _forward(layer: Layer, a: Tensor, trace: Trace) -> Tensor:
    module, weighted = layer.module, layer.weighted
    if weighted is not None:
        if isinstance(module, nn.Linear) and not isinstance(module, Dense) and a.dim() != 2:
            raise SpecError(
                f"layer {layer.index} (Linear) gets an input of shape {tuple(a.shape)}; only (N, features) is "
                "supported: put nn.Flatten() before it"
            )
        trace.z[layer.index] = z = weighted.forward(a, weighted.weight)
        return weighted.with_bias(z, weighted.bias)
    if isinstance(module, (*BATCHNORM, nn.Dropout, nn.Identity)):
        return a  # BatchNorm: merged into the layer before; Dropout: off (eval mode)
    if isinstance(module, nn.ReLU):
        return torch.relu(a)
    if isinstance(module, nn.MaxPool2d):
        out, trace.winners[layer.index] = F.max_pool2d(a, *_max_args(module), return_indices=True)
        return out
    return module(a)


# -- backward: the walk ------------------------------------------------------------------------------


def _walk(
    layers: list[Layer], trace: Trace, rules: Sequence[Rule | None], R: Tensor, bounds: Any, maxpool: str, keep: bool
) -> list[Tensor]:
    """Relevance from the readout down to the input; only ``[R_input]`` unless ``keep``."""
    relevance = [R]
    for layer in reversed(layers):
        a, out = trace.activations[layer.index], trace.activations[layer.index + 1]
        if layer.weighted is not None:
            R = _weighted_step(layer, rules[layer.index], trace, R, bounds)
        elif isinstance(layer.module, POOLS):
            R = _pool_step(layer, a, out, R, trace, maxpool)
        elif isinstance(layer.module, Pad2d):
            p = layer.module.pixels
            R = R[..., p : R.shape[-2] - p, p : R.shape[-1] - p]
        elif a is not None:  # None: the input of a ReLU overwritten in place, same shape as R
            R = R.reshape(*R.shape[:2], *a.shape[1:])
        relevance = [*relevance, R] if keep else [R]
        trace.activations[layer.index + 1] = out = None  # no longer needed: free it early
    return relevance[::-1]


def _weighted_step(layer: Layer, rule: Rule, trace: Trace, R: Tensor, bounds: Any) -> Tensor:
    i = layer.index
    a = trace.activations[i]
    nonneg = trace.nonneg[i] or (isinstance(rule, SIGNED) and bool((a >= 0).all()))
    record = Recorded(a, trace.z.pop(i), nonneg, trace.activations[i + 1])
    zbox_bounds = _zbox_bounds(rule, bounds, a, i) if isinstance(rule, ZBox) else None
    R = propagate(rule, layer.weighted, record, R, zbox_bounds)
    layer.weighted.release()  # every target went through this layer at once: its modified weights are done
    return R


def _zbox_bounds(rule: ZBox, bounds: Any, a: Tensor, index: int) -> tuple[Tensor, Tensor]:
    """The rule's ``low``/``high`` (or else ``bounds``) as ``(1, *in_shape)`` tensors on ``a``'s dtype/device."""
    defaults = bounds if bounds is not None else (None, None)
    low, high = (rule.low if rule.low is not None else defaults[0], rule.high if rule.high is not None else defaults[1])
    if low is None or high is None:
        raise SpecError(
            f"layer {index}: ZBox needs input bounds; pass bounds=(low, high) or use ZBox(low, high) "
            "(an lrpkit Network takes them from its Format layer)"
        )
    low, high = _bound(low, a, index, "low"), _bound(high, a, index, "high")
    if not bool((low <= high).all()):
        raise SpecError(f"layer {index}: ZBox needs low <= high everywhere")
    return low, high


def _bound(value: Any, a: Tensor, index: int, name: str) -> Tensor:
    shape = tuple(a.shape[1:])
    try:
        t = torch.as_tensor(value, dtype=a.dtype, device=a.device)
    except (TypeError, ValueError, RuntimeError):
        raise SpecError(f"layer {index}: ZBox {name} must be a number or an array, got {value!r}") from None
    if t.dim() == 1 and len(shape) == 3 and t.shape[0] == shape[0]:
        t = t.view(-1, 1, 1)  # one bound per channel
    try:
        t = t.expand(shape)
    except RuntimeError:
        raise SpecError(
            f"layer {index}: ZBox {name} of shape {tuple(t.shape)} does not broadcast to the layer's input {shape}"
        ) from None
    if not bool(torch.isfinite(t).all()):
        raise SpecError(f"layer {index}: ZBox {name} contains NaN or Inf")
    return t.unsqueeze(0).contiguous()


# -- pooling ------------------------------------------------------------------------------------------


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _max_args(m: nn.MaxPool2d) -> tuple:
    stride = m.stride if m.stride else m.kernel_size
    return (m.kernel_size, stride, m.padding, m.dilation, m.ceil_mode)


def _pool_step(layer: Layer, a: Tensor, out: Tensor, R: Tensor, trace: Trace, maxpool: str) -> Tensor:
    module = layer.module
    if isinstance(module, nn.MaxPool2d) and maxpool == "winner":
        return _winner_take_all(a, R, trace.winners[layer.index])
    if isinstance(module, nn.AdaptiveAvgPool2d):
        s = ratio(R, stab(out, STABILIZER))
        flat = torch.ops.aten._adaptive_avg_pool2d_backward(s.flatten(0, 1), _like(a, s))
        return flat.view(*s.shape[:2], *a.shape[1:]).mul_(a)
    kernel, stride, padding, ceil, include_pad, divisor = _avg_args(module)
    if isinstance(module, nn.MaxPool2d):
        if _pair(module.dilation) != (1, 1):
            raise SpecError(f"layer {layer.index}: proportional max pooling needs dilation 1, got {module.dilation}")
        out = F.avg_pool2d(a, kernel, stride, padding, ceil, include_pad, divisor)
    s = ratio(R, stab(out, STABILIZER))  # proportional: R_i = a_i * sum_j [i in window j] s_j / divisor_j
    flat = torch.ops.aten.avg_pool2d_backward(
        s.flatten(0, 1), _like(a, s), list(kernel), list(stride), list(padding), ceil, include_pad, divisor
    )
    return flat.view(*s.shape[:2], *a.shape[1:]).mul_(a)


def _avg_args(module: nn.Module) -> tuple:
    """kernel, stride, padding, ceil_mode, count_include_pad, divisor of the (sum) pooling ``module`` runs."""
    if isinstance(module, SumPool2d):  # sum / kernel
        return _pair(module.kernel), _pair(module.stride), (0, 0), False, True, module.kernel
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride) if module.stride else kernel
    if isinstance(module, nn.MaxPool2d):  # proportional: the plain sum over each window
        return kernel, stride, _pair(module.padding), module.ceil_mode, True, 1
    return kernel, stride, _pair(module.padding), module.ceil_mode, module.count_include_pad, module.divisor_override


def _winner_take_all(a: Tensor, R: Tensor, winners: Tensor) -> Tensor:
    """All of ``R_j`` to the arg-max of window ``j`` (ties: the first), summed where windows overlap."""
    K, N, C = R.shape[:3]
    index = winners.flatten(2).expand(K, -1, -1, -1)
    R_in = R.new_zeros((K, N, C, a.shape[2] * a.shape[3])).scatter_add_(3, index, R.flatten(3))
    return R_in.view(K, N, *a.shape[1:])


def _like(a: Tensor, s: Tensor) -> Tensor:
    """A stand-in for the pooled input with ``s``'s batch size (the aten backward ops only read its shape)."""
    if s.shape[0] == 1:
        return a
    return a.new_empty(()).expand(s.shape[0] * s.shape[1], *a.shape[1:])
