"""Where the samples of a dataset job come from: MNIST (IDX directory or the embedded images), arrays (``.npy``,
zarr, in memory), image folders (:mod:`lrpkit.jobs.images`) and any map-style torch ``Dataset``.

A source is a small picklable object: ``len(source)``, ``source.read(start, stop)`` -> :class:`Batch`, and
``source.description`` (JSON data naming the data, compared when a store is resumed). Big data is opened
lazily, so a Ray worker receives paths and reads its own chunks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError

MNIST_SPLITS = ("test", "train")


@dataclass(frozen=True)
class Batch:
    """Samples ``x`` (n, ...) float32, ``labels`` (n,) int64 (-1: unknown), ``index`` (n,) int64 in the source."""

    x: np.ndarray
    labels: np.ndarray
    index: np.ndarray


class Source:
    """Base of every source: a description, a length, and ``read(start, stop)`` of positions ``start..stop``."""

    kind = "source"
    classes: list[str] | None = None
    skipped: tuple[dict[str, Any], ...] | list[dict[str, Any]] = ()  # unreadable samples left out

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, start: int, stop: int) -> Batch:
        raise NotImplementedError

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.read(0, 1).x.shape[1:])

    @property
    def description(self) -> dict[str, Any]:
        """JSON data naming these samples: kind, where, how many, their shape, and a digest of a few samples."""
        return {"kind": self.kind, **self.where(), "count": len(self), "shape": list(self.sample_shape),
                "digest": self.digest()}  # fmt: skip

    def where(self) -> dict[str, Any]:
        return {}

    def digest(self) -> str:
        """SHA-256 of the first, middle and last sample and their labels: cheap, and tells datasets apart."""
        digest = hashlib.sha256()
        for position in sorted({0, len(self) // 2, len(self) - 1}):
            batch = self.read(position, position + 1)
            digest.update(np.ascontiguousarray(batch.x, dtype=np.float32).tobytes())
            digest.update(batch.labels.astype(np.int64).tobytes())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples {self.sample_shape}, {self.where()})"


def _checked_labels(labels: Any, count: int, where: str) -> np.ndarray:
    values = np.asarray(labels)
    if values.shape != (count,) or not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{where}: labels must be {count} integers, got {values.dtype} of shape {values.shape}")
    return values.astype(np.int64)


def as_float(x: np.ndarray, where: str) -> np.ndarray:
    """Samples as float32: ``uint8`` scaled to [0, 1], other numbers as they are."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{where}: samples must be numbers, got dtype {x.dtype}")
    return x.astype(np.float32)


class ArraySource(Source):
    """Samples from an array ``(N, ...)`` in memory (NumPy or torch), with optional labels ``(N,)``."""

    kind = "array"

    def __init__(self, x: Any, labels: Any = None, name: str = "array") -> None:
        self.x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if self.x.ndim < 2 or len(self.x) == 0:
            raise DataError(f"{name}: expected samples (N, ...) with N > 0, got shape {self.x.shape}")
        labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        self.labels = None if labels is None else _checked_labels(labels, len(self.x), name)
        self.name = name

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def where(self) -> dict[str, Any]:
        return {"name": self.name}

    def read(self, start: int, stop: int) -> Batch:
        x = as_float(np.asarray(self.x[start:stop]), self.name)
        labels = np.full(len(x), -1, np.int64) if self.labels is None else self.labels[start:stop]
        return Batch(x, labels, np.arange(start, start + len(x), dtype=np.int64))


class FileArraySource(ArraySource):
    """Samples from a ``.npy`` file (memory-mapped) or a zarr array, opened lazily (also in each Ray worker);
    labels from a second ``.npy``/zarr file of ``N`` integers."""

    kind = "file"

    def __init__(self, path: str | Path, labels: str | Path | None = None) -> None:
        self.path, self.labels_path = Path(path).resolve(), None if labels is None else Path(labels).resolve()
        self.name = str(self.path)
        self._opened: tuple[Any, np.ndarray | None] | None = None
        x, _ = self._open()
        if x.ndim < 2 or x.shape[0] == 0:
            raise DataError(f"{self.path}: expected samples (N, ...) with N > 0, got shape {x.shape}")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": None}

    def _open(self) -> tuple[Any, np.ndarray | None]:
        if self._opened is None:
            x = open_array(self.path)
            labels = None if self.labels_path is None else np.asarray(open_array(self.labels_path)[:])
            if labels is not None:
                labels = _checked_labels(labels, x.shape[0], str(self.labels_path))
            self._opened = (x, labels)
        return self._opened

    @property
    def x(self) -> Any:
        return self._open()[0]

    @property
    def labels(self) -> np.ndarray | None:
        return self._open()[1]

    def where(self) -> dict[str, Any]:
        return {"path": str(self.path), "labels": None if self.labels_path is None else str(self.labels_path)}


def open_array(path: Path) -> Any:
    """A ``.npy`` file (memory-mapped) or a zarr array directory, as an array-like with ``shape``/``dtype``."""
    if path.suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable .npy array ({err})") from None
    if (path / "zarr.json").is_file() or (path / ".zarray").is_file():
        zarr = require_zarr()
        try:
            array = zarr.open_array(str(path), mode="r")
        except (OSError, ValueError, TypeError) as err:
            raise DataError(f"{path}: not a readable zarr array ({err})") from None
        return array
    raise DataError(f"{path}: expected a .npy file or a zarr array directory")


def require_zarr() -> Any:
    from ..errors import MissingExtraError

    try:
        import zarr
    except ImportError:
        raise MissingExtraError("dataset stores need zarr (v3): pip install 'lrpkit[dataset]'") from None
    return zarr


class MnistSource(ArraySource):
    """One split of MNIST: IDX files in ``path``, or (``path=None``) the embedded 4000/1000 images; loaded
    lazily, so Ray workers read the files themselves."""

    kind = "mnist"

    def __init__(self, path: str | Path | None = None, split: str = "test") -> None:
        if split not in MNIST_SPLITS:
            raise DataError(f"MNIST split must be one of {MNIST_SPLITS}, got {split!r}")
        self.path, self.split = None if path is None else Path(path).resolve(), split
        self.name = f"{'embedded MNIST' if path is None else self.path} ({split})"
        self._data: Any = None
        self._load()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}

    def _load(self) -> Any:
        if self._data is None:
            from ..model.data import mnist

            data = getattr(mnist(self.path), self.split)
            if data is None:
                raise DataError(f"{self.path}: no {self.split} split (train-images-idx3-ubyte...) found")
            self._data = data
        return self._data

    @property
    def x(self) -> Any:
        return self._load().images.numpy()

    @property
    def labels(self) -> np.ndarray:
        return self._load().labels.numpy()

    def where(self) -> dict[str, Any]:
        return {"path": None if self.path is None else str(self.path), "split": self.split}


class DatasetSource(Source):
    """A map-style torch ``Dataset``: ``dataset[i]`` is ``x`` or ``(x, label, ...)``; pickled to Ray workers."""

    kind = "dataset"

    def __init__(self, dataset: Any) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise DataError(f"a dataset source needs __getitem__ and __len__, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise DataError(f"{type(dataset).__name__}: the dataset is empty")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def where(self) -> dict[str, Any]:
        return {"type": f"{type(self.dataset).__module__}.{type(self.dataset).__qualname__}"}

    def read(self, start: int, stop: int) -> Batch:
        samples, labels = [], []
        for i in range(start, stop):
            x, label = _split_item(self.dataset[i])
            samples.append(as_float(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x), f"item {i}"))
            labels.append(label)
        shapes = {s.shape for s in samples}
        if len(shapes) > 1:
            name = type(self.dataset).__name__
            raise DataError(f"{name}: items {start}..{stop - 1} differ in shape: {sorted(shapes)}")
        return Batch(np.stack(samples), np.asarray(labels, np.int64), np.arange(start, stop, dtype=np.int64))


def _split_item(item: Any) -> tuple[Any, int]:
    if not isinstance(item, (tuple, list)):
        return item, -1
    x, label = item[0], item[1] if len(item) > 1 else -1
    return x, int(label.item() if isinstance(label, (torch.Tensor, np.ndarray)) else label)


def open_source(data: Any, labels: Any = None, split: str = "test", **image_options: Any) -> Source:
    """The source for ``data``: a :class:`Source`; ``"mnist"`` (embedded); a path to an IDX directory, a ``.npy``
    file, a zarr array or an image folder; an array or tensor ``(N, ...)``; or a map-style ``Dataset``.
    ``image_options`` go to :class:`lrpkit.jobs.images.ImageFolder` (``preprocess``, ``skip_bad``)."""
    if isinstance(data, Source):
        return data
    if isinstance(data, str) and data == "mnist":
        return MnistSource(None, split)
    if isinstance(data, (str, Path)):
        return _open_path(Path(data), labels, split, image_options)
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return ArraySource(data, labels)
    return DatasetSource(data)


def _open_path(path: Path, labels: Any, split: str, image_options: dict[str, Any]) -> Source:
    from ..model.data import _find  # the IDX file-name conventions live with the IDX reader

    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.suffix == ".npy" or (path / "zarr.json").is_file() or (path / ".zarray").is_file():
        return FileArraySource(path, labels)
    if path.is_dir() and (_find(path, "t10k", "images") or _find(path, "train", "images")):
        return MnistSource(path, split)
    if path.is_dir():
        from .images import ImageFolder

        return ImageFolder(path, **image_options)
    raise DataError(f"{path}: not an IDX directory, .npy file, zarr array or image folder")
