"""Input bounds for the zB rule: read from the user, and carried from the model's input to the first layers.

Bounds ``(low, high)`` are given for the model's input ``x``: numbers, one value per channel ``(C,)``, or
arrays of one sample's shape. Each node between the input and the first Linear-type layers maps them as it
maps values: its forward applied to ``low`` and to ``high``, then sorted elementwise, which is exact for ops
that are monotone in each input (moves, pooling, activations, sums) and for products with constants of either
sign (``(x - mean) / std`` written in ``forward``). Padding takes the bounds of the nearest input value
(the heatmapping.org tutorial's convention for the constant border).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import SpecError
from .graph import Graph, Node


def one_sample(value: Any, like: Tensor, what: str) -> Tensor:
    """``value`` as a ``(1, *like.shape[1:])`` tensor on ``like``'s dtype and device (a number, per channel, or
    one sample's shape)."""
    shape = tuple(like.shape[1:])
    try:
        t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise SpecError(f"{what} must be a number or an array, got {value!r}") from None
    if t.dim() == 1 and len(shape) >= 2 and t.shape[0] == shape[0]:
        t = t.view(-1, *[1] * (len(shape) - 1))  # one bound per channel
    try:
        t = t.expand(shape)
    except RuntimeError:
        raise SpecError(f"{what} of shape {tuple(t.shape)} does not broadcast to the input {shape}") from None
    if not bool(torch.isfinite(t).all()):
        raise SpecError(f"{what} contains NaN or Inf")
    return t.unsqueeze(0).contiguous()


def check_bounds(low: Tensor, high: Tensor, where: str) -> None:
    if not bool((low <= high).all()):
        raise SpecError(f"{where}: the zB rule needs low <= high everywhere")


Forward = Callable[[Node, list[Any]], Tensor]


def carry(graph: Graph, values: dict[str, Any], low: Tensor, high: Tensor, forward: Forward) -> dict[str, tuple]:
    """The bounds at the input of every first Linear-type node (by node name), each ``(1, *shape)``.

    ``low``/``high`` are one sample's bounds of the input; ``forward(node, inputs)`` runs a node's op.
    """
    n = values[graph.input].shape[0]
    full = (n, *low.shape[1:])
    reach: dict[str, tuple[Tensor, Tensor]] = {graph.input: (low.expand(full), high.expand(full))}
    for node in graph.bounded:
        reach[node.name] = _map(node, values, reach, forward)
    first = (graph.by_name[name] for name in graph.first)
    return {node.name: tuple(b[:1] for b in reach[node.inputs[0]]) for node in first if node.inputs[0] in reach}


def _map(node: Node, values: dict[str, Any], reach: dict[str, tuple], forward: Forward) -> tuple[Tensor, Tensor]:
    if node.op == "pad":
        return tuple(_pad_bound(node, reach[node.inputs[0]][k]) for k in range(2))  # type: ignore[return-value]
    if node.op == "add":
        return _sum_bounds(node, values, reach)
    ends = [forward(node, [reach[i][k] if i in reach else values.get(i) for i in node.inputs]) for k in range(2)]
    return torch.minimum(*ends), torch.maximum(*ends)


def _pad_bound(node: Node, bound: Tensor) -> Tensor:
    pad = node.params["pad"]
    if all(p >= 0 for p in pad) and len(pad) == 2 * (bound.dim() - 2) and 1 <= len(pad) // 2 <= 3:
        return F.pad(bound, pad, mode="replicate")
    return F.pad(bound, pad, value=node.params["value"])


def _sum_bounds(node: Node, values: dict[str, Any], reach: dict[str, tuple]) -> tuple[Tensor, Tensor]:
    """``sum_k s_k x_k + c``: each term's bounds by the sign of its scale."""
    low = high = torch.as_tensor(node.params["other"])
    for name, scale in zip(node.inputs, node.params["scales"], strict=True):
        ends = reach[name] if name in reach else (values[name], values[name])
        a, b = ends[0] * scale, ends[1] * scale
        low, high = low + torch.minimum(a, b), high + torch.maximum(a, b)
    return low, high
