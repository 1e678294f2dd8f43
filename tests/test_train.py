import math

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
    with pytest.raises(SpecError, match="loss must be one of sigmoid, softmax"):
        net.fit(mnist_data.train, steps=1, loss="hinge")
    with pytest.raises(DataError, match="split"):
        net.fit(None, steps=1)
    with pytest.raises(SpecError, match="steps"):
        net.fit(mnist_data.train, steps=0)


def test_diverging_training_stops_with_the_step(mnist_data):
    net = lrpkit.Network([lrpkit.Linear(16), lrpkit.ReLU(), lrpkit.Linear(10)])
    with pytest.raises(lrpkit.TrainingError, match=r"diverged at step \d+: .*smaller lr than 1e\+30"):
        net.fit(mnist_data.train, steps=50, lr=1e30, progress=False)
    assert not net.training  # back in eval mode, as after a normal run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"augment": -1}, r"augment must be an integer in 0\.\.27"),
        ({"augment": 28}, r"augment must be an integer in 0\.\.27"),
        ({"seed": 2**70}, "seed must be an integer in 0.."),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"steps": 1.5}, "steps must be a positive integer"),
        ({"schedule": "step"}, "schedule must be one of constant, cosine"),
    ],
)
def test_bad_options_fail_before_training(mnist_data, options, message):
    net = lrpkit.mlp()
    before = [p.clone() for p in net.parameters()]
    with pytest.raises(SpecError, match=message):
        net.fit(mnist_data.train, **{"steps": 1, **options})
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_data_that_does_not_fit_the_network(mnist_data):
    wide = lrpkit.Network([lrpkit.Linear(10)], input_shape=(1, 32, 32))
    with pytest.raises(DataError, match=r"images have shape \(1, 28, 28\), but the network takes .*\(1, 32, 32\)"):
        wide.fit(mnist_data.train, steps=1)
    with pytest.raises(DataError, match=r"images have shape \(1, 28, 28\)"):
        wide.evaluate(mnist_data.test)
    five = lrpkit.Network([lrpkit.Linear(5)], classes=5)
    with pytest.raises(DataError, match="labels run from 0 to 9, but the network has 5 classes"):
        five.fit(mnist_data.train, steps=1)
    empty = lrpkit.Network([lrpkit.Flatten()], input_shape=(10,))
    with pytest.raises(SpecError, match="no parameters to train"):
        empty.fit(lrpkit.data.Split(torch.rand(4, 10), torch.arange(4)), steps=1)
    assert empty.evaluate(lrpkit.data.Split(torch.rand(4, 10), torch.arange(4)))["accuracy"] >= 0


def test_cosine_schedule_lowers_the_learning_rate_to_zero(mnist_data, monkeypatch):
    """Adam's lr at each step: a linear warm-up over T // 25 steps, then lr (1 + cos(pi t / T)) / 2 towards 0;
    recorded in the metadata."""
    seen = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(
        torch.optim.Adam,
        "step",
        lambda self, *a, **k: (seen.append(self.param_groups[0]["lr"]), step(self, *a, **k))[1],
    )
    net = lrpkit.Network([lrpkit.Linear(10)])
    net.fit(mnist_data.train, steps=50, lr=0.01, schedule="cosine", progress=False)
    expected = [0.01 * min(1, (t + 1) / 2) * (1 + math.cos(math.pi * t / 50)) / 2 for t in range(50)]
    assert seen == pytest.approx(expected) and net.metadata["schedule"] == "cosine"
