"""One chunk of a dataset job: read its samples, compute logits and relevance, write its rows, set its marker.

The same :class:`ChunkWriter` runs in-process and inside each Ray worker, so both write the same bytes given
the same thread count. A model is given to workers as a :class:`ModelRecipe` (a factory plus weights).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DataError, ModelFileError, StoreError
from .fingerprint import model_fingerprint
from .sources import Batch, Source
from .store import Store, open_store

TARGETS = ("true", "pred", "all")


@dataclass(frozen=True)
class Job:
    """What every worker needs to explain any chunk: where the store is, the source, and the method."""

    store: str
    source: Source
    method: Any
    target: Any
    fingerprint: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRecipe:
    """How a worker builds the model: ``make()``, then ``weights`` (a state dict or a ``.safetensors`` file)."""

    make: Callable[[], nn.Module]
    weights: Mapping[str, torch.Tensor] | str | None = field(default=None, repr=False)

    def build(self) -> nn.Module:
        model = self.make()
        if self.weights is not None:
            model.load_state_dict(_read_weights(self.weights))
        return model.eval()


def _read_weights(weights: Mapping[str, torch.Tensor] | str) -> Mapping[str, torch.Tensor]:
    if not isinstance(weights, (str, Path)):
        return weights
    from safetensors.torch import load_file

    try:
        return load_file(str(weights))
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({err})") from None


def recipe(model: Any, weights: Any = None) -> ModelRecipe:
    """A :class:`ModelRecipe` for a model directory, an lrpkit Network (spec + weights), any other module
    (shipped whole), or a factory (a callable returning a module) with optional ``weights``."""
    from ..model.io import load
    from ..model.network import Network

    if isinstance(model, (str, Path)):
        return ModelRecipe(functools.partial(load, str(Path(model).resolve())), weights)
    if isinstance(model, Network):
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return ModelRecipe(functools.partial(_network, model.spec(), _dtype_name(model)), weights or state)
    if isinstance(model, nn.Module):
        return ModelRecipe(functools.partial(copy.deepcopy, model), weights)
    if callable(model):
        return ModelRecipe(model, weights)
    raise ModelFileError(f"model must be a module, a model directory or a factory, got {type(model).__name__}")


def _dtype_name(model: nn.Module) -> str:
    return str(next((p.dtype for p in model.parameters()), torch.float32)).removeprefix("torch.")


def _network(spec: dict[str, Any], dtype: str) -> nn.Module:
    from ..model.network import Network

    return Network.from_spec(spec, seed=None).to(getattr(torch, dtype))


class ChunkWriter:
    """Holds the model and the open store; :meth:`run` explains one chunk unless it is already finished.
    A model in training mode or on another device is copied first (:func:`ready`)."""

    def __init__(self, job: Job, model: nn.Module, device: str = "cpu") -> None:
        self.job, self.device = job, torch.device(device)
        if model_fingerprint(model) != job.fingerprint:
            raise ModelFileError(f"{job.store}: this worker built another model than the driver (fingerprint differs)")
        self.model = model = ready(model, self.device)
        self.dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self.store: Store = open_store(job.store, writable=True)
        self.half = self.store.attrs["dtype"] == "float16"

    def run(self, chunk: int, computed: tuple[Batch, dict[str, np.ndarray]] | None = None) -> int:
        """Explains and writes ``chunk`` (or writes ``computed``: its batch and :func:`explain_batch` values);
        returns its number of samples, or 0 if it was already finished."""
        if self.store.is_finished(chunk):
            return 0
        rows = self.store.rows(chunk)
        if computed is None:
            batch = self.job.source.read(rows.start, rows.stop)
            values = explain_batch(self.model, batch, self.job.target, self.job.method, self.job.options, self.dtype)
        else:
            batch, values = computed
        if self.half:
            values["relevance"] = as_float16(values["relevance"], batch, self.job.store)
        self.store.write_chunk(chunk, values)
        return rows.stop - rows.start


def ready(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` if it is in eval mode on ``device``, else an eval copy there (the caller's module never changes)."""
    device = torch.device(device)
    if model.training or any(p.device != device for p in model.parameters()):
        return copy.deepcopy(model).to(device).eval()
    return model


def explain_batch(
    model: nn.Module, batch: Batch, target: Any, method: Any, options: dict[str, Any], dtype: torch.dtype
) -> dict[str, np.ndarray]:
    """The store's rows for ``batch``: relevance (float32), logits, prediction, label, index (one forward pass:
    the engine's own gives the logits)."""
    from ..engine import explain

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.from_numpy(np.ascontiguousarray(batch.x)).to(device, dtype)
    result = explain(model, x, _explained(target, batch), method, **options)
    logits = result.output
    prediction = logits.argmax(1)
    return {
        "relevance": result.heatmap(tuple(x.shape)).float().cpu().numpy(),
        "logits": logits.float().cpu().numpy(),
        "prediction": prediction.cpu().numpy().astype(np.int64),
        "label": batch.labels,
        "index": batch.index,
    }


def _explained(target: Any, batch: Batch) -> Any:
    """What the engine explains: the labels for ``"true"``, else ``target`` (``"pred"`` the engine resolves)."""
    if target != "true":
        return target
    unknown = np.flatnonzero(batch.labels < 0)
    if len(unknown):
        raise DataError(f"sample {int(batch.index[unknown[0]])} has no label; target 'true' needs one (use 'pred')")
    return torch.from_numpy(batch.labels)  # the engine moves targets to the output's device


def as_float16(relevance: np.ndarray, batch: Batch, store: str) -> np.ndarray:
    """``relevance`` as float16, or :class:`StoreError` naming the first sample whose relevance overflows it."""
    with np.errstate(over="ignore"):
        half = relevance.astype(np.float16)
    overflow = np.isinf(half) & np.isfinite(relevance)
    if overflow.any():
        sample = int(batch.index[np.argwhere(overflow)[0][0]])
        raise StoreError(
            f"{store}: relevance of sample {sample} exceeds float16's range (|R| up to "
            f"{float(np.abs(relevance).max()):.3g}); use dtype float32"
        )
    return half
