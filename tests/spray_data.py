"""Synthetic heatmaps with a known "Clever Hans" group, and a dataset store written as the dataset job does."""

import numpy as np


def synthetic(rng, per_class=60, shortcut=20):
    """(N, 1, 8, 8) heatmaps of 3 classes: a class-specific blob plus noise; in class 1 the first ``shortcut``
    maps have their relevance in a corner patch instead (a "Clever Hans" group)."""
    maps, labels, patched = [], [], []
    for c in range(3):
        m = 0.05 * rng.random((per_class, 1, 8, 8))
        m[:, 0, 2 + c : 5 + c, 2:5] += 1.0
        mark = np.zeros(per_class, bool)
        if c == 1:
            m[:shortcut] = 0.05 * rng.random((shortcut, 1, 8, 8))
            m[:shortcut, 0, :2, :2] += 1.0
            mark[:shortcut] = True
        maps.append(m)
        labels += [c] * per_class
        patched.append(mark)
    return np.concatenate(maps).astype(np.float32), np.array(labels), np.concatenate(patched)


def write_store(path, relevance, labels, target=3, written=None):
    """A store as the dataset job writes it (the contract of issue 10), with zarr directly."""
    n = len(labels)
    import zarr

    group = zarr.open_group(str(path), mode="w")
    prediction = labels.copy() if written is None else np.where(written, labels, -1)
    arrays = {"relevance": relevance, "logits": np.zeros((n, 3), np.float32), "prediction": prediction,
              "label": np.where(prediction >= 0, labels, -1), "index": np.arange(n) + 1000}  # fmt: skip
    for name, values in arrays.items():
        group.create_array(name, data=values, chunks=(16, *values.shape[1:]))
    group.attrs.update({"model": "abc", "method": "epsilon_plus", "target": target, "source": "synthetic",
                        "lrpkit_version": "0.1.0", "chunk_size": 16})  # fmt: skip
    return path
