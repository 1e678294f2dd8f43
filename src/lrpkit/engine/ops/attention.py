"""The ops attention models add (AttnLRP, Achtibat et al. ICML 2024; CP-LRP, Ali et al. ICML 2022).

- ``matmul`` ``O = A B`` (``q k^T``, attention times ``V``, ``bmm``, ``einsum`` of two operands), kind ``matmul``:
  ``Epsilon`` -- ``S = R / stab(O)``, each of the ``k`` signal factors gets ``F * J_F^T S / k``
  (``R_A = A * (S B^T) / 2``, ``R_B = B * (A^T S) / 2``; Prop. 3.3); ``Conservative`` (CP-LRP) -- the attention
  weights (the factor marked ``held``) are a constant, all of ``R`` goes to the other factor by the epsilon rule.
- ``softmax`` ``s = softmax(x)``: Taylor decomposition at ``x`` with bias (Prop. 3.1),
  ``R_in = x * (R - s * sum(R))`` along the softmax dimension; masked positions (``s == 0``) get 0.
- ``embedding``: the lookup that turns token ids into the explained signal (relevance stops there).
- ``power`` (``rsqrt``, ``sqrt``, ``reciprocal``, ``pow``) and ``attention_bias`` (the additive mask of a fused
  attention): forward only; a written-out normaliser is held constant by the graph and needs no rule.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...rules import Conservative, Epsilon
from ..graph import Node
from ..weighted import stab
from . import Op, Step, Trace, shapes_only, sum_to, transpose

# -- products of two signals ---------------------------------------------------------------------------------------


def _matmul(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    a, b = inputs
    if node.params.get("equation"):
        return torch.einsum(node.params["equation"], a, b)
    return torch.matmul(a, b)


def _factor_gradient(node: Node, inputs: list[Any], k: int, S: Tensor) -> Tensor:
    """``J_k^T S``: the transpose of the product, linear in factor ``k`` with the other fixed, for every target."""
    a, b = inputs
    if node.params.get("equation") or a.dim() < 2 or b.dim() < 2:
        other = inputs[1 - k]
        fn = (lambda t: _matmul(node, [t, other], None)) if k == 0 else (lambda t: _matmul(node, [other, t], None))  # type: ignore[arg-type]
        return transpose(fn, inputs[k], S)
    if k == 0:
        return sum_to(S @ b.mT, tuple(a.shape))
    return sum_to(a.mT @ S, tuple(b.shape))


def _matmul_relevance(step: Step) -> list[Tensor | None]:
    """``R_F = F * J_F^T (R / stab(O)) / k`` for each of the ``k`` receiving factors (see the module docstring)."""
    rule, node = step.rule, step.node
    receivers = step.receivers
    if isinstance(rule, Conservative) and node.params.get("held") in receivers and len(receivers) == 2:
        receivers = tuple(k for k in receivers if k != node.params["held"])
    epsilon = rule.epsilon if isinstance(rule, (Epsilon, Conservative)) else 1e-6
    S = step.R / stab(step.output.to(step.R.dtype), epsilon)  # step 2
    shares: list[Tensor | None] = [None] * len(node.inputs)
    inputs = [x.to(step.R.dtype) for x in step.inputs]
    for k in receivers:
        shares[k] = _factor_gradient(node, inputs, k, S).mul_(inputs[k]).div_(len(receivers))  # steps 3-4
    return shares


# -- softmax -------------------------------------------------------------------------------------------------------


def _softmax(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    x, p = inputs[0], node.params
    dtype = getattr(torch, p["dtype"]) if p.get("dtype") else None
    s = torch.softmax(x, p["dim"], dtype=dtype)
    return s.nan_to_num(0.0) if p.get("safe") else s  # a fully masked row: zeros (torch's safe softmax)


def _softmax_relevance(step: Step) -> list[Tensor | None]:
    """``R_in = x * (R - s * sum_dim R)``, 0 where ``s == 0`` (masked inputs, whatever value the mask used)."""
    dim = step.node.params["dim"] + 1  # R has a leading target dimension
    s, x = step.output.to(step.R.dtype), step.inputs[0].to(step.R.dtype)
    R = (step.R - s * step.R.sum(dim, keepdim=True)).mul_(x)
    return step.only(R.masked_fill_(s == 0, 0.0))


# -- lookups, powers, masks ----------------------------------------------------------------------------------------


def _embedding(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    weight, ids = inputs
    return F.embedding(ids, weight)


POWERS = {
    "rsqrt": lambda x, e: torch.rsqrt(x),
    "sqrt": lambda x, e: torch.sqrt(x),
    "reciprocal": lambda x, e: torch.reciprocal(x),
    "pow": lambda x, e: torch.pow(x, e),
}


def _power(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    return POWERS[node.params["fn"]](inputs[0], node.params["exponent"])


def attention_bias(mask: Any, shape: tuple[int, ...], causal: bool, dtype: torch.dtype, device: Any) -> Tensor:
    """The additive mask of ``scaled_dot_product_attention``: 0 where a query attends, ``-inf`` elsewhere (a causal
    mask keeps ``j <= i``); a boolean mask says where it attends, a float mask is added as it is."""
    bias = torch.zeros(shape, dtype=dtype, device=device)
    if causal:
        keep = torch.ones(shape, dtype=torch.bool, device=device).tril()
        bias = bias.masked_fill(~keep, float("-inf"))
    if mask is None:
        return bias
    if mask.dtype == torch.bool:
        return torch.where(mask, bias, torch.tensor(float("-inf"), dtype=dtype, device=device))
    return bias + mask


def _attention_bias(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    p = node.params
    mask = inputs[0] if inputs else None
    device = mask.device if mask is not None else _device(trace)
    return attention_bias(mask, tuple(node.shape), p["causal"], getattr(torch, p["dtype"]), device)


def _device(trace: Trace) -> Any:
    """The device of the recorded values (the parameters' and the input's): where a causal mask is made."""
    return next((v.device for v in trace.values.values() if isinstance(v, Tensor)), None)


def _no_relevance(step: Step) -> list[Tensor | None]:
    return [None] * len(step.node.inputs)


OPS = {
    "matmul": Op(_matmul, _matmul_relevance),
    "softmax": Op(_softmax, _softmax_relevance, lambda node, flags: True),
    "embedding": Op(_embedding, _no_relevance, reads=shapes_only),
    "power": Op(_power, None, lambda node, flags: node.params["fn"] in ("rsqrt", "sqrt")),
    "attention_bias": Op(_attention_bias, None),
}
