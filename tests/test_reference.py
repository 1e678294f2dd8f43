"""The NumPy reference on its own: hand-checked rules, a dense re-implementation of every rule on Linear and
Conv, conservation, LRP-0 == gradient x input, sign properties, targets, errors, and forward == torch."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrpkit
from lrpkit import layers as L
from lrpkit.engine.graph import Graph, Node
from lrpkit.errors import InputError, SpecError, TargetError
from lrpkit.reference import ReferenceGraph, ReferenceNetwork, from_network
from lrpkit.reference import layers as RL
from lrpkit.reference import rules as RR
from lrpkit.rules import AlphaBeta, Epsilon, Flat, Gamma, Simple, WSquare, ZBox, ZPlus
from strategies import architectures

SETTINGS = settings(max_examples=25, deadline=None)


def test_import_does_not_load_torch():
    code = "import lrpkit.reference, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- one weighted layer, checked by hand ------------------------------------------------------------


def relevance_of(layer, a, R, rule, bounds=(-1.0, 1.0)):
    return RR.apply(layer, np.asarray(a, float), np.asarray(R, float), rule, bounds)


# z = a . w (+ b) with a = [1, 2], w = [3, -1], b = 0.5, R = 1: contributions [3, -2], z = 1
HAND = [
    (Simple(), [3, -2]),
    (Simple(bias=True), [3 / 1.5, -2 / 1.5]),
    (Epsilon(1.0), [3 / 2, -2 / 2]),
    (Epsilon(1.0, bias=True), [3 / 2.5, -2 / 2.5]),
    (ZPlus(), [1, 0]),  # p = [3, 0]
    (AlphaBeta(2.0), [2, -1]),  # 2 p / 3 - n / (-2), n = [0, -2]
    (AlphaBeta(2.0, bias=True), [2 * 3 / 3.5, -1]),  # b+ joins p: 3 + 0.5
    (ZBox(-1.0, 3.0), [6 / 7, 1 / 7]),  # q = a w - l w+ - h w- = [3 + 3, -2 + 3]
    (ZBox(0.0, 2.0), [1, 0]),  # q = [3, -2 + 2]
    (WSquare(), [0.9, 0.1]),  # w^2 = [9, 1]
    (Flat(), [0.5, 0.5]),
    (Gamma(1.0), [1.5, -0.5]),  # output 1.5 > 0: u = a (w + w+) = [6, -2], sum 4
    (Gamma(1.0, bias=True), [6 / 5, -2 / 5]),  # u-sum + b + g b+ = 4 + 1
]


@pytest.mark.parametrize(("rule", "expected"), HAND, ids=[repr(r) for r, _ in HAND])
def test_rules_by_hand_linear(rule, expected):
    layer = RL.Linear(np.array([[3.0, -1.0]]), np.array([0.5]))
    np.testing.assert_allclose(relevance_of(layer, [[1, 2]], [[1]], rule)[0], expected, rtol=1e-8)


# negative input: a = [-1, 2], w = [-3, 1]: contributions [3, 2], all positive
HAND_NEGATIVE = [
    (Simple(), [0.6, 0.4]),
    (ZPlus(), [0.6, 0.4]),  # p = a- w- + a+ w+ = [3, 2]
    (AlphaBeta(2.0), [1.2, 0.8]),  # n = 0
    (Gamma(1.0), [0.6, 0.4]),  # u = a- (w + w-) + a+ (w + w+) = [6, 4]
]


@pytest.mark.parametrize(("rule", "expected"), HAND_NEGATIVE, ids=[repr(r) for r, _ in HAND_NEGATIVE])
def test_rules_by_hand_negative_inputs(rule, expected):
    layer = RL.Linear(np.array([[-3.0, 1.0]]), np.array([0.0]))
    np.testing.assert_allclose(relevance_of(layer, [[-1, 2]], [[1]], rule)[0], expected, rtol=1e-8)


def test_gamma_negative_output_uses_v():
    # a = [1, 2], w = [-3, 1]: output -1 < 0; v = a+ (w + g w-) = [-6, 2] (g = 1), sum -4
    layer = RL.Linear(np.array([[-3.0, 1.0]]), np.array([0.0]))
    np.testing.assert_allclose(relevance_of(layer, [[1, 2]], [[1]], Gamma(1.0))[0], [1.5, -0.5], rtol=1e-8)


def one_op(op, x, **params):
    """A graph of one node ``op`` on the input, and its NumPy twin."""
    graph = Graph((Node("x", "input"), Node("y", op, ("x",), params)), "x", "y")
    return ReferenceGraph(graph, {})


WINDOW = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "ceil_mode": False}


def test_pooling_pad_and_format_by_hand():
    a = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    top = np.ones((1, 1, 1, 1))
    sum_pool = one_op("avg_pool", a, count_include_pad=True, divisor_override=2, **WINDOW)
    assert sum_pool.values(a)["y"].item() == 5.0
    np.testing.assert_allclose(sum_pool.layerwise_lrp(a, np.ones(1))["x"], a / 10 * 5, rtol=1e-8)
    average = one_op("avg_pool", a, count_include_pad=True, divisor_override=None, **WINDOW)
    np.testing.assert_allclose(average.layerwise_lrp(a, np.ones(1))["x"], a / 10 * 2.5, rtol=1e-8)
    tie = np.array([[[[1.0, 4.0], [4.0, 2.0]]]])
    max_pool = one_op("max_pool", tie, dilation=(1, 1), **WINDOW)
    np.testing.assert_array_equal(max_pool.layerwise_lrp(tie, np.ones(1))["x"], [[[[0, 4], [0, 0]]]])
    shared = max_pool.layerwise_lrp(tie, np.ones(1), maxpool="proportional")["x"]
    np.testing.assert_allclose(shared, tie / 11 * 4, rtol=1e-8)
    pad = one_op("pad", a, pad=(1, 1, 1, 1), value=-1.0)
    np.testing.assert_array_equal(pad.values(a)["y"][0, 0, 0], [-1, -1, -1, -1])
    R = pad.layerwise_lrp(a, np.ones(1) * 0 + 1.0)  # R_top = padded values: the border's share is dropped
    np.testing.assert_array_equal(R["x"], a)
    del top


# -- every rule against a dense "matrix of contributions" re-implementation -------------------------


def dense(layer, shape):
    """``(W, M)`` with ``z = a.ravel() @ W``; ``M`` marks the (input, output) pairs that are connected."""
    if isinstance(layer, RL.Linear):
        return layer.weight.T.copy(), np.ones_like(layer.weight.T)
    c, h, w = shape
    o, _, k, _ = layer.weight.shape
    s, p = layer.stride[0], layer.padding[0]
    rows, cols = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    W = np.zeros((c * h * w, o * rows * cols))
    M = np.zeros_like(W)
    for oc, y, x, ic, di, dj in np.ndindex(o, rows, cols, c, k, k):
        i, j = y * s + di - p, x * s + dj - p
        if 0 <= i < h and 0 <= j < w:  # padding positions are not connected
            at = np.ravel_multi_index((ic, i, j), shape), np.ravel_multi_index((oc, y, x), (o, rows, cols))
            W[at], M[at] = layer.weight[oc, ic, di, dj], 1.0
    return W, M


def stab(d, eps=1e-9):
    return d + eps * np.where(d >= 0, 1.0, -1.0)


def divide(contrib, denom, R):
    """``R_i = sum_j contrib_ij / denom_j R_j``."""
    return (contrib / denom * R).sum(axis=1)


def rule_by_definition(rule, a, W, M, b, R, low, high):
    """One sample: ``a`` (D,), ``W`` (D, J), ``b`` (J,), ``R`` (J,), per the table in docs/lrp-rules.md."""
    A = a[:, None]
    zw = A * W
    p, n = np.maximum(zw, 0), np.minimum(zw, 0)  # the positive and negative parts of a_i w_ij
    bias = getattr(rule, "bias", False)
    if isinstance(rule, Simple):
        return divide(zw, zw.sum(0) + bias * b + 1e-12, R)
    if isinstance(rule, Epsilon):
        return divide(zw, stab(zw.sum(0) + bias * b, rule.epsilon), R)
    if isinstance(rule, AlphaBeta):
        zp, zn = p.sum(0) + bias * np.maximum(b, 0), n.sum(0) + bias * np.minimum(b, 0)
        return divide(p, stab(zp), rule.alpha * R) - divide(n, stab(zn), rule.beta * R)
    if isinstance(rule, ZBox):
        q = zw - low[:, None] * np.maximum(W, 0) - high[:, None] * np.minimum(W, 0)
        return divide(q, stab(q.sum(0) + bias * b), R)
    if isinstance(rule, WSquare):
        return divide(W**2, stab((W**2).sum(0)), R)
    if isinstance(rule, Flat):
        return divide(M, stab(M.sum(0)), R)
    if isinstance(rule, Gamma):
        g, wp, wn = rule.gamma, np.maximum(W, 0), np.minimum(W, 0)
        ap, an = np.maximum(A, 0), np.minimum(A, 0)
        u = ap * (W + g * wp) + an * (W + g * wn)
        v = ap * (W + g * wn) + an * (W + g * wp)
        out = zw.sum(0) + b
        zu = u.sum(0) + bias * (b + g * np.maximum(b, 0))
        zv = v.sum(0) + bias * (b + g * np.minimum(b, 0))
        return divide(u, stab(zu), np.where(out > 0, R, 0)) + divide(v, stab(zv), np.where(out < 0, R, 0))
    raise AssertionError(rule)


RULES = [Simple(), Epsilon(), Epsilon(0.3), ZPlus(), AlphaBeta(2.0), AlphaBeta(1.5), ZBox(), WSquare(), Flat(), Gamma()]
RULES += [Simple(bias=True), Epsilon(0.1, bias=True), AlphaBeta(3.0, bias=True), ZBox(bias=True), Gamma(0.5, bias=True)]


@st.composite
def weighted_layers(draw):
    """A random Linear or Conv layer, its per-sample input shape and a seed for the arrays."""
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        d, o = draw(st.integers(1, 6)), draw(st.integers(1, 4))
        return RL.Linear(rng.normal(size=(o, d)), rng.normal(size=o)), (d,), rng
    c, o, k = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s, p = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    h, w = draw(st.integers(k, 6)), draw(st.integers(k, 6))
    return RL.Conv(rng.normal(size=(o, c, k, k)), rng.normal(size=o), (s, s), (p, p), (h, w)), (c, h, w), rng


@SETTINGS
@given(weighted_layers(), st.sampled_from(RULES))
def test_every_rule_matches_the_dense_definition(case, rule):
    layer, shape, rng = case
    a = rng.normal(size=(2, *shape))  # inputs of either sign
    a[0].flat[0] = 0.0
    out = layer.forward(a)
    R = rng.normal(size=out.shape)
    low, high = a.min() - rng.uniform(0, 1), a.max() + rng.uniform(0, 1)
    got = relevance_of(layer, a, R, rule, (low, high))
    W, M = dense(layer, shape)
    b = np.repeat(layer.bias, out[0].size // len(layer.bias))  # one bias per output unit, C order
    for n in range(2):
        np.testing.assert_allclose(out[n].ravel(), a[n].ravel() @ W + b, rtol=1e-12, atol=1e-12)
        lo, hi = np.full(a[n].size, low), np.full(a[n].size, high)
        want = rule_by_definition(rule, a[n].ravel(), W, M, b, R[n].ravel(), lo, hi)
        np.testing.assert_allclose(got[n].ravel(), want, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(want).max()))


@SETTINGS
@given(weighted_layers(), st.sampled_from([Simple(), ZPlus(), ZBox(), WSquare(), Flat(), Gamma()]))
def test_single_layer_conservation(case, rule):
    layer, shape, rng = case
    a = rng.uniform(0.1, 1.0, size=(2, *shape))  # positive inputs, as after a ReLU
    out = layer.forward_with(a, layer.weight)
    # outputs without positive (z+) or any (others) contributions, e.g. over the padding, pass nothing on
    R = np.where(out > 1e-3 if isinstance(rule, ZPlus) else abs(out) > 1e-3, rng.uniform(0, 1, size=out.shape), 0)
    got = relevance_of(layer, a, R, rule, (0.0, 1.0))
    np.testing.assert_allclose(got.sum(axis=tuple(range(1, a.ndim))), R.reshape(2, -1).sum(1), rtol=1e-6)


@SETTINGS
@given(weighted_layers())
def test_zb_is_non_negative_inside_the_bounds(case):
    layer, shape, rng = case
    low = rng.uniform(-2, 0, size=shape)  # per-pixel bounds
    high = low + rng.uniform(0.1, 2, size=shape)
    a = low + (high - low) * rng.uniform(0, 1, size=(3, *shape))
    R = rng.uniform(0, 1, size=layer.forward(a).shape)
    assert (relevance_of(layer, a, R, ZBox(low, high)) >= -1e-12).all()


# -- whole networks -----------------------------------------------------------------------------


def homogeneous(spec):
    """Format -> NoFormat and Pad -> zero padding: with zero biases the network is positively homogeneous."""
    if isinstance(spec, L.Format):
        return L.NoFormat()
    return L.Pad(spec.pixels, 0.0) if isinstance(spec, L.Pad) else spec


@st.composite
def networks(draw, zero_bias=False, plain=False):
    """A random float64 ``lrpkit.Network`` (eval mode), its NumPy twin and a batch of inputs in [0, 1]."""
    layers, input_shape, classes = draw(architectures(always_relu=True))
    seed = draw(st.integers(0, 2**31))
    layers = [homogeneous(s) for s in layers] if plain else layers
    net = lrpkit.Network(layers, input_shape, classes, seed=seed % 1000).double().eval()
    if zero_bias:
        with torch.no_grad():
            for name, param in net.named_parameters():
                if name.endswith("bias"):
                    param.zero_()
    x = np.random.default_rng(seed).uniform(0, 1, size=(draw(st.integers(1, 3)), *input_shape))
    return net, from_network(net), x


@SETTINGS
@given(networks())
def test_forward_matches_torch(case):
    net, twin, x = case
    ours = twin.activations(x)
    theirs = net.activations(torch.from_numpy(x))
    assert len(ours) == len(net.specs) + 1
    for k, (a, t) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=f"layer {k}")


@SETTINGS
@given(networks(zero_bias=True), st.sampled_from(["simple", "deeptaylor", "gamma", ["gamma", 1.0], "zplus"]))
def test_bias_free_conservation_layer_by_layer(case, method):
    net, twin, x = case
    R = twin.layerwise_lrp(x, "pred", method)
    if method == "zplus" and (twin.forward(x).max(axis=1) <= 0).any():
        return  # z+ passes nothing from a negative logit
    totals = [r.reshape(len(x), -1).sum(1) for r in R]
    for k, spec in enumerate(net.specs):
        if not isinstance(spec, L.Pad):  # Pad drops the border's relevance
            np.testing.assert_allclose(totals[k], totals[k + 1], rtol=1e-6, atol=1e-9, err_msg=f"layer {k} {spec}")


@SETTINGS
@given(networks(zero_bias=True, plain=True), st.data())
def test_simple_on_bias_free_relu_net_is_gradient_times_input(case, data):
    net, twin, x = case
    c = data.draw(st.integers(0, net.classes - 1))
    xt = torch.from_numpy(x).requires_grad_(True)
    net(xt)[:, c].sum().backward()
    expected = (xt.grad * xt).detach().numpy()
    # LRP-0 and pooling with stabilisers of 1e-30 (LRP-0's own 1e-12 and pooling's 1e-9 move tiny denominators)
    tiny = lrpkit.Epsilon(1e-30)
    R = twin.lrp(x, c, {"linear": tiny, "conv": tiny, "avg_pool": lrpkit.Proportional(1e-30)})
    np.testing.assert_allclose(R, expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max())


@SETTINGS
@given(networks())
def test_deeptaylor_heatmaps_are_non_negative_and_zplus_is_ab_1_0(case):
    _, twin, x = case
    assert (twin.lrp(x, "pred", "deeptaylor") >= -1e-12).all()
    np.testing.assert_array_equal(twin.lrp(x, "pred", "zplus"), twin.lrp(x, "pred", AlphaBeta(1.0, 0.0)))


# -- targets ------------------------------------------------------------------------------------


@pytest.fixture
def small():
    """A small CNN twin (float64) and a batch of 3 inputs."""
    layers = [L.Format(), L.Conv(2, 3), L.ReLU(), L.MaxPool(2, 2), L.Linear(4)]
    net = lrpkit.Network(layers, (1, 6, 6), 4, seed=1).double()
    return net, from_network(net), np.random.default_rng(0).uniform(0, 1, size=(3, 1, 6, 6))


def test_target_forms_agree(small):
    _, twin, x = small
    logits = twin.forward(x)
    eye = np.eye(4)
    by_filter = [twin.lrp(x, eye[c], "epsilon") for c in range(4)]
    np.testing.assert_array_equal(twin.lrp(x, "all", "epsilon"), np.stack(by_filter, axis=1))
    for c in range(4):
        np.testing.assert_array_equal(twin.lrp(x, c, "epsilon"), by_filter[c])
        np.testing.assert_array_equal(twin.lrp(x, np.tile(eye[c], (3, 1)), "epsilon"), by_filter[c])
    ids = [2, 0, 3]
    per_sample = twin.lrp(x, ids, "epsilon")
    for n, c in enumerate(ids):
        np.testing.assert_array_equal(per_sample[n], by_filter[c][n])
    pred = logits.argmax(1)
    np.testing.assert_array_equal(twin.lrp(x, "pred", "epsilon"), twin.lrp(x, pred, "epsilon"))
    np.testing.assert_array_equal(twin.lrp(x, None, "epsilon"), np.zeros_like(x))
    weights = np.array([0.5, -1.0, 0.0, 2.0])
    R = twin.layerwise_lrp(x, weights, "epsilon")
    np.testing.assert_array_equal(R[-1], logits * weights)
    np.testing.assert_allclose(R[0], sum(w * f for w, f in zip(weights, by_filter, strict=True)), atol=1e-12)


def test_deeptaylor_starts_from_rectified_logits(small):
    _, twin, x = small
    logits = twin.forward(x)
    top = twin.layerwise_lrp(x, "all", "deeptaylor")[-1]  # (N, C, C): one one-hot filter per class
    np.testing.assert_array_equal(top, np.maximum(logits, 0)[:, None, :] * np.eye(4))
    np.testing.assert_array_equal(twin.layerwise_lrp(x, "all", "epsilon")[-1], logits[:, None, :] * np.eye(4))
    assert twin.layerwise_lrp(x, "all", "epsilon")[3].shape == (3, 4, 2, 4, 4)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (4, "out of range"),
        (-1, "out of range"),
        ([0, 1], "one per sample"),
        ([0, 1, 7], "out of range"),
        (np.ones(3), r"shape \(4,\) or \(3, 4\)"),
        (np.ones((2, 4)), r"shape \(4,\) or \(3, 4\)"),
        (np.array([0.0, np.nan, 0, 0]), "NaN"),
        ("best", "unknown target"),
        (True, "bool"),
        (["a", "b", "c"], "floats"),
    ],
)
def test_bad_targets(small, target, match):
    _, twin, x = small
    with pytest.raises(TargetError, match=match):
        twin.lrp(x, target)


def test_bad_inputs_methods_and_specs(small):
    net, twin, x = small
    with pytest.raises(InputError, match=r"expected \(N, 1, 6, 6\)"):
        twin.lrp(x[:, :, :5], 0)
    with pytest.raises(InputError, match="float32 or float64"):
        twin.forward(x.astype(np.int64))
    with pytest.raises(InputError, match="NaN"):
        twin.forward(np.full_like(x, np.nan))
    with pytest.raises(InputError, match="NumPy array"):
        twin.forward(x.tolist())
    with pytest.raises(SpecError, match="unknown rule"):
        twin.lrp(x, 0, "nonsense")
    with pytest.raises(SpecError, match="maxpool"):
        twin.lrp(x, 0, "simple", maxpool="largest")
    with pytest.raises(SpecError, match="does not broadcast"):
        twin.lrp(x, 0, ZBox(np.zeros(5), 1.0))
    weights = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    with pytest.raises(SpecError, match=r"'body.1.bias' is missing"):
        ReferenceNetwork.from_spec(net.spec(), {k: v for k, v in weights.items() if k != "body.1.bias"})
    with pytest.raises(SpecError, match=r"'body.4.weight' has shape \(4, 32\), expected \(4, 8\)"):
        ReferenceNetwork.from_spec(net.spec(), {**weights, "body.4.weight": np.zeros((4, 32))})
    with pytest.raises(SpecError, match="no layer type 'Softmax'"):
        ReferenceNetwork.from_spec({**net.spec(), "layers": [*net.spec()["layers"], {"type": "Softmax"}]}, weights)
    with pytest.raises(SpecError, match=r"layer 1 \(Conv\): bad or missing parameter"):
        spec = net.spec()
        del spec["layers"][1]["kernel_size"]
        ReferenceNetwork.from_spec(spec, weights)


def test_json_spec_float32_and_per_layer_methods(small):
    net, _, x = small
    spec = json.loads(json.dumps(net.spec()))
    twin32 = ReferenceNetwork.from_spec(spec, {k: v.float().numpy() for k, v in net.state_dict().items()})
    twin64 = from_network(net)
    R32 = twin32.lrp(x.astype(np.float32), 1, [["zb"], ["ab", 2.0]])  # one entry per weighted layer
    R64 = twin64.lrp(x, 1, [None, "zb", None, None, ["ab", 2.0]])  # one entry per layer
    assert R32.dtype == np.float32 and twin64.lrp(x, 1).dtype == np.float64
    np.testing.assert_allclose(R32, R64, rtol=1e-4, atol=1e-6 * np.abs(R64).max())
    assert "Conv(in=1, out=2, kernel=3" in repr(twin64)
