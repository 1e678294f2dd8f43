"""Training (Adam, sigmoid or softmax cross-entropy) and evaluation of a Network on a data split."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .. import checks
from ..errors import DataError, SpecError, TrainingError
from ..progress import bar as progress_bar

if TYPE_CHECKING:
    from .data import Split
    from .network import Network

LOSSES = ("sigmoid", "softmax")
SCHEDULES = ("constant", "cosine")
"""Learning rate over the steps: ``lr`` throughout, or a linear warm-up over the first ``steps // 25`` steps times
``(1 + cos(pi t / steps)) / 2``, down to 0 (:func:`lr_factor`)."""
RECIPES = {
    "mlp": {"steps": 3000, "augment": 1},
    "cnn": {"steps": 1500, "augment": 1},
    "resnet": {"steps": 2000, "augment": 1, "lr": 3e-3, "schedule": "cosine"},
    "vit": {"steps": 2500, "augment": 1, "loss": "softmax", "lr": 2e-3, "schedule": "cosine"},
}
"""Training settings of the ready-made architectures (``make demo``, ``lrpkit train``, ``bench/accuracy.py``):
on the embedded 4000 images they reach >= 94 % (MLP), >= 97.5 % (CNN), >= 98.3 % (ResNet) and >= 96 % (ViT) on the
10,000 MNIST test images (``bench/accuracy.py``)."""
DEFAULT_RECIPE = {"steps": 2000, "augment": 0}


def lr_factor(step: int, steps: int, schedule: str) -> float:
    """The learning rate at ``step`` (0-based) as a fraction of ``lr`` (see :data:`SCHEDULES`)."""
    checks.choice(schedule, "schedule", SCHEDULES)
    if schedule == "constant":
        return 1.0
    warm = min(1.0, (step + 1) / max(1, steps // 25))
    return warm * (1 + math.cos(math.pi * step / steps)) / 2


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


def check_split(data: Any, net: Network, what: str) -> Split:
    """``data`` if it is a non-empty split whose images and labels fit ``net``; :class:`DataError` otherwise."""
    if data is None or not hasattr(data, "images") or not hasattr(data, "labels"):
        raise DataError(f"{what} needs a data split with .images and .labels (e.g. lrpkit.data.mnist().train)")
    if len(data.labels) == 0:
        raise DataError(f"{what}: the split is empty")
    image = tuple(data.images.shape[1:])
    if math.prod(image) != math.prod(net.input_shape):
        raise DataError(
            f"{what}: the images have shape {image}, but the network takes inputs of shape {net.input_shape}"
        )
    low, high = int(data.labels.min()), int(data.labels.max())
    if low < 0 or high >= net.classes:
        raise DataError(f"{what}: the labels run from {low} to {high}, but the network has {net.classes} classes")
    return data


def _check_options(net: Network, data: Split, steps, batch_size, lr, loss, seed, augment, schedule) -> None:
    """Checks every :func:`fit` argument before any work starts."""
    checks.positive_int(steps, "steps")
    checks.positive_int(batch_size, "batch_size")
    checks.number(lr, "lr", above=0.0)
    checks.choice(loss, "loss", LOSSES)
    checks.choice(schedule, "schedule", SCHEDULES)
    checks.seed(seed)
    side = min(data.images.shape[-2:]) if data.images.dim() >= 3 else 1
    checks.integer(augment, "augment", minimum=0, maximum=max(side - 1, 0))
    if next(net.parameters(), None) is None:
        raise SpecError("the network has no parameters to train (no Linear or Conv layer)")


def _check_loss(step: int, value: float, lr: float) -> None:
    """:class:`TrainingError` naming the step when the loss is NaN or Inf."""
    if not math.isfinite(value):
        raise TrainingError(f"training diverged at step {step}: the loss is {value}; try a smaller lr than {lr}")


def _check_weights(net: Network, step: int, lr: float) -> None:
    """:class:`TrainingError` naming the first weight that holds NaN or Inf."""
    bad = next((name for name, p in net.named_parameters() if not bool(torch.isfinite(p).all())), None)
    if bad is not None:
        raise TrainingError(f"training diverged at step {step}: {bad} holds NaN or Inf; try a smaller lr than {lr}")


def _step(net, data, optimizer, order, history, batch_size, augment, loss, step, lr) -> None:
    """One Adam step on a random minibatch (shifted by up to ``augment`` pixels); appends to ``history``."""
    param = next(net.parameters())
    index = torch.randint(len(data.labels), (batch_size,), generator=order)
    x = data.images[index]
    x = (shift(x, augment, order) if augment else x).to(param)
    y = data.labels[index].to(param.device)
    logits = net(x)
    value = loss_value(logits, y, loss)
    history.loss.append(value.item())
    _check_loss(step + 1, history.loss[-1], lr)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    history.accuracy.append((logits.argmax(1) == y).float().mean().item())


def fit(
    net: Network,
    data: Split,
    steps: int = 2000,
    batch_size: int = 50,
    lr: float = 1e-3,
    loss: str = "sigmoid",
    seed: int = 0,
    augment: int = 0,
    schedule: str = "constant",
    progress: bool | None = None,
) -> History:
    """Trains ``net`` in place with Adam for ``steps`` minibatches; the same seed gives the same result.

    ``augment``: shift each training image by up to this many pixels (0: no augmentation).
    ``schedule``: ``"constant"`` keeps ``lr``; ``"cosine"`` warms up over 4 % of the steps, then lowers it to 0.
    ``progress``: a progress bar on stderr; by default on a terminal and in Jupyter notebooks.
    A loss that becomes NaN or Inf stops training with :class:`TrainingError` naming the step (the weights
    are then those before that step); so does a weight that is not finite after the last step.
    """
    data = check_split(data, net, "fit")
    _check_options(net, data, steps, batch_size, lr, loss, seed, augment, schedule)
    order = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_factor(t, steps, schedule))
    history, start = History(), time.perf_counter()
    net.train()
    try:
        with torch.random.fork_rng(devices=[]), progress_bar(range(steps), "training", progress) as bar:
            torch.manual_seed(seed)  # dropout masks
            for step in bar:
                _step(net, data, optimizer, order, history, batch_size, augment, loss, step, lr)
                scheduler.step()
                bar.set_postfix(loss=f"{history.loss[-1]:.3f}", refresh=False)
    finally:
        net.eval()
    _check_weights(net, steps, lr)
    history.seconds = time.perf_counter() - start
    net.metadata.update({"steps": net.metadata.get("steps", 0) + steps, "loss": loss, "batch_size": batch_size})
    net.metadata.update({"lr": lr, "seed": seed, "augment": augment, "train_seconds": round(history.seconds, 2)})
    net.metadata["schedule"] = schedule
    return history


@torch.no_grad()
def predict(net: Network, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for all images, computed in batches in eval mode (on the network's dtype and device)."""
    checks.positive_int(batch_size, "batch_size")
    param = next(net.parameters(), None)
    like = param if param is not None else images.float()
    net.eval()
    return torch.cat([net(images[i : i + batch_size].to(like)) for i in range(0, len(images), batch_size)])


def evaluate(net: Network, data: Split, loss: str | None = None, batch_size: int = 1000) -> dict[str, float]:
    """``{"accuracy": ..., "loss": ...}`` over a whole split (loss: the one the net was trained with)."""
    data = check_split(data, net, "evaluate")
    logits = predict(net, data.images, batch_size)
    labels = data.labels.to(logits.device)
    loss = loss or net.metadata.get("loss", "sigmoid")
    return {
        "accuracy": (logits.argmax(1) == labels).double().mean().item(),
        "loss": loss_value(logits, labels, loss).item(),
    }
