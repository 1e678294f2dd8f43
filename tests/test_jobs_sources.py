"""Dataset sources: MNIST (IDX, embedded), arrays (.npy, zarr, memory), torch-style datasets, image folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lrpkit.errors import DataError, SpecError
from lrpkit.jobs.images import ImageFolder, Preprocess
from lrpkit.jobs.sources import ArraySource, DatasetSource, MnistSource, open_source
from lrpkit.model.data import IMAGES_MAGIC, LABELS_MAGIC
from test_data import write_idx


def test_idx_directory_is_an_mnist_source(tmp_path, rng):
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, IMAGES_MAGIC)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(7, dtype=np.uint8), LABELS_MAGIC)
    source = open_source(tmp_path)
    assert isinstance(source, MnistSource) and len(source) == 7
    batch = source.read(2, 5)
    np.testing.assert_array_equal(batch.x[:, 0], images[2:5] / np.float32(255))
    np.testing.assert_array_equal(batch.labels, [2, 3, 4])
    np.testing.assert_array_equal(batch.index, [2, 3, 4])
    with pytest.raises(DataError, match="no train split"):
        open_source(tmp_path, split="train")


def test_embedded_mnist_matches_lrpkit_data(mnist_data):
    source = open_source("mnist", split="train")
    batch = source.read(10, 20)
    np.testing.assert_array_equal(batch.x, mnist_data.train.images[10:20].numpy())
    np.testing.assert_array_equal(batch.labels, mnist_data.train.labels[10:20].numpy())


@pytest.mark.parametrize("kind", ["npy", "zarr"])
def test_array_files_with_labels(tmp_path, rng, kind):
    import zarr

    x = rng.integers(0, 256, (9, 1, 4, 4), dtype=np.uint8)
    labels = np.arange(9) % 3
    if kind == "npy":
        path, label_path = tmp_path / "x.npy", tmp_path / "y.npy"
        np.save(path, x)
        np.save(label_path, labels)
    else:
        path, label_path = tmp_path / "x.zarr", tmp_path / "y.zarr"
        zarr.create_array(str(path), data=x, chunks=(4, 1, 4, 4))
        zarr.create_array(str(label_path), data=labels)
    source = open_source(path, labels=label_path)
    batch = source.read(3, 9)
    np.testing.assert_array_equal(batch.x, x[3:9] / np.float32(255))  # uint8 scaled to [0, 1]
    np.testing.assert_array_equal(batch.labels, labels[3:9])
    assert source.description["count"] == 9 and source.description["shape"] == [1, 4, 4]


def test_array_labels_must_fit(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 2), np.float32))
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"y\.npy: labels must be 4 integers, got int64 of shape \(3,\)"):
        open_source(tmp_path / "x.npy", labels=tmp_path / "y.npy")


def test_digest_tells_data_apart(rng):
    x = rng.normal(size=(5, 3)).astype(np.float32)
    same, other = ArraySource(x.copy()), ArraySource(x + np.eye(5, 3, dtype=np.float32))
    assert ArraySource(x).description == same.description
    assert ArraySource(x).description["digest"] != other.description["digest"]


def test_dataset_source_reads_items_and_labels():
    items = [(torch.full((1, 2, 2), float(i)), i % 2) for i in range(5)]
    source = DatasetSource(items)
    batch = source.read(1, 4)
    assert batch.x.shape == (3, 1, 2, 2) and batch.x.dtype == np.float32
    np.testing.assert_array_equal(batch.labels, [1, 0, 1])
    assert DatasetSource([np.zeros(3)] * 2).read(0, 2).labels.tolist() == [-1, -1]  # items without labels


def test_unknown_path_is_named(tmp_path):
    with pytest.raises(DataError, match="nothing-here: no such file"):
        open_source(tmp_path / "nothing-here")


# -- image folders ---------------------------------------------------------------------------------


def _image(path, value, size=(6, 5), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 0, 255 - value)
    Image.new(mode, size, color).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    _image(root / "cat" / "a.png", 10)
    _image(root / "cat" / "b.JPG", 20, mode="RGB")
    _image(root / "dog" / "c.jpeg", 30)
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_classes_labels_and_preprocessing(folder):
    source = open_source(folder, preprocess=Preprocess(size=(3, 4), channels=1))
    assert isinstance(source, ImageFolder) and source.classes == ["cat", "dog"] and len(source) == 3
    batch = source.read(0, 3)
    assert batch.x.shape == (3, 1, 3, 4)
    np.testing.assert_array_equal(batch.labels, [0, 0, 1])
    np.testing.assert_allclose(batch.x[0], 10 / 255, atol=1e-7)  # gray value scaled to [0, 1]


def test_mean_and_std_are_applied_per_channel(folder):
    plain = ImageFolder(folder, Preprocess(size=(2, 2))).read(0, 1).x
    normed = ImageFolder(folder, Preprocess(size=(2, 2), mean=(0.5, 0.25, 0.0), std=(2.0, 1.0, 0.5))).read(0, 1).x
    expected = (plain - np.array([0.5, 0.25, 0.0], np.float32)[:, None, None]) / np.array([2, 1, 0.5])[:, None, None]
    np.testing.assert_allclose(normed, expected, rtol=1e-6)


def test_bad_image_is_named_or_skipped_and_listed(folder):
    (folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"broken\.png: cannot read image.*--skip-bad"):
        ImageFolder(folder, Preprocess(size=(4, 4)))
    source = ImageFolder(folder, Preprocess(size=(4, 4)), skip_bad=True)
    assert len(source) == 3
    assert [s["file"] for s in source.skipped] == ["dog/broken.png"] and source.skipped[0]["index"] == 2
    np.testing.assert_array_equal(source.read(0, 3).index, [0, 1, 3])  # positions among all listed files


def test_truncated_image_is_named(folder):
    good = folder / "cat" / "a.png"
    data = good.read_bytes()
    (folder / "cat" / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.png: cannot read image"):
        ImageFolder(folder, Preprocess(size=(4, 4)))


def test_images_of_different_sizes_need_a_size(folder):
    _image(folder / "dog" / "d.png", 40, size=(9, 9))
    with pytest.raises(DataError, match=r"d\.png: image of shape \(3, 9, 9\), but .* has \(3, 5, 6\).*--image-size"):
        ImageFolder(folder)


def test_preprocess_checks_its_parameters():
    with pytest.raises(SpecError, match="channels must be 1 or 3"):
        Preprocess(channels=2)
    with pytest.raises(SpecError, match="std must be positive"):
        Preprocess(std=(0.0,))
