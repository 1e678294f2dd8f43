"""The one input check of the engine: what a model may be explained on."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InputError

TOKEN_IDS = (torch.int64, torch.int32)


def check_tensor(x: Any, model: nn.Module) -> torch.Tensor:
    """``x`` checked for ``model``: a finite floating point tensor ``(N, ...)`` on the model's dtype and device,
    or, for a model with an ``nn.Embedding``, token ids (int64/int32; explained at the embedding lookup)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype in TOKEN_IDS and x.dim() >= 1 and any(isinstance(m, nn.Embedding) for m in model.modules()):
        return x
    if not x.is_floating_point() or x.dim() < 2:
        raise InputError(
            f"x must be a floating point tensor (N, ...), or token ids (int64) for a model with an nn.Embedding, "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    for where, module in model.named_modules():
        for name, p in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            if p.is_floating_point() and (p.dtype != x.dtype or p.device != x.device):
                raise InputError(
                    f"x is {x.dtype} on {x.device} but the network is {p.dtype} on {p.device} (layer {where} "
                    f"({type(module).__name__}).{name}); move one to the other (x.to(...) or model.to(...))"
                )
    if not torch.isfinite(x).all():
        raise InputError("x contains NaN or Inf values")
    return x
