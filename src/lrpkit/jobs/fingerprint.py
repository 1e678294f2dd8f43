"""What makes two dataset runs the same run: the model's fingerprint, the method as JSON data, and a readable
list of what differs between two such descriptions."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..rules import Rule


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the module tree (names, classes, ``extra_repr``) and every parameter and buffer (name,
    dtype, shape, bytes): equal for the same architecture and weights, wherever the model was built."""
    digest = hashlib.sha256()
    for name, module in model.named_modules():
        digest.update(f"{name}:{type(module).__qualname__}({module.extra_repr()})\n".encode())
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def as_data(value: Any) -> Any:
    """``value`` (a method spec, a rule, options with tensors) as JSON data: rules become
    ``{"rule": name, **parameters}``, tensors and arrays nested lists, tuples lists."""
    if isinstance(value, Rule):
        fields = {f.name: as_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"rule": value.name, **fields}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return as_data(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): as_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot describe {type(value).__name__} {value!r} as JSON data")


def differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], keys: list[str]) -> list[str]:
    """``"key: A there, B now"`` for each key whose values differ (nested dicts name the inner key)."""
    found = []
    for key in keys:
        old, new = stored.get(key), wanted.get(key)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            inner = sorted(set(old) | set(new))
            found += [f"{key} {item}" for item in differences(old, new, inner)]
        else:
            found.append(f"{key}: {_short(old)} there, {_short(new)} now")
    return found


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"fingerprint {value[:12]}"  # a SHA-256
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
