"""Pooling in 1, 2 and 3 dimensions: average (proportional) and max (winner-take-all, or proportional).

Proportional: ``R_i = a_i * d/da_i (sum_j z_j s_j)`` with ``z = pool(a)``, ``s = R / stab(z)``; the transpose
of the pooling is ``torch.func.vjp`` of the pooling itself or, where the windows tile the input (stride =
kernel, no padding: sum pooling), each window's ``s_j / divisor`` times its inputs directly. Max pooling by
default gives all of ``R_j`` to the arg-max of window ``j`` (ties: the first), recorded in the forward pass;
proportional max pooling shares as a plain sum over each window.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ...errors import SpecError
from ...rules import Proportional, Winner
from ..graph import Node
from ..weighted import stab
from . import Op, Step, Trace, inputs_only, keeps_sign, proportional, shapes_only

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def _avg(node: Node) -> Any:
    p = node.params
    args = (p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"])
    dims = len(p["kernel_size"])
    if dims == 1:
        return partial(_AVG[1], kernel_size=args[0], stride=args[1], padding=args[2], ceil_mode=args[3],
                       count_include_pad=args[4])  # fmt: skip
    return partial(_AVG[dims], kernel_size=args[0], stride=args[1], padding=args[2], ceil_mode=args[3],
                   count_include_pad=args[4], divisor_override=p["divisor_override"])  # fmt: skip


def _adaptive_avg(node: Node) -> Any:
    return partial(_ADAPTIVE_AVG[len(node.params["output_size"])], output_size=node.params["output_size"])


def _window_sum(node: Node) -> Any:
    """The plain sum over each max-pooling window (proportional max pooling)."""
    p = node.params
    if any(d != 1 for d in p["dilation"]):
        raise SpecError(f"{node.describe()}: proportional max pooling needs dilation 1, got {p['dilation']}")
    dims, volume = len(p["kernel_size"]), math.prod(p["kernel_size"])
    if dims == 1:
        return lambda x: F.avg_pool1d(x, p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"], True) * volume
    return partial(_AVG[dims], kernel_size=p["kernel_size"], stride=p["stride"], padding=p["padding"],
                   ceil_mode=p["ceil_mode"], count_include_pad=True, divisor_override=1)  # fmt: skip


def _max_forward(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    p, x = node.params, inputs[0]
    if node.op == "adaptive_max_pool":
        out, winners = _ADAPTIVE_MAX[len(p["output_size"])](x, p["output_size"], return_indices=True)
    else:
        pool = _MAX[len(p["kernel_size"])]
        out, winners = pool(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"], True)
    if isinstance(trace.rules.get(node.name), Winner):
        trace.aux[node.name] = winners
    return out


def _max_relevance(step: Step) -> list[Tensor | None]:
    node, rule = step.node, step.rule
    if isinstance(rule, Proportional):
        if node.op == "adaptive_max_pool":
            raise SpecError(f"{node.describe()}: adaptive max pooling shares winner-take-all only")
        pool, x = _window_sum(node), step.inputs[0]
        return step.only(proportional(pool, x, pool(x), step.R, rule.epsilon))
    winners, spatial, shape = step.trace.aux[node.name], _spatial(node), step.shape(0)
    K, lead = step.R.shape[0], shape[: len(shape) - spatial]
    index = winners.flatten(-spatial).expand(K, *lead, -1)
    R = step.R.new_zeros((K, *lead, math.prod(shape[-spatial:])))
    return step.only(R.scatter_add_(-1, index, step.R.flatten(-spatial)).view(K, *shape))


def _max_reads(node: Node, rule: Any, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """Winner-take-all reads the winners the forward recorded; proportional sharing the input."""
    return (inputs_only if isinstance(rule, Proportional) else shapes_only)(node, rule, receivers)


def _spatial(node: Node) -> int:
    return len(node.params.get("kernel_size") or node.params["output_size"])


def _avg_forward(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    return (_avg(node) if node.op == "avg_pool" else _adaptive_avg(node))(inputs[0])


def _avg_relevance(step: Step) -> list[Tensor | None]:
    epsilon = step.rule.epsilon if isinstance(step.rule, Proportional) else 1e-9
    x = step.inputs[0]
    if _tiles(step.node, x.shape):  # the transpose is a copy of each window's share: no vjp, no second pooling
        s = step.R / stab(step.output, epsilon) / _divisor(step.node)
        return step.only(_times_windows(s, x, step.node.params["kernel_size"]))
    pool = _avg(step.node) if step.node.op == "avg_pool" else _adaptive_avg(step.node)
    return step.only(proportional(pool, x, step.output, step.R, epsilon))


def _tiles(node: Node, shape: tuple[int, ...]) -> bool:
    """Average pooling whose windows tile its input exactly: stride = kernel, no padding, sizes divisible."""
    if node.op != "avg_pool":
        return False
    p = node.params
    kernel, spatial = tuple(p["kernel_size"]), tuple(shape[-len(p["kernel_size"]) :])
    return (
        tuple(p["stride"]) == kernel
        and not any(p["padding"])
        and all(size % k == 0 for size, k in zip(spatial, kernel, strict=True))
    )


def _divisor(node: Node) -> int:
    """What each window's sum is divided by (``divisor_override``, which only 2-d and 3-d pooling take)."""
    p = node.params
    override = p.get("divisor_override") if len(p["kernel_size"]) > 1 else None
    return override or math.prod(p["kernel_size"])


def _times_windows(s: Tensor, x: Tensor, kernel: tuple[int, ...]) -> Tensor:
    """``x`` times the value of ``s`` at the window of each input, for tiling windows: ``s`` is ``(K, *y.shape)``,
    ``x`` the pooling's input, each spatial size ``h`` split into ``(h / k, k)`` so that ``s`` broadcasts."""
    n = len(kernel)
    lead, spatial = x.shape[: x.dim() - n], x.shape[x.dim() - n :]
    windows = [v for size, k in zip(spatial, kernel, strict=True) for v in (size // k, k)]
    single = [v for size, k in zip(spatial, kernel, strict=True) for v in (size // k, 1)]
    product = s.reshape(s.shape[0], *lead, *single) * x.reshape(*lead, *windows)
    return product.reshape(s.shape[0], *x.shape)


OPS = {
    "avg_pool": Op(_avg_forward, _avg_relevance, keeps_sign),
    "adaptive_avg_pool": Op(_avg_forward, _avg_relevance, keeps_sign),
    "max_pool": Op(_max_forward, _max_relevance, keeps_sign, _max_reads),
    "adaptive_max_pool": Op(_max_forward, _max_relevance, keeps_sign, _max_reads),
}
