"""The PyTorch engine (lrpkit.lrp) against the NumPy reference, layer by layer, on random MLPs and CNNs."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrpkit
from lrpkit import layers as L
from lrpkit.composites import PRESETS
from lrpkit.errors import TargetError
from lrpkit.reference import MismatchError, ReferenceGraph, bridge, check_model, ops
from strategies import architectures

RULES = [
    "simple",
    "epsilon",
    ["epsilon", 0.05, True],
    ["simple", True],
    "zplus",
    "ab",
    ["ab", 3.0],
    ["ab", 2.0, 1.0, True],
    ["zb", -1.0, 1.0],
    ["zb", -2.0, 3.0, True],
    "ww",
    "flat",
    "gamma",
    ["gamma", 1.0, True],
]
METHODS = RULES + sorted(PRESETS)


@st.composite
def networks(draw):
    """A random float64 Network (eval mode, random biases) and a batch of inputs in [0, 1]."""
    layers, input_shape, classes = draw(architectures())
    seed = draw(st.integers(0, 10_000))
    net = lrpkit.Network(layers, input_shape, classes, seed=seed).double().eval()
    x = torch.from_numpy(np.random.default_rng(seed).uniform(0, 1, size=(draw(st.integers(1, 3)), *input_shape)))
    return net, x


@st.composite
def targets(draw, classes, n):
    kind = draw(st.sampled_from(["pred", "all", "int", "ids", "filter"]))
    if kind == "int":
        return draw(st.integers(0, classes - 1))
    if kind == "ids":
        return torch.tensor(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    if kind == "filter":
        return torch.from_numpy(np.random.default_rng(draw(st.integers(0, 99))).normal(size=(n, classes)))
    return kind


@st.composite
def cases(draw):
    net, x = draw(networks())
    method = draw(st.sampled_from([*METHODS, "per-layer"]))
    if method == "per-layer":
        method = [draw(st.sampled_from(RULES)) for _ in net.weighted_indices]
    target = draw(targets(net.classes, len(x)))
    return net, x, method, target, draw(st.sampled_from(["winner", "proportional"]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cases())
def test_engine_matches_reference_float64(case):
    net, x, method, target, maxpool = case
    report = net.test(x, method, target, atol=1e-10, rtol=1e-10, maxpool=maxpool)
    assert report.ok and len(report.checks) == len(net.specs) + 1
    assert net.test(x, atol=1e-12).ok  # the forward pass too


def float32_errors(net, x, method, target, maxpool):
    """Per layer: max |engine32 - exact|, max |reference32 - exact| and max |exact|, where "exact" is the float64
    reference on the same (float32) weights and inputs."""
    net32, x32 = net.float(), x.float()
    exact = bridge.from_network(net32).layerwise_lrp(x32.double().numpy(), target, method, maxpool=maxpool)
    ours = net32.layerwise_lrp(x32, target, method, maxpool=maxpool)
    ref = net32.to_numpy().layerwise_lrp(x32.numpy(), target, method, maxpool=maxpool)
    return [
        (np.abs(o.numpy() - e).max(initial=0), np.abs(r - e).max(initial=0), np.abs(e).max(initial=0))
        for o, r, e in zip(ours, ref, exact, strict=True)
    ]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(cases())
def test_engine_float32_is_as_accurate_as_the_reference(case):
    # In float32 the engine is within 1e-4 of each layer's largest relevance of the exact (float64) result, or,
    # where a denominator is tiny next to its terms (ill-conditioned), no less accurate than the plain reference.
    # Engine vs reference directly: 1995 of 2000 random cases within 1e-4 relative, the rest within 6e-4.
    net, x, method, target, maxpool = case
    target = target.float() if isinstance(target, torch.Tensor) and target.is_floating_point() else target
    for k, (engine, reference, scale) in enumerate(float32_errors(net, x, method, target, maxpool)):
        assert engine <= 1e-4 * scale + 1e-7 or engine <= 4 * reference, f"R[{k}]: {engine=} {reference=} {scale=}"


# -- every method on two fixed networks, every run ------------------------------------------------------


@pytest.fixture(scope="module")
def fixed():
    cnn = [L.Format(), L.Pad(1), L.Conv(3, 3), L.ReLU(), L.MaxPool(3, 2), L.Conv(4, 2, 2, 1), L.ReLU()]
    cnn += [L.AvgPool(2, 1), L.Linear(5), L.ReLU(), L.Linear(3)]
    mlp = [L.NoFormat(), L.Linear(6), L.ReLU(), L.Dropout(), L.Linear(4), L.ReLU(), L.Linear(3)]
    nets = [lrpkit.Network(cnn, (2, 9, 8), 3, seed=5), lrpkit.Network(mlp, (2, 5), 3, seed=6)]
    return [(net.double().eval(), torch.rand(4, *net.input_shape, dtype=torch.float64)) for net in nets]


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_every_method_on_fixed_networks(fixed, method):
    for net, x in fixed:
        for maxpool in ("winner", "proportional"):
            net.test(x, method, "all", atol=1e-10, rtol=1e-10, maxpool=maxpool)
        net.test(x, method, torch.tensor([0, 2, 1, 1]), atol=1e-10, rtol=1e-10)


def test_zb_bounds_per_channel_and_per_pixel(fixed):
    net, x = fixed[0]
    low, high = torch.tensor([-1.0, -2.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    net.test(x, ["zb", "ab", "epsilon", "flat"], 1, atol=1e-10, rtol=1e-10, bounds=(low, high))
    net.test(x, [["zb", -torch.rand(2, 11, 10), 2.0], "ab", "epsilon", "flat"], 1, atol=1e-10, rtol=1e-10)
    mlp, xm = fixed[1]
    net.test(x, "deeptaylor", "pred", atol=1e-10, bounds=(-1.0, 1.0))
    mlp.test(xm, ["zb", "ab", "ab"], 0, atol=1e-10, rtol=1e-10, bounds=(-torch.ones(2, 5), 2.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zb_output_with_all_q_zero_passes_nothing(dtype):
    # a 1x1 conv with one positive and one negative filter over a border padded with the low bound: on the
    # border the positive filter's q = (a - l) w+ = 0 exactly, so its R/stab(0) must not leak into R_i
    net = lrpkit.Network([L.Format(), L.Pad(1), L.Conv(2, 1), L.Linear(1)], (1, 3, 3), 1, seed=0).to(dtype)
    with torch.no_grad():
        net.body[2].weight.copy_(torch.tensor([0.7, -0.4]).view(2, 1, 1, 1))
    x = torch.linspace(0.1, 0.9, 9, dtype=dtype).view(1, 1, 3, 3)
    tolerance = {"atol": 1e-10, "rtol": 1e-10} if dtype == torch.float64 else {"atol": 1e-7, "rtol": 1e-4}
    net.test(x, ["zb", "simple"], 0, **tolerance)


# -- the report, the error, and the classic entry point ---------------------------------------------------


def test_mismatch_names_the_first_differing_layer(fixed, monkeypatch):
    net, x = fixed[0]
    twin = bridge.from_network(net)
    weight = next(name for name in twin.twin.constants if name.startswith("body.5.weight"))
    constants = {**twin.twin.constants, weight: twin.twin.constants[weight] * 1.001}
    wrong = dataclasses.replace(twin, twin=ReferenceGraph(twin.twin.graph, constants))
    monkeypatch.setattr(bridge, "from_network", lambda _: wrong)
    with pytest.raises(MismatchError, match=r"layer outputs differ first at output of layer 5: Conv") as info:
        net.test(x)
    assert [c.ok for c in info.value.report.checks] == [True] * 6 + [False] * 6
    assert "FAIL" in str(info.value) and "max|diff|" in str(info.value)
    original = ops.OPS["conv"]
    skewed = (original[0], lambda c: [r * 1.001 if r is not None else None for r in original[1](c)])
    monkeypatch.setattr(bridge, "from_network", lambda _: twin)
    monkeypatch.setitem(ops.OPS, "conv", skewed)  # the conv's relevance 0.1% off, its forward right
    with pytest.raises(MismatchError, match=r"'epsilon' differ walking back from the logits, first at R\[5\] into"):
        net.test(x, "epsilon", 0, atol=1e-10)


def test_check_model_takes_a_network_with_its_layers_and_bounds():
    # the graph twin gets what the engine takes from a Network: its layers (a list with one entry per layer, not
    # per Linear-type layer) and its zB bounds [0, 1] where none are given
    net = lrpkit.cnn(seed=0).double().eval()
    x = torch.rand(2, 784, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    per_layer = ["zb", *["epsilon"] * (len(net.body) - 1)]
    for method in ("zbab", per_layer, None):
        assert check_model(net, x, method, 1, atol=1e-10, rtol=1e-10).ok


def test_report_on_success(fixed):
    net, x = fixed[1]
    report = net.test(x, atol=1e-12)
    assert report.ok and report.max_abs_diff <= 1e-12
    assert [c.label for c in report.checks][:2] == ["input", "output of layer 0: Identity()"]
    assert "ok    output of layer 6: Linear(in=4, out=3)" in str(report)


def test_trained_float32_network_passes_with_default_tolerances():
    """The README's ``net.test(x)`` on an ordinary float32 model: tolerances fit the dtype, not float64's."""
    from lrpkit.model.train import fit

    torch.manual_seed(0)
    net, data = lrpkit.cnn(), lrpkit.data.mnist()
    fit(net, data.train, steps=100, progress=False)
    x = data.test.images[:16]
    assert net.test(x).rtol == pytest.approx(10 * np.finfo(np.float32).eps ** 0.5)
    report = net.test(x, "epsilon_plus")
    assert report.ok and report.max_abs_diff > 0
    with pytest.raises(MismatchError):  # the float64 tolerances are too tight for float32 rounding
        net.test(x, "epsilon_plus", atol=1e-10, rtol=1e-10)


def test_get_numpy_deeptaylor(fixed):
    net, x = fixed[0]
    heatmaps, R = net.get_numpy_deeptaylor(x, 1)
    assert isinstance(heatmaps, np.ndarray) and heatmaps.shape == tuple(x.shape)
    np.testing.assert_allclose(heatmaps, net.lrp(x, 1, "deeptaylor").numpy(), atol=1e-10)
    np.testing.assert_allclose(R, net(x).detach().numpy() * np.eye(3)[1], rtol=1e-14)
    assert (heatmaps >= -1e-12).all()
    mlp, xm = fixed[1]  # no padding: deep Taylor conserves relu(R)
    filt = np.array([0.0, 1.0, 0.5])
    heatmaps, R = mlp.get_numpy_deeptaylor(xm.numpy(), filt)
    np.testing.assert_allclose(R, mlp(xm).detach().numpy() * filt, rtol=1e-14)
    np.testing.assert_allclose(heatmaps.reshape(len(xm), -1).sum(1), np.maximum(R, 0).sum(1), rtol=1e-6)
    with pytest.raises(TargetError, match="one filter per call"):
        mlp.get_numpy_deeptaylor(xm, "all")
