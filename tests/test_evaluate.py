"""Conservation ratios and pixel flipping, checked against a slow loop re-implementation and known answers."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lrpkit
from lrpkit import attribution as A
from lrpkit.errors import InputError, SpecError
from lrpkit.evaluate.faithfulness import aopc, conservation, mean_interval, pixel_flipping

# -- conservation -----------------------------------------------------------------------------------


def test_conservation_ratios_per_sample_and_layer():
    r0 = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    r1 = torch.tensor([[[1.5, 1.5]], [[0.0, 0.0]], [[0.0, 0.0]]])
    r2 = torch.tensor([[6.0], [0.0], [2.0]])
    ratios = conservation([r0, r1, r2])
    assert ratios.shape == (3, 2)
    expected = [[3 / 3, 3 / 6], [1.0, 1.0], [math.inf, 0 / 2]]  # 0/0 counts as 1
    assert ratios.tolist() == expected


@pytest.mark.parametrize("method", ["simple", "zplus", "deeptaylor", "zbab"])
def test_conservation_of_the_engine_layerwise_relevance(method):
    """The engine leaves biases out by default, so these rules conserve relevance layer by layer."""
    layers = [lrpkit.Conv(4, 5), lrpkit.ReLU(), lrpkit.SumPool(), lrpkit.Linear(8), lrpkit.ReLU(), lrpkit.Linear(10)]
    net = lrpkit.Network(layers, input_shape=(1, 12, 12)).double()
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ratios = conservation(net.layerwise_lrp(x, "pred", method))
    assert ratios.shape == (3, len(layers) + 1)  # Format + the layers: len(specs) + 1 boundaries
    torch.testing.assert_close(ratios, torch.ones_like(ratios), atol=1e-6, rtol=0)


def test_conservation_bad_input():
    with pytest.raises(InputError, match="at least 2"):
        conservation([torch.ones(2, 3)])
    with pytest.raises(InputError, match=r"relevance 1: expected a tensor of shape \(2, ...\)"):
        conservation([torch.ones(2, 3), torch.ones(3, 3)])


# -- a slow, obvious re-implementation of pixel flipping --------------------------------------------


def reference_curves(model, x, target, relevance, steps, region, fill_values, order, per_step=None):
    """Loops over samples and steps; regions sorted with Python's stable sort."""
    x, relevance, fill_values = (t.detach().numpy().astype(np.float64) for t in (x, relevance, fill_values))
    n, _, h, w = x.shape
    curves = np.zeros((n, steps + 1))
    for s in range(n):
        patches = [(r, c) for r in range(0, h, region) for c in range(0, w, region)]
        score = {p: relevance[s, :, p[0] : p[0] + region, p[1] : p[1] + region].sum() for p in patches}
        ordered = sorted(patches, key=lambda p: -score[p] if order == "morf" else score[p])
        for k in range(steps + 1):
            m = round(k * len(patches) / steps) if per_step is None else min(k * per_step, len(patches))
            image = x[s].copy()
            for r, c in ordered[:m]:
                image[:, r : r + region, c : c + region] = fill_values[s, :, r : r + region, c : c + region]
            with torch.no_grad():
                curves[s, k] = model(torch.from_numpy(image[None]))[0, target[s]].item()
    return curves


def small_cnn(seed=0, channels=2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4)).double()


@pytest.fixture
def cnn_case():
    model = small_cnn()
    generator = torch.Generator().manual_seed(7)
    x = torch.rand(3, 2, 7, 7, generator=generator, dtype=torch.float64)
    model(x)  # materialise the lazy layer
    relevance = torch.randn(3, 2, 7, 7, generator=generator, dtype=torch.float64)
    return model, x, relevance


@pytest.mark.parametrize("region", [1, 3])
@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("fill", ["zeros", "mean", "low", "uniform"])
def test_curves_match_reference(cnn_case, region, order, fill):
    model, x, relevance = cnn_case
    target = [0, 3, 1]
    result = pixel_flipping(model, x, target, relevance, steps=5, region=region, fill=fill, order=order, seed=3)
    fill_values = {
        "zeros": torch.zeros_like(x),
        "mean": x.mean((2, 3), keepdim=True).expand_as(x),
        "low": torch.zeros_like(x),
        "uniform": torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64),
    }[fill]
    expected = reference_curves(model, x, target, relevance, 5, region, fill_values, order)
    np.testing.assert_allclose(result.curves.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert result.curves.dtype == torch.float64 and result.fractions[-1] == 1.0


def test_per_step_and_custom_fill_match_reference(cnn_case):
    model, x, relevance = cnn_case
    fill = torch.full_like(x, 0.25)
    result = pixel_flipping(model, x, 2, relevance, steps=4, region=2, fill=fill, per_step=3)
    expected = reference_curves(model, x, [2] * 3, relevance, 4, 2, fill, "morf", per_step=3)
    np.testing.assert_allclose(result.curves.numpy(), expected, rtol=1e-12, atol=1e-12)
    # 16 patches of at most 2x2 on a 7x7 image, 3 per step
    assert result.fractions.tolist() == [0, 3 / 16, 6 / 16, 9 / 16, 12 / 16]
    assert result.fill == "custom"


def test_batching_and_one_at_a_time_give_the_same_curves(cnn_case):
    model, x, relevance = cnn_case
    full = pixel_flipping(model, x, "pred", relevance, steps=6, region=2, fill="mean", batch_size=10_000)
    for batch_size in (1, 5):
        small = pixel_flipping(model, x, "pred", relevance, steps=6, region=2, fill="mean", batch_size=batch_size)
        torch.testing.assert_close(small.curves, full.curves, rtol=1e-12, atol=1e-12)
    rows = [
        pixel_flipping(model, x[i : i + 1], "pred", relevance[i : i + 1], steps=6, region=2, fill="mean").curves
        for i in range(3)
    ]
    torch.testing.assert_close(torch.cat(rows), full.curves, rtol=1e-12, atol=1e-12)
    noisy = pixel_flipping(model, x, 1, relevance, steps=6, fill="uniform", batch_size=4, seed=9)
    torch.testing.assert_close(
        noisy.curves, pixel_flipping(model, x, 1, relevance, steps=6, fill="uniform", batch_size=999, seed=9).curves
    )


class Recorder(nn.Module):
    """Wraps a model and records every input it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.model(x)


@pytest.mark.parametrize("fill", ["uniform", "zeros", "mean", "low"])
def test_fill_modes_stay_in_the_input_range(cnn_case, fill):
    model, x, relevance = cnn_case
    low, high = (0.2, 0.7) if fill != "zeros" else (-1.0, 1.0)
    x = low + (high - low) * x
    recorder = Recorder(model)
    pixel_flipping(recorder, x, 0, relevance, steps=4, fill=fill, low=low, high=high, batch_size=7)
    seen = torch.cat(recorder.seen)
    assert seen.min() >= low and seen.max() <= high
    last = seen[-1]  # the last pair: sample 2 with every region replaced
    expected = {"zeros": 0.0, "low": low}.get(fill)
    if expected is not None:
        assert torch.all(last == expected)
    elif fill == "mean":
        torch.testing.assert_close(last, x[2].mean((1, 2), keepdim=True).expand_as(last))
    else:
        assert last.std() > 0.1 * (high - low)


def test_random_order_is_seeded_and_differs_from_morf(cnn_case):
    model, x, relevance = cnn_case
    args = (model, x, 0, relevance)
    first, again = (pixel_flipping(*args, steps=7, fill="zeros", order="random", seed=4) for _ in range(2))
    assert torch.equal(first.curves, again.curves)
    other = pixel_flipping(*args, steps=7, fill="zeros", order="random", seed=5)
    morf = pixel_flipping(*args, steps=7, fill="zeros", order="morf")
    assert not torch.equal(first.curves, other.curves) and not torch.equal(first.curves, morf.curves)
    # the start and the end (nothing / everything replaced) do not depend on the order
    torch.testing.assert_close(first.curves[:, [0, -1]], morf.curves[:, [0, -1]])


# -- the known answer: a linear model ---------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 12))
def test_linear_model_gradient_x_input_falls_fastest(seed, steps):
    """For f(x) = w.x and zero fill, removing pixel i drops f by w_i x_i: MoRF on w*x is the optimal order."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(12, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 12, generator=generator, dtype=torch.float64))
    x = torch.rand(3, 12, generator=generator, dtype=torch.float64)
    curves = {}
    for name in ("gradxinput", "gradient", "sensitivity", "random", "integrated_gradients"):
        relevance = A.attribute(model, x, 1, name)
        curves[name] = pixel_flipping(model, x, 1, relevance, steps=steps, fill="zeros").curves
    best = curves["gradxinput"]
    for name, other in curves.items():
        assert torch.all(best <= other + 1e-12), name
        assert torch.all(aopc(best) >= aopc(other) - 1e-12), name
    lerf = pixel_flipping(model, x, 1, A.gradient_x_input(model, x, 1), steps=steps, fill="zeros", order="lerf")
    assert torch.all(lerf.curves >= best - 1e-12)


def test_aopc_and_interval_formulas():
    curves = torch.tensor([[3.0, 2.0, 0.0], [1.0, 1.0, 4.0]], dtype=torch.float64)
    per_sample = aopc(curves)
    assert per_sample.tolist() == [(0 + 1 + 3) / 3, (0 + 0 - 3) / 3]
    values = torch.tensor([1.0, 2.0, 4.0, 7.0], dtype=torch.float64)
    low, high = mean_interval(values)
    half = 1.959963984540054 * float(np.std(values.numpy(), ddof=1)) / 2
    assert low == pytest.approx(3.5 - half, rel=1e-12) and high == pytest.approx(3.5 + half, rel=1e-12)
    assert mean_interval(values[:1]) == (1.0, 1.0)


def test_result_aopc_repr_and_network_input():
    net = lrpkit.Network([lrpkit.Conv(2, 3), lrpkit.ReLU(), lrpkit.Linear(3)], input_shape=(1, 6, 6), classes=3)
    x = torch.rand(4, 36)
    relevance = A.gradient_x_input(net, x, "pred")
    result = pixel_flipping(net, x, "pred", relevance, steps=9, region=2)
    assert result.curves.shape == (4, 10) and result.fractions.tolist() == [k / 9 for k in range(10)]
    assert result.aopc == pytest.approx(float(aopc(result.curves).mean()))
    low, high = result.interval()
    assert low <= result.aopc <= high
    assert "aopc=" in repr(result) and "region=2" in repr(result)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"order": "best"}, SpecError, "morf, lerf, random"),
        ({"fill": "blur"}, SpecError, "uniform, zeros, mean, low"),
        ({"steps": 0}, SpecError, "steps must be a positive integer"),
        ({"region": 1.5}, SpecError, "region"),
        ({"per_step": 0}, SpecError, "per_step"),
        ({"low": 1.0, "high": 0.0}, SpecError, "low < high"),
        ({"relevance": torch.ones(3, 5)}, InputError, "one value per input element"),
        ({"relevance": torch.full((3, 2, 7, 7), float("nan"))}, InputError, "NaN"),
        ({"fill": torch.ones(2)}, InputError, "fill tensor"),
    ],
)
def test_bad_options(cnn_case, options, error, message):
    model, x, relevance = cnn_case
    kwargs = {"relevance": relevance, **options}
    with pytest.raises(error, match=message):
        pixel_flipping(model, x, 0, steps=kwargs.pop("steps", 3), **kwargs)


def test_model_untouched(cnn_case):
    model, x, relevance = cnn_case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pixel_flipping(model, x, 0, relevance, steps=3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
