"""Opaque modules: a submodule explained as one node (see :mod:`lrpkit.engine.extend`).

The forward calls the module itself (in eval mode). ``Epsilon``: ``R_in = x * J^T (R / stab(y))``, the epsilon
rule of the module read as a linear map around ``x`` (its transpose by ``vjp``); ``Pass``: ``R_in = R_out``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...rules import Epsilon
from ..capture import eval_mode
from ..graph import Node
from . import Op, Step, Trace, proportional


def _forward(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    module = trace.model.get_submodule(node.params["path"])
    with eval_mode(module):
        return module(inputs[0])


def _relevance(step: Step) -> list[Tensor | None]:
    if not isinstance(step.rule, Epsilon):
        return step.only(step.R.reshape(step.R.shape[0], *step.inputs[0].shape))
    module = step.trace.model.get_submodule(step.node.params["path"])
    with eval_mode(module):
        return step.only(proportional(module, step.inputs[0], step.output, step.R, step.rule.epsilon))


OPS = {"module": Op(_forward, _relevance)}
