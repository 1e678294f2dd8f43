import pytest
import torch

import lrpkit
from lrpkit import layers as L
from lrpkit.errors import InputError, SpecError


def test_format_is_put_in_front():
    net = lrpkit.Network([lrpkit.FirstLinear(30), lrpkit.ReLU(), lrpkit.NextLinear(10)])
    assert isinstance(net.specs[0], L.Format)
    assert net.bounds == (-1.0, 1.0) and net.weighted_indices == [1, 3]
    assert lrpkit.Network([L.NoFormat(), L.Linear(10)]).bounds == (0.0, 1.0)


def test_ready_made_architectures_give_logits():
    x = torch.rand(3, 1, 28, 28)
    for name, make in lrpkit.ARCHITECTURES.items():
        assert make()(x).shape == (3, 10), name


def test_concatenated_digits_input_shape():
    net = lrpkit.Network([L.Conv(4, 5), L.ReLU(), L.SumPool(), L.Linear(10)], input_shape=(1, 28 * 3, 28))
    assert net(torch.rand(2, 1, 84, 28)).shape == (2, 10)


def test_wrong_last_layer_is_a_clear_error():
    with pytest.raises(SpecError, match="expected \\(10,\\) logits"):
        lrpkit.Network([L.Linear(5)])
    with pytest.raises(SpecError, match="only allowed as the first layer"):
        lrpkit.Network([L.Linear(5), L.Format(), L.Linear(10)])


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a, b = lrpkit.mlp(seed=3), lrpkit.mlp(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.body[1].weight, lrpkit.mlp(seed=4).body[1].weight)


def test_activations_are_every_layer_output():
    net = lrpkit.cnn()
    x = torch.rand(2, 1, 28, 28)
    acts = net.activations(x)
    assert len(acts) == len(net.specs) + 1
    assert [tuple(a.shape[1:]) for a in acts] == net.shapes
    assert torch.equal(acts[-1], net(x))


def test_spec_round_trip():
    net = lrpkit.tutorial_cnn()
    assert lrpkit.Network.from_spec(net.spec()).specs == net.specs


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(2, 1, 27, 28), "expected \\(N, 1, 28, 28\\)"),
        (torch.zeros(2, 784, dtype=torch.long), "floating point"),
        (torch.full((1, 784), float("nan")), "NaN"),
        (torch.rand(2, 784, dtype=torch.float64), "float64"),
        ("not a tensor", "torch.Tensor"),
    ],
)
def test_check_input_names_the_problem(x, message):
    with pytest.raises(InputError, match=message):
        lrpkit.mlp().check_input(x)


def test_summary_lists_layers_and_parameters():
    text = lrpkit.mlp().summary()
    assert "Linear(units=300)" in text and str(784 * 300 + 300) in text
