"""Decoy-MNIST (Ross, Hughes & Doshi-Velez, IJCAI 2017): MNIST with a shortcut a model can learn instead of
the digit.

Each patched image gets a ``size × size`` square in one of its four corners (chosen at random per image) whose
gray value is ``255 − 25·y`` for a label ``y``: the image's own label in training (a perfect predictor), a random
label in test (no information, so a model that took the shortcut collapses there). The patch masks are the
ground truth of where the shortcut lies. The partial variant patches only a ``fraction`` of one ``poisoned``
class's training images: the Clever Hans group that spectral relevance analysis should find — if the model
uses the patch (with the digit present too, it may not need it; ``relabel=True`` makes it need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import SpecError
from .data import Split, mnist

CORNERS = ("top left", "top right", "bottom left", "bottom right")


def decoy_value(label: torch.Tensor | int) -> torch.Tensor:
    """The patch's gray value in [0, 1] for a label: ``(255 − 25·label) / 255``."""
    return (255.0 - 25.0 * torch.as_tensor(label, dtype=torch.float32)) / 255.0


@dataclass(frozen=True)
class DecoyMNIST:
    """Decoy-MNIST splits; ``*_mask`` ``(N, 1, 28, 28)`` bool marks each patch (all False where unpatched),
    ``test_decoy`` the label whose gray value each test patch has; ``poisoned`` the class of the partial variant
    (None: every image patched)."""

    train: Split | None
    test: Split
    train_mask: torch.Tensor | None
    test_mask: torch.Tensor
    test_decoy: torch.Tensor
    poisoned: int | None
    fraction: float
    relabel: bool
    source: str

    @property
    def train_patched(self) -> torch.Tensor:
        """``(N,)`` bool: which training images carry a patch."""
        return self.train_mask.flatten(1).any(1)

    def __repr__(self) -> str:
        variant = "full" if self.poisoned is None else f"partial: {self.fraction:.0%} of class {self.poisoned}"
        variant += ", relabelled from other classes" if self.relabel else ""
        return f"DecoyMNIST({variant}, train {self.train}, test {self.test})"


def add_patches(
    images: torch.Tensor, values: torch.Tensor, corners: torch.Tensor, size: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of ``images`` ``(N, 1, H, W)`` with a ``size × size`` square of gray ``values[i]`` in corner
    ``corners[i]`` (0..3: see :data:`CORNERS`), and the masks of those squares."""
    h, w = images.shape[-2:]
    mask = torch.zeros(images.shape, dtype=torch.bool)
    for corner in range(4):
        rows = slice(0, size) if corner < 2 else slice(h - size, h)
        columns = slice(0, size) if corner % 2 == 0 else slice(w - size, w)
        mask[corners == corner, :, rows, columns] = True
    patched = torch.where(mask, values.reshape(-1, 1, 1, 1).to(images.dtype), images)
    return patched, mask


def decoy_mnist(
    path: str | Path | None = None,
    *,
    poisoned: int | None = None,
    fraction: float = 0.3,
    relabel: bool = False,
    size: int = 4,
    corner: int | None = None,
    seed: int = 0,
) -> DecoyMNIST:
    """Decoy-MNIST from :func:`lrpkit.data.mnist` (``path``: IDX files, default the embedded 5000 images).

    ``poisoned=None``: every training image carries the patch of its label (Ross et al.); ``poisoned=c``: only
    ``round(fraction · n_c)`` randomly chosen training images of class ``c`` do; with ``relabel=True`` those
    images are drawn from the other classes instead and labelled ``c`` (a backdoor, Gu et al. 2017: the patch is
    then the only evidence for their label). Every test image carries the patch of a random label.
    ``corner``: the corner of every training patch (0..3, see :data:`CORNERS`) instead of a random one per image
    (Ross et al.'s random corners are the default); test patches stay in random corners.
    Deterministic for a ``seed``.
    """
    _check(poisoned, fraction, size, corner)
    base = mnist(path)
    generator = torch.Generator().manual_seed(seed)
    train, train_mask = None, None
    if base.train is not None:
        labels = base.train.labels.clone()
        chosen = _chosen(labels, poisoned, fraction, relabel, generator)
        if relabel:
            labels[chosen] = poisoned
        corners = torch.randint(4, (len(chosen),), generator=generator)
        if corner is not None:
            corners[:] = corner
        corners[~chosen] = -1  # no corner: unpatched
        images, train_mask = add_patches(base.train.images, decoy_value(labels), corners, size)
        train = Split(images, labels)
    decoy = torch.randint(10, (len(base.test),), generator=generator)
    corners = torch.randint(4, (len(base.test),), generator=generator)
    images, test_mask = add_patches(base.test.images, decoy_value(decoy), corners, size)
    return DecoyMNIST(train, Split(images, base.test.labels), train_mask, test_mask, decoy, poisoned,
                      1.0 if poisoned is None else fraction, relabel, f"decoy-mnist of {base.source}")  # fmt: skip


def _chosen(
    labels: torch.Tensor, poisoned: int | None, fraction: float, relabel: bool, generator: torch.Generator
) -> torch.Tensor:
    """``(N,)`` bool: the training images that get a patch (``relabel``: taken from the other classes)."""
    if poisoned is None:
        return torch.ones(len(labels), dtype=torch.bool)
    count = round(fraction * int((labels == poisoned).sum()))
    members = torch.nonzero((labels != poisoned) if relabel else (labels == poisoned)).ravel()
    chosen = torch.zeros(len(labels), dtype=torch.bool)
    chosen[members[torch.randperm(len(members), generator=generator)[:count]]] = True
    return chosen


def _check(poisoned: int | None, fraction: float, size: int, corner: int | None) -> None:
    if poisoned is not None and (isinstance(poisoned, bool) or not isinstance(poisoned, int) or not 0 <= poisoned <= 9):
        raise SpecError(f"poisoned must be a class 0..9 or None, got {poisoned!r}")
    if not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise SpecError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 14:
        raise SpecError(f"size must be a whole number of pixels in 1..14, got {size!r}")
    if corner is not None and (isinstance(corner, bool) or not isinstance(corner, int) or not 0 <= corner <= 3):
        raise SpecError(f"corner must be None (random) or 0..3 ({', '.join(CORNERS)}), got {corner!r}")
