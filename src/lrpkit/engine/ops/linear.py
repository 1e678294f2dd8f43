"""Linear-type nodes: ``linear`` (last dimension of any-rank input) and ``conv`` (1-3 d, transposed or not).

The forward records the bias-free output ``z`` beside the value ``z + b`` (not for LRP-0/epsilon with ``bias=True``,
which divide by ``z + b`` alone); the relevance step is the node's rule
(:mod:`lrpkit.engine.linear_rules`). A BatchNorm merged in by canonization arrives as four extra inputs.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...errors import SpecError
from ...rules import AlphaBeta, Epsilon, Gamma, Simple, ZBox
from ..bounds import check_bounds, one_sample
from ..graph import Node
from ..linear_rules import Recorded, propagate
from ..weighted import Conv, WeightedLayer
from . import Op, Step, Trace

SIGNED = (AlphaBeta, Gamma)  # rules that split inputs by sign (and skip the a- half for a >= 0)


def layer_of(node: Node, inputs: list[Any]) -> WeightedLayer:
    """The node's layer from its inputs' current values (a merged BatchNorm folded in)."""
    p = node.params
    conv = None
    if node.op == "conv":
        conv = Conv(p["stride"], p["padding"], p["dilation"], p["groups"], p["transposed"], p["output_padding"])
    batchnorm = (*inputs[3:7], p["batchnorm_eps"]) if "batchnorm_eps" in p else None
    return WeightedLayer.build(inputs[1], inputs[2], conv, batchnorm)


def _forward(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    layer = layer_of(node, inputs)
    z = layer.forward(inputs[0], layer.weight)  # z, then z + b, whatever the rule: the same logits for every method
    if node.name in trace.rules:  # on the relevance path: the step needs the layer, and z unless it reads z + b
        trace.aux[node.name] = (layer, None if _reads_output(trace.rules[node.name]) else z)
    return layer.with_bias(z, layer.bias)


def _reads_output(rule: Any) -> bool:
    """LRP-0 and epsilon with ``bias=True`` divide by the layer's real output ``z + b`` and need nothing else."""
    return isinstance(rule, (Simple, Epsilon)) and rule.bias


def _reads(node: Node, rule: Any, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    return (0,), _reads_output(rule)


def _relevance(step: Step) -> list[Tensor | None]:
    node, rule, a = step.node, step.rule, step.inputs[0]
    layer, z = step.trace.aux[node.name]
    if layer.weight.dtype != step.R.dtype:  # a bfloat16/float16 model: the rule in the relevance's float32
        dtype = step.R.dtype
        layer, z = WeightedLayer(layer.weight.to(dtype), _to(layer.bias, dtype), layer.conv), _to(z, dtype)
    nonneg = node.inputs[0] in step.trace.nonneg or (isinstance(rule, SIGNED) and bool((a >= 0).all()))
    record = Recorded(a, z, nonneg, step.output)
    bounds = _zbox_bounds(rule, step) if isinstance(rule, ZBox) else None
    R = propagate(rule, layer, record, step.R, bounds)
    layer.release()  # every target of this pass went through at once: its modified weights are done
    return step.only(R)


def _zbox_bounds(rule: ZBox, step: Step) -> tuple[Tensor, Tensor]:
    """The rule's own ``low``/``high`` (at this node's input), else the model input's bounds carried here."""
    a, node = step.inputs[0], step.node
    carried = step.trace.bounds.get(node.name)
    if (rule.low is None or rule.high is None) and carried is None:
        where = (
            "pass bounds=(low, high) for the model's input (carried through normalisations written in forward)"
            if node.name in step.trace.first
            else "it is not a first layer, so the input's bounds do not reach it"
        )
        raise SpecError(f"{node.describe()}: the zB rule needs bounds of this layer's input; {where}, or use "
                        "ZBox(low, high) with bounds of this layer's input")  # fmt: skip
    low = one_sample(rule.low, a, f"{node.name}: ZBox low") if rule.low is not None else carried[0]
    high = one_sample(rule.high, a, f"{node.name}: ZBox high") if rule.high is not None else carried[1]
    check_bounds(low, high, node.name)
    return low, high


def _to(value: Tensor | None, dtype: Any) -> Tensor | None:
    return None if value is None else value.to(dtype)


OPS = {"linear": Op(_forward, _relevance, reads=_reads), "conv": Op(_forward, _relevance, reads=_reads)}
