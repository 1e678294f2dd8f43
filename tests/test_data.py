import gzip
import struct
import zlib

import numpy as np
import pytest
import torch

from lrpkit.errors import DataError, SpecError
from lrpkit.model.data import IMAGES_MAGIC, LABELS_MAGIC, idx_mnist, mnist, read_idx


def write_idx(path, array, magic, compress=False):
    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def idx_dir(tmp_path, rng):
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, IMAGES_MAGIC, compress=True)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", labels, LABELS_MAGIC)
    return tmp_path, images, labels


def test_idx_test_only_directory(idx_dir):
    path, images, labels = idx_dir
    data = idx_mnist(path)
    assert data.train is None
    assert data.test.images.shape == (7, 1, 28, 28) and data.test.images.dtype == torch.float32
    assert torch.equal(data.test.images[:, 0] * 255, torch.from_numpy(images).float())
    assert torch.equal(data.test.labels, torch.from_numpy(labels).long())
    assert data.test.one_hot.shape == (7, 10) and torch.equal(data.test.one_hot.argmax(1), data.test.labels)


def test_idx_train_and_test(idx_dir, rng):
    path, _, _ = idx_dir
    write_idx(path / "train-images-idx3-ubyte", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), IMAGES_MAGIC)
    write_idx(path / "train-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8), LABELS_MAGIC, compress=True)
    data = mnist(path)
    assert len(data.train) == 5 and len(data.test) == 7


def test_truncated_file_names_the_file(idx_dir):
    path, _, _ = idx_dir
    file = path / "t10k-labels.idx1-ubyte"
    file.write_bytes(file.read_bytes()[:-2])
    with pytest.raises(DataError, match="t10k-labels.idx1-ubyte.*truncated"):
        idx_mnist(path)


def test_foreign_file_has_wrong_magic(tmp_path):
    file = tmp_path / "x"
    file.write_bytes(b"hello world, not idx")
    with pytest.raises(DataError, match="magic"):
        read_idx(file, IMAGES_MAGIC)


def test_mismatched_counts_and_missing_partner(idx_dir, rng):
    path, _, _ = idx_dir
    write_idx(path / "t10k-labels.idx1-ubyte", np.zeros(3, dtype=np.uint8), LABELS_MAGIC)
    with pytest.raises(DataError, match="7 images but .* 3 labels"):
        idx_mnist(path)
    (path / "t10k-labels.idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels"):
        idx_mnist(path)
    with pytest.raises(DataError, match="not a directory"):
        idx_mnist(path / "nope")


def test_embedded_split_is_stratified_deterministic_and_its_test_split_shuffled(mnist_data):
    assert len(mnist_data.train) == 4000 and len(mnist_data.test) == 1000
    assert torch.equal(mnist_data.test.labels.bincount(), torch.full((10,), 100))
    assert torch.equal(mnist_data.train.labels.bincount(), torch.full((10,), 400))
    assert len(mnist_data.test.labels[:8].unique()) >= 5 and torch.equal(mnist().test.labels, mnist_data.test.labels)
    assert torch.equal(mnist_data.train.labels, mnist_data.train.labels.sort().values)  # the order trainings rely on
    assert float(mnist_data.train.images.min()) == 0.0 and float(mnist_data.train.images.max()) == 1.0
    again = mnist()
    assert torch.equal(again.test.images, mnist_data.test.images)
    train_rows = {row.numpy().tobytes() for row in mnist_data.train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in mnist_data.test.images.flatten(1))


def test_missing_extra_names_it(monkeypatch):
    import importlib.util

    from lrpkit.errors import MissingExtraError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"lrpkit\[data\].*path="):
        mnist()


def test_batches_are_seeded_and_cover_the_split(mnist_data):
    split = mnist_data.test
    first = [y for _, y in split.batches(300, seed=1)]
    assert torch.equal(torch.cat(first).sort().values, split.labels.sort().values)
    assert all(torch.equal(a, b) for a, b in zip(first, [y for _, y in split.batches(300, seed=1)], strict=True))
    x, y = split[:10].next_batch(25)
    assert x.shape == (25, 1, 28, 28) and len(y) == 25


def test_samples_by_index_by_iteration_and_by_class(mnist_data):
    image, label = mnist_data.test[3]
    assert image.shape == (1, 28, 28) and label == mnist_data.test.labels[3]
    assert torch.equal(mnist_data.test[np.int64(3)][0], image) and torch.equal(
        mnist_data.test[-1][0], mnist_data.test.images[-1]
    )
    pairs = list(mnist_data.test[:5])
    assert len(pairs) == 5 and all(torch.equal(x, mnist_data.test.images[k]) for k, (x, _) in enumerate(pairs))
    assert torch.equal(mnist_data.test.balanced(10).labels, torch.arange(10))
    assert torch.equal(mnist_data.test.balanced(25).labels, torch.arange(25) % 10)
    first = mnist_data.test.balanced(20)
    assert torch.equal(first.images[:10], mnist_data.test.balanced(10).images)
    with pytest.raises(SpecError, match=r"count must be an integer in 1\.\.1000, got 1001"):
        mnist_data.test.balanced(1001)


def _gzip_stream(header: bytes, zeros: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    block = bytes(2**20)
    parts = [packer.compress(header)]
    parts += [packer.compress(block) for _ in range(zeros // len(block))]
    return b"".join([*parts, packer.flush()])


def test_idx_reading_stops_at_the_declared_length(tmp_path):
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(_gzip_stream(struct.pack(">IIII", IMAGES_MAGIC, 10, 28, 28), 64 * 2**20))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"bomb\.gz: more data bytes, expected 7840 .*padded"):
        read_idx(bomb, IMAGES_MAGIC)
    bomb.write_bytes(_gzip_stream(struct.pack(">IIII", IMAGES_MAGIC, 10**9, 28, 28), 2**20))
    with pytest.raises(DataError, match=r"declares \[1000000000, 28, 28\] .*more than the file can hold"):
        read_idx(bomb, IMAGES_MAGIC)
    plain = write_idx(tmp_path / "plain", np.zeros((2, 28, 28), dtype=np.uint8), IMAGES_MAGIC)
    plain.write_bytes(plain.read_bytes()[:8] + struct.pack(">II", 10**6, 10**6) + bytes(10))
    with pytest.raises(DataError, match="more than the file can hold"):
        read_idx(plain, IMAGES_MAGIC)
