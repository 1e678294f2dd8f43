"""Training (Adam, sigmoid or softmax cross-entropy) and evaluation of a Network on a data split."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import DataError, SpecError

if TYPE_CHECKING:
    from .data import Split
    from .network import Network

LOSSES = ("sigmoid", "softmax")
RECIPES = {"mlp": {"steps": 3000, "augment": 1}, "cnn": {"steps": 1500, "augment": 1}}
"""Training settings of the ready-made architectures (``make demo``, ``lrpkit train``, ``bench/accuracy.py``):
on the embedded 4000 images they reach >= 94 % (MLP) and >= 97.5 % (CNN) on the 10,000 MNIST test images."""
DEFAULT_RECIPE = {"steps": 2000, "augment": 0}


def loss_value(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss: sigmoid cross-entropy on one-hot targets (summed over classes), or softmax cross-entropy."""
    if loss == "sigmoid":
        one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, one_hot, reduction="sum") / len(labels)
    if loss == "softmax":
        return F.cross_entropy(logits, labels)
    raise SpecError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def shift(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translates each image by a random whole number of pixels in [-pixels, pixels] (zero fill)."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (pixels,) * 4)
    offset = torch.randint(2 * pixels + 1, (len(images),), generator=generator) * (2 * pixels + 1)
    offset += torch.randint(2 * pixels + 1, (len(images),), generator=generator)
    out = torch.empty_like(images)
    for code in offset.unique().tolist():
        dy, dx = divmod(code, 2 * pixels + 1)
        group = offset == code
        out[group] = padded[group, :, dy : dy + h, dx : dx + w]
    return out


@dataclass
class History:
    """Per-step training loss and batch accuracy, and the wall time of the run in seconds."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        if not self.loss:
            return "History(empty)"
        return f"History({len(self.loss)} steps, last loss {self.loss[-1]:.4f}, {self.seconds:.1f} s)"


def _check_split(data: Any, what: str) -> Split:
    if data is None or not hasattr(data, "images") or not hasattr(data, "labels"):
        raise DataError(f"{what} needs a data split with .images and .labels (e.g. lrpkit.data.mnist().train)")
    if len(data.labels) == 0:
        raise DataError(f"{what}: the split is empty")
    return data


def fit(
    net: Network,
    data: Split,
    steps: int = 2000,
    batch_size: int = 50,
    lr: float = 1e-3,
    loss: str = "sigmoid",
    seed: int = 0,
    augment: int = 0,
    progress: bool | None = None,
) -> History:
    """Trains ``net`` in place with Adam for ``steps`` minibatches; the same seed gives the same result.

    ``augment``: shift each training image by up to this many pixels (0: no augmentation).

    ``progress``: a tqdm bar on stderr; by default shown only when stderr is a terminal.
    """
    from tqdm.auto import tqdm

    data = _check_split(data, "fit")
    loss_value(torch.zeros(1, net.classes), torch.zeros(1, dtype=torch.long), loss)  # validates the name
    if steps < 1 or batch_size < 1:
        raise SpecError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    param = next(net.parameters())
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history, start = History(), time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    net.train()
    with torch.random.fork_rng(devices=[]), tqdm(range(steps), disable=not show, desc="training") as bar:
        torch.manual_seed(seed)  # dropout masks
        for _ in bar:
            index = torch.randint(len(data.labels), (batch_size,), generator=order)
            x = data.images[index]
            x = (shift(x, augment, order) if augment else x).to(param)
            y = data.labels[index].to(param.device)
            logits = net(x)
            value = loss_value(logits, y, loss)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            history.loss.append(value.item())
            history.accuracy.append((logits.argmax(1) == y).float().mean().item())
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", refresh=False)
    net.eval()
    history.seconds = time.perf_counter() - start
    net.metadata.update({"steps": net.metadata.get("steps", 0) + steps, "loss": loss, "batch_size": batch_size})
    net.metadata.update({"lr": lr, "seed": seed, "augment": augment, "train_seconds": round(history.seconds, 2)})
    return history


@torch.no_grad()
def predict(net: Network, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for all images, computed in batches in eval mode."""
    param = next(net.parameters())
    net.eval()
    return torch.cat([net(images[i : i + batch_size].to(param)) for i in range(0, len(images), batch_size)])


def evaluate(net: Network, data: Split, loss: str | None = None, batch_size: int = 1000) -> dict[str, float]:
    """``{"accuracy": ..., "loss": ...}`` over a whole split (loss: the one the net was trained with)."""
    data = _check_split(data, "evaluate")
    logits = predict(net, data.images, batch_size)
    labels = data.labels.to(logits.device)
    loss = loss or net.metadata.get("loss", "sigmoid")
    return {
        "accuracy": (logits.argmax(1) == labels).double().mean().item(),
        "loss": loss_value(logits, labels, loss).item(),
    }
