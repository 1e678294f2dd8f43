"""Shared fixtures: seeded RNGs, the embedded MNIST data (loaded once), a small trained MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: one thread is fastest and immune to a busy machine


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist_data():
    from lrpkit.model.data import mnist

    return mnist()


@pytest.fixture(scope="session")
def trained_mlp(mnist_data):
    """A small MLP trained briefly on the embedded data (shared by tests that need a sensible model)."""
    import lrpkit

    net = lrpkit.Network([lrpkit.Linear(64), lrpkit.ReLU(), lrpkit.Linear(10)])
    net.fit(mnist_data.train, steps=300, progress=False)
    return net
