"""Ops that move values: relevance moves exactly as the values moved (``R_in = J^T R``).

Reshapes, permutations, concatenation and stacking, slicing and selecting (several slices of one tensor add up
in the walk), broadcasting (summed back over the copies), constant padding (the border's relevance is dropped:
the border is a constant), nearest upsampling, roll and flip. Bilinear upsampling is a linear map with
non-negative weights and shares proportionally.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph import Node
from . import Op, Step, Trace, inputs_only, keeps_sign, proportional, shapes_only, sum_to, transpose


def _index(dim: int, item: Any) -> tuple:
    return (*[slice(None)] * dim, item)


def _reshape(step: Step) -> list[Tensor | None]:
    return step.only(step.R.reshape(step.R.shape[0], *step.shape(0)))


def _permute(step: Step) -> list[Tensor | None]:
    inverse = sorted(range(len(step.node.params["dims"])), key=step.node.params["dims"].__getitem__)
    return step.only(step.R.permute(0, *(d + 1 for d in inverse)))


def _expand(step: Step) -> list[Tensor | None]:
    return step.only(sum_to(step.R, step.shape(0)))


def _cat(step: Step) -> list[Tensor | None]:
    sizes = [step.shape(k)[step.node.params["dim"]] for k in range(len(step.inputs))]
    return list(step.R.split(sizes, dim=step.node.params["dim"] + 1))


def _stack(step: Step) -> list[Tensor | None]:
    return list(step.R.unbind(step.node.params["dim"] + 1))


def _slice_of(node: Node) -> tuple:
    p = node.params
    return _index(p["dim"], slice(p["start"], p["stop"], p["step"]))


def _slice(step: Step) -> list[Tensor | None]:
    R = step.R.new_zeros((step.R.shape[0], *step.shape(0)))
    R[(slice(None), *_slice_of(step.node))] = step.R
    return step.only(R)


def _select(step: Step) -> list[Tensor | None]:
    R = step.R.new_zeros((step.R.shape[0], *step.shape(0)))
    R.select(step.node.params["dim"] + 1, step.node.params["index"]).copy_(step.R)
    return step.only(R)


def _pad(step: Step) -> list[Tensor | None]:
    pad = step.node.params["pad"]
    if any(p < 0 for p in pad):  # a negative pad crops: the general transpose
        return step.only(transpose(lambda t: F.pad(t, pad, value=0.0), step.inputs[0], step.R))
    R, shape = step.R, step.shape(0)
    for k in range(len(pad) // 2):
        dim = R.dim() - 1 - k
        R = R.narrow(dim, pad[2 * k], shape[dim - 1])
    return step.only(R)


def _pad_reads(node: Node, rule: Any, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    return ((0,) if any(p < 0 for p in node.params["pad"]) else ()), False


def _pad_sign(node: Node, flags: list[bool]) -> bool:
    return keeps_sign(node, flags) and node.params["value"] >= 0


def _moved(forward: Any) -> Any:
    """The relevance step of a linear move without a closed form here: its transpose by ``vjp``."""

    def relevance(step: Step) -> list[Tensor | None]:
        return step.only(transpose(lambda t: forward(step.node, [t], None), step.inputs[0], step.R))

    return relevance


def _upsample(node: Node, inputs: list[Any], trace: Trace | None) -> Tensor:
    mode = "nearest" if node.op == "upsample_nearest" else "bilinear"
    corners = node.params["align_corners"] if mode == "bilinear" else None
    return F.interpolate(inputs[0], size=node.params["size"], mode=mode, align_corners=corners)


def _bilinear(step: Step) -> list[Tensor | None]:
    fn = lambda t: _upsample(step.node, [t], None)  # noqa: E731
    return step.only(proportional(fn, step.inputs[0], step.output, step.R, 1e-9))


def _identity(step: Step) -> list[Tensor | None]:
    return step.only(step.R)


def _forward(fn: Any) -> Any:
    return lambda node, inputs, trace: fn(node.params, *inputs)


OPS = {
    "identity": Op(lambda node, inputs, trace: inputs[0], _identity, keeps_sign, shapes_only),
    "cast": Op(
        lambda node, inputs, trace: inputs[0].to(getattr(torch, node.params["dtype"])),
        _identity,
        keeps_sign,
        shapes_only,
    ),
    "reshape": Op(_forward(lambda p, x: x.reshape(p["shape"])), _reshape, keeps_sign, shapes_only),
    "permute": Op(_forward(lambda p, x: x.permute(p["dims"])), _permute, keeps_sign, shapes_only),
    "expand": Op(_forward(lambda p, x: x.expand(p["shape"])), _expand, keeps_sign, shapes_only),
    "cat": Op(_forward(lambda p, *xs: torch.cat(xs, p["dim"])), _cat, keeps_sign, shapes_only),
    "stack": Op(_forward(lambda p, *xs: torch.stack(xs, p["dim"])), _stack, keeps_sign, shapes_only),
    "slice": Op(lambda node, inputs, trace: inputs[0][_slice_of(node)], _slice, keeps_sign, shapes_only),
    "select": Op(_forward(lambda p, x: x.select(p["dim"], p["index"])), _select, keeps_sign, shapes_only),
    "pad": Op(_forward(lambda p, x: F.pad(x, p["pad"], value=p["value"])), _pad, _pad_sign, _pad_reads),
    "repeat": Op(_forward(lambda p, x: x.repeat(p["repeats"])), None, keeps_sign),
    "roll": Op(_forward(lambda p, x: x.roll(p["shifts"], p["dims"])), None, keeps_sign),
    "flip": Op(_forward(lambda p, x: x.flip(p["dims"])), None, keeps_sign),
    "upsample_nearest": Op(_upsample, None, keeps_sign),
    "upsample_bilinear": Op(_upsample, _bilinear, keeps_sign),
}
for _name in ("repeat", "roll", "flip", "upsample_nearest"):
    OPS[_name] = Op(OPS[_name].forward, _moved(OPS[_name].forward), keeps_sign, inputs_only)
