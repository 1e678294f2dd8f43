"""The LRP walk: conservation on random networks, gradient x input, signs, targets in one pass, BatchNorm
merging, pooling against slow references, an untouched model, dtypes/devices and every error."""

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import lrpkit
from lrpkit import layers as L
from lrpkit.errors import InputError, LrpkitError, SpecError, TargetError
from lrpkit.rules import AlphaBeta, Epsilon, Gamma, ZBox, ZPlus

F64 = torch.float64


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROPERTY = settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
CONSERVING = ["simple", "zplus", "ab", ["ab", 3.0], "gamma", ["gamma", 1.0], "deeptaylor", "zbab", "wwab"]
FIRST_LAYER_ONLY = [
    ["zb", -1.0, 1.0],
    "ww",
    "flat",
]  # give relevance to dead neurons, so only their own layers conserve


def bias_free(net):
    with torch.no_grad():
        for module in net.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
    return net


def sums(R):
    return R.flatten(1).sum(1)


def assert_conserves(R, layers_to_check, rtol=1e-6):
    """``sum R[i] == sum R[i + 1]`` per sample, relative to the total |relevance| of the layer above."""
    for i in layers_to_check:
        scale = R[i + 1].abs().flatten(1).sum(1) + 1e-30
        gap = ((sums(R[i]) - sums(R[i + 1])).abs() / scale).max()
        assert gap <= rtol, f"layer {i}: relative conservation gap {float(gap):.3g}"


# -- conservation on random architectures (hypothesis) -------------------------------------------------
# Widths keep every neuron's fan-in large, so a neuron with no positive (or no negative) contribution,
# where alpha-beta legitimately does not conserve, practically never occurs.

cnn_specs = st.builds(
    lambda c1, c2, pool, hidden: [
        L.Format(),
        L.Conv(c1, 3),
        L.ReLU(),
        pool(2, 2),
        L.Conv(c2, 3, 1, 1),
        L.ReLU(),
        L.Linear(hidden),
        L.ReLU(),
        L.Linear(5),
    ],
    st.sampled_from([8, 10]),
    st.sampled_from([8, 10]),
    st.sampled_from([L.SumPool, L.AvgPool, L.MaxPool]),
    st.sampled_from([64, 96]),
)
mlp_specs = st.builds(
    lambda widths: [L.Format(), *itertools.chain(*[(L.Linear(w), L.ReLU()) for w in widths]), L.Linear(5)],
    st.lists(st.sampled_from([64, 96]), min_size=1, max_size=3),
)


def random_case(specs, seed, shape):
    net = bias_free(lrpkit.Network(specs, input_shape=shape, classes=5, seed=seed).double())
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return net, x


@PROPERTY
@given(specs=cnn_specs, seed=st.integers(0, 10_000), maxpool=st.sampled_from(["winner", "proportional"]))
def test_every_bias_free_rule_conserves_on_random_cnns(specs, seed, maxpool):
    net, x = random_case(specs, seed, (3, 10, 10))
    for method in CONSERVING + FIRST_LAYER_ONLY:
        R = net.layerwise_lrp(x, "pred", method, maxpool=maxpool)
        layers = range(len(R) - 1) if method in CONSERVING else net.weighted_indices
        assert_conserves(R, layers)


@PROPERTY
@given(specs=mlp_specs, seed=st.integers(0, 10_000), target=st.sampled_from(["pred", 0, 4]))
def test_every_bias_free_rule_conserves_on_random_mlps(specs, seed, target):
    net, x = random_case(specs, seed, (1, 6, 6))
    for method in CONSERVING + FIRST_LAYER_ONLY:
        R = net.layerwise_lrp(x, target, method)
        assert_conserves(R, range(len(R) - 1) if method in CONSERVING else net.weighted_indices)
        assert (net.conservation_check(R[0], R[-1]) <= 1e-6 * R[-1].abs().sum(1)).all()


def test_conservation_check_reports_the_gap_per_sample():
    net = lrpkit.mlp().double()
    R = net.layerwise_lrp(torch.rand(3, 784, dtype=F64), "pred", "epsilon")
    gap = net.conservation_check(R[0], R[-1])
    assert gap.shape == (3,)
    torch.testing.assert_close(gap, (sums(R[0]) - R[-1].sum(1)).abs())
    assert torch.equal(net.conservation_check(R[0], R[-1].sum(1)), gap)


def test_epsilon_absorbs_relevance_and_bias_true_breaks_exact_conservation():
    net = lrpkit.mlp(seed=1).double()  # with biases
    x = torch.rand(4, 1, 28, 28, dtype=F64)
    exact = net.layerwise_lrp(x, "pred", "simple")
    big = net.layerwise_lrp(x, "pred", Epsilon(10.0))
    assert_conserves(exact, range(len(exact) - 1), rtol=1e-9)
    assert (sums(big[0]).abs() < sums(big[-1]).abs()).all()
    with_bias = net.layerwise_lrp(x, "pred", AlphaBeta(2.0, 1.0, bias=True))
    assert not torch.allclose(sums(with_bias[0]), sums(with_bias[-1]))


# -- known identities ----------------------------------------------------------------------------------


def bias_free_sequential():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, padding=1),
        nn.Sequential(nn.Conv2d(4, 6, 2, bias=False), nn.ReLU(inplace=True)),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d((2, 1)),
        nn.Flatten(),
        nn.Linear(12, 8, bias=False),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(8, 3, bias=False),
    ).double()


def test_simple_on_bias_free_relu_net_is_gradient_times_input():
    model = bias_free_sequential().eval()
    x = torch.randn(4, 2, 9, 9, dtype=F64)
    target = torch.tensor([0, 2, 1, 2])
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(xg).gather(1, target[:, None]).sum(), xg)
    scale = (grad * x).abs().max()  # pooling divides by stab(z) = z + 1e-9: equal up to that
    torch.testing.assert_close(lrpkit.lrp(model, x, target, "simple") / scale, grad * x / scale, rtol=0, atol=1e-6)


def test_zb_relevance_is_non_negative_inside_the_bounds():
    torch.manual_seed(1)
    layer = nn.Linear(12, 6).double()
    low, high = -torch.rand(12, dtype=F64), torch.rand(12, dtype=F64)
    x = low + (high - low) * torch.rand(5, 12, dtype=F64)
    filt = torch.sign(layer(x)) * torch.rand(5, 6, dtype=F64)  # R_out = |out| * rand >= 0
    for bias in (False, True):
        R = lrpkit.layerwise_lrp(nn.Sequential(layer), x, filt, ZBox(low, high, bias=bias))
        assert (R[-1] >= 0).all() and (R[0] >= 0).all()


@pytest.mark.parametrize("build", [lrpkit.mlp, lrpkit.cnn, lrpkit.tutorial_cnn])
def test_deeptaylor_heatmaps_are_non_negative(build):
    net = build(seed=2).double()
    x = torch.rand(4, 1, 28, 28, dtype=F64)
    for target in ("pred", "all", [1, 2, 3, 4]):
        assert (net.lrp(x, target, "deeptaylor") >= 0).all()


def small_cnn(seed=3):
    specs = [L.Format(), L.Conv(4, 3), L.ReLU(), L.SumPool(), L.Conv(6, 3), L.ReLU(), L.MaxPool(), L.Linear(10)]
    return lrpkit.Network(specs, input_shape=(1, 12, 12), seed=seed).double()


@pytest.mark.parametrize("method", ["simple", "zbab", "epsilon_gamma_box", "flat"])
def test_all_classes_equal_stacked_single_class_calls(method):
    net = small_cnn()
    x = torch.rand(2, 1, 12, 12, dtype=F64)
    every = net.layerwise_lrp(x, "all", method)
    assert every[0].shape == (2, 10, 1, 12, 12) and every[-1].shape == (2, 10, 10)
    for c in range(10):
        single = net.layerwise_lrp(x, c, method)
        for R_all, R_one in zip(every, single, strict=True):
            torch.testing.assert_close(R_all[:, c], R_one, rtol=1e-12, atol=1e-15)
    assert net.lrp(x, "all", method).shape == (2, 10, 1, 12, 12)


def test_per_layer_lists_one_entry_per_layer_or_per_weighted_layer():
    net = lrpkit.mlp(seed=4).double()
    x = torch.rand(2, 1, 28, 28, dtype=F64)
    preset = net.lrp(x, 3, "zbab")
    per_weighted = net.lrp(x, 3, [["zb"], ["ab", 2.0], ["ab", 2.0]])
    per_layer = net.lrp(x, 3, [None, "zb", None, AlphaBeta(2.0), None, AlphaBeta(2.0, 1.0)])
    assert torch.equal(preset, per_weighted) and torch.equal(preset, per_layer)


# -- BatchNorm ---------------------------------------------------------------------------------------


def batchnorm_model():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 16, 5, bias=False),
        nn.BatchNorm1d(5, affine=False),
        nn.ReLU(),
        nn.Linear(5, 4),
    ).double()
    for bn in (model[1], model[5]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    return model


def fold(linear, bn):
    """The test's own BatchNorm folding: a new layer computing ``bn(linear(x))`` in eval mode."""
    folded = copy.deepcopy(linear)
    g = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_var)
    scale = g / torch.sqrt(bn.running_var + bn.eps)
    bias = linear.bias if linear.bias is not None else torch.zeros_like(scale)
    with torch.no_grad():
        folded.weight.copy_(linear.weight * scale.view(-1, *[1] * (linear.weight.dim() - 1)))
        folded.bias = nn.Parameter((bias - bn.running_mean) * scale + beta)
    return folded


def test_batchnorm_merge_equals_the_unmerged_eval_forward_and_a_folded_model():
    model = batchnorm_model().train()  # explained as in eval mode, whatever the flag
    x = torch.randn(3, 2, 6, 6, dtype=F64)
    R = lrpkit.layerwise_lrp(model, x, torch.ones(4, dtype=F64), "simple")
    reference = copy.deepcopy(model).eval()
    torch.testing.assert_close(R[-1], reference(x))  # R_top = logits * 1
    folded = nn.Sequential(
        fold(model[0], model[1]), nn.ReLU(), nn.Flatten(), fold(model[4], model[5]), nn.ReLU(), model[7]
    )
    torch.testing.assert_close(folded(x), reference(x))
    for method in ("simple", "epsilon_plus", "gamma", ["ab", 2.0]):
        torch.testing.assert_close(lrpkit.lrp(model, x, "pred", method), lrpkit.lrp(folded, x, "pred", method))
    assert len(R) == len(model) + 1 and torch.equal(R[1], R[2])  # relevance passes the BatchNorm unchanged


# -- pooling and padding against slow references ----------------------------------------------------------


def pool_matrix(pool, shape):
    """The linear map of a pooling layer, probed with forward calls on basis inputs: (I, J)."""
    eye = torch.eye(int(np.prod(shape)), dtype=F64).reshape(-1, *shape)
    return pool(eye).flatten(1)


def proportional_reference(pool, a, R):
    P = pool_matrix(pool, a.shape[1:])
    A = a.flatten(1)[:, :, None] * P
    z = A.sum(1)
    return (A / (z + 1e-9 * torch.where(z >= 0, 1.0, -1.0))[:, None, :] * R.flatten(1)[:, None, :]).sum(2)


POOLS = [
    nn.AvgPool2d(2, 2, divisor_override=2),
    nn.AvgPool2d(3, 2, divisor_override=3),
    nn.AvgPool2d(2),
    nn.AvgPool2d(3, 2, padding=1),
    nn.AvgPool2d(3, 2, padding=1, count_include_pad=False, ceil_mode=True),
    nn.AvgPool2d(2, 1, divisor_override=3),
    nn.AdaptiveAvgPool2d((3, 2)),
]


@pytest.mark.parametrize("pool", POOLS, ids=repr)
def test_sum_and_average_pooling_are_proportional(pool):
    a = torch.rand(2, 3, 7, 5, dtype=F64)
    filt = torch.randn(pool(a).flatten(1).shape, dtype=F64)
    R = lrpkit.layerwise_lrp(nn.Sequential(pool, nn.Flatten()), a, filt)
    expected = proportional_reference(pool, a, pool(a).flatten(1) * filt)
    torch.testing.assert_close(R[0].flatten(1), expected, rtol=1e-10, atol=1e-13)


def winner_reference(a, R, kernel, stride, padding):
    """All of R_j to the first maximum of window j, with explicit loops."""
    out = torch.zeros_like(a)
    N, C, H, W = a.shape
    Ho, Wo = R.shape[-2:]
    for n, c, y, x in itertools.product(range(N), range(C), range(Ho), range(Wo)):
        window = [
            (iy, ix)
            for iy in range(y * stride - padding, y * stride - padding + kernel)
            for ix in range(x * stride - padding, x * stride - padding + kernel)
            if 0 <= iy < H and 0 <= ix < W
        ]
        best = max(window, key=lambda p: (a[n, c, p[0], p[1]], -window.index(p)))
        out[n, c, best[0], best[1]] += R[n, c, y, x]
    return out


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 0), (3, 2, 1), (3, 1, 0)])
def test_max_pooling_winner_takes_all_first_on_ties(kernel, stride, padding):
    a = torch.randint(0, 3, (2, 2, 6, 7)).to(F64)  # many ties
    pool = nn.MaxPool2d(kernel, stride, padding)
    filt = torch.randn(pool(a).flatten(1).shape, dtype=F64)
    R = lrpkit.layerwise_lrp(nn.Sequential(pool, nn.Flatten()), a, filt)
    expected = winner_reference(a, (pool(a).flatten(1) * filt).view_as(pool(a)), kernel, stride, padding)
    torch.testing.assert_close(R[0], expected)
    proportional = lrpkit.layerwise_lrp(nn.Sequential(pool, nn.Flatten()), a + 1, filt, maxpool="proportional")
    window_sum = lambda t: F.avg_pool2d(t, kernel, stride, padding, divisor_override=1)  # noqa: E731
    R_top = (pool(a + 1).flatten(1) * filt).view_as(pool(a + 1))  # as sum pooling over the same windows
    torch.testing.assert_close(proportional[0].flatten(1), proportional_reference(window_sum, a + 1, R_top))


def test_pad_crops_the_border_relevance():
    pad = nn.ConstantPad2d(2, -1.0)
    a = torch.rand(2, 1, 4, 4, dtype=F64)
    filt = torch.randn(2, 64, dtype=F64)
    R = lrpkit.layerwise_lrp(nn.Sequential(pad, nn.Flatten()), a, filt)
    torch.testing.assert_close(R[0], (pad(a).flatten(1) * filt).view(2, 1, 8, 8)[:, :, 2:-2, 2:-2])


# -- the model is never changed; results are ordinary tensors ---------------------------------------------


def snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [(p._version, p.requires_grad) for p in model.parameters()],
        [m.training for m in model.modules()],
    )


def hooks(model):
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, name)) for m in model.modules() for name in names)


CASES = {
    "batchnorm": lambda: (batchnorm_model(), torch.rand(2, 2, 6, 6, dtype=F64)),
    "pooling": lambda: (bias_free_sequential(), torch.rand(2, 2, 9, 9, dtype=F64)),
    "network": lambda: (lrpkit.tutorial_cnn().double(), torch.rand(2, 1, 28, 28, dtype=F64)),
}


@pytest.mark.parametrize("case", CASES)
def test_explaining_leaves_the_model_untouched(case):
    model, x = CASES[case]()
    model.train()
    before, x_before = snapshot(model), x.clone()
    for method in ["simple", "epsilon_alpha2_beta1_flat", "gamma", ["zb", -1.0, 2.0], "wwab"]:
        for target in ("pred", "all"):
            lrpkit.layerwise_lrp(model, x, target, method, maxpool="proportional")
    after = snapshot(model)
    assert hooks(model) == 0 and torch.equal(x, x_before)
    assert before[1:] == after[1:]
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])


def test_results_are_ordinary_tensors():
    net = lrpkit.mlp()
    R = net.layerwise_lrp(torch.rand(2, 784), 1)
    heatmap = net.lrp(torch.rand(2, 784), 1)
    assert heatmap.shape == (2, 784) and not heatmap.is_inference() and not R[3].is_inference()
    heatmap += 1  # in place works outside inference mode
    assert [r.shape for r in R] == [(2, 1, 28, 28), (2, 1, 28, 28), (2, 300), (2, 300), (2, 100), (2, 100), (2, 10)]


# -- dtypes and devices ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("method", "tolerance"),
    [("zbab", 2e-4), ("deeptaylor", 2e-4), ("simple", 1e-2), ("epsilon_plus_flat", 1e-2), ("epsilon_gamma_box", 1e-2)],
)
def test_float32_agrees_with_float64(method, tolerance, device):
    """Positive rules are well conditioned; LRP-0/epsilon divide by small z, which float32 rounding shows."""
    net = lrpkit.cnn(seed=6)
    x = torch.rand(3, 1, 28, 28)
    exact = copy.deepcopy(net).double().lrp(x.double(), "pred", method)
    fast = net.to(device).lrp(x.to(device), "pred", method)
    assert fast.dtype == torch.float32 and fast.device.type == device
    scale = exact.abs().max()
    torch.testing.assert_close(fast.cpu().double() / scale, exact / scale, rtol=0, atol=tolerance)


def test_generic_sequential_with_bounds_per_channel_and_per_pixel():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 5)).double()
    x = torch.rand(2, 3, 6, 6, dtype=F64)
    low, high = torch.tensor([0.0, -1.0, -2.0], dtype=F64), torch.tensor([1.0, 1.0, 2.0], dtype=F64)
    per_channel = lrpkit.lrp(model, x, 1, ["zb", "zplus"], bounds=(low, high))
    per_pixel = lrpkit.lrp(model, x, 1, ["zb", "zplus"], bounds=(low.view(3, 1, 1).expand(3, 6, 6), high.view(3, 1, 1)))
    as_rule = lrpkit.lrp(model, x, 1, [ZBox(low.numpy(), high.numpy()), None, None, ZPlus()])
    torch.testing.assert_close(per_channel, per_pixel)
    torch.testing.assert_close(per_channel, as_rule)
    numbers = lrpkit.lrp(model, x, 1, ["zb", "zplus"], bounds=(0, 1))
    assert not torch.allclose(numbers, per_channel)


# -- errors ---------------------------------------------------------------------------------------------


class Cumulative(nn.Module):
    """An op without a rule (cumsum) on the relevance path, and ops off it (a mask from a comparison)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        mask = (torch.arange(2) < 1).to(x.dtype)  # off the relevance path: never refused
        return self.fc(torch.cumsum(x, 1)) * mask


def test_an_op_without_a_rule_is_named_with_the_line_of_forward():
    with pytest.raises(SpecError) as info:
        lrpkit.lrp(Cumulative(), torch.rand(2, 4), 0)
    message = str(info.value)
    assert "node 'cumsum' (call aten.cumsum.default)" in message
    assert "test_lrp.py" in message and "return self.fc(torch.cumsum(x, 1)) * mask" in message
    assert "Supported operations: activation" in message


def test_models_once_refused_are_explained_now():
    """Pre-activation BatchNorm (identity), Linear on any-rank input, a bare module, tanh."""
    torch.manual_seed(4)
    for model, x in [
        (nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2)), torch.rand(2, 4)),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 2), nn.Flatten()), torch.rand(1, 1, 4, 4)),
        (nn.Linear(4, 2), torch.rand(2, 4)),
        (nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), torch.rand(2, 4)),
    ]:
        R = lrpkit.lrp(model.eval(), x, 0)
        assert R.shape == x.shape and torch.isfinite(R).all()


@pytest.mark.parametrize(
    ("model", "x", "error", "message"),
    [
        (
            nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False), nn.Linear(3, 2)),
            torch.rand(2, 4),
            SpecError,
            "running statistics",
        ),
        (
            nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten()),
            None,
            SpecError,
            "mode='reflect'",
        ),
        (nn.Sequential(nn.Linear(4, 2)), torch.rand(2, 5), InputError, r"cannot take an input of shape \(2, 5\)"),
        (nn.Sequential(nn.Linear(4, 2)), np.ones((2, 4)), InputError, "torch.Tensor"),
        (nn.Sequential(nn.Linear(4, 2)), torch.ones(2, 4, dtype=torch.long), InputError, "floating point"),
        (nn.Sequential(nn.Linear(4, 2)), torch.ones(4), InputError, r"\(N, ...\)"),
        (nn.Sequential(nn.Linear(4, 2)), torch.tensor([[1.0, float("nan"), 0, 0]]), InputError, "NaN"),
        (nn.Sequential(nn.Linear(4, 2)), torch.ones(2, 4, dtype=F64), InputError, r"layer 0 \(Linear\).weight"),
        (nn.Sequential(nn.Linear(4, 2).to("meta")), torch.ones(2, 4), InputError, "meta"),
        (nn.Sequential(nn.Conv2d(1, 2, 3)), torch.rand(1, 1, 4, 4), SpecError, "one entry per"),
        ("not a model", torch.rand(2, 4), SpecError, "torch.nn.Module"),
        (nn.Sequential(nn.MaxPool2d(2, dilation=2), nn.Flatten()), None, SpecError, "dilation"),
    ],
)
def test_bad_models_and_inputs_raise_clear_errors(model, x, error, message):
    x = torch.rand(1, 1, 6, 6) if x is None else x
    method = ["simple", "simple"] if message == "one entry per" else "simple"
    with pytest.raises(error, match=message):
        lrpkit.lrp(model, x, 0, method, maxpool="proportional")


def test_network_input_errors():
    net = lrpkit.mlp()
    with pytest.raises(InputError, match=r"expected \(N, 1, 28, 28\)"):
        net.lrp(torch.rand(2, 100), 0)
    with pytest.raises(InputError, match="float64 on cpu but the network is torch.float32"):
        net.lrp(torch.rand(2, 784, dtype=F64), 0)
    with pytest.raises(InputError, match="NaN or Inf"):
        net.lrp(torch.full((1, 784), float("inf")), 0)


def test_method_and_option_errors():
    net = lrpkit.mlp()
    x = torch.rand(1, 784)
    with pytest.raises(SpecError, match="unknown rule 'nope'; valid rules"):
        net.lrp(x, 0, "nope")
    with pytest.raises(SpecError, match="one entry per layer"):
        net.lrp(x, 0, ["zb", "ab"])
    with pytest.raises(SpecError, match="maxpool must be one of"):
        net.lrp(x, 0, maxpool="first")
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(
        SpecError, match=r"node 'linear' .* needs bounds of this layer's input; pass bounds=\(low, high\)"
    ):
        lrpkit.lrp(model, torch.rand(2, 3), 0, "zb")
    with pytest.raises(SpecError, match=r"bounds low of shape \(2,\) does not broadcast to the input \(3,\)"):
        lrpkit.lrp(model, torch.rand(2, 3), 0, "zb", bounds=(torch.zeros(2), 1.0))
    with pytest.raises(SpecError, match="low <= high"):
        lrpkit.lrp(model, torch.rand(2, 3), 0, "zb", bounds=(torch.tensor([0.0, 2.0, 0.0]), 1.0))
    with pytest.raises(TargetError, match="out of range"):
        net.lrp(x, 10)
    assert issubclass(SpecError, LrpkitError)


def test_lrp_is_a_plain_function_and_submodules_resolve_lazily():
    import lrpkit.data

    import lrpkit.engine

    assert lrpkit.lrp is lrpkit.engine.lrp
    assert lrpkit.data is lrpkit.model.data
    assert callable(lrpkit.data.mnist)


def test_gamma_and_alphabeta_treat_negative_inputs_by_their_definition():
    """Inputs of either sign (the first layer) take the split path; known-positive ones the fast path."""
    torch.manual_seed(8)
    layer = nn.Linear(6, 3).double()
    x = torch.randn(4, 6, dtype=F64)
    for rule in (Gamma(0.5), AlphaBeta(2.0, 1.0)):
        split = lrpkit.lrp(nn.Sequential(layer), x, "pred", rule)
        relu_first = lrpkit.lrp(nn.Sequential(nn.ReLU(), layer), x, "pred", rule)
        positive = lrpkit.lrp(nn.Sequential(layer), F.relu(x), "pred", rule)
        torch.testing.assert_close(relu_first, positive)
        assert not torch.allclose(split, positive)


def test_conservation_gap_per_sample_and_class_for_every_class():
    """One measure for one target and for ``"all"``: row k of the "all" gaps is the gap of target k alone."""
    from lrpkit.engine import conservation_gap

    net = lrpkit.mlp().double()
    x = torch.rand(3, 784, dtype=F64, generator=torch.Generator().manual_seed(1))
    every = net.layerwise_lrp(x, "all", "epsilon")
    gaps = conservation_gap(every[0], every[-1])
    assert gaps.shape == (3, 10)
    for k in (0, 7):
        R = net.layerwise_lrp(x, k, "epsilon")
        torch.testing.assert_close(gaps[:, k], conservation_gap(R[0], R[-1]))
    with pytest.raises(lrpkit.errors.InputError, match="do not start with"):
        conservation_gap(every[0][:2], every[-1])
