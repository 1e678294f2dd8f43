"""Elementwise nodes: activations, sums, products and quotients.

- Activations (ReLU, GELU, SiLU, sigmoid, ...) and negation: the identity, ``R_in = R_out``.
- Sums ``y = sum_k s_k x_k + c`` (``add``/``sub``/``neg``, broadcasting): each signal gets its share
  ``s_k x_k / stab(S) R`` with ``S`` the sum of the signals' terms (the constants' too with ``bias=True``);
  a single signal gets all of ``R``. A broadcast operand's share is summed over the broadcast dimensions.
- Products: with a constant or a gate, all of ``R`` to the other factor; two signals: ``R / 2`` each
  (which factors receive relevance is decided by the graph, :meth:`lrpkit.engine.graph.Graph.receivers`).
- Quotients ``a / b``: ``b`` held constant (a constant, or a normaliser computed from the signal).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import SpecError
from ...rules import Conservative, Proportional
from ..graph import Node
from ..weighted import stab
from . import Op, Step, Trace, inputs_only, keeps_sign, shapes_only, sum_to

ACTIVATIONS = {
    "relu": lambda x, p: F.relu(x),
    "relu6": lambda x, p: F.relu6(x),
    "hardtanh": lambda x, p: F.hardtanh(x, p["min_val"], p["max_val"]),
    "leaky_relu": lambda x, p: F.leaky_relu(x, p["negative_slope"]),
    "elu": lambda x, p: torch.ops.aten.elu(x, p["alpha"], p["scale"], p["input_scale"]),
    "gelu": lambda x, p: F.gelu(x, approximate=p["approximate"]),
    "silu": lambda x, p: F.silu(x),
    "hardswish": lambda x, p: F.hardswish(x),
    "hardsigmoid": lambda x, p: F.hardsigmoid(x),
    "sigmoid": lambda x, p: torch.sigmoid(x),
    "tanh": lambda x, p: torch.tanh(x),
    "erf": lambda x, p: torch.erf(x),
    "softplus": lambda x, p: F.softplus(x, p["beta"], p["threshold"]),
    "mish": lambda x, p: F.mish(x),
    "clamp": lambda x, p: torch.clamp(x, p["min"], p["max"]),
}
NON_NEGATIVE = frozenset({"relu", "relu6", "sigmoid", "hardsigmoid", "softplus"})


def _activation(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    x = inputs[0]
    if node.params.get("inplace") and node.inputs[0] not in trace.keep:
        trace.values[node.inputs[0]] = None  # a ReLU that alone reads a biased layer's output: no second tensor
        return x.relu_()
    return ACTIVATIONS[node.params["fn"]](x, node.params)


def _activation_sign(node: Node, flags: list[bool]) -> bool:
    p = node.params
    low = p.get("min_val") if p["fn"] == "hardtanh" else p.get("min") if p["fn"] == "clamp" else None
    return p["fn"] in NON_NEGATIVE or (low is not None and low >= 0) or (p["fn"] == "leaky_relu" and all(flags))


def _identity(step: Step) -> list[Tensor | None]:
    return step.only(step.R)


# -- sums -------------------------------------------------------------------------------------------------------


def _term(x: Any, scale: float) -> Any:
    """One term ``s_k x_k`` of a sum (no copy for ``s_k = 1``)."""
    return x if scale == 1 else x * scale


def _add(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    out, *rest = (_term(x, s) for x, s in zip(inputs, node.params["scales"], strict=True))
    for term in rest:
        out = out + term
    return out + node.params["other"] if node.params["other"] else out


def _add_relevance(step: Step) -> list[Tensor | None]:
    node, rule = step.node, step.rule
    if not _shares(rule, step.receivers):
        slot = step.receivers[0]
        return step.only(sum_to(step.R, step.shape(slot)), slot)
    terms = {k: _term(step.inputs[k], node.params["scales"][k]) for k in step.receivers}
    total = step.output if _bias(rule) else sum(terms.values())
    s = step.R / stab(total, rule.epsilon)
    shares: list[Tensor | None] = [None] * len(node.inputs)
    for k, term in terms.items():
        shares[k] = sum_to(s * term, step.shape(k))
    return shares


def _shares(rule: Any, receivers: tuple[int, ...]) -> bool:
    """Whether a sum shares by its terms (several receivers, or the constants' share dropped), else all of ``R``
    goes to its one receiver."""
    return len(receivers) > 1 or _bias(rule)


def _bias(rule: Any) -> bool:
    return isinstance(rule, Proportional) and rule.bias


def _add_reads(node: Node, rule: Any, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    return (receivers, _bias(rule)) if _shares(rule, receivers) else ((), False)


def _add_sign(node: Node, flags: list[bool]) -> bool:
    return all(flags) and all(s > 0 for s in node.params["scales"]) and node.params["other"] >= 0


def _reduce(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    fn = torch.mean if node.op == "mean" else torch.sum
    return fn(inputs[0], dim=node.params["dims"], keepdim=node.params["keepdim"])


def _reduce_relevance(step: Step) -> list[Tensor | None]:
    """A sum (or mean) over dimensions: each input's share of its output, ``x_i / stab(sum x) R``."""
    node, x = step.node, step.inputs[0]
    epsilon = step.rule.epsilon if isinstance(step.rule, Proportional) else 1e-9
    total = x.sum(dim=node.params["dims"], keepdim=True)
    R = step.R if node.params["keepdim"] else _unsqueeze(step.R, node.params["dims"])
    return step.only(R / stab(total, epsilon) * x)


def _unsqueeze(R: Tensor, dims: tuple[int, ...]) -> Tensor:
    for d in sorted(dims):
        R = R.unsqueeze(d + 1)
    return R


# -- products -----------------------------------------------------------------------------------------------------


def _mul(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    other = inputs[1] if len(inputs) > 1 else node.params["other"]
    return inputs[0] * other


def _div(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    other = inputs[1] if len(inputs) > 1 else node.params["other"]
    return inputs[0] / other


def _product_relevance(step: Step) -> list[Tensor | None]:
    """All of ``R`` to the one receiving factor, or ``R / k`` to each of ``k`` signal factors; a
    ``Conservative`` rule (CP-LRP) gives all of ``R`` to the factor that is not the held gate branch."""
    receivers = step.receivers
    held = step.node.params.get("held")
    if isinstance(step.rule, Conservative) and held in receivers and len(receivers) == 2:
        receivers = tuple(k for k in receivers if k != held)
    shares: list[Tensor | None] = [None] * len(step.node.inputs)
    for k in receivers:
        shares[k] = sum_to(step.R / len(receivers), step.shape(k))
    return shares


def _mul_relevance(step: Step) -> list[Tensor | None]:
    """A product with one receiving factor of the output's shape (``x * c``, gates) passes ``R`` as it is,
    without the copy that ``R / 1`` makes; otherwise the product rule."""
    if len(step.receivers) == 1 and step.shape(step.receivers[0]) == tuple(step.R.shape[1:]):
        return step.only(step.R, step.receivers[0])
    return _product_relevance(step)


def _div_relevance(step: Step) -> list[Tensor | None]:
    if 0 not in step.receivers:
        raise SpecError(f"{step.node.describe()}: relevance reaches a division whose numerator is a constant")
    return step.only(sum_to(step.R, step.shape(0)))


def _call(node: Node, inputs: list[Any], trace: Trace) -> Any:
    """Any other op, run as captured (no rule: refused if relevance reaches it)."""
    from ..translate import Ref

    values = dict(zip((n for n in node.inputs), inputs, strict=True))
    swap = lambda v: values[v.name] if isinstance(v, Ref) else v  # noqa: E731
    args = torch.utils._pytree.tree_map(swap, node.params["args"])
    kwargs = torch.utils._pytree.tree_map(swap, node.params["kwargs"])
    return node.params["target"](*args, **kwargs)


OPS = {
    "activation": Op(_activation, _identity, _activation_sign, shapes_only),
    "add": Op(_add, _add_relevance, _add_sign, _add_reads),
    "sum": Op(_reduce, _reduce_relevance, keeps_sign, inputs_only),
    "mean": Op(_reduce, _reduce_relevance, keeps_sign, inputs_only),
    "mul": Op(_mul, _mul_relevance, reads=shapes_only),
    "div": Op(_div, _div_relevance, reads=shapes_only),
    "call": Op(_call),
}
