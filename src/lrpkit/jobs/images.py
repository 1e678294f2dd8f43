"""Image folders as a dataset source: ``ROOT/<class>/<image>.png|jpg|jpeg`` (classes in sorted order; images
directly in ``ROOT`` have no label), read with Pillow and turned into arrays by a stated :class:`Preprocess`.

Every image is decoded once when the folder is opened, before anything is written: an unreadable one is named
(or, with ``skip_bad``, left out and listed in ``skipped``), so a bad file never stops a run half way.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, SpecError
from .sources import Batch, Source

EXTENSIONS = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}


@dataclass(frozen=True)
class Preprocess:
    """Image -> float32 array ``(channels, H, W)``: convert to gray (``channels=1``) or RGB (3), resize to
    ``size = (H, W)`` (bilinear; None keeps the size, which must then be the same for every image), scale to
    [0, 1], then ``(x - mean) / std`` per channel when ``mean``/``std`` are given."""

    size: tuple[int, int] | None = None
    channels: int = 3
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels not in MODES:
            raise SpecError(f"Preprocess: channels must be 1 or 3, got {self.channels!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise SpecError(f"Preprocess: size must be (height, width) of positive ints, got {self.size!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) not in (1, self.channels):
                raise SpecError(f"Preprocess: {name} needs 1 or {self.channels} values, got {value!r}")
        if self.std is not None and min(self.std) <= 0:
            raise SpecError(f"Preprocess: std must be positive, got {self.std!r}")

    def __call__(self, image: Image.Image) -> np.ndarray:
        image = image.convert(MODES[self.channels])
        if self.size is not None and image.size != (self.size[1], self.size[0]):
            image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        x = np.asarray(image, dtype=np.float32).reshape(image.height, image.width, -1).transpose(2, 0, 1) / 255
        if self.mean is not None:
            x = x - np.asarray(self.mean, np.float32)[:, None, None]
        if self.std is not None:
            x = x / np.asarray(self.std, np.float32)[:, None, None]
        return np.ascontiguousarray(x, dtype=np.float32)


def read_image(file: Path, preprocess: Preprocess) -> np.ndarray:
    """One image file through ``preprocess``; :class:`DataError` naming the file when Pillow cannot read it."""
    try:
        with Image.open(file) as image:
            image.load()
            return preprocess(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{file}: cannot read image ({err})") from None


class ImageFolder(Source):
    """The images under ``root`` (see the module doc), checked once; ``skip_bad`` leaves unreadable ones out."""

    kind = "images"

    def __init__(
        self, root: str | Path, preprocess: Preprocess | None = None, skip_bad: bool = False, progress: bool = False
    ) -> None:
        self.root = Path(root).resolve()
        self.preprocess = preprocess or Preprocess()
        files, labels, self.classes = _listing(self.root)
        good, self.skipped = _check(files, self.root, self.preprocess, skip_bad, progress)
        if not good:
            raise DataError(f"{self.root}: no readable images left")
        self.files = [files[i] for i in good]
        self.labels = np.asarray([labels[i] for i in good], np.int64)
        self.positions = np.asarray(good, np.int64)  # index of each kept image among all listed files

    def __len__(self) -> int:
        return len(self.files)

    def where(self) -> dict[str, Any]:
        return {"path": str(self.root), "preprocess": asdict(self.preprocess), "skipped": len(self.skipped)}

    def digest(self) -> str:
        """SHA-256 of the file names, sizes and labels, plus the sampled pixels of :meth:`Source.digest`."""
        digest = hashlib.sha256(super().digest().encode())
        for file, label in zip(self.files, self.labels.tolist(), strict=True):
            digest.update(f"{file.relative_to(self.root)}:{file.stat().st_size}:{label}\n".encode())
        return digest.hexdigest()[:16]

    def read(self, start: int, stop: int) -> Batch:
        x = np.stack([read_image(file, self.preprocess) for file in self.files[start:stop]])
        return Batch(x, self.labels[start:stop], self.positions[start:stop])


def _listing(root: Path) -> tuple[list[Path], list[int], list[str] | None]:
    """Image files (sorted by class, then name), their labels, and the class names (None: no subfolders)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of images")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        files = _images(root)
        return files, [-1] * len(files), None
    files, labels = [], []
    for label, folder in enumerate(folders):
        found = _images(folder)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"{root}: no {'/'.join(EXTENSIONS)} files in its class folders")
    return files, labels, [folder.name for folder in folders]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _check(
    files: list[Path], root: Path, preprocess: Preprocess, skip_bad: bool, progress: bool
) -> tuple[list[int], list[dict[str, Any]]]:
    """Decodes every image: the positions of the good ones, and ``{"index", "file", "error"}`` of the bad."""
    from tqdm.auto import tqdm

    good, skipped, shapes = [], [], {}
    for i, file in enumerate(tqdm(files, desc="checking images", unit="img", disable=not progress)):
        try:
            shape = read_image(file, preprocess).shape
        except DataError as err:
            if not skip_bad:
                raise DataError(f"{err} (pass --skip-bad / skip_bad=True to leave unreadable images out)") from None
            skipped.append({"index": i, "file": str(file.relative_to(root)), "error": str(err)})
            continue
        shapes.setdefault(shape, file)
        if len(shapes) > 1:
            first = next(iter(shapes.items()))
            raise DataError(
                f"{file}: image of shape {shape}, but {first[1]} has {first[0]} "
                "(give a size to resize to: --image-size / Preprocess(size=...))"
            )
        good.append(i)
    return good, skipped
