import pytest
import torch

import lrpkit
from lrpkit import layers as L
from lrpkit.errors import SpecError


def test_format_maps_unit_interval_to_bounds():
    module = L.Format(low=-2.0, high=3.0).build((1, 2, 2), (-2.0, 3.0))
    x = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(module(x), torch.tensor([-2.0, 0.5, 3.0]))


def test_sumpool_is_half_the_sum_of_each_2x2_block():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = L.SumPool().build((1, 4, 4), (0, 1))(x)
    expected = torch.stack([x[..., i : i + 2, j : j + 2].sum() * 0.5 for i in (0, 2) for j in (0, 2)])
    assert torch.allclose(y.flatten(), expected)


@pytest.mark.parametrize(
    ("spec", "shape", "out"),
    [
        (L.Conv(8, 5), (1, 28, 28), (8, 24, 24)),
        (L.Conv(4, 3, stride=2, padding=1), (3, 9, 9), (4, 5, 5)),
        (L.SumPool(), (8, 24, 24), (8, 12, 12)),
        (L.MaxPool(3, 1), (2, 5, 5), (2, 3, 3)),
        (L.AvgPool(), (2, 5, 5), (2, 2, 2)),
        (L.Pad(2), (1, 28, 28), (1, 32, 32)),
        (L.Flatten(), (2, 3, 4), (24,)),
        (L.Linear(7), (2, 3, 4), (7,)),
    ],
)
def test_output_shape_matches_the_built_module(spec, shape, out):
    assert spec.output_shape(shape) == out
    module = spec.build(shape, (-1.0, 1.0))
    assert tuple(module(torch.zeros(2, *shape)).shape[1:]) == out


def test_pad_defaults_to_the_format_low_bound():
    module = L.Pad(1).build((1, 2, 2), (-1.0, 1.0))
    y = module(torch.zeros(1, 1, 2, 2))
    assert y[0, 0, 0, 0] == -1.0 and y[0, 0, 1, 1] == 0.0


@pytest.mark.parametrize(
    "make",
    [lambda: L.Linear(0), lambda: L.Conv(3, 0), lambda: L.Dropout(1.5), lambda: L.Format(1, 1), lambda: L.Pad(-1)],
)
def test_bad_parameters_are_rejected(make):
    with pytest.raises(SpecError):
        make()


def test_kernel_larger_than_input_names_the_layer():
    with pytest.raises(SpecError, match="layer 1.*kernel"):
        lrpkit.Network([L.Conv(4, 7), L.Flatten(), L.Linear(10)], input_shape=(1, 5, 5))


def test_layer_dict_round_trip_and_aliases():
    for spec in (L.Conv(4, 3, 2, 1), L.Pad(2, 0.5), L.Format(0, 1), L.MaxPool(3, 2)):
        assert L.layer_from_dict(spec.to_dict()) == spec
    assert L.layer_from_dict({"type": "FirstConvolution", "out_channels": 2, "kernel_size": 3}) == L.Conv(2, 3)
    assert lrpkit.FirstLinear is lrpkit.Linear and lrpkit.NextConvolutional is lrpkit.Conv


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "Banana"}, "unknown layer type"),
        ({"type": "Linear", "units": 3, "size": 4}, "unknown parameter"),
        ({"type": "Linear"}, "units"),
        ([1, 2], "expected an object"),
    ],
)
def test_bad_layer_dicts(data, message):
    with pytest.raises(SpecError, match=message):
        L.layer_from_dict(data, 3)
