"""Attribution baselines, checked against closed forms on linear models and against identities of ReLU nets."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lrpkit
from lrpkit import attribution as A
from lrpkit.errors import InputError, SpecError, TargetError


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


def linear_model(rng, features=6, classes=3):
    model = nn.Linear(features, classes).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(classes, features, generator=rng, dtype=torch.float64))
        model.bias.copy_(torch.randn(classes, generator=rng, dtype=torch.float64))
    return model


def relu_net(seed, sizes=(5, 7, 4), bias=False):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(a, b, bias=bias)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers).double()


def test_linear_model_closed_forms(rng):
    model = linear_model(rng)
    x = torch.rand(4, 6, generator=rng, dtype=torch.float64)
    target = [0, 2, 1, 2]
    expected = model.weight.detach()[target]
    torch.testing.assert_close(A.gradient(model, x, target), expected)
    torch.testing.assert_close(A.sensitivity(model, x, target), expected**2)
    torch.testing.assert_close(A.gradient_x_input(model, x, target), expected * x)
    # the gradient of a linear model is constant: IG from 0 is gradient x input, SmoothGrad is the gradient
    torch.testing.assert_close(A.integrated_gradients(model, x, target, steps=3), expected * x)
    torch.testing.assert_close(A.smoothgrad(model, x, target, samples=4, noise=0.5), expected)


def test_targets_pred_filter_and_none(rng):
    model = linear_model(rng)
    x = torch.rand(5, 6, generator=rng, dtype=torch.float64)
    w = model.weight.detach()
    torch.testing.assert_close(A.gradient(model, x, "pred"), w[model(x).argmax(1)])
    torch.testing.assert_close(A.gradient(model, x, 1), w[[1] * 5])
    weights = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(A.gradient(model, x, weights), (weights @ w).expand(5, 6))
    assert torch.equal(A.gradient(model, x, None), torch.zeros_like(x))


@pytest.mark.parametrize(
    ("target", "message"),
    [(3, "out of range"), (-1, "out of range"), ([0, 1], "one per sample"), ("best", "'pred'"), (True, "int")],
)
def test_bad_targets(rng, target, message):
    model = linear_model(rng)
    with pytest.raises(TargetError, match=message):
        A.gradient(model, torch.rand(4, 6, dtype=torch.float64), target)


def test_bad_filter_shape(rng):
    with pytest.raises(TargetError, match=r"\(3,\) or \(4, 3\)"):
        A.gradient(linear_model(rng), torch.rand(4, 6, dtype=torch.float64), torch.ones(2, dtype=torch.float64))


def test_bad_inputs(rng):
    model = linear_model(rng)
    with pytest.raises(InputError, match="NaN"):
        A.gradient(model, torch.full((2, 6), float("nan"), dtype=torch.float64), 0)
    with pytest.raises(InputError, match=r"torch\.Tensor"):
        A.gradient(model, [[0.0] * 6], 0)
    with pytest.raises(InputError, match=r"\(N, classes\)"):
        A.gradient(nn.Flatten(0), torch.rand(2, 6), 0)
    with pytest.raises(SpecError, match="steps"):
        A.integrated_gradients(model, torch.rand(2, 6, dtype=torch.float64), 0, steps=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 4))
def test_gradient_x_input_sums_to_logit_on_bias_free_relu_net(seed, n):
    """Euler: a bias-free ReLU net is positively homogeneous, so sum_i x_i df/dx_i = f(x)."""
    model = relu_net(seed)
    x = torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    target = torch.arange(n) % 4
    logits = model(x).detach()[torch.arange(n), target]
    torch.testing.assert_close(A.gradient_x_input(model, x, target).sum(1), logits)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_integrated_gradients_completeness(seed):
    """sum_i IG_i = f(x) - f(0) up to the quadrature error of the midpoint rule."""
    model = relu_net(seed, bias=True)
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    relevance = A.integrated_gradients(model, x, 2, steps=400)
    with torch.no_grad():
        expected = model(x)[:, 2] - model(torch.zeros_like(x))[:, 2]
    torch.testing.assert_close(relevance.sum(1), expected, atol=2e-3 * (1 + expected.abs().max()), rtol=0)


def test_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    grad = A.gradient(model, x, [2, 0])
    h = 1e-6
    for i in range(4):
        step = torch.zeros_like(x)
        step[:, i] = h
        with torch.no_grad():
            diff = (model(x + step) - model(x - step))[torch.arange(2), [2, 0]] / (2 * h)
        torch.testing.assert_close(grad[:, i], diff, atol=1e-7, rtol=1e-6)


def test_smoothgrad_without_noise_is_the_gradient():
    model = relu_net(3, bias=True)
    x = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(A.smoothgrad(model, x, "pred", samples=3, noise=0.0), A.gradient(model, x, "pred"))
    noisy = A.smoothgrad(model, x, "pred", samples=8, noise=0.3, seed=1)
    assert torch.equal(noisy, A.smoothgrad(model, x, "pred", samples=8, noise=0.3, seed=1))


def test_random_is_reproducible_uniform_and_shaped():
    x = torch.zeros(3, 1, 4, 4)
    a, b = A.random(None, x, 0, seed=5), A.random(None, x, 0, seed=5)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert a.min() >= 0 and a.max() < 1
    assert not torch.equal(a, A.random(None, x, 0, seed=6))


def test_model_untouched(rng):
    model = linear_model(rng)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in A.BASELINES:
        A.attribute(model, torch.rand(2, 6, dtype=torch.float64), "pred", name)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not model._forward_hooks and not model._backward_hooks


def test_network_input_is_reshaped_back():
    net = lrpkit.Network([lrpkit.Linear(5), lrpkit.ReLU(), lrpkit.Linear(3)], input_shape=(1, 4, 4), classes=3)
    x = torch.rand(2, 16)
    for name in A.BASELINES:
        assert A.attribute(net, x, 1, name).shape == (2, 16)
    with pytest.raises(InputError, match="expected"):
        A.gradient(net, torch.rand(2, 15), 0)


def test_unknown_method_lists_valid_names():
    with pytest.raises(SpecError, match=r"gradxinput.*deeptaylor"):
        A.check_method("gradient_times_banana")
    A.check_method("deeptaylor")
    A.check_method(["ab", 2.0])
    assert A.describe(["gradient", ["ab", 2.0]]) == ["gradient", "ab(2.0)"]


def test_composites_are_methods_too():
    from lrpkit.composites import composite
    from lrpkit.evaluate import compare

    A.check_method({"linear": "epsilon", "first": "zb"})
    A.check_method(composite("attnlrp"))
    with pytest.raises(SpecError, match="composite entry 'linear'"):
        A.check_method({"linear": "banana"})
    net = lrpkit.Network([lrpkit.Linear(5), lrpkit.ReLU(), lrpkit.Linear(3)], input_shape=(1, 4, 4), classes=3)
    x = torch.rand(2, 1, 4, 4)
    found = compare(net, x, "pred", [{"linear": "epsilon"}, "epsilon"], steps=4)
    torch.testing.assert_close(*found.relevances.values())  # the same rules as a mapping and by name
