import pytest
import torch

import lrpkit
from lrpkit.errors import DataError, SpecError
from lrpkit.model.train import shift


def test_short_training_beats_85_percent(trained_mlp, mnist_data):
    scores = trained_mlp.evaluate(mnist_data.test)
    assert scores["accuracy"] > 0.85 and scores["loss"] > 0


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_same_seed_same_result(mnist_data, loss):
    nets = [lrpkit.Network([lrpkit.Linear(16), lrpkit.ReLU(), lrpkit.Dropout(0.2), lrpkit.Linear(10)]) for _ in "ab"]
    histories = [net.fit(mnist_data.train, steps=20, loss=loss, augment=1, progress=False) for net in nets]
    assert histories[0].loss == histories[1].loss and len(histories[0].accuracy) == 20
    x = mnist_data.test.images[:5]
    assert torch.equal(nets[0](x), nets[1](x))
    assert nets[0].metadata["steps"] == 20 and nets[0].metadata["loss"] == loss


def test_shift_moves_whole_images():
    x = torch.zeros(4, 1, 6, 6)
    x[:, :, 2:4, 2:4] = 1
    y = shift(x, 1, torch.Generator().manual_seed(0))
    assert torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # the blob stays inside the image
    for image in y[:, 0]:
        rows, cols = torch.nonzero(image, as_tuple=True)
        assert rows.max() - rows.min() == 1 and cols.max() - cols.min() == 1 and rows.min() in (1, 2, 3)


def test_bad_arguments(mnist_data):
    net = lrpkit.mlp()
    with pytest.raises(SpecError, match="unknown loss"):
        net.fit(mnist_data.train, steps=1, loss="hinge")
    with pytest.raises(DataError, match="split"):
        net.fit(None, steps=1)
    with pytest.raises(SpecError, match="steps"):
        net.fit(mnist_data.train, steps=0)
